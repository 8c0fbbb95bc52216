"""The partitioned attempts ledger: partition maintenance, archive and restore (issue 15).

The SQL side lives in revision 0025 (``public.ensure_ledger_partitions``,
``public.archive_ledger_partition``, ``public.mark_ledger_partition_restored``); this module
writes and reads the archive files around it (ADR 0132):

archive, per partition whose range ended before the cut-off and has no queued job:
  1. ``COPY`` the partition to ``DIR/NAME.copy.gz.tmp`` (gzip of PostgreSQL's text format),
     fsync, rename to ``DIR/NAME.copy.gz``, fsync the directory;
  2. re-read the file: its sha256 and its row count must match what COPY reported;
  3. write ``DIR/NAME.manifest.json`` (row count, sha256, range, columns) the same way;
  4. one transaction: ``archive_ledger_partition`` locks the partition, checks its row count
     against the file's, records the archive and drops the partition.
A crash before 4 commits leaves the partition (and at most a file nobody recorded); after it,
the verified file and its record. Never neither.

restore FILE: the file's sha256 must equal the one recorded when it was archived (the database is
the authority, not the manifest next to the file); then, in one transaction as symphony_owner,
the partition is recreated with its range, the rows are copied in, and
``mark_ledger_partition_restored`` checks the row count, protects the partition and marks the
archive RESTORED.
"""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import os
import re
import signal
import zlib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psycopg
from psycopg import sql

from symphony_schema import SymphonyError

PARENT = "public.payment_outbox_attempts"
SCHEMA = "symphony_ledger"
OWNER = "symphony_owner"
ARCHIVE_SUFFIX = ".copy.gz"
MANIFEST_SUFFIX = ".manifest.json"
MANIFEST_FORMAT = "symphony-ledger-archive/1"

#: Test hook: the archive kills its own process (SIGKILL) right after the named step, so the
#: tests can prove a crash at any step leaves the partition or a verified archive.
KILL_AT_VARIABLE = "SYMPHONY_ATTEMPTS_KILL_AT"
KILL_POINTS = ("copied", "file", "manifest", "dropped-uncommitted", "dropped")

_OLDER_THAN_RE = re.compile(r"^([0-9]{1,5})d$")
_CHUNK = 1 << 20


@dataclass(frozen=True)
class Partition:
    name: str  # relation name inside SCHEMA
    bound: str  # pg_get_expr of relpartbound
    rows_estimate: int


@dataclass(frozen=True)
class Archived:
    partition: str
    rows: int
    sha256: str
    file: Path


def parse_older_than(value: str) -> int:
    """``90d`` -> 90 (days, 0-99999); anything else is a SymphonyError naming the option."""
    match = _OLDER_THAN_RE.match(value.strip())
    if not match:
        raise SymphonyError(f"--older-than: expected a number of days such as 90d, got {value!r}")
    return int(match.group(1))


def _kill_point(step: str) -> None:
    if os.environ.get(KILL_AT_VARIABLE) == step:
        os.kill(os.getpid(), signal.SIGKILL)


def check_maintainer(conn: psycopg.Connection[Any]) -> None:
    """Archive and restore need the owner's rights (a superuser or a member of symphony_owner)."""
    row = conn.execute(
        "SELECT r.rolsuper OR pg_catalog.pg_has_role(current_user, %s, 'MEMBER')"
        "  FROM pg_catalog.pg_roles AS r WHERE r.rolname = current_user",
        (OWNER,),
    ).fetchone()
    if not row or not row[0]:
        raise SymphonyError(
            f"the ledger's maintenance needs a superuser or a member of {OWNER}; "
            f"{conn.info.user!r} is neither"
        )


def list_partitions(conn: psycopg.Connection[Any]) -> list[Partition]:
    rows = conn.execute(
        """
        SELECT c.relname::text, pg_catalog.pg_get_expr(c.relpartbound, c.oid),
               GREATEST(c.reltuples, 0)::bigint
          FROM pg_catalog.pg_inherits AS i
          JOIN pg_catalog.pg_class AS c ON c.oid = i.inhrelid
          JOIN pg_catalog.pg_namespace AS n ON n.oid = c.relnamespace
         WHERE i.inhparent = %s::pg_catalog.regclass AND n.nspname = %s
         ORDER BY 1
        """,
        (PARENT, SCHEMA),
    ).fetchall()
    return [Partition(str(name), str(bound), int(rows)) for name, bound, rows in rows]


def ensure_partitions(conn: psycopg.Connection[Any], days_ahead: int) -> list[tuple[str, str]]:
    if not 1 <= days_ahead <= 366:
        raise SymphonyError(f"--days-ahead: expected 1 to 366, got {days_ahead}")
    with conn.transaction():
        rows = conn.execute(
            "SELECT partition_name, action FROM public.ensure_ledger_partitions(%s)", (days_ahead,)
        ).fetchall()
    return [(str(name), str(action)) for name, action in rows]


