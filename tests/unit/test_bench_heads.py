"""Section ``heads`` (ADR 0169): the pure parts: the layouts' DDL, the pgbench scripts of one job,
the parser of pgbench's output, the paired summaries and the README table."""

from __future__ import annotations

import re
from typing import Any

import pytest

from benchmarks import cli, evaluate, heads, report
from benchmarks.config import FULL, QUICK

#: pgbench variables (``:name``), not casts (``::type``).
_VARIABLE = re.compile(r"(?<![:\w]):[a-z_]+")


def test_each_layout_keeps_its_own_columns() -> None:
    cur, slim, layout = (heads.schema_ddl(v) for v in ("cur", "slim", "heads"))
    queue_of = {
        "cur": cur.split("CREATE TABLE cur.pending", 1)[1].split(");", 1)[0],
        "slim": slim.split("CREATE TABLE slim.pending", 1)[1].split(");", 1)[0],
        "heads": layout.split("CREATE TABLE heads.queue", 1)[1].split(");", 1)[0],
    }
    for column in ("lease_token", "is_head", "claimed_by", "payload jsonb"):
        assert column in queue_of["cur"]
    assert "payload" not in queue_of["slim"] and "lease_token" in queue_of["slim"]
    # Immutable queue rows: nothing a claim, a retry or a promotion would change.
    for column in ("lease_token", "is_head", "claimed_by", "attempt_count", "in_doubt"):
        assert column not in queue_of["heads"], column
    assert "CREATE TABLE heads.claimable" in layout and "CREATE TABLE heads.lease" in layout
    # Every layout writes the same ledger, references, allocator and payload table.
    for variant, ddl in (("cur", cur), ("slim", slim), ("heads", layout)):
        for table in ("attempts", "rail_references", "rails", "sequences", "payloads"):
            assert f"CREATE TABLE {variant}.{table} " in ddl, (variant, table)
    with pytest.raises(ValueError, match="unknown variant 'pgmq'"):
        heads.schema_ddl("pgmq")


@pytest.mark.parametrize("variant", heads.VARIANTS)
def test_a_job_script_is_one_statement_per_line_and_completes_only_a_claimed_job(
    variant: str,
) -> None:
    statements = heads.job_statements(variant)
    lines = heads.script(variant).splitlines()
    assert lines == [text for _, text in statements]
    for line in lines:
        assert line.startswith("\\") or line.endswith((";", "\\gset")), line
    # The claim first; the rest only when it found a job (pgbench aborts a client on a \gset
    # of no row, so the claim always returns one row and says whether it got a job).
    assert lines[1] == "\\if :got" and lines[-1] == "\\endif"
    assert lines[0].endswith("\\gset") and "AS got" in lines[0]
    labels = heads.sql_labels(variant)
    assert len(labels) == sum(1 for line in lines if not line.startswith("\\"))
    assert len(set(labels)) == len(labels)


def test_the_layouts_do_the_same_completion_work() -> None:
    common = [
        "attempt number",
        "rail lookup",
        "rail reference INSERT",
        "ledger INSERT",
        "allocator lock",
    ]
    for variant in heads.OURS:
        labels = heads.sql_labels(variant)
        assert labels[0] == "claim" and labels[1] == "BEGIN" and labels[-1] == "COMMIT"
        positions = [labels.index(label) for label in common]
        assert positions == sorted(positions), variant
    assert "promotion UPDATE" in heads.sql_labels("cur")
    assert "next head INSERT" in heads.sql_labels("heads")
    # The fence: the lease token of the claim, the worker's own id.
    fence = dict(heads.job_statements("heads"))["lease DELETE (fence)"]
    assert ":tok::uuid" in fence and ":client_id" in fence


@pytest.mark.parametrize("variant", heads.VARIANTS)
def test_the_claim_explained_is_plain_sql(variant: str) -> None:
    statement = (
        heads.claim_statement(variant) if variant != "pgmq" else heads.job_statements("pgmq")[0][1]
    )
    if variant == "pgmq":
        assert "pgmq.read" in statement
        return
    assert "\\gset" not in statement
    assert not _VARIABLE.findall(statement), _VARIABLE.findall(statement)


