"""The distribution revision on the session cluster (ADR 0149): ``alembic upgrade head`` on the
coordinator, after ``cluster owner-login``, distributes the outbox; the gate (INV-058, INV-060, the
owner's LOGIN rule) and live drift apply there and still fail under sabotage; the revision refuses
a cluster that lacks an operator step; the guards work on the shards; a NOTIFY fired on a shard
reaches the listeners of that worker only."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import psycopg
import pytest

from symphony_schema import cluster
from symphony_schema.invariants import gate, gate_cluster, role_passwords
from tests.cluster.conftest import ALEMBIC, CLI, owner_logs_in, run

pytestmark = pytest.mark.citus


def _conn(node: cluster.Node, dbname: str = "symphony") -> psycopg.Connection[Any]:
    return psycopg.connect(node.conninfo(dbname), autocommit=True)


def _participant_on(conn: psycopg.Connection[Any], port: int, prefix: str) -> str:
    for i in range(500):
        participant = f"{prefix}-{i}"
        row = conn.execute(
            "SELECT s.nodeport FROM pg_catalog.citus_shards AS s"
            " WHERE s.shardid = pg_catalog.get_shard_id_for_distribution_column("
            "'public.payment_outbox_pending', %s::text)",
            (participant,),
        ).fetchone()
        if row is not None and int(row[0]) == port:
            return participant
    raise AssertionError(f"no participant on port {port}")


# ------------------------------------------------------------------------------------------------
# upgrade head distributes; the gate's cluster checks apply and pass
# ------------------------------------------------------------------------------------------------


def test_upgrade_head_distributes_the_outbox_as_declared(
    migrated_cluster: cluster.Cluster,
) -> None:
    with _conn(migrated_cluster.coordinator) as conn:
        assert gate_cluster.check_distribution_as_declared(conn) == []
        assert gate_cluster.check_ledger_shards_append_only(conn) == []
        placed = dict(
            conn.execute(
                "SELECT s.table_name::text, count(DISTINCT s.nodeport)"
                " FROM pg_catalog.citus_shards AS s GROUP BY 1"
            ).fetchall()
        )
        owner = conn.execute(
            "SELECT rolcanlogin FROM pg_catalog.pg_roles WHERE rolname = 'symphony_owner'"
        ).fetchone()
    # Every distributed table has shards on both workers.
    for table in (
        "payment_outbox_pending",
        "payment_outbox_idempotency_keys",
        "outbox_rail_references",
    ):
        assert placed[table] == 2, placed
    assert owner == (True,)
    result = run(CLI, "invariants", "gate", "--url", migrated_cluster.coordinator.url())
    assert result.returncode == 0, result.stdout + result.stderr
    for check in ("gate:distribution-as-declared", "gate:ledger-shards-append-only"):
        line = next(line for line in result.stdout.splitlines() if check in line)
        assert line.startswith("PASS"), line


def test_live_drift_reads_the_distributed_shape_and_still_sees_a_change(
    migrated_cluster: cluster.Cluster,
) -> None:
    url = migrated_cluster.coordinator.url()
    clean = run(CLI, "drift", "--url", url)
    assert clean.returncode == 0, clean.stdout + clean.stderr
    assert "distributed database: 12 expected line(s)" in clean.stdout
    assert "_1020" not in clean.stdout  # no shard names
    with _conn(migrated_cluster.coordinator) as conn:
        conn.execute("DROP INDEX public.ix_payment_outbox_pending_key")
        try:
            dropped = run(CLI, "drift", "--url", url)
        finally:
            conn.execute(
                "CREATE INDEX ix_payment_outbox_pending_key"
                " ON public.payment_outbox_pending (instruction_id, idempotency_key)"
            )
    assert dropped.returncode == 1, dropped.stdout + dropped.stderr
    assert "-public.payment_outbox_pending index ix_payment_outbox_pending_key" in dropped.stdout


def test_a_table_moved_out_of_its_group_fails_inv_058(migrated_cluster: cluster.Cluster) -> None:
    move = (
        "SELECT update_distributed_table_colocation('public.payment_outbox_payloads',"
        " colocate_with => %s)"
    )
    with _conn(migrated_cluster.coordinator) as conn:
        conn.execute(move, ("none",))
        try:
            problems = gate_cluster.check_distribution_as_declared(conn)
        finally:
            conn.execute(move, ("public.payment_outbox_pending",))
        assert gate_cluster.check_distribution_as_declared(conn) == []
    assert any("co-location group 'outbox' are in 2" in line for line in problems), problems


# ------------------------------------------------------------------------------------------------
# The owner's LOGIN on a cluster (ADR 0146): INV-067 and the role-passwords check (INV-038)
# ------------------------------------------------------------------------------------------------


def test_the_owner_logs_in_only_with_pg_dist_authinfo_on_every_node(
    migrated_cluster: cluster.Cluster,
) -> None:
    worker = migrated_cluster.workers[-1]
    coordinator = migrated_cluster.coordinator
    with _conn(coordinator) as conn:
        assert gate_cluster.check_cluster_owner_login(conn) == []
        # The role-attributes check leaves the owner's LOGIN to INV-067 on a coordinator.
        assert gate.check_role_attributes(conn) == []
    assert role_passwords.check(coordinator.conninfo()) == []
    with _conn(worker) as on_worker:
        saved = on_worker.execute(
            "DELETE FROM pg_catalog.pg_dist_authinfo WHERE rolename = 'symphony_owner'"
            " RETURNING nodeid, rolename, authinfo"
        ).fetchall()
        try:
            with _conn(coordinator) as conn:
                problems = gate_cluster.check_cluster_owner_login(conn)
            passwords = role_passwords.check(coordinator.conninfo())
        finally:
            on_worker.execute(
                "INSERT INTO pg_catalog.pg_dist_authinfo (nodeid, rolename, authinfo)"
                " VALUES (%s, %s, %s)",
                saved[0],
            )
    assert problems == [
        "role symphony_owner logs in on a Citus cluster but has no pg_dist_authinfo row on "
        f"127.0.0.1:{worker.port}: add it there, or ALTER ROLE symphony_owner NOLOGIN "
        "(ADR 0146; symphony-schema cluster owner-login on the local cluster)"
    ]
    assert len(passwords) == 1 and passwords[0].startswith("role symphony_owner has a password")
    with _conn(coordinator) as conn:
        conn.execute("ALTER ROLE symphony_owner NOLOGIN")
        try:
            nologin = gate_cluster.check_cluster_owner_login(conn)
        finally:
            conn.execute("ALTER ROLE symphony_owner LOGIN")
        assert gate_cluster.check_cluster_owner_login(conn) == []
    assert len(nologin) == 1, nologin
    assert nologin[0].startswith("role symphony_owner cannot log in on a distributed database")


# ------------------------------------------------------------------------------------------------
# What the revision refuses (ADR 0149), in a database of its own on the session cluster
# ------------------------------------------------------------------------------------------------

REFUSED_DB = "symphony_dist_refused"


@pytest.fixture(scope="module")
def undistributed(migrated_cluster: cluster.Cluster) -> Iterator[str]:
    """A second database of the session cluster migrated up to the distribution revision."""
    for node in migrated_cluster.nodes:
        cluster._prepare(node, REFUSED_DB)
    cluster._register(migrated_cluster, REFUSED_DB)
    url = migrated_cluster.coordinator.url(REFUSED_DB)
    try:
        result = run(ALEMBIC, "-x", f"url={url}", "upgrade", cluster.revision_before_distribution())
        assert result.returncode == 0, result.stdout + result.stderr
        yield url
    finally:
        owner_logs_in(migrated_cluster)


def _upgrade(url: str) -> tuple[int, str]:
    result = run(ALEMBIC, "-x", f"url={url}", "upgrade", "head")
    return result.returncode, result.stdout + result.stderr


def test_the_distribution_revision_refuses_a_missing_operator_step(
    migrated_cluster: cluster.Cluster, undistributed: str
) -> None:
    coordinator, worker = migrated_cluster.coordinator, migrated_cluster.workers[0]
    # No pg_dist_authinfo row for the owner in this database on any node.
    code, out = _upgrade(undistributed)
    assert code != 0
    assert "55000" in out or "ObjectNotInPrerequisiteState" in out, out
    assert (
        "cannot distribute: no pg_dist_authinfo row for symphony_owner in this database on "
        "127.0.0.1:" in out
    ), out
    assert "the coordinator" in out and "cluster owner-login" in out
    cluster.owner_login(migrated_cluster)
    # A node whose pg_hba.conf lets the owner in by trust.
    hba = worker.pgdata / "pg_hba.conf"
    saved = hba.read_text(encoding="utf-8")
    hba.write_text(
        "\n".join(line for line in saved.splitlines() if line != cluster.OWNER_HBA_LINE) + "\n",
        encoding="utf-8",
    )
    try:
        with _conn(worker, REFUSED_DB) as conn:
            conn.execute("SELECT pg_catalog.pg_reload_conf()")
        code, out = _upgrade(undistributed)
    finally:
        hba.write_text(saved, encoding="utf-8")
        with _conn(worker, REFUSED_DB) as conn:
            conn.execute("SELECT pg_catalog.pg_reload_conf()")
    assert code != 0
    assert (
        f"cannot distribute: pg_hba.conf of 127.0.0.1:{worker.port} lets symphony_owner in "
        "without a password" in out
    ), out
    # A key row without its participant: Citus could not place it.
    with _conn(coordinator, REFUSED_DB) as conn:
        conn.execute(
            "INSERT INTO public.payment_outbox_idempotency_keys"
            " (instruction_id, idempotency_key, outbox_id) VALUES ('i', 'k', gen_random_uuid())"
        )
        code, out = _upgrade(undistributed)
        assert code != 0
        assert (
            "cannot distribute: 1 key row(s) of payment_outbox_idempotency_keys have no "
            "participant_id" in out
        ), out
        conn.execute("DELETE FROM public.payment_outbox_idempotency_keys")
        # Nothing was written by the refusals: still at the revision before, nothing distributed.
        assert conn.execute("SELECT count(*) FROM pg_catalog.pg_dist_partition").fetchone() == (0,)
    code, out = _upgrade(undistributed)
    assert code == 0, out
    with _conn(coordinator, REFUSED_DB) as conn:
        assert gate_cluster.check_distribution_as_declared(conn) == []


# ------------------------------------------------------------------------------------------------
# The guards on the shards (revision 0035), for a superuser's hand writes
# ------------------------------------------------------------------------------------------------


def test_the_p7005_guards_hold_on_a_shard(migrated_cluster: cluster.Cluster) -> None:
    worker = migrated_cluster.workers[0]
    insert = (
        "INSERT INTO public.payment_outbox_pending (outbox_id, instruction_id, participant_id,"
        " sequence_id, idempotency_key, rail_type, payload)"
        " VALUES (%s, %s, %s, %s, %s, 'RTGS', '{}')"
    )
    record = (
        "INSERT INTO public.payment_outbox_attempts (outbox_id, instruction_id, participant_id,"
        " sequence_id, idempotency_key, rail_type, payload, attempt_no, state)"
        " VALUES (%s, %s, %s, 1, %s, 'RTGS', '{}', 1, 'DISPATCHED')"
    )
    with _conn(migrated_cluster.coordinator) as conn:
        participant = _participant_on(conn, worker.port, "guard")
        # uuid v7 ids: the ledger row lands in its day partition, not the default one (INV-063).
        queued, done = conn.execute(
            "SELECT public.uuid_v7_or_random(), public.uuid_v7_or_random()"
        ).fetchone()  # type: ignore[misc]
        conn.execute(insert, (queued, "g-1", participant, 1, "gk-1"))
        # The key row the guard wrote names the participant (on its shard).
        assert conn.execute(
            "SELECT participant_id, outbox_id FROM public.payment_outbox_idempotency_keys"
            " WHERE participant_id = %s AND instruction_id = 'g-1'",
            (participant,),
        ).fetchall() == [(participant, queued)]
        with pytest.raises(psycopg.Error, match="JOB_STILL_QUEUED") as still:
            conn.execute(record, (queued, "g-1", participant, "gk-1"))
        assert still.value.sqlstate == "P7005"
        conn.execute(record, (done, "g-2", participant, "gk-2"))
        with pytest.raises(psycopg.Error, match="JOB_ALREADY_TERMINAL") as terminal:
            conn.execute(insert, (done, "g-2", participant, 2, "gk-2"))
        assert terminal.value.sqlstate == "P7005"


# ------------------------------------------------------------------------------------------------
# Notify on a cluster (ADR 0149): the trigger fires on the worker's shard
# ------------------------------------------------------------------------------------------------


def _notified(conn: psycopg.Connection[Any], timeout: float) -> list[str]:
    got: list[str] = []
    gen = conn.notifies(timeout=timeout)
    for notify in gen:
        got.append(f"{notify.channel}:{notify.payload}")
    return got


def test_work_is_notified_on_the_worker_that_holds_the_shard_only(
    migrated_cluster: cluster.Cluster,
) -> None:
    """An executor LISTENing on the coordinator never hears of new work; one LISTENing on the
    worker that holds the participant's shard does (docs/operations/citus.md, ADR 0149)."""
    holder, other = migrated_cluster.workers
    listeners = {node.name: _conn(node) for node in (migrated_cluster.coordinator, holder, other)}
    try:
        for conn in listeners.values():
            conn.execute("LISTEN symphony_outbox_work")
        with _conn(migrated_cluster.coordinator) as admin:
            participant = _participant_on(admin, holder.port, "wake")
            admin.execute(
                "INSERT INTO public.payment_outbox_pending (instruction_id, participant_id,"
                " sequence_id, idempotency_key, rail_type, payload)"
                " VALUES ('w-1', %s, 1, 'wk-1', 'RTGS', '{}')",
                (participant,),
            )
        heard = {name: _notified(conn, 1.0) for name, conn in listeners.items()}
    finally:
        for conn in listeners.values():
            conn.close()
    # The payload is '<rail code>:<hint>' since 0033 (ADR 0159): the rail part is compared.
    rails = {name: [note.rsplit(":", 1)[0] for note in notes] for name, notes in heard.items()}
    assert rails == {
        "coordinator": [],
        holder.name: ["symphony_outbox_work:RTGS"],
        other.name: [],
    }


