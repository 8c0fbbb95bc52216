"""The machine line and the server settings every result is published with."""

from __future__ import annotations

import os
import platform
import subprocess
import sys
from pathlib import Path
from typing import Any

import psycopg

from symphony_schema import project_root

#: Server settings that decide what a commit costs and how the queue tables age.
SERVER_SETTINGS = (
    "server_version",
    "shared_buffers",
    "synchronous_commit",
    "fsync",
    "full_page_writes",
    "wal_level",
    "wal_sync_method",
    "wal_buffers",
    "commit_delay",
    "max_connections",
    "max_wal_size",
    "checkpoint_timeout",
    "work_mem",
    "effective_io_concurrency",
    "autovacuum",
    "autovacuum_naptime",
    "autovacuum_vacuum_scale_factor",
    "autovacuum_vacuum_threshold",
    "autovacuum_vacuum_cost_delay",
    "shared_preload_libraries",
    "plan_cache_mode",
    "jit",
)


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def _ram_gib() -> float | None:
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                return round(int(line.split()[1]) / 1024 / 1024, 1)
    except OSError:
        pass
    return None


def load_average() -> list[float]:
    """1, 5 and 15 minute load averages (other jobs on a shared machine show up here)."""
    try:
        return [round(value, 2) for value in os.getloadavg()]
    except OSError:
        return []


def git_commit() -> str:
    """The commit the benchmarked code came from, ``-dirty`` when the tree has changes and
    ``-clean`` when not (a bare 12-digit hash in results.json reads as a hex secret to the
    repository's secrets scan)."""
    try:
        root = project_root()
        head = subprocess.run(
            ["git", "rev-parse", "--short=12", "HEAD"],
            cwd=root,
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no"],
            cwd=root,
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
        return head + ("-dirty" if dirty else "-clean")
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


def machine_info() -> dict[str, Any]:
    """CPU model, cores, RAM, OS, Python and driver versions."""
    ram = _ram_gib()
    cores = os.cpu_count() or 0
    info: dict[str, Any] = {
        "cpu": _cpu_model(),
        "cores": cores,
        "ram_gib": ram,
        "os": f"{platform.system()} {platform.release()}",
        "python": platform.python_version(),
        "psycopg": psycopg.__version__,
        "libpq": psycopg.pq.version(),
        "executable": sys.executable,
    }
    info["line"] = (
        f"{info['cpu']}, {cores} cores, {ram if ram is not None else '?'} GiB RAM, {info['os']}, "
        f"Python {info['python']}, psycopg {info['psycopg']}"
    )
    return info


def server_info(conn: psycopg.Connection[Any]) -> dict[str, Any]:
    """The settings in :data:`SERVER_SETTINGS` and whether pg_stat_statements can be used."""
    rows = conn.execute(
        "SELECT name, setting, unit FROM pg_catalog.pg_settings WHERE name = ANY(%s)",
        (list(SERVER_SETTINGS),),
    ).fetchall()
    settings = {str(name): _with_unit(str(setting), unit) for name, setting, unit in rows}
    version = conn.execute("SELECT pg_catalog.version()").fetchone()
    preload = settings.get("shared_preload_libraries", "")
    return {
        "version": str(version[0]) if version else "unknown",
        "settings": settings,
        "pg_stat_statements": "pg_stat_statements" in preload.split(","),
    }


def _with_unit(setting: str, unit: str | None) -> str:
    """Render pg_settings values readably (8kB pages as MB, ms/s with their unit)."""
    if unit == "8kB" and setting.isdigit():
        return f"{int(setting) * 8 // 1024} MB"
    if unit and setting.lstrip("-").isdigit():
        return f"{setting} {unit}"
    return setting