def test_fill_statements_take_the_run_parameters() -> None:
    for variant in heads.OURS:
        text = " ".join(heads.fill_sql(variant))
        for name in ("count", "participants", "body"):
            assert f"%({name})s" in text, (variant, name)
        # psycopg placeholders: a literal modulo is doubled.
        assert "g %% %(participants)s" in text


_PGBENCH_OUTPUT = """pgbench (18.1)
transaction type: /tmp/x/cur.sql
scaling factor: 1
query mode: prepared
number of clients: 2
number of threads: 2
maximum number of tries: 1
number of transactions per client: 500
number of transactions actually processed: 1000/1000
number of failed transactions: 0 (0.000%)
latency average = 0.912 ms
initial connection time = 3.140 ms
tps = 2192.501234 (without initial connection time)
statement latencies in milliseconds and failures:
         0.171           0  WITH unleased AS (SELECT p.outbox_id ...
         0.002           0  \\if :got
         0.020           0  BEGIN;
         0.043           0  DELETE FROM cur.pending AS p ...
         0.002           0  \\endif
"""


def test_pgbench_output_gives_rate_scripts_and_sql_latencies_in_order() -> None:
    run = heads.parse_pgbench(_PGBENCH_OUTPUT)
    assert run.tps == pytest.approx(2192.501234)
    assert run.scripts == 1000
    assert run.latencies_ms == [0.171, 0.020, 0.043]
    with pytest.raises(ValueError, match="not pgbench output"):
        heads.parse_pgbench("pgbench: error: connection refused\n")


def _measured(rate: float, buffers: float, wal: float) -> dict[str, Any]:
    return {
        "buffers_per_claim": {"0": buffers, "10": buffers + 1, "30": buffers + 3},
        "no_vacuum": [
            {
                "from": start,
                "to": stop,
                "jobs": stop - start,
                "jobs_per_s": rate,
                "wal_bytes_per_job": wal,
                "wal_records_per_job": 20.0,
                "wal_fpi_per_job": 0.01,
                "statement_ms": {"claim": 0.1, "COMMIT": 0.02},
            }
            for start, stop in ((0, 10), (10, 30))
        ],
        "jobs_per_s": {"1": rate, "2": 2 * rate},
        "empty_claims": 0,
        "ran_dry": False,
    }


def _section() -> tuple[heads.Plan, dict[str, Any]]:
    plan = heads.Plan(
        participants=(50,), checkpoints=(10, 30), workers=(1, 2), seconds=1, repeats=3
    )
    # Repeat i of heads is 1.5x repeat i of cur, whatever the machine did in that repeat.
    repeats = [
        {
            "cur": _measured(1000 * k, 24, 2100),
            "slim": _measured(900 * k, 26, 2050),
            "heads": _measured(1500 * k, 15, 1900),
            "pgmq": _measured(1200 * k, 24, 470),
        }
        for k in (1.0, 0.5, 2.0)
    ]
    summary = heads.summarize_repeats(repeats, plan)
    section = {
        "plan": {
            "participants": [50],
            "checkpoints": [10, 30],
            "workers": [1, 2],
            "seconds": 1,
            "repeats": 3,
            "fill_rows": plan.fill_rows(),
        },
        "by_participants": {"50": {"repeats": repeats, "summary": summary}},
    }
    return plan, section


def test_ratios_are_paired_repeat_by_repeat() -> None:
    _, section = _section()
    summary = section["by_participants"]["50"]["summary"]
    ratio = summary["ratios"]["heads/cur"]["jobs_per_s"]["2"]
    assert ratio["min"] == ratio["max"] == pytest.approx(1.5)
    assert summary["ratios"]["heads/pgmq"]["no_vacuum_jobs_per_s"][1]["median"] == pytest.approx(
        1.25
    )
    assert summary["cur"]["jobs_per_s"]["1"]["median"] == 1000
    assert summary["heads"]["buffers_per_claim"]["30"]["median"] == 18


