"""P5 (issue 17): the engine against plain Alembic, as a developer runs them.

Two comparisons, each ``alembic upgrade head`` as a subprocess (so Python's start-up and every
import count), repeated and reported as medians:

* **no-op**: a database already at head (migrated by the engine), upgraded again by the engine
  (this project) and by plain Alembic: the ``generic`` template's stock ``env.py`` and a
  versions directory with the same revision ids, each ``.py`` being ``op.execute`` of the same
  ``.sql`` text. Target: engine ≤ 1.2x plain.
* **chain**: a 10-revision chain of the same SQL (a table, an index, a PL/pgSQL function and a
  comment each) applied to an empty database by the engine (a throw-away project with this
  project's ``env.py``) and by plain Alembic. Target: engine ≤ 1.5x plain.

Run: ``python -m benchmarks.engine2 [--repeats N] [--url URL]`` (default: the embedded server),
or ``python -m benchmarks --only engine2``. ``--importtime`` also prints the slowest imports of
each side's start-up (``python -X importtime``).
"""

from __future__ import annotations

import argparse
import json
import os
import re
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from symphony_schema import project_root
from symphony_schema.baseline.scratch import scratch_database

ALEMBIC = [sys.executable, "-m", "alembic"]

PLAIN_REVISION = '''\
"""{rev} (plain Alembic: the same SQL text, op.execute)."""
from pathlib import Path

from alembic import op

revision = {rev!r}
down_revision = {down!r}
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute(Path(__file__).with_suffix(".sql").read_text())
'''

ENGINE_REVISION = '''\
"""{rev}."""

from symphony_schema.migration.sql import run_revision_sql

revision = {rev!r}
down_revision = {down!r}
branch_labels = None
depends_on = None


def upgrade() -> None:
    run_revision_sql(__file__)
'''

CHAIN_SQL = """\
CREATE TABLE bench_t{n} (id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY, v text NOT NULL);
CREATE INDEX ix_bench_t{n}_v ON bench_t{n} (v);
CREATE FUNCTION bench_f{n}(p text) RETURNS bigint LANGUAGE plpgsql AS $$
DECLARE r bigint;
BEGIN
    INSERT INTO bench_t{n} (v) VALUES (p) RETURNING id INTO r;
    RETURN r;
END
$$;
COMMENT ON TABLE bench_t{n} IS 'revision {n} of the P5 chain';
"""


def _plain_project(root: Path, url: str, revisions: list[tuple[str, str]]) -> Path:
    """A stock Alembic project (``alembic init``, generic template) with ``revisions``."""
    subprocess.run(
        [*ALEMBIC, "init", "-t", "generic", str(root / "alembic")],
        cwd=root,
        check=True,
        capture_output=True,
    )
    ini = (root / "alembic.ini").read_text()
    ini = re.sub(r"(?m)^sqlalchemy\.url = .*$", f"sqlalchemy.url = {url.replace('%', '%%')}", ini)
    (root / "alembic.ini").write_text(ini)
    versions = root / "alembic" / "versions"
    down = None
    for rev, sql in revisions:
        (versions / f"{rev}.py").write_text(PLAIN_REVISION.format(rev=rev, down=down))
        (versions / f"{rev}.sql").write_text(sql)
        down = rev
    return root


def _engine_project(root: Path, revisions: list[tuple[str, str]]) -> Path:
    """A throw-away project with this project's ``alembic.ini`` and ``env.py`` (the engine)."""
    project = project_root()
    (root / "alembic" / "versions").mkdir(parents=True)
    shutil.copy(project / "alembic.ini", root / "alembic.ini")
    shutil.copy(project / "alembic" / "env.py", root / "alembic" / "env.py")
    shutil.copy(project / "alembic" / "script.py.mako", root / "alembic" / "script.py.mako")
    down = None
    for rev, sql in revisions:
        versions = root / "alembic" / "versions"
        (versions / f"{rev}.py").write_text(ENGINE_REVISION.format(rev=rev, down=down))
        (versions / f"{rev}.sql").write_text(sql)
        down = rev
    return root


def _real_revisions() -> list[tuple[str, str]]:
    versions = project_root() / "alembic" / "versions"
    return [
        (py.stem, py.with_suffix(".sql").read_text())
        for py in sorted(versions.glob("*.py"))
        if py.with_suffix(".sql").exists()
    ]


#: Client CPU seconds (user + system) of every ``alembic`` subprocess, by side, in run order:
#: less sensitive to a loaded machine than wall time (the server's work is not in it).
CPU: dict[str, list[float]] = {}


