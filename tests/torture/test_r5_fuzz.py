"""R5: property-based fuzzing of every outbox function's arguments (hypothesis).

Each call runs as a non-superuser login with the runtime roles that may call it (the internal
``bump_participant_outbox_seq`` and ``outbox_retry_ceiling`` as ``symphony_owner``, the only role
allowed to). An oracle computed from the arguments and the database state before the call says
which outcomes the contract (docs/contract/schema.md §4, ADRs 0004 and 0006) allows:

* success, checked against the contract (the rows written, returned and left alone), or
* one of the documented SQLSTATEs - 22023 (naming the argument), P7002, P7003, P7004 - or 22P02
  when a state label is not a value of ``outbox_attempt_state`` at all (PostgreSQL rejects the
  argument before the function runs; see ADR 0050). Anything else fails the test.

A failed call must leave every Symphony table and the migration ledger unchanged: row counts and
an md5 of their full contents are compared before and after (read as the superuser).

Where the contract is silent the oracle accepts both answers and says so (``AMBIGUOUS``): strings
of Unicode-only whitespace, and ids longer than 512 bytes for the indexed id columns (a limit is
a design decision; a 54000 "index row size" error is not an answer).

``max_examples`` is 200 per function in the default run, 2,000 in the slow variant.
"""

from __future__ import annotations

import json
import secrets
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import psycopg
import pytest
from hypothesis import HealthCheck, example, given, seed, settings
from hypothesis import strategies as st

from symphony_schema.privileges import EXECUTOR, INGEST
from tests.torture import support
from tests.torture.conftest import LoginMaker

pytestmark = pytest.mark.integration

EXAMPLES = [
    pytest.param(200, id="200"),
    pytest.param(2000, id="2000", marks=[pytest.mark.slow, pytest.mark.timeout(1800)]),
]

#: ASCII whitespace: an id made only of these is "blank" (ADR 0006: whitespace-only -> 22023).
ASCII_WS = " \t\n\r\x0b\x0c"
#: Longer indexed ids may be refused (22023) or accepted; they must not crash on the index.
LONG_ID_BYTES = 512
#: Size limits of 0011 (ADR 0063), in bytes.
SHORT_TEXT_BYTES = 1024
ERROR_MESSAGE_BYTES = 4096
PAYLOAD_BYTES = 65536

ENUM_STATES = ("DISPATCHING", "DISPATCHED", "RETRYABLE", "FAILED", "ZOMBIE_REQUEUE")
DOCUMENTED = {None, "22023", "P7002", "P7003", "P7004", "P7013"}


# --------------------------------------------------------------------------------------------
# Oracle helpers
# --------------------------------------------------------------------------------------------

INVALID, AMBIGUOUS, VALID = "invalid", "ambiguous", "valid"


def classify(value: str | None, *, indexed: bool) -> str:
    """How the contract treats a text id: NULL/empty/ASCII-blank is invalid; Unicode-only
    whitespace and (for indexed ids) very long values are ambiguous."""
    if value is None or all(ch in ASCII_WS for ch in value):
        return INVALID
    if all(ch.isspace() for ch in value):
        return AMBIGUOUS
    if indexed and len(value.encode()) > LONG_ID_BYTES:
        return AMBIGUOUS
    if not indexed and len(value.encode()) > SHORT_TEXT_BYTES:
        return INVALID  # worker ids and rail types: at most 1024 bytes (0011, ADR 0063)
    return VALID


def too_long(value: str | None, limit: int) -> str:
    """An optional text argument with a size limit (0011, ADR 0063)."""
    return INVALID if value is not None and len(value.encode()) > limit else VALID


@dataclass
class Expectation:
    """Allowed outcomes (None = success) and the argument names a 22023 message may name."""

    allowed: set[str | None]
    names: list[str]


def argument_checks(checks: list[tuple[str, str]]) -> Expectation | None:
    """Fold per-argument classifications into the outcomes allowed; None when every argument is
    valid. A 22023 may name any invalid or ambiguous argument (the contract does not fix the
    order in which a function checks them)."""
    names = [name for name, verdict in checks if verdict != VALID]
    if not names:
        return None
    if any(verdict == INVALID for _, verdict in checks):
        return Expectation({"22023"}, names)
    return Expectation({"22023", None}, names)


@dataclass
class Outcome:
    sqlstate: str | None
    message: str
    rows: list[tuple[Any, ...]]


def call(conn: psycopg.Connection[Any], query: str, params: Any) -> Outcome:
    try:
        rows = conn.execute(query, params).fetchall()
    except psycopg.Error as exc:
        return Outcome(exc.sqlstate, str(exc), [])
    return Outcome(None, "", rows)


def judge(
    outcome: Outcome,
    expected: Expectation,
    before: dict[str, tuple[int, str]],
    after: dict[str, tuple[int, str]],
    context: Any,
) -> None:
    assert outcome.sqlstate in DOCUMENTED | {"22P02"}, (
        f"undocumented SQLSTATE {outcome.sqlstate}: {outcome.message} ({context})"
    )
    assert outcome.sqlstate in expected.allowed, (
        f"expected one of {sorted(map(str, expected.allowed))}, got {outcome.sqlstate}: "
        f"{outcome.message} ({context})"
    )
    if outcome.sqlstate is not None:
        assert after == before, f"a failed call ({outcome.sqlstate}) wrote something ({context})"
    if outcome.sqlstate == "22023":
        assert any(name in outcome.message for name in expected.names), (
            f"the 22023 message names none of {expected.names}: {outcome.message}"
        )


# --------------------------------------------------------------------------------------------
# Strategies
# --------------------------------------------------------------------------------------------

# Values PostgreSQL can represent: text has no NUL and no lone surrogates.
CHARS = st.characters(exclude_categories=["Cs"], exclude_characters="\x00")
TEXT = st.text(CHARS, max_size=40)
TEXT_NONEMPTY = st.text(CHARS, min_size=1, max_size=40)
ASCII_BLANK = st.text(st.sampled_from(ASCII_WS), max_size=6)
UNICODE_BLANK = st.text(
    st.sampled_from("\u00a0\u1680\u2003\u2028\u3000\x1c\x85"), min_size=1, max_size=4
)
HUGE = st.integers(600, 9000).flatmap(
    lambda n: st.binary(min_size=n // 2, max_size=n // 2).map(bytes.hex)
)


def weighted(*choices: tuple[int, st.SearchStrategy[Any]]) -> st.SearchStrategy[Any]:
    """Pick a strategy with the given relative weights (``st.one_of`` weighs its branches by
    its own rules and merges equal ones, which starves the valid cases)."""
    strategies = [strategy for weight, strategy in choices for _ in range(weight)]
    return st.sampled_from(strategies).flatmap(lambda strategy: strategy)


def ids(pool: list[str]) -> st.SearchStrategy[str | None]:
    """Ids: mostly valid - from a small pool (so keys collide) or any text - plus NULL, blanks,
    Unicode blanks and huge values."""
    return weighted(
        (5, st.sampled_from(pool)),
        (3, TEXT_NONEMPTY),
        (1, st.none()),
        (1, ASCII_BLANK),
        (1, UNICODE_BLANK),
        (1, HUGE),
    )


INT32 = st.integers(-(2**31), 2**31 - 1)


def bounded_int(edges: list[int], low: int, high: int) -> st.SearchStrategy[int | None]:
    """Mostly inside [low, high], plus NULL, the edges around it and any 32-bit integer."""
    return weighted(
        (6, st.integers(low, high)), (1, st.none()), (1, st.sampled_from(edges)), (1, INT32)
    )


JSON_SCALARS = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-(10**20), 10**20),
    st.floats(allow_nan=False, allow_infinity=False),
    TEXT,
)
JSON_VALUES = st.recursive(
    JSON_SCALARS,
    lambda children: st.lists(children, max_size=4) | st.dictionaries(TEXT, children, max_size=4),
    max_leaves=12,
)
OBJECTS = st.dictionaries(TEXT, JSON_VALUES, max_size=5)
SQL_NULL = ("sql-null",)
#: A payload is SQL NULL or a JSON document (object or not).
PAYLOADS = weighted(
    (1, st.just(SQL_NULL)),
    (3, st.sampled_from([{"amount": 100}, {"amount": 200}])),
    (3, OBJECTS),
    (2, JSON_VALUES),
)


