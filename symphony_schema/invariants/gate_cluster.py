"""Gate checks of a Citus cluster (issue 16, ADRs 0126, 0145 and 0146), registered in
:data:`symphony_schema.invariants.gate.CHECKS`.

* ``gate:worker-security`` (INV-059): on a Citus coordinator, every active worker holds the same
  security facts as the coordinator: the Symphony roles and their attributes, the memberships in
  them, the default privileges, the owner, ``SECURITY DEFINER``, ``search_path`` and ACL of every
  function in schema ``public`` (Citus's own excepted) and the ACL of schema ``public``. The
  workers are read through ``run_command_on_workers`` (a connection per worker as the gate's own
  login); a worker that cannot be read fails the check. Without the ``citus`` extension there is
  nothing to compare and the check passes.
* ``gate:distribution-as-declared`` (INV-058): on a distributed Symphony database (the ``citus``
  extension and at least one table of schema ``public`` known to Citus) every table of schema
  ``public`` is placed as :data:`DECLARED_TABLES` says (hash-distributed by its column, a
  reference table, or local on the coordinator), the tables of one declared group share one
  co-location id and different groups do not, and the functions of :data:`DECLARED_FUNCTIONS`
  are distributed by their declared argument, in their group, with their ``force_delegation``;
  no other Symphony function has a distribution argument.
* ``gate:cluster-owner-login`` (INV-067): on a Citus coordinator the owner logs in only with a
  ``pg_dist_authinfo`` row on every node, and must on a distributed database.
* ``gate:ledger-shards-append-only`` (INV-060): when the ledger is distributed, every shard of
  it and of each of its partitions has the shell table's user triggers (the append-only ones
  enabled ALWAYS), owner and ACL, read through ``run_command_on_shards``.

Both skip with "not applicable" on a database that is not distributed (plain PostgreSQL, or a
Citus coordinator at head, which runs the outbox on the coordinator: ADR 0145).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any, Final

import psycopg

from symphony_schema.invariants.results import SkipCheck

Conn = psycopg.Connection[Any]

#: One line per security fact, sorted, as one text: the same query runs on every node.
SECURITY_FACTS: Final = r"""
SELECT COALESCE(pg_catalog.string_agg(f.line, E'\n' ORDER BY f.line), '')
  FROM (
      SELECT pg_catalog.format(
                 'role %s login=%s superuser=%s createrole=%s createdb=%s replication=%s '
                 'bypassrls=%s inherit=%s', r.rolname, r.rolcanlogin, r.rolsuper,
                 r.rolcreaterole, r.rolcreatedb, r.rolreplication, r.rolbypassrls,
                 r.rolinherit) AS line
        FROM pg_catalog.pg_roles AS r
       WHERE r.rolname LIKE 'symphony\_%'
      UNION ALL
      SELECT pg_catalog.format('membership %s in %s admin=%s inherit=%s set=%s', m.rolname,
                               g.rolname, a.admin_option, a.inherit_option, a.set_option)
        FROM pg_catalog.pg_auth_members AS a
        JOIN pg_catalog.pg_roles AS m ON m.oid = a.member
        JOIN pg_catalog.pg_roles AS g ON g.oid = a.roleid
       WHERE g.rolname LIKE 'symphony\_%'
      UNION ALL
      SELECT pg_catalog.format('default privileges of %s on %s in %s: %s',
                               pg_catalog.pg_get_userbyid(d.defaclrole), d.defaclobjtype::text,
                               COALESCE(n.nspname, 'every schema'), d.defaclacl::text)
        FROM pg_catalog.pg_default_acl AS d
        LEFT JOIN pg_catalog.pg_namespace AS n ON n.oid = d.defaclnamespace
      UNION ALL
      SELECT pg_catalog.format('function %s owner=%s security_definer=%s config=%s acl=%s',
                               -- Qualified by hand: regprocedure's text follows the
                               -- search_path, which differs between the gate and the workers.
                               'public.' || p.proname || '(' || COALESCE(
                                   (SELECT pg_catalog.string_agg(tn.nspname || '.' || t.typname,
                                                                 ',' ORDER BY k.ord)
                                      FROM pg_catalog.unnest(p.proargtypes::pg_catalog.oid[])
                                           WITH ORDINALITY AS k (typ, ord)
                                      JOIN pg_catalog.pg_type AS t ON t.oid = k.typ
                                      JOIN pg_catalog.pg_namespace AS tn
                                        ON tn.oid = t.typnamespace), '') || ')',
                               pg_catalog.pg_get_userbyid(p.proowner), p.prosecdef,
                               COALESCE(p.proconfig::text, '-'), COALESCE(p.proacl::text, '-'))
        FROM pg_catalog.pg_proc AS p
       WHERE p.pronamespace = 'public'::pg_catalog.regnamespace
         AND NOT EXISTS (SELECT 1
                           FROM pg_catalog.pg_depend AS e
                          WHERE e.classid = 'pg_catalog.pg_proc'::pg_catalog.regclass
                            AND e.objid = p.oid
                            AND e.deptype = 'e')
      UNION ALL
      SELECT pg_catalog.format('schema public acl=%s', COALESCE(s.nspacl::text, '-'))
        FROM pg_catalog.pg_namespace AS s
       WHERE s.nspname = 'public'
  ) AS f
