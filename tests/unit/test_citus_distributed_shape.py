"""Live drift's distributed shape (ADR 0149) against the committed baseline, without a database:
every replacement finds its line, the additions land in their sorted place, nothing else moves."""

from __future__ import annotations

from symphony_schema import project_root
from symphony_schema.baseline import citus
from symphony_schema.baseline.drift import read_catalog_file


def test_every_replacement_finds_its_line_and_the_additions_keep_the_order() -> None:
    _, expected = read_catalog_file(project_root() / "baseline")
    shaped, changed = citus.distributed_expectation(expected)
    assert changed == len(citus.DISTRIBUTED_REPLACEMENTS) + len(citus.DISTRIBUTED_ADDITIONS)
    for section, old, new in citus.DISTRIBUTED_REPLACEMENTS:
        assert not any(line.startswith(old) for line in shaped[section]), old
        assert sum(line.startswith(new) for line in shaped[section]) == 1, new
    for section, _, added in citus.DISTRIBUTED_ADDITIONS:
        assert shaped[section].count(added) == 1, added
    storage = [line.split(" ", 1)[1] for line in shaped["storage"]]
    assert storage == sorted(storage)
    queue = [
        line for line in shaped["structure"] if " index " in line and "outbox_pending " in line
    ]
    assert queue == sorted(queue)
    for section in expected:
        if section not in ("roles", "structure", "storage"):
            assert shaped[section] == expected[section], section