def payload_param(payload: Any) -> str | None:
    return None if payload == SQL_NULL else json.dumps(payload)


# --------------------------------------------------------------------------------------------
# Fixtures
# --------------------------------------------------------------------------------------------


@dataclass
class FuzzDb:
    admin: psycopg.Connection[Any]  # superuser: snapshots, oracle reads, set-up
    caller: psycopg.Connection[Any]  # non-superuser login with ingest + executor

    def snapshot(self) -> dict[str, tuple[int, str]]:
        return support.table_snapshot(self.admin)

    def one(self, query: str, params: Any = None) -> tuple[Any, ...] | None:
        return self.admin.execute(query, params).fetchone()


@pytest.fixture
def fuzz(db: psycopg.Connection[Any], make_login: LoginMaker) -> Iterator[FuzzDb]:
    login = make_login(INGEST, EXECUTOR)
    with login.connect() as caller:
        yield FuzzDb(db, caller)


def hypothesis_settings(examples: int, name: str) -> Callable[[Any], Any]:
    def apply(test: Any) -> Any:
        configured = settings(
            max_examples=examples,
            deadline=None,
            database=None,
            suppress_health_check=[
                HealthCheck.too_slow,
                HealthCheck.data_too_large,
                HealthCheck.large_base_example,
            ],
        )(test)
        return seed(support.run_seed(name))(configured)

    return apply


def enqueue_as_admin(admin: psycopg.Connection[Any], instruction: str, key: str) -> Any:
    row = admin.execute(
        "SELECT outbox_id FROM public.enqueue_payment_outbox(%s, 'p-setup', %s, 'rtgs', %s)",
        (instruction, key, '{"amount": 100}'),
    ).fetchone()
    assert row is not None
    return row[0]


def lease(admin: psycopg.Connection[Any], outbox_id: Any, worker: str, live: bool) -> Any:
    """Give a queued row a lease directly (the pending table is mutable for the superuser)."""
    row = admin.execute(
        "UPDATE public.payment_outbox_pending SET claimed_by = %s,"
        " lease_token = pg_catalog.gen_random_uuid(),"
        " lease_expires_at = pg_catalog.clock_timestamp() + %s * interval '1 hour',"
        " next_attempt_at = LEAST(next_attempt_at, pg_catalog.now())"
        " WHERE outbox_id = %s RETURNING lease_token",
        (worker, 1 if live else -1, outbox_id),
    ).fetchone()
    assert row is not None
    return row[0]


# --------------------------------------------------------------------------------------------
# enqueue_payment_outbox
# --------------------------------------------------------------------------------------------

ENQUEUE = "SELECT * FROM public.enqueue_payment_outbox(%s, %s, %s, %s, %s::jsonb)"
INSTRUCTIONS = ["i-1", "i-2", "i-3", "i-4"]
KEYS = ["k-1", "k-2"]
PARTICIPANTS = ["p-1", "p-2"]
RAIL_TYPES = ["rtgs", "RTGS", "ach", "eft"]
#: The rails a fresh database registers and enables (0019); enqueue of a new job refuses any
#: other (0020). Input is upper-cased in ASCII only ("C" collation).
ENABLED_RAILS = {"RTGS", "ACH", "SWIFT", "CARD"}


def ascii_upper(value: str) -> str:
    """upper(value COLLATE "C"): a-z only, as the rails table matches input (ADR 0122)."""
    return "".join(chr(ord(ch) - 32) if "a" <= ch <= "z" else ch for ch in value)


#: Well-formed calls (pooled ids, object payloads: success, a duplicate, or P7004) most of the
#: time, anything the strategies produce otherwise.
ENQUEUE_ARGS = weighted(
    (
        6,
        st.tuples(
            st.sampled_from(INSTRUCTIONS),
            st.sampled_from(PARTICIPANTS),
            st.sampled_from(KEYS),
            st.sampled_from(RAIL_TYPES),
            weighted((3, st.sampled_from([{"amount": 100}, {"amount": 200}])), (1, OBJECTS)),
        ),
    ),
    (4, st.tuples(ids(INSTRUCTIONS), ids(PARTICIPANTS), ids(KEYS), ids(RAIL_TYPES), PAYLOADS)),
)


def _enqueue_history(fuzz: FuzzDb) -> None:
    """Give the pool keys every history: queued, dispatched, failed, and a job removed by hand
    after a retry (only a non-terminal attempt left), so all enqueue paths are reachable."""
    admin = fuzz.admin
    for instruction, key, state in (
        ("i-1", "k-1", None),
        ("i-2", "k-1", "DISPATCHED"),
        ("i-3", "k-1", "FAILED"),
        ("i-4", "k-1", "RETRYABLE"),
    ):
        outbox_id = admin.execute(
            "SELECT outbox_id FROM public.enqueue_payment_outbox(%s, 'p-1', %s, 'rtgs', %s)",
            (instruction, key, '{"amount": 100}'),
        ).fetchone()
        assert outbox_id is not None
        if state is not None:
            token = lease(admin, outbox_id[0], "w-setup", live=True)
            admin.execute(
                "SELECT public.complete_outbox_attempt(%s, %s, 'w-setup', %s,"
                " p_rail_reference => %s::uuid::text)",
                (outbox_id[0], token, state, outbox_id[0]),
            )
        if state == "RETRYABLE":
            admin.execute(
                "DELETE FROM public.payment_outbox_pending WHERE outbox_id = %s", (outbox_id[0],)
            )


def _existing_job(fuzz: FuzzDb, instruction: str, key: str, payload: str | None) -> Any:
    """(source, outbox_id, sequence_id, created_at, state, participant, rail, same_payload)."""
    pending = fuzz.one(
        # Since 0038 the queue row carries no payload (ADR 0167): the job's payload row.
        "SELECT 'pending', p.outbox_id, p.sequence_id, p.created_at, 'PENDING', p.participant_id,"
        " p.rail_type, x.payload = %s::jsonb FROM public.payment_outbox_pending AS p"
        " JOIN public.payment_outbox_payloads AS x"
        " ON x.participant_id = p.participant_id AND x.outbox_id = p.outbox_id"
        " WHERE p.instruction_id = %s AND p.idempotency_key = %s",
        (payload, instruction, key),
    )
    if pending is not None:
        return pending
    # The payload is stored once per job since 0024 (ledger rows carry none): by its key.
    return fuzz.one(
        "SELECT 'attempt', a.outbox_id, a.sequence_id, a.created_at, a.state::text,"
        " a.participant_id, a.rail_type, x.payload = %s::jsonb"
        " FROM public.payment_outbox_attempts AS a"
        " JOIN public.payment_outbox_payloads AS x"
        " ON x.participant_id = a.participant_id AND x.outbox_id = a.outbox_id"
        " WHERE a.instruction_id = %s AND a.idempotency_key = %s"
        " ORDER BY a.created_at DESC, a.attempt_no DESC, a.attempt_id DESC LIMIT 1",
        (payload, instruction, key),
    )