# ------------------------------------------------------------------------------------------------
# owner-login --database: the password is the role's, so every Citus database follows it
# ------------------------------------------------------------------------------------------------


def _authinfo(node: cluster.Node, dbname: str) -> set[str]:
    with _conn(node, dbname) as conn:
        return {
            str(row[0])
            for row in conn.execute(
                "SELECT authinfo FROM pg_catalog.pg_dist_authinfo WHERE rolename = 'symphony_owner'"
            )
        }


def test_owner_login_for_one_database_keeps_every_other_citus_database_in_step(
    migrated_cluster: cluster.Cluster,
) -> None:
    extra = "symphony_owner_login_extra"
    for node in migrated_cluster.nodes:
        cluster._prepare(node, extra)
    cluster._register(migrated_cluster, extra)
    env = {"SYMPHONY_CLUSTER_DIR": str(migrated_cluster.directory)}
    try:
        before = _authinfo(migrated_cluster.coordinator, "symphony")
        # A name that is not a Citus database: one line, nothing rotated.
        refused = run(CLI, "cluster", "owner-login", "--database", "no_such_db", extra_env=env)
        assert refused.returncode == 2, refused.stdout + refused.stderr
        assert refused.stderr.count("\n") == 1 and "no_such_db" in refused.stderr
        assert _authinfo(migrated_cluster.coordinator, "symphony") == before
        # Rotating the role's password for one database rewrites it in every Citus database:
        # a stale pg_dist_authinfo would fail every delegated call there.
        login = run(CLI, "cluster", "owner-login", "--database", extra, extra_env=env)
        assert login.returncode == 0, login.stdout + login.stderr
        for node in migrated_cluster.nodes:
            now = _authinfo(node, "symphony")
            assert now == _authinfo(node, extra) and now != before, node.name
        with _conn(migrated_cluster.coordinator) as conn:
            # Writing a reference table makes the owner connect to every node (ADR 0146).
            conn.execute("SELECT public.set_outbox_retry_ceiling(public.outbox_retry_ceiling())")
    finally:
        owner_logs_in(migrated_cluster)