def _children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def _upgrade(cwd: Path, url: str | None, env_extra: dict[str, str] | None = None) -> float:
    env = dict(os.environ)
    env.pop("SYMPHONY_DATABASE_URL", None)
    env.pop("DATABASE_URL", None)
    if url is not None:
        env["SYMPHONY_DATABASE_URL"] = url
        env["SYMPHONY_PROJECT_ROOT"] = str(cwd)
        env["SYMPHONY_QUIET"] = "1"
    env.update(env_extra or {})
    cpu_before = _children_cpu()
    started = time.perf_counter()
    done = subprocess.run(
        [*ALEMBIC, "upgrade", "head"], cwd=cwd, env=env, capture_output=True, text=True, check=False
    )
    elapsed = time.perf_counter() - started
    CPU.setdefault("engine" if url is not None else "plain", []).append(
        _children_cpu() - cpu_before
    )
    if done.returncode != 0:
        raise RuntimeError(f"alembic upgrade head in {cwd} failed: {done.stderr.strip()[-800:]}")
    return elapsed


def _median(values: list[float]) -> float:
    return round(statistics.median(values), 4)


def noop(server_url: str, repeats: int) -> dict[str, Any]:
    """No-op ``upgrade head`` on a database at head: engine against plain Alembic."""
    CPU.clear()
    times: dict[str, list[float]] = {"engine": [], "plain": []}
    with tempfile.TemporaryDirectory() as tmp, scratch_database(server_url, "bench_p5") as db:
        _upgrade(project_root(), db.url)  # to head, through the engine
        plain = _plain_project(Path(tmp), db.url, _real_revisions())
        _upgrade(plain, None)  # warm-up: plain Alembic finds it at head too
        CPU.clear()
        for _ in range(repeats):  # interleaved, so that load changes hit both sides
            times["engine"].append(_upgrade(project_root(), db.url))
            times["plain"].append(_upgrade(plain, None))
    return _verdict(times, 1.2)


def chain(server_url: str, repeats: int, length: int = 10) -> dict[str, Any]:
    """A ``length``-revision chain on an empty database: engine against plain Alembic."""
    revisions = [(f"{n:04d}_bench_step{n}", CHAIN_SQL.format(n=n)) for n in range(1, length + 1)]
    CPU.clear()
    times: dict[str, list[float]] = {"engine": [], "plain": []}
    with tempfile.TemporaryDirectory() as tmp:
        engine_root = _engine_project(Path(tmp) / "engine", revisions)
        for _ in range(repeats):
            with scratch_database(server_url, "bench_p5") as db:
                times["engine"].append(_upgrade(engine_root, db.url))
            with scratch_database(server_url, "bench_p5") as db:
                plain_root = Path(tmp) / f"plain{len(times['plain'])}"
                plain_root.mkdir()
                _plain_project(plain_root, db.url, revisions)
                times["plain"].append(_upgrade(plain_root, None))
    return _verdict(times, 1.5)


def _verdict(times: dict[str, list[float]], target: float) -> dict[str, Any]:
    engine, plain = _median(times["engine"]), _median(times["plain"])
    ratio = round(engine / plain, 3)
    cpu_engine, cpu_plain = _median(CPU.get("engine", [0.0])), _median(CPU.get("plain", [1.0]))
    return {
        "engine_s": engine,
        "plain_s": plain,
        "ratio": ratio,
        "client_cpu_s": {"engine": cpu_engine, "plain": cpu_plain},
        "client_cpu_ratio": round(cpu_engine / cpu_plain, 3),
        "target": target,
        "verdict": "met" if ratio <= target else "missed",
        "samples_s": {k: [round(v, 4) for v in vs] for k, vs in times.items()},
    }


def importtime(top: int = 12) -> dict[str, list[tuple[str, int]]]:
    """The slowest imports (cumulative µs) of each side's start-up, from ``-X importtime``."""
    sides = {
        "engine": "import alembic.config, alembic.context; import symphony_schema.migration.engine",
        "plain": "import alembic.config, alembic.context; import sqlalchemy; import psycopg",
    }
    out: dict[str, list[tuple[str, int]]] = {}
    for side, code in sides.items():
        done = subprocess.run(
            [sys.executable, "-X", "importtime", "-c", code],
            capture_output=True,
            text=True,
            check=True,
        )
        rows = []
        for line in done.stderr.splitlines():
            parts = line.split("|")
            if len(parts) == 3 and parts[1].strip().isdigit():
                rows.append((parts[2].rstrip(), int(parts[1])))
        rows.sort(key=lambda r: r[1], reverse=True)
        out[side] = rows[:top]
    return out


def engine2(server_url: str, repeats: int = 5) -> dict[str, Any]:
    return {"noop": noop(server_url, repeats), "chain10": chain(server_url, repeats)}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.engine2",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--repeats", type=int, default=5, help="runs per side (median; default 5)")
    parser.add_argument("--url", help="server (default: the URL rule, else embedded PostgreSQL 18)")
    parser.add_argument("--importtime", action="store_true", help="also list the slowest imports")
    args = parser.parse_args(argv)
    if args.repeats < 1:
        parser.error(f"--repeats must be at least 1, got {args.repeats}")
    from symphony_schema.database import select_database

    server = select_database(args.url, announce=True)
    result: dict[str, Any] = {"load_before": os.getloadavg()}
    result.update(engine2(server.url, args.repeats))
    result["load_after"] = os.getloadavg()
    if args.importtime:
        result["importtime_us"] = importtime()
    print(json.dumps(result, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