def _enqueue_expectation(
    args: tuple[Any, ...], payload: Any, payload_bytes: int | None = None
) -> Expectation | None:
    instruction, participant, key, rail = args
    not_object = payload == SQL_NULL or not isinstance(payload, dict)
    not_object = not_object or (payload_bytes or 0) > PAYLOAD_BYTES
    return argument_checks(
        [
            ("p_instruction_id", classify(instruction, indexed=True)),
            ("p_participant_id", classify(participant, indexed=True)),
            ("p_idempotency_key", classify(key, indexed=True)),
            ("p_rail_type", classify(rail, indexed=False)),
            ("p_payload", INVALID if not_object else VALID),
        ]
    )


def _check_enqueue(fuzz: FuzzDb, args: tuple[Any, ...], payload: Any) -> None:
    instruction, participant, key, rail = args
    param = payload_param(payload)
    size = None
    if isinstance(payload, dict):
        row = fuzz.one("SELECT pg_catalog.octet_length(%s::jsonb::text)", (param,))
        size = int(row[0]) if row else None
    expected = _enqueue_expectation(args, payload, size)
    existing = None
    if expected is None or None in expected.allowed:
        existing = _existing_job(fuzz, instruction, key, param)
    conflict = existing is not None and (
        existing[5] != participant
        or ascii_upper(existing[6]) != ascii_upper(rail)
        or not existing[7]
    )
    new_job_problems: list[str] = []
    if existing is None and (expected is None or None in expected.allowed):
        # A new job: a registered, enabled rail and payload numbers a JSON consumer reads
        # exactly (the number rule's own oracle is tested against a real JSON consumer in
        # tests/integration/test_outbox_operations.py; here the owner's check decides).
        inexact = call(fuzz.admin, "SELECT public.check_outbox_payload_numbers(%s)", (param,))
        new_job_problems = [
            name
            for name, bad in (
                ("p_rail_type", rail is None or ascii_upper(rail) not in ENABLED_RAILS),
                ("p_payload", inexact.sqlstate is not None),
            )
            if bad
        ]
    if expected is None:
        if new_job_problems:
            expected = Expectation({"22023"}, new_job_problems)
        else:
            expected = Expectation({"P7004"} if conflict else {None}, [])
    elif None in expected.allowed and new_job_problems:
        expected = Expectation({"22023"}, expected.names + new_job_problems)
    elif None in expected.allowed and conflict:  # an ambiguous id that is accepted conflicts
        expected.allowed = {"22023", "P7004"}
    next_row = fuzz.one(
        "SELECT next_sequence_id FROM public.participant_outbox_sequences"
        " WHERE participant_id = %s",
        (participant,),
    )
    before = fuzz.snapshot()
    outcome = call(fuzz.caller, ENQUEUE, (instruction, participant, key, rail, param))
    after = fuzz.snapshot()
    context = (args, payload)
    judge(outcome, expected, before, after, context)
    if outcome.sqlstate is not None:
        return
    ((outbox_id, sequence_id, created_at, state),) = outcome.rows
    if existing is not None:
        assert (outbox_id, sequence_id, created_at, state) == tuple(existing[1:5]), context
        assert after == before, f"an idempotent enqueue wrote something ({context})"
        return
    assert state == "PENDING", context
    assert sequence_id == (next_row[0] if next_row else 1), "sequence numbers must be gapless"
    stored = fuzz.one(
        # The payload's one copy is the payload row since 0038 (ADR 0167); none in the queue row.
        "SELECT p.instruction_id, p.participant_id, p.idempotency_key, p.rail_type,"
        " x.payload = %s::jsonb AND p.payload IS NULL, p.attempt_count, p.claimed_by"
        " FROM public.payment_outbox_pending AS p JOIN public.payment_outbox_payloads AS x"
        " ON x.participant_id = p.participant_id AND x.outbox_id = p.outbox_id"
        " WHERE p.outbox_id = %s",
        (param, outbox_id),
    )
    assert stored == (instruction, participant, key, ascii_upper(rail), True, 0, None), context
    assert after[support.SYMPHONY_TABLES[2]] == before[support.SYMPHONY_TABLES[2]], (
        "enqueue must not touch the attempts ledger"
    )


@pytest.mark.parametrize("examples", EXAMPLES)
def test_fuzz_enqueue(fuzz: FuzzDb, examples: int) -> None:
    _enqueue_history(fuzz)

    @hypothesis_settings(examples, "r5-enqueue")
    @given(args=ENQUEUE_ARGS)
    @example(args=("i-9", "p-1", "k-9", "rtgs", {"blob": "x" * 1_000_000}))
    @example(args=("i-8", "p-1", "k-8", "rtgs", {"deep": json.loads("[" * 200 + "]" * 200)}))
    @example(args=("i-1", "p-2", "k-1", "rtgs", {"amount": 100}))
    def prop(args: tuple[Any, ...]) -> None:
        _check_enqueue(fuzz, args[:4], args[4])

    prop()


# --------------------------------------------------------------------------------------------
# claim_outbox_batch
# --------------------------------------------------------------------------------------------

CLAIM = (
    "SELECT outbox_id, lease_token, lease_expires_at, attempt_count,"
    " pg_catalog.clock_timestamp() FROM public.claim_outbox_batch(%s, %s, %s)"
)
LEDGER_IDS = "SELECT attempt_id FROM public.payment_outbox_attempts"
# Revision 0014: only a participant's head is claimable (per-participant FIFO, ADR 0116).
CLAIMABLE = (
    "SELECT count(*) FROM public.payment_outbox_pending WHERE next_attempt_at <= now()"
    " AND (lease_token IS NULL OR lease_expires_at <= now()) AND is_head"
)


def _fill_queue(admin: psycopg.Connection[Any], rows: int) -> None:
    admin.execute(
        "SELECT public.enqueue_payment_outbox('c-' || g, 'p-' || (g %% 3), 'k-' || g, 'rtgs',"
        " pg_catalog.jsonb_build_object('n', g)) FROM pg_catalog.generate_series(1, %s) AS g",
        (rows,),
    )


def _reset_leases(admin: psycopg.Connection[Any], live_half: bool) -> None:
    """Every row due; leases expired, except (with ``live_half``) those of rows whose id hashes
    even, which get a live lease of another worker."""
    admin.execute(
        "UPDATE public.payment_outbox_pending SET next_attempt_at = now() - interval '1 minute',"
        " claimed_by = COALESCE(claimed_by, 'w-other'),"
        " lease_token = COALESCE(lease_token, pg_catalog.gen_random_uuid()),"
        " lease_expires_at = CASE WHEN %s AND pg_catalog.hashtext(outbox_id::text) %% 2 = 0"
        "   THEN now() + interval '1 hour' ELSE now() - interval '1 minute' END",
        (live_half,),
    )


