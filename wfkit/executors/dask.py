"""The ``dask`` executor: every ``parallel_foreach`` item is a task on a Dask cluster.

The coordinating run sends each item (an :class:`~wfkit.engine.items.ItemJob`) with the
workflow's text, which reaches every worker once (scattered, kept by digest), and a context:
the run's id, seed, options and its breakers' state at that moment. On the worker the item
runs in the same engine (:func:`wfkit.engine.detached.run_detached`) on one event loop per worker
process, where the run's MCP servers start once and stay until the run ends; its records come
back in an :class:`~wfkit.engine.detached.ItemReport` that the run adopts as if the item had run in
it. Cancelling an item (``fail_fast``, Ctrl-C, a timeout) sets a Dask ``Event`` the worker
watches: the item ends there as it would locally, cleanup and ``finally`` steps included,
and its records still come back. A worker that dies mid-item loses nothing the run kept: Dask
runs the task again elsewhere.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import logging
import os
import threading
import uuid
from collections import OrderedDict
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from wfkit.engine.detached import ItemContext, ItemReport, adopt, context_of, run_detached
from wfkit.engine.events import ToolServerLog
from wfkit.errors import ExecutorError, ExecutorLostError, MissingExtraError, StepError

if TYPE_CHECKING:
    from wfkit.engine.context import RunContext
    from wfkit.engine.items import ItemJob, ItemOutcome
    from wfkit.engine.tools import ToolProvider
    from wfkit.language.loader import LoadedWorkflow

CONNECT_SECONDS = 5.0
"""How long reaching a scheduler may take before the run is refused."""

FIRST_CANCEL_CHECK = 0.5
CANCEL_CHECK_EVERY = 0.25
"""A worker looks whether its item was cancelled after 0.5 s, then every 0.25 s (a look asks
the scheduler; items shorter than half a second never ask)."""

LOST_CHECK_EVERY = 0.5
"""How often a run waiting for its items looks whether its connection to the scheduler holds
(a lost scheduler cancels every future; the ones submitted after it never finish)."""

CANCEL_GRACE_SECONDS = 30.0
"""How long a cancelled item may take to end on its worker (its cleanup and ``finally``
steps) before the run stops waiting for its records."""


def require_distributed() -> None:
    """MissingExtraError unless ``distributed`` can be imported."""
    try:
        import distributed  # noqa: F401
    except ImportError:
        raise MissingExtraError("--executor dask needs: pip install 'wfkit[dask]'") from None


@dataclass(frozen=True, slots=True)
class Definition:
    """A workflow as its items need it on a worker: its text, not a path there."""

    text: str
    file: str  # as the run names it (in records and errors)
    digest: str  # of the text and of the task files it includes
    directory: str  # the file's folder on the coordinating machine (MCP servers' cwd)
    version: str  # the coordinator's wfkit: a worker running another refuses the items
    included: dict[str, str] = field(default_factory=dict)  # its task files' texts, by entry


#: the setting that keeps distributed's log of recent messages (left alone when set)
LOG_LENGTH_ENV = "DASK_DISTRIBUTED__ADMIN__LOW_LEVEL_LOG_LENGTH"


class DaskExecutor:
    """Items run as tasks of a Dask cluster; their records come back to the run."""

    def __init__(self, client: Any, cluster: Any = None, address: str | None = None) -> None:
        self.client = client
        self.cluster = cluster
        #: the scheduler as the user named it (messages)
        self.address = address or "the local Dask cluster"
        self._definitions: dict[str, Any] = {}  # digest -> its scattered future

    @classmethod
    async def start(cls, scheduler: str | None) -> DaskExecutor:
        """Connect to ``scheduler``, or start a local cluster of processes (one per core)."""
        require_distributed()
        from distributed import Client, LocalCluster

        # the client's connection troubles reach the user as the run's own one-line error
        # (ExecutorError, ExecutorLostError), naming the scheduler, not as log lines
        logging.getLogger("distributed.client").setLevel(logging.CRITICAL)
        if LOG_LENGTH_ENV not in os.environ:
            # distributed keeps its last 1,000 batches of messages to the scheduler for
            # debugging: ~2 KiB per item of a large fan-out the coordinator never needs
            import dask.config

            dask.config.set({"distributed.admin.low-level-log-length": 0})

        if scheduler is None:
            cluster = await LocalCluster(  # type: ignore[no-untyped-call]
                n_workers=os.cpu_count() or 1,
                threads_per_worker=1,
                processes=True,
                asynchronous=True,
                dashboard_address=None,
            )
            return cls(await Client(cluster, asynchronous=True), cluster)  # type: ignore[no-untyped-call]
        try:
            client = await Client(  # type: ignore[no-untyped-call]
                scheduler, asynchronous=True, timeout=CONNECT_SECONDS
            )
        except Exception as exc:  # OSError, TimeoutError: one line, no traceback
            reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
            raise ExecutorError(
                f"cannot reach the Dask scheduler at {scheduler}: {reason}"
            ) from None
        executor = cls(client, address=f"the Dask scheduler at {scheduler}")
        try:
            await executor.check_workers(os.getcwd())
        except BaseException:
            await client.close()
            raise
        return executor

    async def check_workers(self, cwd: str) -> None:
        """Refuse workers that run another wfkit version, or cannot see the folder the items'
        shell steps run in (this process's working folder)."""
        import wfkit

        try:
            facts = await self.client.run(_worker_facts, cwd, on_error="return")
        except Exception:  # the items say what went wrong, by name
            return
        for worker, answer in sorted(facts.items()):
            if not isinstance(answer, tuple):  # it could not even answer: another wfkit
                raise ExecutorError(
                    f"the Dask worker {worker} cannot check its wfkit version"
                    f" ({type(answer).__name__}: {answer}): install wfkit"
                    f" {wfkit.__version__} on every worker"
                )
            version, has_folder = answer
            if version != wfkit.__version__:
                raise ExecutorError(
                    f"the Dask worker {worker} runs wfkit {version}, this process wfkit"
                    f" {wfkit.__version__}: install the same version on every worker"
                )
            if not has_folder:
                raise ExecutorError(
                    f"the Dask worker {worker} has no folder {cwd}: the items' shell steps run"
                    " in the folder wfkit was started from, which must exist on every worker"
                )

    async def aclose(self) -> None:
        """Close the connection (and the cluster started for the run)."""
        await self.client.close()
        if self.cluster is not None:
            await self.cluster.close()

    async def _definition(self, loaded: LoadedWorkflow) -> Any:
        future = self._definitions.get(loaded.fingerprint + loaded.file)
        if future is None:
            import wfkit

            definition = Definition(
                loaded.text,
                loaded.file,
                loaded.fingerprint,
                str(Path(loaded.source_path).parent),
                wfkit.__version__,
                dict(loaded.included),
            )
            future = await self.client.scatter(definition, broadcast=True, hash=False)
            self._definitions[loaded.fingerprint + loaded.file] = future
        return future

    async def run_item(self, run: RunContext, job: ItemJob) -> ItemOutcome:
        """Send the item to the cluster, wait for its report and adopt it into ``run``.

        A lost scheduler is the run's failure, not the item's (:class:`ExecutorLostError`):
        no item could run or report any more, whatever ``on_item_error`` says."""
        self._check_connected()
        for sending in range(2):
            cancel = f"wfkit-cancel-{uuid.uuid4().hex}"
            try:  # no workers (scatter's TimeoutError), a lost scheduler...: the item fails
                definition = await self._definition(run.loaded)
                future = self.client.submit(
                    run_remote,
                    definition,
                    context_of(run),
                    job,
                    cancel,
                    key=f"wfkit-item-{job.index}-{uuid.uuid4().hex}",
                    pure=False,
                    priority=-job.index,  # items start in their order, as they do locally
                )
            except Exception as exc:
                self._check_connected()
                return _unrunnable(job, exc)
            try:
                report: ItemReport = await self._report(future)
                break
            except asyncio.CancelledError:
                late = await self._cancelled(future, cancel)
                if late is not None:
                    adopt(run, late)
                raise
            except ExecutorLostError:
                raise
            except Exception as exc:  # the cluster could not run it (workers kept dying, ...)
                self._check_connected()
                if sending == 0 and _lost_definition(exc):  # the workers holding the
                    # workflow's definition died with it: scatter it again, send it again
                    self._definitions.pop(run.loaded.fingerprint + run.loaded.file, None)
                    continue
                return _unrunnable(job, exc)
        adopt(run, report)
        assert report.entry is not None  # only a cancelled item has none
        return report.entry, report.error

    def _check_connected(self) -> None:
        """Raise :class:`ExecutorLostError` when the client lost its scheduler."""
        status = self.client.status
        if status not in ("running", "newly-created"):
            raise ExecutorLostError(
                f"{self.address} was lost (the connection is {status}): the items in flight"
                " cannot finish; resume the run once the scheduler is back"
            )

    async def _report(self, future: Any) -> Any:
        """The item's report, looking every ``LOST_CHECK_EVERY`` seconds whether the scheduler
        is still there."""
        waiter = _awaited(future)
        try:
            while True:
                done, _ = await asyncio.wait({waiter}, timeout=LOST_CHECK_EVERY)
                if done:
                    return waiter.result()
                self._check_connected()
        finally:
            if not waiter.done():
                waiter.cancel()

    async def _cancelled(self, future: Any, cancel: str) -> ItemReport | None:
        """Stop a running item and wait (bounded) for what it did until it stopped."""
        from distributed import Event

        if self.client.status != "running":  # the scheduler is gone, and the item with it
            return None

        event: Any = Event(cancel, client=self.client)  # type: ignore[no-untyped-call]
        with contextlib.suppress(Exception):
            await event.set()
        try:
            report: ItemReport = await asyncio.wait_for(
                asyncio.shield(_awaited(future)), CANCEL_GRACE_SECONDS
            )
        except (Exception, asyncio.CancelledError):
            with contextlib.suppress(Exception):  # a lost scheduler cancelled it already
                await self.client.cancel(future)
            return None
        with contextlib.suppress(Exception):
            await event.clear()
        return report

    async def close_run(self, run: RunContext) -> None:
        """Close the run's MCP servers on every worker; keep what they wrote to stderr."""
        import time

        try:
            answers = await self.client.run(_close_run, run.run_id, on_error="ignore")
        except Exception:  # a worker gone meanwhile: its servers went with it
            return
        logs: dict[str, list[str]] = {}
        for worker_logs in answers.values():
            if isinstance(worker_logs, dict):
                for server, text in worker_logs.items():
                    logs.setdefault(server, []).append(text)
        for server, texts in logs.items():
            run.emit(ToolServerLog(run.run_id, server, "\n".join(texts), time.time()))


def _lost_definition(exc: BaseException) -> bool:
    """Whether an item failed because the scattered workflow definition it needs was lost
    with the workers that held it (the scheduler then forgets the item's task)."""
    return "already forgotten" in str(exc) or "lost dependencies" in str(exc)


async def _result(future: Any) -> Any:
    return await future


def _awaited(future: Any) -> asyncio.Task[Any]:
    """A task awaiting the Dask future whose error is always taken: one the run no longer
    waits for (the scheduler lost, the item cancelled) is not logged as "never retrieved"
    with a traceback when the task is collected."""
    task = asyncio.ensure_future(_result(future))
    task.add_done_callback(lambda done: done.cancelled() or done.exception())
    return task


# --- on the worker -------------------------------------------------------------------------

_loops: list[asyncio.AbstractEventLoop] = []  # this process's item loop, once started
_loop_lock = threading.Lock()
_loaded: OrderedDict[tuple[str, str], LoadedWorkflow] = OrderedDict()
_loaded_lock = threading.Lock()
_tools: dict[str, ToolProvider] = {}  # by run id; touched on the item loop only
LOADED_KEPT = 8


def _item_loop() -> asyncio.AbstractEventLoop:
    """The worker process's one event loop for items, in a thread of its own: the MCP
    servers a run starts there outlive the task that started them."""
    with _loop_lock:
        if not _loops:
            loop = asyncio.new_event_loop()
            threading.Thread(target=loop.run_forever, name="wfkit-items", daemon=True).start()
            _loops.append(loop)
        return _loops[0]


@contextlib.contextmanager
def _without_children() -> Iterator[None]:
    from wfkit.language.children import WANTED

    token = WANTED.set(False)
    try:
        yield
    finally:
        WANTED.reset(token)


def _workflow(definition: Definition) -> LoadedWorkflow:
    """The loaded workflow of a definition, loaded once per worker process (by digest)."""
    from wfkit.language.loader import load_text

    key = (definition.digest, definition.file)  # the file names records: same text, other name
    with _loaded_lock:
        loaded = _loaded.get(key)
        if loaded is None:
            with _without_children():  # items run none there: their files are not read
                loaded = load_text(definition.text, definition.file, included=definition.included)
            _loaded[key] = loaded
            while len(_loaded) > LOADED_KEPT:
                _loaded.popitem(last=False)
        else:
            _loaded.move_to_end(key)
        return loaded


def _tools_for(run_id: str, loaded: LoadedWorkflow, directory: str) -> ToolProvider:
    tools = _tools.get(run_id)
    if tools is None:
        from wfkit.engine.tools import NoTools

        if loaded.workflow.mcp_servers:
            from wfkit.mcp_client.tools import McpTools

            tools = McpTools(loaded.workflow.mcp_servers, Path(directory))
        else:
            tools = NoTools()
        _tools[run_id] = tools
    return tools


def _worker_facts(cwd: str) -> tuple[str, bool]:
    """On a worker: its wfkit version, and whether it sees the folder ``cwd``."""
    import wfkit

    return wfkit.__version__, os.path.isdir(cwd)


def run_remote(definition: Definition, context: ItemContext, job: ItemJob, cancel: str) -> Any:
    """The Dask task of one item: run it on this worker's item loop, watching for a cancel.
    A worker that joined after the run's check is checked here."""
    version, has_folder = _worker_facts(context.cwd or ".")
    if version != definition.version or not has_folder:
        raise ExecutorError(
            f"this worker runs wfkit {version} (the run: {definition.version})"
            if version != definition.version
            else f"this worker has no folder {context.cwd}, where the item's shell steps run"
        )
    loaded = _workflow(definition)
    loop = _item_loop()
    running: list[asyncio.Task[Any]] = []

    async def item() -> ItemReport:
        task = asyncio.current_task()
        assert task is not None
        running.append(task)
        tools = _tools_for(context.run_id, loaded, definition.directory)
        return await run_detached(loaded, context, job, tools)

    done = asyncio.run_coroutine_threadsafe(item(), loop)
    wait = FIRST_CANCEL_CHECK
    event: Any = None
    while True:
        try:
            return done.result(timeout=wait)
        except concurrent.futures.TimeoutError:
            pass
        wait = CANCEL_CHECK_EVERY
        if event is None:
            from distributed import Event

            event = Event(cancel)  # type: ignore[no-untyped-call]
        if event.is_set():
            loop.call_soon_threadsafe(lambda: [task.cancel() for task in running])
            return done.result()


async def _close_run(run_id: str) -> dict[str, str]:
    """Run on every worker at the end of a run: close its tools there, return their logs."""
    if not _loops:
        return {}
    done = asyncio.run_coroutine_threadsafe(_close_tools(run_id), _loops[0])
    return await asyncio.wrap_future(done)


async def _close_tools(run_id: str) -> dict[str, str]:
    tools = _tools.pop(run_id, None)
    if tools is None:
        return {}
    await tools.aclose()
    logs = getattr(tools, "logs", None)
    return dict(logs()) if logs is not None else {}


def _unrunnable(job: ItemJob, exc: Exception) -> ItemOutcome:
    """The outcome of an item the cluster could not run: failed, with the cluster's reason
    (never mistaken for the step's own timeout or error)."""
    error = StepError(
        f"item {job.index} could not run on the Dask cluster: {type(exc).__name__}: {exc}"
    )
    entry = {
        "index": job.index,
        "item": job.item,
        "status": "failed",
        "state": None,
        "error": error.details(),
    }
    return entry, error
