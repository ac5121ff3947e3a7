"""Items run on a Dask cluster are in the run's OpenTelemetry trace exactly as local ones."""

from __future__ import annotations

import json
from pathlib import Path

from tests.executors.conftest import Cluster
from tests.otel.test_export import RETRY_AND_FAN, flow, wfkit
from tests.otlp_receiver import children, receiving, the


def _item_tree(tmp_path: Path, *extra: str) -> list[tuple[int, list[str], list[int]]]:
    """Each item's index, its steps' ids and their attempt counts, from a real export."""
    tmp_path.mkdir()
    with receiving() as receiver:
        done = wfkit(
            tmp_path,
            "run",
            flow(tmp_path, RETRY_AND_FAN),
            "--json",
            *extra,
            env={"OTEL_EXPORTER_OTLP_ENDPOINT": receiver.url},
        )
        assert done.returncode == 0, done.stderr
        assert json.loads(done.stdout)["status"] == "succeeded"
        spans = receiver.spans()
    assert len({s.trace_id for s in spans}) == 1
    (fan,) = the(spans, "step", "fan")
    (attempt,) = children(spans, fan)
    tree = []
    for item in children(spans, attempt):
        steps = children(spans, item)
        tree.append(
            (
                item.attrs["wfkit.item.index"],
                [s.attrs["wfkit.step.id"] for s in steps],
                [len(children(spans, s)) for s in steps],
            )
        )
    return sorted(tree)


def test_dask_items_are_spans_in_the_runs_trace(dask_cluster: Cluster, tmp_path: Path) -> None:
    local = _item_tree(tmp_path / "local")
    remote = _item_tree(
        tmp_path / "dask", "--executor", "dask", "--scheduler", dask_cluster.address
    )
    assert local == [(i, ["fan/a", "fan/b"], [1, 1]) for i in range(3)]
    assert remote == local