def _check_claim(fuzz: FuzzDb, batch: Any, worker: Any, lease_seconds: Any) -> None:
    expected = argument_checks(
        [
            ("p_batch_size", VALID if batch is not None and 1 <= batch <= 1000 else INVALID),
            ("p_worker_id", classify(worker, indexed=False)),
            (
                "p_lease_seconds",
                VALID if lease_seconds is not None and 1 <= lease_seconds <= 86400 else INVALID,
            ),
        ]
    ) or Expectation({None}, [])
    claimable_row = fuzz.one(CLAIMABLE)
    assert claimable_row is not None
    ledger_before = {row[0] for row in fuzz.admin.execute(LEDGER_IDS)}
    ceiling = fuzz.one("SELECT public.outbox_retry_ceiling()")
    assert ceiling is not None
    before = fuzz.snapshot()
    outcome = call(fuzz.caller, CLAIM, (batch, worker, lease_seconds))
    after = fuzz.snapshot()
    context = (batch, worker, lease_seconds)
    judge(outcome, expected, before, after, context)
    if outcome.sqlstate is not None:
        return
    # Each expired lease taken over is recorded (0011, ADR 0060): ZOMBIE_REQUEUE and leased, or
    # FAILED at the ceiling and gone from the queue (not returned).
    taken = {
        row[0]: row[1:]
        for row in fuzz.admin.execute(
            "SELECT outbox_id, attempt_no, state::text, error_code,"
            " (SELECT count(*) FROM public.payment_outbox_pending AS p"
            "   WHERE p.outbox_id = a.outbox_id)"
            " FROM public.payment_outbox_attempts AS a WHERE attempt_id <> ALL(%s)",
            (list(ledger_before),),
        )
    }
    failed = {o for o, (_, state, _, _) in taken.items() if state == "FAILED"}
    for attempt_no, state, error_code, queued in taken.values():
        assert state == ("FAILED" if attempt_no >= ceiling[0] else "ZOMBIE_REQUEUE"), context
        assert (error_code, queued) == ("LEASE_EXPIRED", 0 if state == "FAILED" else 1), context
    assert len(outcome.rows) + len(failed) == min(batch, claimable_row[0]), context
    for outbox_id, token, expires, attempt_count, clock in outcome.rows:
        stored = fuzz.one(
            "SELECT claimed_by, lease_token, lease_expires_at FROM public.payment_outbox_pending"
            " WHERE outbox_id = %s",
            (outbox_id,),
        )
        assert stored == (worker, token, expires), context
        assert 0 <= (clock - expires).total_seconds() + lease_seconds < 60, context
        if outbox_id in taken:
            assert attempt_count == taken[outbox_id][0], context
    for table in support.SYMPHONY_TABLES[3:]:
        assert after[table] == before[table], f"claim changed {table} ({context})"


@pytest.mark.parametrize("examples", EXAMPLES)
def test_fuzz_claim(fuzz: FuzzDb, examples: int) -> None:
    _fill_queue(fuzz.admin, 30)

    @hypothesis_settings(examples, "r5-claim")
    @given(
        batch=bounded_int([0, 1, 1000, 1001, -1], 1, 40),
        worker=ids(["w-1", "w-2"]),
        lease_seconds=bounded_int([0, 1, 86400, 86401, -1], 1, 86400),
        live_half=st.booleans(),
    )
    def prop(batch: Any, worker: Any, lease_seconds: Any, live_half: bool) -> None:
        _reset_leases(fuzz.admin, live_half)
        _check_claim(fuzz, batch, worker, lease_seconds)

    prop()


# --------------------------------------------------------------------------------------------
# complete_outbox_attempt
# --------------------------------------------------------------------------------------------

COMPLETE = (
    "SELECT attempt_no, state::text FROM public.complete_outbox_attempt(%s, %s, %s,"
    " %s::public.outbox_attempt_state, %s, %s, %s, %s, %s, %s)"
)


@dataclass
class Targets:
    """Rows prepared for one completion example: a live lease, an expired one, no lease."""

    live: tuple[Any, Any]
    expired: tuple[Any, Any]
    unleased: Any


LIVE_WORKER, EXPIRED_WORKER = "w-live", "w-expired"


def _targets(admin: psycopg.Connection[Any]) -> Targets:
    rows = [
        r[0]
        for r in admin.execute(
            "SELECT outbox_id FROM public.payment_outbox_pending ORDER BY outbox_id LIMIT 3"
        )
    ]
    while len(rows) < 3:
        name = f"fz-{uuid.uuid4().hex}"
        rows.append(enqueue_as_admin(admin, name, name))
    admin.execute(
        "UPDATE public.payment_outbox_pending SET claimed_by = NULL, lease_token = NULL,"
        " lease_expires_at = NULL WHERE outbox_id = %s",
        (rows[2],),
    )
    return Targets(
        live=(rows[0], lease(admin, rows[0], LIVE_WORKER, live=True)),
        expired=(rows[1], lease(admin, rows[1], EXPIRED_WORKER, live=False)),
        unleased=rows[2],
    )


REPORTABLE = ("DISPATCHED", "RETRYABLE", "FAILED")
UNREPORTABLE = ("DISPATCHING", "ZOMBIE_REQUEUE")
STATE_LABELS = weighted(
    (8, st.sampled_from(REPORTABLE)), (2, st.sampled_from(UNREPORTABLE)), (1, st.none()), (1, TEXT)
)
LATENCIES = weighted((3, st.none()), (4, st.integers(0, 10**6)), (1, INT32), (1, st.just(-1)))
DELAYS = weighted((2, st.none()), (4, st.integers(-5, 3600)), (1, INT32))
MATCH_WORKER = weighted((8, st.just("match")), (2, ids(["w-x"])))
OPTIONAL_TEXT = weighted((3, st.none()), (3, TEXT), (1, HUGE))


@dataclass(frozen=True)
class CompletionArgs:
    target: str  # live | expired | unleased | unknown | null
    token: str  # match | other | null
    worker: Any  # "match" or a text strategy value
    state: Any
    rail_reference: Any
    rail_code: Any
    error_code: Any
    error_message: Any
    latency_ms: Any
    retry_delay: Any


def _resolve(args: CompletionArgs, targets: Targets) -> tuple[Any, Any, Any, bool]:
    """(outbox_id, token, worker, lease matches and is live)."""
    leases = {"live": targets.live, "expired": targets.expired}
    outbox_id = {
        "live": targets.live[0],
        "expired": targets.expired[0],
        "unleased": targets.unleased,
        "unknown": uuid.uuid4(),
        "null": None,
    }[args.target]
    real_token = leases.get(args.target, (None, None))[1]
    token = {"match": real_token or uuid.uuid4(), "other": uuid.uuid4(), "null": None}[args.token]
    real_worker = {"live": LIVE_WORKER, "expired": EXPIRED_WORKER}.get(args.target, "w-none")
    worker = real_worker if args.worker == "match" else args.worker
    # Revision 0014 (ADR 0118): an expired lease nobody replaced still completes for its holder.
    live = args.target in ("live", "expired") and args.token == "match" and worker == real_worker
    return outbox_id, token, worker, live


def _completion_expectation(
    args: CompletionArgs, outbox_id: Any, token: Any, worker: Any, live: bool
) -> Expectation:
    if args.state is not None and args.state not in ENUM_STATES:
        return Expectation({"22P02"}, [])  # not a value of the enum: rejected before the call
    invalid = argument_checks(
        [
            ("p_outbox_id", INVALID if outbox_id is None else VALID),
            ("p_lease_token", INVALID if token is None else VALID),
            ("p_worker_id", classify(worker, indexed=False)),
            ("p_state", INVALID if args.state is None else VALID),
            ("p_latency_ms", INVALID if (args.latency_ms or 0) < 0 else VALID),
            ("p_rail_reference", too_long(args.rail_reference, SHORT_TEXT_BYTES)),
            ("p_rail_code", too_long(args.rail_code, SHORT_TEXT_BYTES)),
            ("p_error_code", too_long(args.error_code, SHORT_TEXT_BYTES)),
            ("p_error_message", too_long(args.error_message, ERROR_MESSAGE_BYTES)),
        ]
    )
    if invalid is not None:
        if None in invalid.allowed:  # ambiguous worker: refused, or treated like any worker
            invalid.allowed = {"22023", "P7002"}
        return invalid
    if not live:
        return Expectation({"P7002"}, [])
    if args.state not in ("DISPATCHED", "FAILED", "RETRYABLE"):
        return Expectation({"P7003"}, [])
    return Expectation({None}, [])