"""

#: How many differing facts a problem line names before it says "and N more".
SHOWN: Final = 5


def citus_coordinator(conn: Conn) -> bool:
    """Whether this database has the citus extension and active workers registered."""
    if not conn.execute(
        "SELECT EXISTS (SELECT 1 FROM pg_catalog.pg_extension WHERE extname = 'citus')"
    ).fetchone()[0]:  # type: ignore[index]
        return False
    row = conn.execute(
        "SELECT count(*) FROM pg_catalog.pg_dist_node"
        " WHERE isactive AND noderole = 'primary' AND groupid <> 0"
    ).fetchone()
    return bool(row and row[0])


def _differences(expected: set[str], found: set[str]) -> str:
    lines = [f"missing: {line}" for line in sorted(expected - found)] + [
        f"extra: {line}" for line in sorted(found - expected)
    ]
    shown = "; ".join(lines[:SHOWN])
    more = len(lines) - SHOWN
    return shown + (f"; and {more} more" if more > 0 else "")


def check_worker_security(conn: Conn) -> list[str]:
    """INV-059: every active Citus worker has the coordinator's security facts."""
    if not citus_coordinator(conn):
        return []
    row = conn.execute(SECURITY_FACTS).fetchone()
    expected = set(str(row[0]).splitlines()) if row else set()
    problems: list[str] = []
    workers = conn.execute(
        "SELECT w.nodename, w.nodeport, w.success, w.result"
        "  FROM pg_catalog.run_command_on_workers(%s::text) AS w"
        " ORDER BY w.nodename, w.nodeport",
        (SECURITY_FACTS,),
    ).fetchall()
    for name, port, success, result in workers:
        node = f"worker {name}:{port}"
        if not success:
            problems.append(f"{node}: could not be read: {result}")
            continue
        found = set(str(result or "").splitlines())
        if found != expected:
            problems.append(
                f"{node}: security differs from the coordinator "
                f"({_differences(expected, found)}); replay it on the worker (roles and grants "
                "are propagated by Citus, default privileges by revision 0030)"
            )
    return problems


# ------------------------------------------------------------------------------------------------
# INV-058: distribution as declared; INV-060: every ledger shard append-only (ADRs 0126, 0146)
# ------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Placement:
    """How one table of schema ``public`` is placed on a distributed Symphony database."""

    kind: str  # "distributed" (hash), "reference" or "local" (coordinator only)
    column: str | None = None  # the distribution column of a distributed table
    group: str | None = None  # tables of one group share a co-location id


def _outbox() -> Placement:
    return Placement("distributed", "participant_id", "outbox")


