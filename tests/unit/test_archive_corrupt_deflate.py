"""A restored archive whose deflate stream is corrupt (a flipped byte inside it) is refused in
one line like any other unreadable archive, not with a zlib traceback: gzip raises zlib.error,
not BadGzipFile, for a bad block (found by test_a_restored_file_with_one_byte_changed_restores_
nothing, which flips a byte at random and failed now and then)."""

from __future__ import annotations

from pathlib import Path

import pytest

from symphony_schema import SymphonyError, attempts

#: A gzip header (no name, no time) followed by a deflate block of the reserved type 3.
CORRUPT = b"\x1f\x8b\x08\x00\x00\x00\x00\x00\x00\xff" + b"\x07" + b"\x00" * 16


def test_a_corrupt_deflate_stream_is_not_a_readable_archive(tmp_path: Path) -> None:
    path = tmp_path / "attempts_history.copy.gz"
    path.write_bytes(CORRUPT)
    with pytest.raises(SymphonyError, match=r"not a readable gzip archive \(.*invalid block type"):
        attempts.file_digest(path)