def _check_completion_success(
    fuzz: FuzzDb, args: CompletionArgs, outbox_id: Any, outcome: Outcome, ceiling: int
) -> None:
    attempt_no, state = outcome.rows[0]
    highest = fuzz.one(
        "SELECT max(attempt_no) FROM public.payment_outbox_attempts"
        " WHERE outbox_id = %s AND attempt_no < %s",
        (outbox_id, attempt_no),
    )
    assert highest is not None and attempt_no == (highest[0] or 0) + 1
    effective = args.state
    if effective == "RETRYABLE" and attempt_no >= ceiling:
        effective = "FAILED"
    assert state == effective, (args, attempt_no, ceiling)
    stored = fuzz.one(
        "SELECT state::text, worker_id, rail_reference, rail_code, error_code, error_message,"
        " latency_ms, completed_at IS NOT NULL FROM public.payment_outbox_attempts"
        " WHERE outbox_id = %s AND attempt_no = %s",
        (outbox_id, attempt_no),
    )
    terminal = effective in ("DISPATCHED", "FAILED")
    assert stored == (
        effective,
        EXPIRED_WORKER if args.target == "expired" else LIVE_WORKER,
        args.rail_reference,
        args.rail_code,
        args.error_code,
        args.error_message,
        args.latency_ms,
        terminal,
    ), args
    pending = fuzz.one(
        "SELECT attempt_count, claimed_by, lease_token,"
        " round(extract(epoch FROM next_attempt_at - pg_catalog.clock_timestamp()))"
        " FROM public.payment_outbox_pending WHERE outbox_id = %s",
        (outbox_id,),
    )
    if terminal:
        assert pending is None, "a terminal completion must remove the job from the queue"
    else:
        assert pending is not None
        delay = max(1, args.retry_delay if args.retry_delay is not None else 1)
        assert pending[:3] == (attempt_no, None, None), args
        assert abs(float(pending[3]) - delay) <= 30, (pending, delay)


BLANK = " \t\n\r\f\x0b"


def _reference_refusal(
    admin: psycopg.Connection[Any], items: list[tuple[Any, Any, Any]]
) -> str | None:
    """Revision 0023 (ADR 0141): the fuzz jobs are on RTGS, which returns references, so a
    DISPATCHED outcome needs a non-blank reference (22023) that no other job of the rail
    reported (P7013), element by element in input order; None when every one is fine."""
    known = {
        reference: holder
        for reference, holder in admin.execute(
            "SELECT rail_reference, outbox_id FROM public.outbox_rail_references"
            " WHERE rail_code = 'RTGS'"
        ).fetchall()
    }
    for outbox_id, state, reference in items:
        if state != "DISPATCHED":
            continue
        if reference is None or reference.strip(BLANK) == "":
            return "22023"
        if known.setdefault(reference, outbox_id) != outbox_id:
            return "P7013"
    return None


COMPLETION_ARGS = st.builds(
    CompletionArgs,
    target=st.sampled_from(["live"] * 8 + ["expired", "unleased", "unknown", "null"]),
    token=st.sampled_from(["match"] * 8 + ["other", "null"]),
    worker=MATCH_WORKER,
    state=STATE_LABELS,
    rail_reference=OPTIONAL_TEXT,
    rail_code=OPTIONAL_TEXT,
    error_code=OPTIONAL_TEXT,
    error_message=OPTIONAL_TEXT,
    latency_ms=LATENCIES,
    retry_delay=DELAYS,
)


def _check_complete(fuzz: FuzzDb, args: CompletionArgs, ceiling: int) -> None:
    targets = _targets(fuzz.admin)
    outbox_id, token, worker, live = _resolve(args, targets)
    expected = _completion_expectation(args, outbox_id, token, worker, live)
    if expected.allowed == {None}:
        refusal = _reference_refusal(fuzz.admin, [(outbox_id, args.state, args.rail_reference)])
        if refusal is not None:
            expected = Expectation({refusal}, ["p_rail_reference"] if refusal == "22023" else [])
    before = fuzz.snapshot()
    outcome = call(
        fuzz.caller,
        COMPLETE,
        (
            outbox_id,
            token,
            worker,
            args.state,
            args.rail_reference,
            args.rail_code,
            args.error_code,
            args.error_message,
            args.latency_ms,
            args.retry_delay,
        ),
    )
    after = fuzz.snapshot()
    judge(outcome, expected, before, after, args)
    if outcome.sqlstate is None:
        _check_completion_success(fuzz, args, outbox_id, outcome, ceiling)


@pytest.mark.parametrize("examples", EXAMPLES)
def test_fuzz_complete(fuzz: FuzzDb, examples: int) -> None:
    fuzz.admin.execute("SELECT public.set_outbox_retry_ceiling(3)")

    @hypothesis_settings(examples, "r5-complete")
    @given(args=COMPLETION_ARGS)
    def prop(args: CompletionArgs) -> None:
        _check_complete(fuzz, args, ceiling=3)

    prop()


# --------------------------------------------------------------------------------------------
# complete_outbox_attempts_batch (0007, ADR 0040)
# --------------------------------------------------------------------------------------------

BATCH = (
    "SELECT outbox_id, attempt_no, state::text FROM public.complete_outbox_attempts_batch("
    "%s, %s::uuid[], %s::uuid[], %s::text[], %s::text[], %s::text[], %s::text[], %s::text[],"
    " %s::integer[], %s::integer[])"
)
BATCH_OPTIONAL = (
    "p_rail_references",
    "p_rail_codes",
    "p_error_codes",
    "p_error_messages",
    "p_latency_ms",
    "p_retry_delay_seconds",
)
BATCH_TARGETS = ("live0", "live1", "live2", "expired", "unleased", "unknown")


@dataclass(frozen=True)
class BatchElement:
    target: str
    token: str  # match | other | null
    state: Any
    texts: tuple[Any, Any, Any, Any]  # rail reference, rail code, error code, error message
    latency_ms: Any
    retry_delay: Any


@dataclass(frozen=True)
class BatchArgs:
    worker: Any  # "match" or a drawn id
    elements: tuple[BatchElement, ...] | None  # None: p_outbox_ids is NULL
    tokens_shape: str  # match | short | null
    states_shape: str  # match | short | null
    optional_shapes: tuple[str, ...]  # per optional array: null | match | short


