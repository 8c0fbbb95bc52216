"""Revision checksums: normalised, algorithm-prefixed SHA-256, and the source they cover.

The checksum covers the revision's ``.py`` file and the companion ``.sql`` file it loads. Text is
normalised first so that only meaningful edits count: decoded as UTF-8 with a BOM stripped, and
CRLF / CR line endings turned into LF. The ``sha256:`` prefix names the algorithm *and* this
normalisation, so either can change later (as ``sha256v2:`` say) without false mismatches on
databases migrated earlier.

:func:`read_revision` reads both files ONCE and returns the normalised text together with its
checksum. The engine compiles the revision module from exactly that ``.py`` text (never from
bytecode) and sends exactly that ``.sql`` text, so what runs is what was hashed (ADR 0055).
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path

from symphony_schema.migration.sql import companion_sql_path

ALGORITHM = "sha256"


class RevisionSourceError(ValueError):
    """A revision file that cannot be loaded; the message names the file."""

    def __init__(self, path: Path, reason: str) -> None:
        super().__init__(f"{path} {reason}")
        self.path = path
        self.reason = reason


def normalise(raw: bytes) -> bytes:
    """UTF-8, BOM stripped, CRLF/CR -> LF."""
    text = raw.decode("utf-8-sig")
    return text.replace("\r\n", "\n").replace("\r", "\n").encode("utf-8")


@dataclass(frozen=True)
class RevisionSource:
    """The normalised text of a revision's files, read once, and the checksum over it."""

    py_path: Path
    py_text: str
    sql_path: Path | None
    sql_text: str | None
    checksum: str

    @property
    def sql_sha256(self) -> str | None:
        """``sha256:<hex>`` of the ``.sql`` text the engine must send, if there is one."""
        return None if self.sql_text is None else sql_digest(self.sql_text)


def sql_digest(text: str) -> str:
    return f"{ALGORITHM}:{hashlib.sha256(text.encode('utf-8')).hexdigest()}"


def _read_normalised(path: Path) -> bytes:
    raw = path.read_bytes()
    try:
        return normalise(raw)
    except UnicodeDecodeError as exc:
        line = raw[: exc.start].count(b"\n") + 1
        raise RevisionSourceError(
            path,
            f"is not valid UTF-8 (byte 0x{raw[exc.start]:02x} at offset {exc.start}, "
            f"line {line}); revision files must be UTF-8 text",
        ) from None


def files_of_revision(revision_file: Path) -> list[Path]:
    """The revision file followed by its companion SQL file when it has one."""
    sql = companion_sql_path(revision_file)
    return [revision_file, sql] if sql.is_file() else [revision_file]


def read_revision(revision_file: Path) -> RevisionSource:
    """Both files of a revision, normalised, and ``sha256:<hex>`` over them.

    Raises :class:`RevisionSourceError` (naming the file) for text that is not UTF-8.
    """
    digest = hashlib.sha256()
    texts: dict[str, str] = {}
    paths = files_of_revision(Path(revision_file))
    for path in paths:
        content = _read_normalised(path)
        # Length-prefix each part so that moving text between the two files still changes it.
        digest.update(f"{path.suffix}:{len(content)}\n".encode())
        digest.update(content)
        texts[path.suffix] = content.decode("utf-8")
    return RevisionSource(
        py_path=paths[0],
        py_text=texts[paths[0].suffix],
        sql_path=paths[1] if len(paths) > 1 else None,
        sql_text=texts.get(".sql") if len(paths) > 1 else None,
        checksum=f"{ALGORITHM}:{digest.hexdigest()}",
    )


def revision_checksum(revision_file: Path) -> str:
    """``sha256:<hex>`` over the normalised revision file and the SQL it loads."""
    return read_revision(revision_file).checksum
