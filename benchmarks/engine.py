"""Engine timings (P5): ``alembic upgrade head`` on an empty database against ``psql`` applying
the same SQL rendered by ``alembic upgrade head --sql``; ``symphony-schema baseline apply``
against the full migration; wall time of ``symphony-schema baseline drift`` and
``symphony-schema invariants`` (what ``nox -s drift invariants`` runs, without nox's own start-up).

Commands run as subprocesses, as a developer or CI runs them, so the CLI numbers include Python's
start-up and imports; the in-process numbers (the engine's ``api.upgrade`` and the baseline's
``apply_baseline`` called from an already warm interpreter) show the engine's own cost.
"""

from __future__ import annotations

import cProfile
import functools
import pstats
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from benchmarks.stats import summarize
from benchmarks.workloads import Context
from symphony_schema import embedded, project_root
from symphony_schema.baseline.apply import apply_baseline
from symphony_schema.baseline.generate import BASELINE_SQL, default_baseline_dir
from symphony_schema.baseline.scratch import ScratchDatabase, scratch_database
from symphony_schema.migration import api


def _timed(action: Callable[[], None]) -> float:
    started = time.perf_counter()
    action()
    return time.perf_counter() - started


def _run(args: list[str]) -> None:
    done = subprocess.run(args, cwd=project_root(), capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise RuntimeError(
            f"{' '.join(args[:6])} ... exited {done.returncode}: {done.stderr.strip()[-800:]}"
        )


def _python(*args: str) -> list[str]:
    return [sys.executable, *args]


def render_offline_sql(server_url: str, target: Path) -> None:
    """``alembic upgrade head --sql``: the whole chain as one script, ledger rows included."""
    done = subprocess.run(
        _python("-m", "alembic", "-x", f"url={server_url}", "upgrade", "head", "--sql"),
        cwd=project_root(),
        capture_output=True,
        text=True,
        check=False,
    )
    if done.returncode != 0:
        raise RuntimeError(f"alembic upgrade head --sql failed: {done.stderr.strip()[-800:]}")
    target.write_text(done.stdout)


def _on_fresh_database(server_url: str, action: Callable[[ScratchDatabase], object]) -> float:
    """Seconds ``action`` takes on a new empty scratch database (created and dropped untimed)."""
    with scratch_database(server_url, "bench_engine") as target:
        started = time.perf_counter()
        action(target)
        return time.perf_counter() - started


def _steps(
    server_url: str, rendered: Path, baseline: Path, psql: str
) -> dict[str, Callable[[ScratchDatabase], object]]:
    """What runs on an empty database, by name."""
    return {
        "alembic_upgrade_cli": lambda t: _run(
            _python("-m", "alembic", "-x", f"url={t.url}", "upgrade", "head")
        ),
        "psql_rendered_sql": lambda t: _run(
            [psql, "-X", "-q", "-v", "ON_ERROR_STOP=1", "-d", t.conninfo, "-f", str(rendered)]
        ),
        "engine_in_process": lambda t: api.upgrade(t.url),
        "baseline_apply_cli": lambda t: _run(
            _python("-m", "symphony_schema", "baseline", "apply", "--url", t.url)
        ),
        "baseline_apply_in_process": lambda t: apply_baseline(t.url, baseline),
    }


def _commands(server_url: str, slow: bool) -> dict[str, list[str]]:
    """Commands timed as a whole (they make their own scratch databases)."""
    commands = {
        "python_startup": _python(
            "-c", "import alembic.config, sqlalchemy, psycopg, symphony_schema.migration.engine"
        )
    }
    if slow:
        commands["baseline_drift_cli"] = _python(
            "-m", "symphony_schema", "baseline", "drift", "--url", server_url
        )
        commands["invariants_cli"] = _python(
            "-m", "symphony_schema", "invariants", "--url", server_url
        )
    return commands


def profile_engine(server_url: str, top: int = 30) -> list[dict[str, Any]]:
    """Where ``api.upgrade`` spends its time on an empty database (cProfile, cumulative)."""
    profiler = cProfile.Profile()
    with scratch_database(server_url, "bench_engine") as target:
        profiler.enable()
        api.upgrade(target.url)
        profiler.disable()
    stats = pstats.Stats(profiler)
    entries = []
    for (filename, line, name), (_, calls, _, cumulative, _) in stats.stats.items():  # type: ignore[attr-defined]
        where = filename.split("site-packages/")[-1].split("/work/main/")[-1]
        entries.append(
            {
                "function": f"{where}:{line}({name})",
                "calls": calls,
                "cumulative_s": round(cumulative, 4),
            }
        )
    entries.sort(key=lambda e: e["cumulative_s"], reverse=True)
    return entries[:top]


def engine(ctx: Context, server_url: str) -> dict[str, Any]:
    s = ctx.settings
    timings: dict[str, list[float]] = {}
    with tempfile.TemporaryDirectory() as tmp:
        rendered = Path(tmp) / "upgrade_head.sql"
        render_offline_sql(server_url, rendered)
        steps = _steps(
            server_url,
            rendered,
            default_baseline_dir() / BASELINE_SQL,
            str(embedded.binary("psql")),
        )
        commands = _commands(server_url, s.slow_commands)
        for repeat in range(s.engine_repeats):
            for name, action in steps.items():
                timings.setdefault(name, []).append(_on_fresh_database(server_url, action))
            for name, args in commands.items():
                timings.setdefault(name, []).append(_timed(functools.partial(_run, args)))
            ctx.log(
                f"engine rep {repeat + 1}: "
                + ", ".join(f"{name} {values[-1]:.2f}s" for name, values in timings.items())
            )
        rendered_bytes = rendered.stat().st_size
    return {
        "timings_s": {name: summarize(values) for name, values in timings.items()},
        "rendered_sql_bytes": rendered_bytes,
        "head": api.head_revision(),
        "profile_in_process": profile_engine(server_url),
    }
