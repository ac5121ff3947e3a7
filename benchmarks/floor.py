"""The plain-Python floor of a workflow run: parse the YAML with PyYAML and dispatch its steps.

It does what the bench workflows ask for with nothing around it — no models, no expression
sandbox, no run store, no report — so ``wfkit run``'s wall time divided by this one's is what
wfkit adds on top of starting Python and reading the file.

    python benchmarks/floor.py FILE            # parse and run
    python benchmarks/floor.py FILE --parse    # parse only (the floor of `explain`)
"""

from __future__ import annotations

import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import yaml


def dispatch(step: dict[str, Any], state: dict[str, Any]) -> None:
    """One step: a state write, a shell command (retried as asked), or a fan-out."""
    kind = step["type"]
    if kind == "state_update":
        state["n"] = state.get("n", 0) + 1
    elif kind == "shell_command":
        for _ in range(1 + int(step.get("retry_count", 0))):
            if subprocess.run(step["command"], shell=True, check=False).returncode == 0:
                break
    elif kind == "parallel_foreach":
        count = int(step["items"].split("range(")[1].split(")")[0])
        task = step["_task"]

        def item(index: int) -> dict[str, Any]:
            local = {"n": index}
            for inner in task["steps"]:
                dispatch(inner, local)
            return local

        with ThreadPoolExecutor(int(step.get("max_parallel", 4))) as pool:
            list(pool.map(item, range(count)))


def main() -> None:
    with open(sys.argv[1], encoding="utf-8") as handle:
        doc = yaml.load(handle, Loader=yaml.CSafeLoader)
    state: dict[str, Any] = {}
    if sys.argv[2:] == ["--parse"]:
        sys.stdout.write(f"{len(doc['steps'])} steps\n")
        return
    for step in doc["steps"]:
        if step["type"] == "parallel_foreach":
            step["_task"] = doc["sub_agent_tasks"][step["sub_agent_task"]]
        dispatch(step, state)
    sys.stdout.write(f"{len(doc['steps'])} steps\n")


if __name__ == "__main__":
    main()
