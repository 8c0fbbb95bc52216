"""Revision checksums: normalised, algorithm-prefixed SHA-256.

The checksum covers the revision's ``.py`` file and the companion ``.sql`` file it loads. Text is
normalised first so that only meaningful edits count: decoded as UTF-8 with a BOM stripped, and
CRLF / CR line endings turned into LF. The ``sha256:`` prefix names the algorithm *and* this
normalisation, so either can change later (as ``sha256v2:`` say) without false mismatches on
databases migrated earlier.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

from symphony_schema.migration.sql import companion_sql_path

ALGORITHM = "sha256"


def normalise(raw: bytes) -> bytes:
    """UTF-8, BOM stripped, CRLF/CR -> LF."""
    text = raw.decode("utf-8-sig")
    return text.replace("\r\n", "\n").replace("\r", "\n").encode("utf-8")


def files_of_revision(revision_file: Path) -> list[Path]:
    """The revision file followed by its companion SQL file when it has one."""
    sql = companion_sql_path(revision_file)
    return [revision_file, sql] if sql.is_file() else [revision_file]


def revision_checksum(revision_file: Path) -> str:
    """``sha256:<hex>`` over the normalised revision file and the SQL it loads."""
    digest = hashlib.sha256()
    for path in files_of_revision(revision_file):
        content = normalise(path.read_bytes())
        # Length-prefix each part so that moving text between the two files still changes it.
        digest.update(f"{path.suffix}:{len(content)}\n".encode())
        digest.update(content)
    return f"{ALGORITHM}:{digest.hexdigest()}"
