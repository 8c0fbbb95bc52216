"""Revision 0013 (issue 13 item 6, ADR 0115): the id rule and the plan-settings pin live once.

The outbox functions call owner-only helpers instead of repeating the rules inline; the checks,
their order, messages and SQLSTATEs are unchanged (the per-function tests cover those), and the
caller's plan settings are given back by every function.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import psycopg
import pytest

if TYPE_CHECKING:
    from tests.integration.conftest import LoginFactory, Outbox

pytestmark = pytest.mark.integration

OUTBOX_FUNCTIONS = (
    "enqueue_payment_outbox",
    "bump_participant_outbox_seq",
    "claim_outbox_batch",
    "complete_outbox_attempt",
    "complete_outbox_attempts_batch",
    "repair_expired_leases",
    # Enqueue's predicate states its ids through outbox_id_ok since 0039 (one owner of the rule).
    "outbox_enqueue_args_ok",
)
HELPERS: dict[str, tuple[str, tuple[Any, ...]]] = {
    "outbox_limit_bytes": ("SELECT public.outbox_limit_bytes(%s, %s, %s)", (["p_x"], ["x"], [1])),
    "outbox_require_ids": ("SELECT public.outbox_require_ids(%s, %s, %s)", (["p_x"], ["x"], 1)),
    "outbox_pin_plan_settings": ("SELECT public.outbox_pin_plan_settings()", ()),
    "outbox_restore_plan_settings": (
        "SELECT public.outbox_restore_plan_settings(%s)",
        (["auto", "on"],),
    ),
}


def test_no_outbox_function_repeats_the_id_rule_or_the_plan_settings(
    db: psycopg.Connection[Any],
) -> None:
    rows = db.execute(
        "SELECT p.proname, pg_catalog.pg_get_functiondef(p.oid) FROM pg_catalog.pg_proc AS p"
        " WHERE p.pronamespace = 'public'::regnamespace AND p.proname = ANY(%s)",
        (list(OUTBOX_FUNCTIONS),),
    ).fetchall()
    assert {row[0] for row in rows} == set(OUTBOX_FUNCTIONS)
    for name, source in rows:
        assert "btrim" not in source, f"{name} writes the blank-id rule inline"
        assert "set_config" not in source, f"{name} writes the plan-settings pin inline"
        assert "current_setting" not in source, f"{name} saves the plan settings inline"


def test_the_id_rule_checks_every_blank_before_any_size(db: psycopg.Connection[Any]) -> None:
    names = ["p_a", "p_b", "p_c"]
    cases = [
        (["x" * 1025, " \t", "ok"], r"p_b must be a non-empty string"),
        (["ok", "y" * 2000, None], r"p_c must be a non-empty string"),
        (["ok", "y" * 2000, "z" * 3000], r"p_b must be at most 1024 bytes, got 2000"),
        (["é" * 513, "ok", "ok"], r"p_a must be at most 1024 bytes, got 1026"),
    ]
    for values, message in cases:
        with pytest.raises(psycopg.errors.InvalidParameterValue, match=message):
            db.execute("SELECT public.outbox_require_ids(%s, %s)", (names, values))
    db.execute("SELECT public.outbox_require_ids(%s, %s)", (names, ["a", "b" * 1024, "c"]))
    # Without a size limit only the blank rule applies.
    db.execute("SELECT public.outbox_require_ids(%s, %s, NULL)", (["p_a"], ["a" * 5000]))
    with pytest.raises(psycopg.errors.InvalidParameterValue, match="p_a must be a non-empty"):
        db.execute("SELECT public.outbox_require_ids(%s, %s, NULL)", (["p_a"], ["\n"]))


def test_the_size_rule_lets_null_through_and_names_the_first_over_its_limit(
    db: psycopg.Connection[Any],
) -> None:
    db.execute(
        "SELECT public.outbox_limit_bytes(%s, %s, %s)",
        (["p_a", "p_b"], [None, "b" * 10], [1, 10]),
    )
    with pytest.raises(
        psycopg.errors.InvalidParameterValue, match=r"p_b must be at most 4 bytes, got 5"
    ):
        db.execute(
            "SELECT public.outbox_limit_bytes(%s, %s, %s)",
            (["p_a", "p_b", "p_c"], [None, "bbbbb", "ccccc"], [1, 4, 4]),
        )


def test_every_outbox_function_gives_the_caller_its_plan_settings_back(outbox: Outbox) -> None:
    conn = outbox.conn
    outbox.enqueue("instr-0")
    with conn.transaction():
        conn.execute("SET LOCAL plan_cache_mode = force_custom_plan")
        conn.execute("SET LOCAL enable_seqscan = on")
        outbox.enqueue("instr-1", participant_id="participant-2")
        (claimed,) = outbox.claim(1, "w-1")
        outbox.complete(claimed.outbox_id, claimed.lease_token, "w-1", "RETRYABLE")
        outbox.make_due()
        (claimed,) = outbox.claim(1, "w-1")
        conn.execute(
            "SELECT * FROM public.complete_outbox_attempts_batch('w-1', %s, %s, %s, %s)",
            ([claimed.outbox_id], [claimed.lease_token], ["DISPATCHED"], ["ref-1"]),
        )
        outbox.repair(10, "w-1")
        row = conn.execute(
            "SELECT pg_catalog.current_setting('plan_cache_mode'),"
            " pg_catalog.current_setting('enable_seqscan')"
        ).fetchone()
        assert row == ("force_custom_plan", "on")


def test_pinned_settings_hold_inside_the_calling_function(db: psycopg.Connection[Any]) -> None:
    """The helpers pin search_path with a SET clause; the plan settings they set must still be in
    force after the helper returns (a SET clause restores only the variables it names)."""
    with db.transaction():
        saved = db.execute("SELECT public.outbox_pin_plan_settings()").fetchone()
        assert saved is not None
        row = db.execute(
            "SELECT pg_catalog.current_setting('plan_cache_mode'),"
            " pg_catalog.current_setting('enable_seqscan')"
        ).fetchone()
        assert row == ("force_generic_plan", "off")
        db.execute("SELECT public.outbox_restore_plan_settings(%s)", (saved[0],))
        row = db.execute(
            "SELECT pg_catalog.current_setting('plan_cache_mode'),"
            " pg_catalog.current_setting('enable_seqscan')"
        ).fetchone()
        assert row == tuple(saved[0])


@pytest.mark.parametrize("role", ["symphony_ingest", "symphony_executor", "symphony_control"])
def test_the_helpers_are_owner_only(login: LoginFactory, role: str) -> None:
    conn = login(role).conn
    for name, (query, args) in HELPERS.items():
        with pytest.raises(psycopg.errors.InsufficientPrivilege, match=name):
            conn.execute(query, args)