def archive_candidates(conn: psycopg.Connection[Any], older_than_days: int) -> list[str]:
    """Partitions whose whole range was enqueued before the cut-off and hold no queued job."""
    rows = conn.execute(
        """
        WITH p AS (
            SELECT c.relname::text AS name,
                   pg_catalog.substring(pg_catalog.pg_get_expr(c.relpartbound, c.oid),
                                        'TO \\(''([0-9a-f-]{36})''\\)')::uuid AS range_to,
                   COALESCE(pg_catalog.substring(pg_catalog.pg_get_expr(c.relpartbound, c.oid),
                                                 'FROM \\(''([0-9a-f-]{36})''\\)')::uuid,
                            '00000000-0000-0000-0000-000000000000'::uuid) AS range_from
              FROM pg_catalog.pg_inherits AS i
              JOIN pg_catalog.pg_class AS c ON c.oid = i.inhrelid
              JOIN pg_catalog.pg_namespace AS n ON n.oid = c.relnamespace
             WHERE i.inhparent = %(parent)s::pg_catalog.regclass AND n.nspname = %(schema)s
        )
        SELECT p.name
          FROM p
         WHERE p.range_to IS NOT NULL
           AND p.range_to <= public.ledger_uuid_lower_bound(
                   pg_catalog.now() - pg_catalog.make_interval(days => %(days)s))
           AND NOT EXISTS (SELECT 1 FROM public.payment_outbox_pending AS q
                            WHERE q.outbox_id >= p.range_from AND q.outbox_id < p.range_to)
         ORDER BY p.range_to
        """,
        {"parent": PARENT, "schema": SCHEMA, "days": older_than_days},
    ).fetchall()
    return [str(row[0]) for row in rows]


def _columns(conn: psycopg.Connection[Any]) -> list[str]:
    rows = conn.execute(
        "SELECT a.attname::text FROM pg_catalog.pg_attribute AS a"
        " WHERE a.attrelid = %s::pg_catalog.regclass AND a.attnum > 0 AND NOT a.attisdropped"
        " ORDER BY a.attnum",
        (PARENT,),
    ).fetchall()
    return [str(row[0]) for row in rows]


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _write_durably(path: Path, data: bytes) -> None:
    tmp = path.with_name(path.name + ".tmp")
    with open(tmp, "wb") as out:
        out.write(data)
        out.flush()
        os.fsync(out.fileno())
    os.replace(tmp, path)
    _fsync_dir(path.parent)


def file_digest(path: Path) -> tuple[str, int]:
    """(sha256 of the file's bytes, number of rows in it) - reading it back from disk."""
    digest = hashlib.sha256()
    with open(path, "rb") as raw:
        for chunk in iter(lambda: raw.read(_CHUNK), b""):
            digest.update(chunk)
    rows = 0
    try:
        with gzip.open(path, "rb") as data:
            for _line in data:
                rows += 1
    except (OSError, EOFError, gzip.BadGzipFile, zlib.error) as exc:
        raise SymphonyError(f"{path}: not a readable gzip archive ({exc})") from exc
    return digest.hexdigest(), rows


def archive_partition(
    conn: psycopg.Connection[Any], partition: str, directory: Path, columns: list[str]
) -> Archived:
    target = directory / f"{partition}{ARCHIVE_SUFFIX}"
    tmp = target.with_name(target.name + ".tmp")
    column_list = sql.SQL(", ").join(sql.Identifier(c) for c in columns)
    copy_sql = sql.SQL("COPY {}.{} ({}) TO STDOUT").format(
        sql.Identifier(SCHEMA), sql.Identifier(partition), column_list
    )
    # 1. Write the file from one snapshot.
    with conn.transaction(), open(tmp, "wb") as raw:
        with gzip.GzipFile(fileobj=raw, mode="wb", mtime=0) as out, conn.cursor() as cur:
            with cur.copy(copy_sql) as copy:
                for block in copy:
                    out.write(block)
            copied = cur.rowcount
        raw.flush()
        os.fsync(raw.fileno())
    _kill_point("copied")
    os.replace(tmp, target)
    _fsync_dir(directory)
    _kill_point("file")
    # 2. Re-read it from disk.
    sha256, rows = file_digest(target)
    if rows != copied:
        raise SymphonyError(
            f"{target}: holds {rows} rows after writing, COPY sent {copied}; nothing was dropped"
        )
    # 3. The manifest next to it.
    bound = conn.execute(
        "SELECT pg_catalog.pg_get_expr(c.relpartbound, c.oid) FROM pg_catalog.pg_class AS c"
        " WHERE c.oid = %s::pg_catalog.regclass",
        (f"{SCHEMA}.{partition}",),
    ).fetchone()
    manifest = {
        "format": MANIFEST_FORMAT,
        "partition": f"{SCHEMA}.{partition}",
        "bound": bound[0] if bound else None,
        "file": target.name,
        "rows": rows,
        "sha256": sha256,
        "columns": columns,
        "copy_format": "text",
        "compression": "gzip",
    }
    manifest_path = directory / f"{partition}{MANIFEST_SUFFIX}"
    _write_durably(manifest_path, (json.dumps(manifest, indent=2) + "\n").encode())
    _kill_point("manifest")
    # 4. Record and drop, in one transaction, only if the partition still holds exactly the
    #    rows in the file (the ledger is append-only, so the same count means the same rows).
    with conn.transaction():
        conn.execute(
            "SELECT public.archive_ledger_partition(%s, %s, %s, %s, %s)",
            (partition, rows, sha256, target.name, columns),
        )
        _kill_point("dropped-uncommitted")
    _kill_point("dropped")
    return Archived(f"{SCHEMA}.{partition}", rows, sha256, target)