BATCH_ELEMENTS = st.builds(
    BatchElement,
    target=st.sampled_from(["live0", "live1", "live2"] * 3 + ["expired", "unleased", "unknown"]),
    token=st.sampled_from(["match"] * 8 + ["other", "null"]),
    state=STATE_LABELS,
    texts=st.tuples(OPTIONAL_TEXT, OPTIONAL_TEXT, OPTIONAL_TEXT, OPTIONAL_TEXT),
    latency_ms=LATENCIES,
    retry_delay=DELAYS,
)
SHAPES = st.sampled_from(["match"] * 8 + ["short", "null"])
WELL_FORMED_BATCH = st.builds(
    BatchArgs,
    worker=st.just("match"),
    elements=st.lists(
        st.builds(
            BatchElement,
            target=st.sampled_from(["live0", "live1", "live2"] * 4 + ["expired", "unleased"]),
            token=st.sampled_from(["match"] * 9 + ["other"]),
            state=st.sampled_from(REPORTABLE * 5 + UNREPORTABLE),
            texts=st.tuples(OPTIONAL_TEXT, OPTIONAL_TEXT, OPTIONAL_TEXT, OPTIONAL_TEXT),
            latency_ms=st.one_of(st.none(), st.integers(0, 10**6)),
            retry_delay=DELAYS,
        ),
        min_size=1,
        max_size=3,
        unique_by=lambda e: e.target,
    ).map(tuple),
    tokens_shape=st.just("match"),
    states_shape=st.just("match"),
    optional_shapes=st.tuples(*[st.sampled_from(["null", "match"])] * 6),
)
ANY_BATCH = st.builds(
    BatchArgs,
    worker=MATCH_WORKER,
    elements=weighted(
        (1, st.none()),
        # Mostly distinct jobs (a repeated outbox id is an invalid argument), sometimes not.
        (6, st.lists(BATCH_ELEMENTS, max_size=4, unique_by=lambda e: e.target).map(tuple)),
        (2, st.lists(BATCH_ELEMENTS, max_size=5).map(tuple)),
    ),
    tokens_shape=SHAPES,
    states_shape=SHAPES,
    optional_shapes=st.tuples(*[st.sampled_from(["null"] * 3 + ["match"] * 3 + ["short"])] * 6),
)
#: Well-formed batches (success, P7002 or P7003 by the leases) most of the time.
BATCH_ARGS = weighted((6, WELL_FORMED_BATCH), (4, ANY_BATCH))


@dataclass
class BatchTargets:
    rows: dict[str, Any]  # target -> outbox_id
    tokens: dict[str, Any]  # target -> lease token (leased targets only)


def _batch_targets(admin: psycopg.Connection[Any]) -> BatchTargets:
    rows = [
        r[0]
        for r in admin.execute(
            "SELECT outbox_id FROM public.payment_outbox_pending ORDER BY outbox_id LIMIT 5"
        )
    ]
    while len(rows) < 5:
        name = f"fz-{uuid.uuid4().hex}"
        rows.append(enqueue_as_admin(admin, name, name))
    admin.execute(
        "UPDATE public.payment_outbox_pending SET claimed_by = NULL, lease_token = NULL,"
        " lease_expires_at = NULL WHERE outbox_id = %s",
        (rows[4],),
    )
    targets = dict(zip(("live0", "live1", "live2", "expired", "unleased"), rows, strict=True))
    tokens = {
        name: lease(admin, targets[name], LIVE_WORKER, live=name != "expired")
        for name in ("live0", "live1", "live2", "expired")
    }
    return BatchTargets(targets, tokens)


def _shaped(values: list[Any], shape: str) -> list[Any] | None:
    if shape == "null":
        return None
    if shape == "short":
        return values[:-1] if values else [None]
    return values


def _batch_params(args: BatchArgs, targets: BatchTargets) -> tuple[Any, list[Any] | None, Any]:
    """(worker, outbox ids, the call's parameters)."""
    worker = LIVE_WORKER if args.worker == "match" else args.worker
    if args.elements is None:
        return worker, None, (worker, None, [], [], *([None] * 6))
    ids_: list[Any] = []
    tokens: list[Any] = []
    for element in args.elements:
        outbox_id = targets.rows.get(element.target, uuid.uuid4())
        ids_.append(outbox_id)
        real = targets.tokens.get(element.target)
        tokens.append(
            {"match": real or uuid.uuid4(), "other": uuid.uuid4(), "null": None}[element.token]
        )
    columns: list[list[Any]] = [
        [e.texts[0] for e in args.elements],
        [e.texts[1] for e in args.elements],
        [e.texts[2] for e in args.elements],
        [e.texts[3] for e in args.elements],
        [e.latency_ms for e in args.elements],
        [e.retry_delay for e in args.elements],
    ]
    optional = [
        _shaped(col, shape) for col, shape in zip(columns, args.optional_shapes, strict=True)
    ]
    params = (
        worker,
        ids_,
        _shaped(tokens, args.tokens_shape),
        _shaped([e.state for e in args.elements], args.states_shape),
        *optional,
    )
    return worker, ids_, params


def _batch_expectation(
    args: BatchArgs, params: tuple[Any, ...], targets: BatchTargets
) -> tuple[Expectation, Any]:
    """The allowed outcomes, and the first stale outbox id (for the P7002 message)."""
    worker, ids_, tokens, states, *optional = params
    verdict = classify(worker, indexed=False)
    if verdict == INVALID:
        return Expectation({"22023"}, ["p_worker_id"]), None
    count = len(ids_) if ids_ is not None else 0
    checks: list[tuple[str, bool]] = [
        ("p_outbox_ids", ids_ is None or not 1 <= count <= 1000 or None in ids_),
        ("p_lease_tokens", tokens is None or len(tokens) != count or None in tokens),
        (
            "p_states",
            states is None
            or len(states) != count
            or any(state not in ENUM_STATES for state in states),
        ),
        *(
            (name, values is not None and len(values) != count)
            for name, values in zip(BATCH_OPTIONAL, optional, strict=True)
        ),
    ]
    for name, bad in checks:
        if bad:
            names = ["p_worker_id", name] if verdict == AMBIGUOUS else [name]
            return Expectation({"22023"}, names), None
    for name, values in zip(BATCH_OPTIONAL[:4], optional[:4], strict=True):
        limit = ERROR_MESSAGE_BYTES if name == "p_error_messages" else SHORT_TEXT_BYTES
        if values is not None and any(too_long(v, limit) == INVALID for v in values):
            names = ["p_worker_id", name] if verdict == AMBIGUOUS else [name]
            return Expectation({"22023"}, names), None
    seen: set[Any] = set()
    latencies = optional[4] or [None] * count
    for outbox_id, latency in zip(ids_, latencies, strict=True):
        if outbox_id in seen or (latency is not None and latency < 0):
            name = "p_outbox_ids" if outbox_id in seen else "p_latency_ms"
            names = ["p_worker_id", name] if verdict == AMBIGUOUS else [name]
            return Expectation({"22023"}, names), None
        seen.add(outbox_id)
    live = {
        (targets.rows[name], targets.tokens[name])
        # Revision 0014 (ADR 0118): the expired lease nobody replaced still completes.
        for name in ("live0", "live1", "live2", "expired")
        if worker == LIVE_WORKER
    }
    stale = [o for o, t in zip(ids_, tokens, strict=True) if (o, t) not in live]
    if verdict == AMBIGUOUS:  # refused as blank, or a worker that holds none of these leases
        return Expectation({"22023", "P7002"}, ["p_worker_id"]), ids_[0]
    if stale:
        return Expectation({"P7002"}, []), stale[0]
    if any(state not in ("DISPATCHED", "FAILED", "RETRYABLE") for state in states):
        return Expectation({"P7003"}, []), None
    return Expectation({None}, []), None


