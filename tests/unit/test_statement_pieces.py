"""Splitting a non-transactional revision into statements (ADR 0056): the pieces are the text."""

from __future__ import annotations

import pytest

from symphony_schema.migration.sql import statement_pieces

CASES = {
    "two indexes with comments": (
        "-- head; comment\nCREATE INDEX CONCURRENTLY a ON t (x);\n"
        "/* block; comment */\nCREATE INDEX CONCURRENTLY b ON t (y);\n-- tail\n",
        2,
    ),
    "dollar quotes and strings": (
        "COMMENT ON INDEX a IS $c$x; y$c$;\nCOMMENT ON INDEX b IS 'it''s; here';\n",
        2,
    ),
    "function body with semicolons": (
        "CREATE FUNCTION f() RETURNS int LANGUAGE sql BEGIN ATOMIC SELECT 1; SELECT 2; END;\n"
        "SELECT f();",
        2,
    ),
    "no trailing semicolon": ("VACUUM t", 1),
    "only comments": ("-- nothing\n", 0),
}


@pytest.mark.parametrize("name", sorted(CASES))
def test_pieces_join_to_exactly_the_text_one_statement_each(name: str) -> None:
    text, count = CASES[name]
    pieces = statement_pieces(text)
    assert len(pieces) == count
    if count:
        assert "".join(pieces) == text