def archive(
    conn: psycopg.Connection[Any], older_than_days: int, directory: Path
) -> Iterator[Archived]:
    """Archive every candidate partition, one at a time (see the module doc)."""
    if not directory.is_dir():
        raise SymphonyError(f"--to: {directory} is not a directory")
    if not os.access(directory, os.W_OK):
        raise SymphonyError(f"--to: {directory} is not writable")
    check_maintainer(conn)
    columns = _columns(conn)
    for partition in archive_candidates(conn, older_than_days):
        yield archive_partition(conn, partition, directory, columns)


def _partition_of(path: Path) -> str:
    name = path.name
    if not name.endswith(ARCHIVE_SUFFIX):
        raise SymphonyError(f"{path}: an archive file ends with {ARCHIVE_SUFFIX}")
    return name[: -len(ARCHIVE_SUFFIX)]


def restore(conn: psycopg.Connection[Any], path: Path) -> Archived:
    """Bring one archived partition back from ``path`` after checking its sha256."""
    if not path.is_file():
        raise SymphonyError(f"{path}: no such archive file")
    partition = _partition_of(path)
    check_maintainer(conn)
    record = conn.execute(
        "SELECT state, range_from, range_to, row_count, sha256, columns"
        "  FROM public.archived_ledger_partitions WHERE partition_name = %s",
        (partition,),
    ).fetchone()
    if record is None:
        raise SymphonyError(
            f"{path}: {SCHEMA}.{partition} is not recorded in public.archived_ledger_partitions"
        )
    state, range_from, range_to, row_count, recorded_sha, columns = record
    if state != "ARCHIVED":
        raise SymphonyError(f"{path}: {SCHEMA}.{partition} is {state}, not ARCHIVED")
    sha256, rows = file_digest(path)
    if sha256 != recorded_sha:
        raise SymphonyError(
            f"{path}: sha256 {sha256} does not match the archive record {recorded_sha} of "
            f"{SCHEMA}.{partition}; nothing was restored"
        )
    if rows != row_count:
        raise SymphonyError(
            f"{path}: holds {rows} rows, the archive record {row_count}; nothing was restored"
        )
    column_list = sql.SQL(", ").join(sql.Identifier(c) for c in columns)
    with conn.transaction():
        conn.execute(sql.SQL("SET LOCAL ROLE {}").format(sql.Identifier(OWNER)))
        conn.execute(
            sql.SQL(
                "CREATE TABLE {}.{} PARTITION OF public.payment_outbox_attempts"
                " FOR VALUES FROM ({}) TO ({})"
            ).format(
                sql.Identifier(SCHEMA),
                sql.Identifier(partition),
                sql.Literal(str(range_from)),
                sql.Literal(str(range_to)),
            )
        )
        # The bytes loaded are the bytes hashed: a file changed after the check above fails here.
        reader = _HashingReader(path)
        with conn.cursor() as cur, reader:
            copy_sql = sql.SQL("COPY {}.{} ({}) FROM STDIN").format(
                sql.Identifier(SCHEMA), sql.Identifier(partition), column_list
            )
            try:
                with (
                    cur.copy(copy_sql) as copy,
                    gzip.GzipFile(fileobj=reader, mode="rb") as data,
                ):
                    for block in iter(lambda: data.read(_CHUNK), b""):
                        copy.write(block)
            except (EOFError, gzip.BadGzipFile, zlib.error) as exc:
                raise SymphonyError(
                    f"{path}: changed while it was being restored ({exc}); nothing was restored"
                ) from exc
            reader.drain()
        if reader.hexdigest() != recorded_sha:
            raise SymphonyError(
                f"{path}: changed while it was being restored (sha256 {reader.hexdigest()}); "
                "nothing was restored"
            )
        conn.execute("SELECT public.mark_ledger_partition_restored(%s)", (partition,))
    return Archived(f"{SCHEMA}.{partition}", rows, sha256, path)


class _HashingReader(io.RawIOBase):
    """A binary file whose bytes are hashed as they are read."""

    def __init__(self, path: Path) -> None:
        super().__init__()
        self._file = open(path, "rb")  # noqa: SIM115 - closed by close()
        self._digest = hashlib.sha256()

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        data = self._file.read(len(buffer))
        self._digest.update(data)
        buffer[: len(data)] = data
        return len(data)

    def drain(self) -> None:
        for chunk in iter(lambda: self._file.read(_CHUNK), b""):
            self._digest.update(chunk)

    def hexdigest(self) -> str:
        return self._digest.hexdigest()

    def close(self) -> None:
        self._file.close()
        super().close()
