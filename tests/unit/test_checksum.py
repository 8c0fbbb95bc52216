"""Checksum normalisation: only meaningful edits change a revision's checksum."""

from __future__ import annotations

from pathlib import Path

import pytest

from symphony_schema.migration.checksum import normalise, revision_checksum


def _revision(tmp_path: Path, py: bytes, sql: bytes | None) -> Path:
    path = tmp_path / "0001_x.py"
    path.write_bytes(py)
    if sql is not None:
        path.with_suffix(".sql").write_bytes(sql)
    return path


def test_normalise_strips_bom_and_unifies_line_endings() -> None:
    assert normalise(b"\xef\xbb\xbfa\r\nb\rc\n") == b"a\nb\nc\n"


def test_checksum_is_algorithm_prefixed_sha256(tmp_path: Path) -> None:
    checksum = revision_checksum(_revision(tmp_path, b'"""x"""\n', b"SELECT 1;\n"))
    algorithm, digest = checksum.split(":")
    assert algorithm == "sha256"
    assert len(digest) == 64 and int(digest, 16) >= 0


@pytest.mark.parametrize(
    ("sql_a", "sql_b", "same"),
    [
        (b"SELECT 1;\n", b"SELECT 1;\r\n", True),
        (b"SELECT 1;\n", b"\xef\xbb\xbfSELECT 1;\n", True),
        (b"SELECT 1;\n", b"SELECT 2;\n", False),
        (b"SELECT 1;\n", b"SELECT 1; \n", False),
    ],
)
def test_checksum_covers_the_companion_sql(
    tmp_path: Path, sql_a: bytes, sql_b: bytes, same: bool
) -> None:
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    a = revision_checksum(_revision(tmp_path / "a", b"x = 1\n", sql_a))
    b = revision_checksum(_revision(tmp_path / "b", b"x = 1\n", sql_b))
    assert (a == b) is same


def test_moving_text_between_py_and_sql_changes_the_checksum(tmp_path: Path) -> None:
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    a = revision_checksum(_revision(tmp_path / "a", b"ab", b"c"))
    b = revision_checksum(_revision(tmp_path / "b", b"a", b"bc"))
    assert a != b


def test_revision_without_sql_file_is_checksummed_alone(tmp_path: Path) -> None:
    path = _revision(tmp_path, b"x = 1\n", None)
    assert revision_checksum(path).startswith("sha256:")