def test_without_pgmq_only_the_ratios_between_layouts_are_made() -> None:
    plan, section = _section()
    repeats = [
        {k: v for k, v in r.items() if k != "pgmq"}
        for r in section["by_participants"]["50"]["repeats"]
    ]
    summary = heads.summarize_repeats(repeats, plan)
    assert set(summary["ratios"]) == {"heads/cur", "slim/cur"}
    assert "pgmq" not in summary


def test_the_readme_shows_rates_ratios_buffers_wal_and_statements() -> None:
    _, section = _section()
    text = "\n".join(report.heads_lines(section))
    assert "### 50 participants" in text
    assert "| heads | 1,500 (750-3,000) | 3,000 (1,500-6,000) |" in text
    assert "| heads/cur | 1.50x | 1.50x | 1.50x | 1.50x |" in text
    assert "15 / 16 / 18" in text  # buffers per claim after 0 / 10 / 30 jobs
    assert "| cur | **per job** | **0.120** | **0.120** |" in text
    results: dict[str, Any] = {"meta": _meta(), "heads": section}
    results["evaluation"] = evaluate.evaluate(results)
    full = report.render(results, [])
    assert "## A claimable-heads table, measured" in full


def _meta() -> dict[str, Any]:
    return {
        "command": "python -m benchmarks --only heads",
        "started_at": "2026-11-30 13:40 UTC",
        "git_commit": "abc",
        "head": "0036",
        "machine": {"line": "2 cores", "psycopg": "3"},
        "load_before": [1.0, 1.0, 1.0],
        "load_after": [1.0, 1.0, 1.0],
        "duration_s": 1.0,
        "settings": {"payload_bytes": 256, "warmup_s": 1, "measure_s": 3, "repeats": 3},
        "sections": ["heads"],
        "pgmq_version": "1.13.0",
        "server": {
            "version": "PostgreSQL 18.6",
            "settings": {"fsync": "on"},
            "pg_stat_statements": False,
        },
    }


def test_the_section_is_selectable_and_sized_by_the_settings() -> None:
    assert cli._selected("heads") == ("heads",)
    assert cli._selected("steady,heads") == ("steady", "heads")
    # Evidence for a design decision, not a target of quality.md: about 20 minutes that a
    # full run (nox -s bench) does not spend unless asked for.
    assert "heads" not in cli._selected(None)
    assert "--only" in cli._parser().format_help() and "heads" in cli._parser().format_help()
    assert heads.plan_for(QUICK) == heads.QUICK_PLAN
    assert heads.plan_for(FULL) == heads.FULL_PLAN
    assert heads.plan_for(QUICK.with_overrides(None, 4.0)).seconds == 4
    full = heads.plan_for(FULL.with_overrides(5, 7.0))
    assert full.repeats == 5 and full.seconds == 7
    assert full.participants == (50, 10_000) and full.checkpoints == (10_000, 30_000)
    assert full.workers == (1, 2, 4)
    # The queue outlasts the no-VACUUM phase and the timed runs at a generous rate.
    assert full.fill_rows() > full.checkpoints[-1] + 2500 * full.seconds * len(full.workers)


def test_our_statements_run_under_the_plan_settings_the_functions_pin() -> None:
    """The outbox functions plan with force_generic_plan and enable_seqscan off (ADR 0041,
    outbox_pin_plan_settings): the plain statements must too, or a generic plan made while the
    ledger was empty scans it sequentially (0.43 ms per attempt-number look-up in the first
    10,000 jobs of the first full run, 0.05 ms after). PGMQ runs with the server's settings."""
    for variant in heads.OURS:
        options = heads.session_options(variant)
        assert "-c plan_cache_mode=force_generic_plan" in options
        assert "-c enable_seqscan=off" in options
        assert "-c synchronous_commit=off" in options
    assert heads.session_options("pgmq") == "-c synchronous_commit=off"
