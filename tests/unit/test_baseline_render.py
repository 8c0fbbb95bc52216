"""Baseline rendering and normalisation, drift reporting: pure functions, no database."""

from __future__ import annotations

from pathlib import Path

import pytest

from symphony_schema import SymphonyError, privileges
from symphony_schema.baseline.catalog import Membership, RoleState
from symphony_schema.baseline.drift import (
    DriftKind,
    DriftReport,
    DriftResult,
    check_baseline_files,
    render_markdown,
    render_text,
    unified_diff,
)
from symphony_schema.baseline.dump import normalise_dump
from symphony_schema.baseline.generate import GeneratedBaseline
from symphony_schema.baseline.privileges_report import (
    NOTHING,
    format_privileges,
    grants_as_lines,
)
from symphony_schema.baseline.render import ledger_sql, roles_sql, sql_literal
from symphony_schema.cli import build_parser
from symphony_schema.migration.ledger import LedgerRow

RAW_TEMPLATE = """\
--
-- PostgreSQL database dump
--

\\restrict {key}

-- Dumped from database version 18.6
-- Dumped by pg_dump version 18.6

SET statement_timeout = 0;
SELECT pg_catalog.set_config('search_path', '', false);

--
-- Name: f(); Type: FUNCTION; Schema: public; Owner: {user}
--

CREATE FUNCTION public.f() RETURNS void
    LANGUAGE plpgsql
    AS $$
BEGIN
ALTER TABLE t OWNER TO "Deploy Er";
END
$$;


ALTER FUNCTION public.f() OWNER TO {quoted};

--
-- Name: t; Type: TABLE; Schema: public; Owner: symphony_owner
--

CREATE TABLE public.t (
    id integer
);


ALTER TABLE public.t OWNER TO symphony_owner;

--
-- PostgreSQL database dump complete
--

\\unrestrict {key}

"""
RAW_DUMP = RAW_TEMPLATE.format(key="AbCdEfRandomKey", user="Deploy Er", quoted='"Deploy Er"')


def test_normalise_dump_strips_banners_restrict_keys_and_the_migrating_user() -> None:
    text = normalise_dump(RAW_DUMP, "Deploy Er", '"Deploy Er"')
    assert (
        "restrict" not in text and "Dumped" not in text and "PostgreSQL database dump" not in text
    )
    assert text.startswith("SET statement_timeout = 0;\n")
    assert text.endswith("ALTER TABLE public.t OWNER TO symphony_owner;\n")
    assert "-- Name: f(); Type: FUNCTION; Schema: public; Owner: (migrating user)" in text
    assert 'ALTER FUNCTION public.f() OWNER TO "Deploy Er";' not in text
    # The function body is never rewritten, even where a line looks like an owner statement.
    assert 'ALTER TABLE t OWNER TO "Deploy Er";\nEND' in text
    # The dropped statement leaves pg_dump's usual two blank lines between objects.
    assert "$$;\n\n\n--\n-- Name: t;" in text


def test_normalise_dump_is_independent_of_the_restrict_key_and_user() -> None:
    other = RAW_TEMPLATE.format(key="ZZZ", user="ci", quoted="ci")
    assert normalise_dump(RAW_DUMP, "Deploy Er", '"Deploy Er"') == normalise_dump(other, "ci")


def test_normalise_dump_refuses_output_it_does_not_recognise() -> None:
    with pytest.raises(SymphonyError, match="unexpected line in the pg_dump preamble"):
        normalise_dump("CREATE TABLE x ();\nSET a = 1;\n", "postgres")
    with pytest.raises(SymphonyError, match="no SET preamble"):
        normalise_dump("-- nothing\n", "postgres")


def _role(name: str, *, login: bool = False, comment: str | None = "it's a role") -> RoleState:
    return RoleState(name, login, False, False, False, True, False, False, -1, comment)


def test_roles_sql_has_one_line_per_role_and_quotes_comments() -> None:
    text = roles_sql([_role("symphony_owner"), _role("test_user", login=True, comment=None)], [])
    assert (
        "('symphony_owner', false, false, false, false, true, false, false, -1, 'it''s a role', "
        "NULL::text)" in text
    )
    assert (
        "('test_user', true, false, false, false, true, false, false, -1, NULL::text, NULL::text)"
        in text
    )
    assert "CREATE ROLE %I" in text and "ALTER ROLE %I WITH %s" in text
    assert "-- Memberships involving a Symphony role: none." in text


def test_roles_sql_grants_group_memberships_with_their_options() -> None:
    text = roles_sql(
        [_role("a"), _role("b")], [Membership("a", "b", admin=False, inherit=True, set=False)]
    )
    assert "GRANT a TO b WITH ADMIN FALSE, INHERIT TRUE, SET FALSE;" in text


def test_ledger_sql_inserts_only_version_description_and_checksum() -> None:
    rows = [LedgerRow("0001_init", "Init: it's here.", "sha256:" + "a" * 64)]
    assert ledger_sql(rows, ["0001_init"]).splitlines() == [
        "INSERT INTO public.schema_migrations (version, description, checksum) VALUES "
        f"('0001_init', 'Init: it''s here.', 'sha256:{'a' * 64}');",
        "INSERT INTO public.alembic_version (version_num) VALUES ('0001_init');",
    ]
    assert sql_literal(None) == "NULL"


