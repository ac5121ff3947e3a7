"""Run stores: where runs, step executions, errors, checkpoints, breakers and output live.

The engine never imports this package: it emits events (``wfkit.core.events``) and reads
stored frames and breaker states through callbacks in its options. The commands open a store
and pass it those.
"""