def _check_batch(fuzz: FuzzDb, args: BatchArgs, ceiling: int) -> None:
    targets = _batch_targets(fuzz.admin)
    worker, ids_, params = _batch_params(args, targets)
    expected, first_stale = _batch_expectation(args, params, targets)
    if expected.allowed == {None} and ids_ is not None:
        references = params[4] if params[4] is not None else [None] * len(ids_)
        refusal = _reference_refusal(
            fuzz.admin, list(zip(ids_, params[3], references, strict=True))
        )
        if refusal is not None:
            expected = Expectation({refusal}, ["p_rail_references"] if refusal == "22023" else [])
    highest = {
        row[0]: row[1]
        for row in fuzz.admin.execute(
            "SELECT outbox_id, max(attempt_no) FROM public.payment_outbox_attempts"
            " GROUP BY outbox_id"
        )
    }
    before = fuzz.snapshot()
    outcome = call(fuzz.caller, BATCH, params)
    after = fuzz.snapshot()
    judge(outcome, expected, before, after, args)
    if outcome.sqlstate == "P7002" and first_stale is not None and expected.allowed == {"P7002"}:
        assert str(first_stale) in outcome.message.split("for worker")[0], outcome.message
    if outcome.sqlstate is not None:
        return
    assert args.elements is not None and ids_ is not None
    assert [row[0] for row in outcome.rows] == ids_, "one row per element, in input order"
    optional = params[4:]
    for index, (outbox_id, attempt_no, state) in enumerate(outcome.rows):
        element = args.elements[index]
        assert attempt_no == highest.get(outbox_id, 0) + 1
        effective = element.state
        if effective == "RETRYABLE" and attempt_no >= ceiling:
            effective = "FAILED"
        assert state == effective
        value = [None if column is None else column[index] for column in optional]
        stored = fuzz.one(
            "SELECT state::text, worker_id, rail_reference, rail_code, error_code,"
            " error_message, latency_ms, completed_at IS NOT NULL"
            " FROM public.payment_outbox_attempts WHERE outbox_id = %s AND attempt_no = %s",
            (outbox_id, attempt_no),
        )
        terminal = effective in ("DISPATCHED", "FAILED")
        assert stored == (effective, worker, *value[:5], terminal), (args, index)
        pending = fuzz.one(
            "SELECT attempt_count, lease_token FROM public.payment_outbox_pending"
            " WHERE outbox_id = %s",
            (outbox_id,),
        )
        assert pending == (None if terminal else (attempt_no, None)), (args, index)


@pytest.mark.parametrize("examples", EXAMPLES)
def test_fuzz_complete_batch(fuzz: FuzzDb, examples: int) -> None:
    fuzz.admin.execute("SELECT public.set_outbox_retry_ceiling(3)")

    @hypothesis_settings(examples, "r5-complete-batch")
    @given(args=BATCH_ARGS)
    def prop(args: BatchArgs) -> None:
        _check_batch(fuzz, args, ceiling=3)

    prop()


def test_batch_size_and_dimension_limits(fuzz: FuzzDb) -> None:
    """Edges hypothesis rarely reaches: 1,001 elements and a two-dimensional array."""
    many = [uuid.uuid4() for _ in range(1001)]
    for ids_, tokens, states in (
        (many, many, ["DISPATCHED"] * 1001),
        ([[uuid.uuid4()]], [uuid.uuid4()], ["DISPATCHED"]),
    ):
        before = fuzz.snapshot()
        outcome = call(fuzz.caller, BATCH, (LIVE_WORKER, ids_, tokens, states, *[None] * 6))
        assert (outcome.sqlstate, "p_outbox_ids" in outcome.message) == ("22023", True)
        assert fuzz.snapshot() == before


# --------------------------------------------------------------------------------------------
# repair_expired_leases
# --------------------------------------------------------------------------------------------

REPAIR = "SELECT outbox_id, attempt_no FROM public.repair_expired_leases(%s, %s)"


def _check_repair(fuzz: FuzzDb, batch: Any, worker: Any) -> None:
    expected = argument_checks(
        [
            ("p_batch_size", VALID if batch is not None and 1 <= batch <= 1000 else INVALID),
            ("p_worker_id", classify(worker, indexed=False)),
        ]
    ) or Expectation({None}, [])
    expired = {
        row[0]: (row[1], row[2])
        for row in fuzz.admin.execute(
            "SELECT p.outbox_id, p.claimed_by, (SELECT COALESCE(max(a.attempt_no), 0)"
            " FROM public.payment_outbox_attempts AS a WHERE a.outbox_id = p.outbox_id)"
            " FROM public.payment_outbox_pending AS p"
            " WHERE p.lease_token IS NOT NULL"
            " AND p.lease_expires_at <= pg_catalog.clock_timestamp()"
        )
    }
    live_before = fuzz.admin.execute(
        "SELECT outbox_id, claimed_by, lease_token, lease_expires_at, attempt_count,"
        " next_attempt_at, in_doubt FROM public.payment_outbox_pending"
        " WHERE lease_expires_at > now()"
        " ORDER BY outbox_id"
    ).fetchall()
    before = fuzz.snapshot()
    outcome = call(fuzz.caller, REPAIR, (batch, worker))
    after = fuzz.snapshot()
    context = (batch, worker)
    judge(outcome, expected, before, after, context)
    if outcome.sqlstate is not None:
        return
    assert len(outcome.rows) == min(batch, len(expired)), context
    ceiling = fuzz.one("SELECT public.outbox_retry_ceiling()")
    assert ceiling is not None
    for outbox_id, attempt_no in outcome.rows:
        lost_worker, highest = expired[outbox_id]
        assert attempt_no == highest + 1, context
        # At the ceiling the lost lease is FAILED and the job leaves the queue (0011, ADR 0060).
        stored = fuzz.one(
            "SELECT a.state::text, a.worker_id, a.error_code, p.attempt_count, p.lease_token"
            " FROM public.payment_outbox_attempts AS a LEFT JOIN public.payment_outbox_pending"
            " AS p USING (outbox_id) WHERE a.outbox_id = %s AND a.attempt_no = %s",
            (outbox_id, attempt_no),
        )
        if attempt_no >= ceiling[0]:
            assert stored == ("FAILED", lost_worker, "LEASE_EXPIRED", None, None)
        else:
            assert stored == ("ZOMBIE_REQUEUE", lost_worker, "LEASE_EXPIRED", attempt_no, None)
    live_after = fuzz.admin.execute(
        "SELECT outbox_id, claimed_by, lease_token, lease_expires_at, attempt_count,"
        " next_attempt_at, in_doubt FROM public.payment_outbox_pending"
        " WHERE lease_expires_at > now()"
        " ORDER BY outbox_id"
    ).fetchall()
    assert live_after == live_before, "repair touched a live lease"


@pytest.mark.parametrize("examples", EXAMPLES)
def test_fuzz_repair(fuzz: FuzzDb, examples: int) -> None:
    _fill_queue(fuzz.admin, 8)  # every repair appends to the ledger: keep it small

    @hypothesis_settings(examples, "r5-repair")
    @given(
        batch=bounded_int([0, 1, 1000, 1001, -1], 1, 10),
        worker=ids(["w-r"]),
        live_half=st.booleans(),
    )
    def prop(batch: Any, worker: Any, live_half: bool) -> None:
        _reset_leases(fuzz.admin, live_half)
        _check_repair(fuzz, batch, worker)

    prop()


# --------------------------------------------------------------------------------------------
# The retry ceiling: stored in the database (0011, ADR 0061); the old setting is ignored
# --------------------------------------------------------------------------------------------

GUC = "symphony.outbox_retry_ceiling"
GUC_VALUES = st.one_of(
    st.integers(-5, 25).map(str),
    st.integers(0, 2**40).map(str),
    st.sampled_from(["", " ", "  7  ", "\t7", "+3", "-1", "0", "1.5", "abc", "2147483647"]),
    TEXT,
)
CEILINGS = st.one_of(st.none(), st.integers(-(2**31), 2**31 - 1), st.integers(-3, 30))


def _stored_ceiling(fuzz: FuzzDb) -> int:
    row = fuzz.one("SELECT public.outbox_retry_ceiling()")
    assert row is not None
    return int(row[0])