def test_privileges_are_listed_in_documentation_order_with_grant_options_marked() -> None:
    assert format_privileges({"DELETE", "SELECT", "INSERT WITH GRANT OPTION"}) == (
        "SELECT, INSERT*, DELETE"
    )
    assert format_privileges(set()) == NOTHING == "\u2013"


def test_grant_lines_name_object_grantee_and_privilege() -> None:
    matrix = {
        ("symphony_control", privileges.ObjectKind.TABLE, "public.t"): frozenset(
            {"UPDATE", "SELECT"}
        ),
        ("PUBLIC", privileges.ObjectKind.TABLE, "public.t"): frozenset(),
    }
    assert grants_as_lines(matrix) == [
        "table public.t: symphony_control SELECT",
        "table public.t: symphony_control UPDATE",
    ]


def test_committed_baseline_check_diffs_each_stale_file(tmp_path: Path) -> None:
    generated = GeneratedBaseline("0002_b", "line 1\nline 2 new\n", "# matrix\n", "[roles]\n")
    (tmp_path / "baseline.sql").write_text("line 1\nline 2 old\n")
    result = check_baseline_files(generated, tmp_path)
    assert not result.ok
    assert "--- baseline/baseline.sql (committed)" in result.diff
    assert "+++ baseline/baseline.sql (generated from the migrations at 0002_b)" in result.diff
    assert "-line 2 old\n+line 2 new" in result.diff
    assert "baseline/privileges.md (committed, missing)" in result.diff
    (tmp_path / "baseline.sql").write_text(generated.baseline_sql)
    (tmp_path / "privileges.md").write_text(generated.privileges_md)
    assert (
        "baseline/catalog.txt (committed, missing)"
        in check_baseline_files(generated, tmp_path).diff
    )
    (tmp_path / "catalog.txt").write_text(generated.catalog_txt)
    assert check_baseline_files(generated, tmp_path).ok


def _report(*results: DriftResult) -> DriftReport:
    return DriftReport(results, "0005_x", 1.25)


def test_text_report_names_each_failed_kind_with_its_fix_and_diff() -> None:
    diff = unified_diff(["a", "b"], ["a", "c"], "declared", "catalog")
    report = _report(
        DriftResult(DriftKind.BASELINE),
        DriftResult(DriftKind.PRIVILEGES, diff=diff),
        DriftResult(DriftKind.MODELS, error="the Core models do not compile"),
    )
    text = render_text(report)
    assert "drift 1/4 baseline (committed baseline/ vs a freshly migrated database): ok" in text
    assert "drift 4/4 privileges" in text and "-b\n+c" in text
    assert "drift 3/4 models" in text and "the Core models do not compile" in text
    assert text.endswith("drift: FAILED - 2 of 3 checks at 0005_x (4 privileges, 3 models; 1.2 s)")


def test_markdown_summary_puts_diffs_in_diff_fences() -> None:
    diff = unified_diff(["x"], ["y"], "a", "b")
    markdown = render_markdown(_report(DriftResult(DriftKind.ROUND_TRIP, diff=diff)))
    assert "## ❌ Schema drift at `0005_x`" in markdown
    assert "| 2 | round trip |" in markdown and "**FAILED**" in markdown
    assert f"```diff\n{diff}\n```" in markdown
    assert "✅" in render_markdown(_report(DriftResult(DriftKind.BASELINE)))


def test_cli_drift_accepts_a_summary_file_and_check_selection() -> None:
    args = build_parser().parse_args(
        ["baseline", "drift", "--summary", "out.md", "--check", "models", "--check", "baseline"]
    )
    assert args.summary == Path("out.md") and args.check == ["models", "baseline"]
    with pytest.raises(SystemExit):
        build_parser().parse_args(["baseline", "drift", "--check", "everything"])


def test_catalog_txt_round_trips_and_rejects_what_it_did_not_write() -> None:
    from symphony_schema import SymphonyError
    from symphony_schema.baseline.render import parse_catalog_txt, render_catalog_txt

    snapshot = {"roles": ["role a: LOGIN"], "memberships": [], "structure": ["t comment: x\\ny"]}
    text = render_catalog_txt("0002_b", snapshot)
    assert text.startswith("# Symphony schema catalog at revision 0002_b.\n")
    assert parse_catalog_txt(text, "catalog.txt") == ("0002_b", snapshot)
    with pytest.raises(SymphonyError, match="not a Symphony catalog snapshot"):
        parse_catalog_txt("[roles]\nrole a\n", "x/catalog.txt")
    with pytest.raises(SymphonyError, match="line 2: entry before the first"):
        parse_catalog_txt("# Symphony schema catalog at revision 1.\nstray\n", "x/catalog.txt")


def test_catalog_txt_checked_out_with_crlf_parses_the_same() -> None:
    from symphony_schema.baseline.render import parse_catalog_txt, render_catalog_txt

    snapshot = {"roles": ["role a: LOGIN", "role b: NOLOGIN"]}
    text = render_catalog_txt("0002_b", snapshot)
    assert parse_catalog_txt(text.replace("\n", "\r\n"), "c") == ("0002_b", snapshot)