#: The target of the distribution revision (ADR 0126, steps of ADR 0145, ADR 0146). A table of
#: schema public missing here fails INV-058 on a distributed database: a revision that adds a
#: table declares its placement.
DECLARED_TABLES: Final[dict[str, Placement]] = {
    "payment_outbox_pending": _outbox(),
    "participant_outbox_sequences": _outbox(),
    "payment_outbox_payloads": _outbox(),
    "payment_outbox_attempts": _outbox(),
    # The ledger's default partition (0025); its day partitions live in schema symphony_ledger.
    "payment_outbox_attempts_default": _outbox(),
    "payment_outbox_idempotency_keys": _outbox(),
    # Unique per rail across participants (P7013): its own group, by the reference (ADR 0146).
    "outbox_rail_references": Placement("distributed", "rail_reference", "rail_references"),
    "outbox_settings": Placement("reference"),
    "outbox_rails": Placement("reference"),
    "policy_versions": Placement("reference"),
    "archived_ledger_partitions": Placement("reference"),
    # No participant_id; written by record_stale_outbox_outcome on the coordinator.
    "payment_outbox_stale_outcomes": Placement("local"),
    "schema_migrations": Placement("local"),
    "alembic_version": Placement("local"),
}


@dataclass(frozen=True)
class Delegation:
    """A distributed function: its distribution argument, group and force_delegation."""

    argument: str
    group: str
    force_delegation: bool


#: Functions delegated to the participant's node (ADR 0145 step 3). Any other Symphony function
#: with a distribution argument fails INV-058.
DECLARED_FUNCTIONS: Final[dict[str, Delegation]] = {
    "public.claim_outbox_batch_for_participant(text,integer,text,integer,text[])": Delegation(
        "p_participant_id", "outbox", force_delegation=True
    ),
    # Every statement filters by the participant since 0034 (ADR 0147).
    "public.enqueue_payment_outbox(text,text,text,text,jsonb,timestamp with time zone,smallint)": (
        Delegation("p_participant_id", "outbox", force_delegation=True)
    ),
    "public.enqueue_payment_outbox_batch_for_participant(text,text[],text[],text[],jsonb[],"
    "timestamp with time zone[],smallint[])": Delegation(
        "p_participant_id", "outbox", force_delegation=True
    ),
    # Not forced: they record rail references, distributed by the reference (ADR 0146).
    "public.complete_outbox_attempt_for_participant(text,uuid,uuid,text,outbox_attempt_state,"
    "text,text,text,text,integer,integer)": Delegation(
        "p_participant_id", "outbox", force_delegation=False
    ),
    "public.complete_outbox_attempts_batch_for_participant(text,text,uuid[],uuid[],text[],"
    "text[],text[],text[],text[],integer[],integer[])": Delegation(
        "p_participant_id", "outbox", force_delegation=False
    ),
    "public.repair_expired_leases_for_participant(text,integer,text)": Delegation(
        "p_participant_id", "outbox", force_delegation=True
    ),
    "public.cancel_outbox_job_for_participant(text,uuid,text,text)": Delegation(
        "p_participant_id", "outbox", force_delegation=True
    ),
    "public.redrive_outbox_job_for_participant(text,uuid,text,text)": Delegation(
        "p_participant_id", "outbox", force_delegation=True
    ),
    "public.extend_outbox_lease_for_participant(text,uuid,uuid,text,integer)": Delegation(
        "p_participant_id", "outbox", force_delegation=True
    ),
}

#: Every Symphony table of schema public that Citus knows: kind, column, co-location id.
_CITUS_TABLES: Final = """
SELECT c.relname::text,
       CASE
           WHEN d.partmethod = 'h' THEN 'distributed'
           WHEN d.partmethod = 'n' AND d.repmodel = 't' THEN 'reference'
           WHEN d.logicalrelid IS NULL THEN 'local'
           ELSE 'citus local'
       END,
       CASE WHEN d.partmethod = 'h'
            THEN pg_catalog.column_to_column_name(d.logicalrelid, d.partkey) END,
       d.colocationid
  FROM pg_catalog.pg_class AS c
  LEFT JOIN pg_catalog.pg_dist_partition AS d ON d.logicalrelid = c.oid
 WHERE c.relnamespace = 'public'::pg_catalog.regnamespace
   AND c.relkind IN ('r', 'p')
 ORDER BY 1
"""

