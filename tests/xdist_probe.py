"""A pytest plugin for ``tests/unit/test_xdist_layout.py`` (``-p tests.xdist_probe``): it runs no
test body and starts no server or cluster; every selected test only records, as one JSON line
in ``$SYMPHONY_XDIST_PROBE/<worker>.jsonl``, which xdist worker ran it and which embedded-server
data directory that worker would use. Citus is treated as installed so ``tests/cluster`` is
collected on any machine.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest


def pytest_configure(config: pytest.Config) -> None:
    from symphony_schema import cluster

    cluster.citus_installed = lambda: True  # type: ignore[assignment]


def _record(item: pytest.Item) -> None:
    worker = os.environ.get("PYTEST_XDIST_WORKER", "controller")
    line = {"worker": worker, "nodeid": item.nodeid, "pgdata": os.environ.get("SYMPHONY_PGDATA")}
    out = Path(os.environ["SYMPHONY_XDIST_PROBE"]) / f"{worker}.jsonl"
    with out.open("a", encoding="utf-8") as handle:
        handle.write(json.dumps(line) + "\n")


@pytest.hookimpl(trylast=True)
def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    for item in items:
        item.setup = lambda: None  # type: ignore[method-assign]  # no fixtures
        item.runtest = lambda item=item: _record(item)  # type: ignore[method-assign]