def _check_ceiling(fuzz: FuzzDb, value: str, ceiling: int | None) -> None:
    # The control plane sets the stored ceiling: NULL or < 1 is 22023 naming p_ceiling and
    # changes nothing; anything else is stored and the previous value returned.
    stored = _stored_ceiling(fuzz)
    fuzz.admin.execute("SET ROLE symphony_control")
    try:
        outcome = call(fuzz.admin, "SELECT public.set_outbox_retry_ceiling(%s)", (ceiling,))
    finally:
        fuzz.admin.execute("RESET ROLE")
    if ceiling is None or ceiling < 1:
        assert outcome.sqlstate == "22023", (ceiling, outcome)
        assert "p_ceiling" in outcome.message, outcome.message
    else:
        assert (outcome.sqlstate, outcome.rows) == (None, [(stored,)]), (ceiling, outcome)
        stored = ceiling
    assert _stored_ceiling(fuzz) == stored

    # Whatever the caller's session setting says, a RETRYABLE completion as the executor login
    # follows the stored ceiling.
    targets = _targets(fuzz.admin)
    outbox_id, token = targets.live
    fuzz.caller.execute("SELECT pg_catalog.set_config(%s, %s, false)", (GUC, value))
    outcome = call(
        fuzz.caller,
        COMPLETE,
        (outbox_id, token, LIVE_WORKER, "RETRYABLE", None, None, None, None, None, None),
    )
    fuzz.caller.execute(f"RESET {GUC}")
    assert outcome.sqlstate is None, (value, outcome)
    attempt_no, state = outcome.rows[0]
    assert state == ("FAILED" if attempt_no >= stored else "RETRYABLE"), (value, stored, outcome)


@pytest.mark.parametrize("examples", EXAMPLES)
def test_fuzz_retry_ceiling(fuzz: FuzzDb, examples: int) -> None:
    @hypothesis_settings(examples, "r5-ceiling")
    @given(value=GUC_VALUES, ceiling=CEILINGS)
    def prop(value: str, ceiling: int | None) -> None:
        _check_ceiling(fuzz, value, ceiling)

    prop()


# --------------------------------------------------------------------------------------------
# bump_participant_outbox_seq (internal: owner only) and the UUID helpers (no arguments)
# --------------------------------------------------------------------------------------------


def _check_bump(fuzz: FuzzDb, participant: Any) -> None:
    expected = argument_checks(
        [("p_participant_id", classify(participant, indexed=True))]
    ) or Expectation({None}, [])
    previous = fuzz.one(
        "SELECT next_sequence_id FROM public.participant_outbox_sequences"
        " WHERE participant_id = %s",
        (participant,),
    )
    denied = call(fuzz.caller, "SELECT public.bump_participant_outbox_seq(%s)", (participant,))
    assert denied.sqlstate == "42501", "only the owner may call the allocator"
    before = fuzz.snapshot()
    fuzz.admin.execute("SET ROLE symphony_owner")
    try:
        outcome = call(fuzz.admin, "SELECT public.bump_participant_outbox_seq(%s)", (participant,))
    finally:
        fuzz.admin.execute("RESET ROLE")
    after = fuzz.snapshot()
    judge(outcome, expected, before, after, participant)
    if outcome.sqlstate is None:
        assert outcome.rows == [((previous[0] if previous else 1),)], participant


@pytest.mark.parametrize("examples", EXAMPLES)
def test_fuzz_sequence_allocator(fuzz: FuzzDb, examples: int) -> None:
    @hypothesis_settings(examples, "r5-bump")
    @given(participant=ids(PARTICIPANTS))
    def prop(participant: Any) -> None:
        _check_bump(fuzz, participant)

    prop()


@pytest.mark.parametrize("examples", EXAMPLES)
def test_uuid_helpers_have_no_arguments_to_fuzz_and_always_answer_v7(
    fuzz: FuzzDb, examples: int
) -> None:
    rows = fuzz.caller.execute(
        "SELECT public.uuid_v7_or_random(), public.uuid_strategy()"
        " FROM pg_catalog.generate_series(1, %s)",
        (examples,),
    ).fetchall()
    generated = [row[0] for row in rows]
    assert {row[1] for row in rows} == {"uuidv7"}
    assert all(u.version == 7 and u.variant == uuid.RFC_4122 for u in generated)
    assert generated == sorted(generated) and len(set(generated)) == len(generated)
    for bad in ("SELECT public.uuid_v7_or_random(1)", "SELECT public.uuid_strategy('x')"):
        assert call(fuzz.caller, bad, None).sqlstate == "42883"


# --------------------------------------------------------------------------------------------
# Minimal reproductions of what the fuzzers found (docs/reliability.md, "Defects found")
# --------------------------------------------------------------------------------------------

BLANK_ARGUMENTS = {
    "enqueue p_instruction_id": (
        "SELECT * FROM public.enqueue_payment_outbox(%s, 'p', 'k', 'rtgs', '{}')",
        "p_instruction_id",
    ),
    "enqueue p_participant_id": (
        "SELECT * FROM public.enqueue_payment_outbox('i', %s, 'k', 'rtgs', '{}')",
        "p_participant_id",
    ),
    "enqueue p_idempotency_key": (
        "SELECT * FROM public.enqueue_payment_outbox('i', 'p', %s, 'rtgs', '{}')",
        "p_idempotency_key",
    ),
    "enqueue p_rail_type": (
        "SELECT * FROM public.enqueue_payment_outbox('i', 'p', 'k', %s, '{}')",
        "p_rail_type",
    ),
    "claim p_worker_id": ("SELECT * FROM public.claim_outbox_batch(1, %s, 30)", "p_worker_id"),
    "complete p_worker_id": (
        "SELECT * FROM public.complete_outbox_attempt(gen_random_uuid(), gen_random_uuid(), %s,"
        " 'DISPATCHED')",
        "p_worker_id",
    ),
    "repair p_worker_id": ("SELECT * FROM public.repair_expired_leases(1, %s)", "p_worker_id"),
}


@pytest.mark.parametrize("case", list(BLANK_ARGUMENTS))
def test_whitespace_only_ids_are_invalid_arguments(fuzz: FuzzDb, case: str) -> None:
    """ADR 0006: NULL, empty or blank (whitespace-only) ids raise 22023. Tabs and line breaks
    are whitespace too, not only spaces."""
    query, argument = BLANK_ARGUMENTS[case]
    _fill_queue(fuzz.admin, 2)
    for blank in ("\t", "\n", " \r\n ", "\x0b", "\x0c"):
        before = fuzz.snapshot()
        outcome = call(fuzz.caller, query, (blank,))
        assert (outcome.sqlstate, argument in outcome.message) == ("22023", True), (
            f"{case} = {blank!r}: {outcome.sqlstate or 'accepted'} {outcome.message}"
        )
        assert fuzz.snapshot() == before


@pytest.mark.parametrize("argument", ["p_instruction_id", "p_participant_id", "p_idempotency_key"])
def test_ids_too_long_for_the_indexes_are_invalid_arguments(fuzz: FuzzDb, argument: str) -> None:
    """An id the unique indexes cannot hold must be refused as an invalid argument (22023 naming
    it), not end in 54000 "index row size exceeds btree maximum"."""
    huge = secrets.token_hex(1600)  # 3,200 bytes that do not compress
    args = {
        "p_instruction_id": "i",
        "p_participant_id": "p",
        "p_idempotency_key": "k",
        argument: huge,
    }
    before = fuzz.snapshot()
    outcome = call(
        fuzz.caller,
        ENQUEUE,
        (
            args["p_instruction_id"],
            args["p_participant_id"],
            args["p_idempotency_key"],
            "rtgs",
            "{}",
        ),
    )
    assert (outcome.sqlstate, argument in outcome.message) == ("22023", True), (
        f"{outcome.sqlstate}: {outcome.message}"
    )
    assert fuzz.snapshot() == before