_CITUS_FUNCTIONS: Final = """
SELECT 'public.' || p.proname || '(' || COALESCE(
           (SELECT pg_catalog.string_agg(pg_catalog.format_type(k.typ, NULL), ',' ORDER BY k.ord)
              FROM pg_catalog.unnest(p.proargtypes::pg_catalog.oid[]) WITH ORDINALITY
                   AS k (typ, ord)), '') || ')',
       (p.proargnames)[o.distribution_argument_index + 1],
       o.colocationid, COALESCE(o.force_delegation, false)
  FROM pg_catalog.pg_dist_object AS o
  JOIN pg_catalog.pg_proc AS p ON p.oid = o.objid
 WHERE o.classid = 'pg_catalog.pg_proc'::pg_catalog.regclass
   AND p.pronamespace = 'public'::pg_catalog.regnamespace
   AND o.distribution_argument_index IS NOT NULL
"""


def _unqualified_arguments(signature: str) -> str:
    """``format_type`` qualifies a type of schema public only when public is not on the
    connection's search_path (the CLI's gate and a test's connection differ): the declared
    signatures name argument types unqualified, so the found ones are read the same way."""
    return re.sub(r"(?<=[(,])public\.", "", signature)


def _has_citus(conn: Conn) -> bool:
    row = conn.execute(
        "SELECT EXISTS (SELECT 1 FROM pg_catalog.pg_extension WHERE extname = 'citus')"
    ).fetchone()
    return bool(row and row[0])


def _distributed_tables(conn: Conn) -> list[tuple[str, str, str | None, int | None]]:
    """The Citus placement of every table of schema public; SkipCheck when none is distributed
    (a plain PostgreSQL database, or a Citus one before the distribution revision)."""
    if not _has_citus(conn):
        raise SkipCheck("not applicable: the citus extension is not installed here")
    rows = [
        (str(name), str(kind), column, colocation)
        for name, kind, column, colocation in conn.execute(_CITUS_TABLES).fetchall()
    ]
    if all(kind == "local" for _, kind, _, _ in rows):
        raise SkipCheck(
            "not applicable: no table of schema public is distributed (ADR 0145: a Citus "
            "cluster at head runs the outbox on the coordinator)"
        )
    return rows


def check_distribution_as_declared(
    conn: Conn,
    tables: dict[str, Placement] | None = None,
    functions: dict[str, Delegation] | None = None,
) -> list[str]:
    """INV-058: on a distributed Symphony database every table of schema public is placed as
    declared (kind, distribution column, co-location groups) and the delegated functions have
    their declared distribution argument, group and force_delegation."""
    declared_tables = DECLARED_TABLES if tables is None else tables
    declared_functions = DECLARED_FUNCTIONS if functions is None else functions
    rows = _distributed_tables(conn)
    problems: list[str] = []
    groups: dict[str, set[int | None]] = {}
    group_of: dict[int | None, set[str]] = {}
    for name, kind, column, colocation in rows:
        placement = declared_tables.get(name)
        if placement is None:
            if name in DECLARED_TABLES:
                continue  # outside the subset a caller asked about
            problems.append(
                f"table public.{name} has no declared placement (it is {kind}); declare it in "
                "gate_cluster.DECLARED_TABLES"
            )
            continue
        if kind != placement.kind:
            problems.append(f"table public.{name} is {kind}, declared {placement.kind}")
            continue
        if placement.kind == "distributed":
            if column != placement.column:
                problems.append(
                    f"table public.{name} is distributed by {column}, declared {placement.column}"
                )
            groups.setdefault(str(placement.group), set()).add(colocation)
            group_of.setdefault(colocation, set()).add(str(placement.group))
    for group, ids in sorted(groups.items()):
        if len(ids) > 1:
            problems.append(
                f"the tables of co-location group {group!r} are in {len(ids)} co-location "
                f"groups ({', '.join(sorted(str(i) for i in ids))}); they must share one"
            )
    for colocation, names in sorted(group_of.items(), key=lambda item: str(item[0])):
        if len(names) > 1:
            problems.append(
                f"co-location id {colocation} holds the declared groups "
                f"{', '.join(sorted(names))}; each needs its own"
            )
    found = {
        _unqualified_arguments(str(signature)): (argument, colocation, bool(force))
        for signature, argument, colocation, force in conn.execute(_CITUS_FUNCTIONS).fetchall()
    }
    for signature, delegation in sorted(declared_functions.items()):
        if signature not in found:
            problems.append(
                f"function {signature} is not distributed (declared by {delegation.argument})"
            )
            continue
        argument, colocation, force = found.pop(signature)
        if argument != delegation.argument:
            problems.append(
                f"function {signature} is distributed by {argument}, declared {delegation.argument}"
            )
        if delegation.group in groups and colocation not in groups[delegation.group]:
            problems.append(
                f"function {signature} is not co-located with group {delegation.group!r}"
            )
        if force != delegation.force_delegation:
            problems.append(
                f"function {signature} has force_delegation={force}, declared "
                f"{delegation.force_delegation}"
            )
    for signature in sorted(found):
        if signature not in DECLARED_FUNCTIONS:
            problems.append(f"function {signature} is distributed but not declared")
    return problems


#: What makes a ledger table append-only, as one text: its user triggers (name without the shard
#: suffix Citus appends, enabled state, type), its owner and its ACL. A ``format()`` template as
#: run_command_on_shards takes it: ``%1$s`` is the relation (each shard; the shell table on the
#: coordinator), ``%%`` a percent sign.
LEDGER_FACTS: Final = r"""
SELECT COALESCE((SELECT pg_catalog.string_agg(
                     pg_catalog.format('trigger %%s enabled=%%s type=%%s',
                                       pg_catalog.regexp_replace(t.tgname, '_[0-9]+$', ''),
                                       t.tgenabled, t.tgtype),
                     E'\n' ORDER BY pg_catalog.regexp_replace(t.tgname, '_[0-9]+$', ''))
                   FROM pg_catalog.pg_trigger AS t
                  WHERE t.tgrelid = '%1$s'::pg_catalog.regclass AND NOT t.tgisinternal), '')
       || E'\nowner ' || pg_catalog.pg_get_userbyid(c.relowner)
       || E'\nacl ' || COALESCE(c.relacl::text, '-')
  FROM pg_catalog.pg_class AS c
 WHERE c.oid = '%1$s'::pg_catalog.regclass
"""

#: The ledger and every partition of it that Citus distributes.
_LEDGER_TABLES: Final = """
SELECT t.relid::pg_catalog.regclass::text
  FROM pg_catalog.pg_partition_tree('public.payment_outbox_attempts'::pg_catalog.regclass) AS t
  JOIN pg_catalog.pg_dist_partition AS d ON d.logicalrelid = t.relid
 ORDER BY t.level, 1
"""

#: The append-only triggers every ledger table and shard must have, enabled ALWAYS.
LEDGER_TRIGGERS: Final = ("trg_deny_outbox_attempts_mutation", "trg_deny_outbox_attempts_truncate")


def check_ledger_shards_append_only(conn: Conn) -> list[str]:
    """INV-060: every shard of the distributed ledger (the parent's and each partition's) has
    the shell table's user triggers (the append-only ones among them, enabled ALWAYS), owner and
    ACL. Not applicable while the ledger is not distributed."""
    _distributed_tables(conn)
    tables = [str(row[0]) for row in conn.execute(_LEDGER_TABLES).fetchall()]
    if not tables:
        raise SkipCheck("not applicable: public.payment_outbox_attempts is not distributed")
    problems: list[str] = []
    for table in tables:
        row = conn.execute(
            "SELECT pg_catalog.format(%s::text, %s::text)", (LEDGER_FACTS, table)
        ).fetchone()
        shell = str(row[0]) if row else ""
        row = conn.execute(shell).fetchone()
        expected = str(row[0]) if row else ""
        for trigger in LEDGER_TRIGGERS:
            if f"trigger {trigger} enabled=A " not in expected:
                problems.append(f"{table}: {trigger} is missing or not enabled ALWAYS")
        shards = conn.execute(
            "SELECT s.shardid, p.nodename, p.nodeport, s.success, s.result"
            "  FROM pg_catalog.run_command_on_shards(%s::pg_catalog.regclass, %s::text) AS s"
            "  LEFT JOIN pg_catalog.pg_dist_shard_placement AS p ON p.shardid = s.shardid"
            " ORDER BY s.shardid, p.nodeport",
            (table, LEDGER_FACTS),
        ).fetchall()
        for shard, name, port, success, result in shards:
            where = f"{table} shard {shard} on {name}:{port}"
            if not success:
                problems.append(f"{where}: could not be read: {result}")
            elif str(result or "") != expected:
                found = set(str(result or "").splitlines())
                problems.append(
                    f"{where}: differs from the shell table "
                    f"({_differences(set(expected.splitlines()), found)})"
                )
    return problems


# ------------------------------------------------------------------------------------------------
# INV-067: the owner logs in between the nodes, and only there (ADRs 0146, 0149)
# ------------------------------------------------------------------------------------------------

#: How the role-attributes check words the owner's LOGIN (privilege_diff.diff_role_attributes).
OWNER_LOGIN_LINE: Final = "role symphony_owner: rolcanlogin is True, expected False"

#: The nodes (the coordinator, then ``host:port`` of each worker) without a pg_dist_authinfo row
#: for the owner in this database.
_AUTHINFO_MISSING: Final = """
SELECT n.node
  FROM (SELECT 'the coordinator' AS node, 0 AS ord
         WHERE NOT EXISTS (SELECT 1 FROM pg_catalog.pg_dist_authinfo AS a
                            WHERE a.rolename = 'symphony_owner')
        UNION ALL
        SELECT w.nodename || ':' || w.nodeport, 1
          FROM pg_catalog.run_command_on_workers($cmd$
                   SELECT count(*) FROM pg_catalog.pg_dist_authinfo
                    WHERE rolename = 'symphony_owner'
               $cmd$::text) AS w
         WHERE NOT w.success OR w.result = '0') AS n
 ORDER BY n.ord, n.node
"""


def without_owner_login(conn: Conn, differences: list[str]) -> list[str]:
    """The role-attributes check's differences, less the owner's LOGIN on a Citus coordinator,
    which ``gate:cluster-owner-login`` (INV-067) judges there instead. Plain PostgreSQL:
    unchanged (the owner is NOLOGIN)."""
    if not citus_coordinator(conn):
        return differences
    return [line for line in differences if not line.startswith(OWNER_LOGIN_LINE)]


def check_cluster_owner_login(conn: Conn) -> list[str]:
    """INV-067 (ADRs 0146, 0149): on a Citus coordinator ``symphony_owner`` may log in only if
    every node has a ``pg_dist_authinfo`` row for it (only Citus's node-to-node connections know
    its credential), and on a distributed database it must log in (the delegated bodies reach
    the reference tables and the other nodes as the owner). Not applicable elsewhere."""
    if not citus_coordinator(conn):
        raise SkipCheck("not applicable: not a Citus coordinator with workers")
    row = conn.execute(
        "SELECT rolcanlogin FROM pg_catalog.pg_roles WHERE rolname = 'symphony_owner'"
    ).fetchone()
    if row is None:
        return ["role symphony_owner does not exist"]
    if row[0]:
        missing = [str(node) for (node,) in conn.execute(_AUTHINFO_MISSING).fetchall()]
        if missing:
            return [
                "role symphony_owner logs in on a Citus cluster but has no pg_dist_authinfo row "
                f"on {', '.join(missing)}: add it there, or ALTER ROLE symphony_owner NOLOGIN "
                "(ADR 0146; symphony-schema cluster owner-login on the local cluster)"
            ]
        return []
    distributed = conn.execute(
        "SELECT EXISTS (SELECT 1 FROM pg_catalog.pg_dist_partition AS d"
        " JOIN pg_catalog.pg_class AS c ON c.oid = d.logicalrelid"
        " WHERE c.relnamespace = 'public'::pg_catalog.regnamespace)"
    ).fetchone()
    if distributed and distributed[0]:
        return [
            "role symphony_owner cannot log in on a distributed database: the delegated "
            "functions reach the reference tables and the other nodes as the owner (ADR 0146); "
            "ALTER ROLE symphony_owner LOGIN (revision 0003 makes it NOLOGIN whenever a "
            "database of the cluster is migrated; symphony-schema cluster owner-login)"
        ]
    return []


def owner_credential_is_citus_only(conninfo: str) -> bool:
    """Whether ``symphony_owner``'s password is the one ADR 0146 allows: on a Citus coordinator
    with a ``pg_dist_authinfo`` row for the owner on every node (the role-passwords check,
    INV-038, accepts it there and nowhere else)."""
    with psycopg.connect(conninfo, autocommit=True) as conn:
        return citus_coordinator(conn) and not conn.execute(_AUTHINFO_MISSING).fetchall()
