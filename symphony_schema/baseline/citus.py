"""Live drift on a Citus database: what the ``citus`` extension itself owns is not drift (ADR 0127).

``CREATE EXTENSION citus`` (which every node of a Citus cluster has) adds schemas, functions,
types, views, an event trigger, catalog tables with their indexes and ACL entries. They belong to
the platform, not to Symphony's migrations, so ``baseline/catalog.txt`` (built on plain
PostgreSQL) does not list them. Live drift drops exactly the catalog lines of objects that are
members of the ``citus`` or ``citus_columnar`` extension (``pg_depend.deptype = 'e'``), plus the
indexes and implicit types PostgreSQL attaches to those members, plus the extension lines
themselves; anything else, even inside ``citus_internal``, is still compared. On a database
without these extensions nothing is dropped.
"""

from __future__ import annotations

from dataclasses import dataclass

from symphony_schema.baseline import catalog

#: The extensions whose members are the platform's on a Citus cluster.
CITUS_EXTENSIONS = ("citus", "citus_columnar")

_OWNED_SQL = """
WITH RECURSIVE ext AS (
    SELECT x.oid, x.extname FROM pg_catalog.pg_extension AS x WHERE x.extname = ANY(%(names)s)
), members AS (
    SELECT d.classid, d.objid
      FROM pg_catalog.pg_depend AS d JOIN ext ON d.refobjid = ext.oid
     WHERE d.refclassid = 'pg_catalog.pg_extension'::pg_catalog.regclass AND d.deptype = 'e'
), attached (classid, objid) AS (
    -- what PostgreSQL itself hangs on a member, transitively: the indexes and constraints of its
    -- tables and the indexes behind those constraints (deptype a/i), the row types, array types
    -- and composite relations of its relations and types (deptype i). Only those kinds: a
    -- trigger, rule or policy someone adds to a Citus table is NOT the platform's.
    SELECT classid, objid FROM members
    UNION
    SELECT d.classid, d.objid
      FROM pg_catalog.pg_depend AS d
      JOIN attached AS m ON d.refclassid = m.classid AND d.refobjid = m.objid
     WHERE d.deptype IN ('a', 'i')
       AND (d.classid IN ('pg_catalog.pg_type'::pg_catalog.regclass,
                          'pg_catalog.pg_constraint'::pg_catalog.regclass)
            OR (d.classid = 'pg_catalog.pg_class'::pg_catalog.regclass
                AND EXISTS (SELECT 1 FROM pg_catalog.pg_class AS c
                             WHERE c.oid = d.objid AND c.relkind IN ('i', 'I', 'c'))))
), owned AS (
    SELECT classid, objid FROM attached
)
SELECT o.classid::pg_catalog.regclass::text, o.objid,
       pg_catalog.pg_describe_object(o.classid, o.objid, 0),
       CASE o.classid
            WHEN 'pg_catalog.pg_proc'::pg_catalog.regclass
            THEN o.objid::pg_catalog.regprocedure::text
            WHEN 'pg_catalog.pg_class'::pg_catalog.regclass
            THEN o.objid::pg_catalog.regclass::text
            WHEN 'pg_catalog.pg_type'::pg_catalog.regclass
            THEN o.objid::pg_catalog.regtype::text
            WHEN 'pg_catalog.pg_namespace'::pg_catalog.regclass
            THEN (SELECT pg_catalog.quote_ident(n.nspname) FROM pg_catalog.pg_namespace AS n
                   WHERE n.oid = o.objid)
            WHEN 'pg_catalog.pg_event_trigger'::pg_catalog.regclass
            THEN (SELECT e.evtname::text FROM pg_catalog.pg_event_trigger AS e
                   WHERE e.oid = o.objid)
       END
  FROM owned AS o
"""

#: The ACL entries the extension script left on its objects: ``pg_init_privs`` (privtype ``e``)
#: where it recorded them, else the built-in default for the object's owner. Rendered like
#: :func:`catalog.acl_lines`, so a GRANT on a Citus object made after ``CREATE EXTENSION`` (to a
#: Symphony role, to PUBLIC) is not in this set and still shows as drift.
_INITIAL_ACLS_SQL = """
SELECT o.kind, o.name,
       CASE WHEN x.grantee = 0 THEN 'PUBLIC' ELSE pg_catalog.pg_get_userbyid(x.grantee) END,
       x.privilege_type, x.is_grantable, pg_catalog.pg_get_userbyid(x.grantor)
  FROM (
    SELECT 'function' AS kind, p.oid::pg_catalog.regprocedure::text AS name,
           COALESCE(i.initprivs, pg_catalog.acldefault('f', p.proowner)) AS acl
      FROM pg_catalog.pg_proc AS p
      LEFT JOIN pg_catalog.pg_init_privs AS i
        ON i.classoid = 'pg_catalog.pg_proc'::pg_catalog.regclass AND i.objoid = p.oid
       AND i.objsubid = 0
     WHERE p.oid = ANY(%(procs)s)
    UNION ALL
    SELECT 'relation', c.oid::pg_catalog.regclass::text,
           COALESCE(i.initprivs, pg_catalog.acldefault(
               CASE WHEN c.relkind = 'S' THEN 's' ELSE 'r' END::"char", c.relowner))
      FROM pg_catalog.pg_class AS c
      LEFT JOIN pg_catalog.pg_init_privs AS i
        ON i.classoid = 'pg_catalog.pg_class'::pg_catalog.regclass AND i.objoid = c.oid
       AND i.objsubid = 0
     WHERE c.oid = ANY(%(classes)s)
    UNION ALL
    SELECT 'type', t.oid::pg_catalog.regtype::text,
           COALESCE(i.initprivs, pg_catalog.acldefault('T', t.typowner))
      FROM pg_catalog.pg_type AS t
      LEFT JOIN pg_catalog.pg_init_privs AS i
        ON i.classoid = 'pg_catalog.pg_type'::pg_catalog.regclass AND i.objoid = t.oid
       AND i.objsubid = 0
     WHERE t.oid = ANY(%(types)s)
    UNION ALL
    SELECT 'schema', n.nspname::text,
           COALESCE(i.initprivs, pg_catalog.acldefault('n', n.nspowner))
      FROM pg_catalog.pg_namespace AS n
      LEFT JOIN pg_catalog.pg_init_privs AS i
        ON i.classoid = 'pg_catalog.pg_namespace'::pg_catalog.regclass AND i.objoid = n.oid
       AND i.objsubid = 0
     WHERE n.oid = ANY(%(schemas)s)
  ) AS o
 CROSS JOIN LATERAL pg_catalog.aclexplode(o.acl) AS x
"""

#: How the sections other than ACLs name an object of a catalog table, as line prefixes.
_PREFIXES: dict[str, tuple[str, ...]] = {
    "pg_proc": ("{name}: ",),
    "pg_type": ("enum {name}: ",),
    "pg_event_trigger": ("event trigger {name} on ",),
}


@dataclass(frozen=True)
class CitusOwned:
    """What the Citus extensions own in one database, as catalog lines."""

    #: prefixes of lines (every section but ACLs) describing an owned object
    prefixes: tuple[str, ...] = ()
    #: whole lines (other objects without a definition)
    lines: frozenset[str] = frozenset()
    #: the ACL lines the extension itself left (the only ACL lines dropped)
    initial_acls: frozenset[str] = frozenset()

    def __bool__(self) -> bool:
        return bool(self.prefixes or self.lines or self.initial_acls)


def owned(conn: catalog.Conn) -> CitusOwned:
    """The catalog lines of what the Citus extensions own in this database (as
    :func:`catalog.read_snapshot` renders them); empty when neither extension is installed."""
    installed = [
        str(row[0])
        for row in conn.execute(
            "SELECT extname FROM pg_catalog.pg_extension WHERE extname = ANY(%(names)s)",
            {"names": list(CITUS_EXTENSIONS)},
        )
    ]
    if not installed:
        return CitusOwned()
    prefixes: set[str] = {f"extension {name} version " for name in installed}
    lines: set[str] = set()
    oids: dict[str, list[int]] = {"procs": [], "classes": [], "types": [], "schemas": []}
    key = {
        "pg_proc": "procs",
        "pg_class": "classes",
        "pg_type": "types",
        "pg_namespace": "schemas",
    }
    for table, oid, description, name in conn.execute(
        _OWNED_SQL, {"names": list(CITUS_EXTENSIONS)}
    ):
        prefixes.add(f"{description}: ")
        lines.add(str(description))
        if str(table) in key:
            oids[key[str(table)]].append(int(oid))
        if name is not None:
            for pattern in _PREFIXES.get(str(table), ()):
                prefixes.add(pattern.format(name=name))
    who = catalog._normaliser(conn)  # the same (migrating user) label as acl_lines
    initial = frozenset(
        f"{kind} {name}: {who(grantee)} {privilege}{' WITH GRANT OPTION' if grantable else ''} "
        f"(granted by {who(grantor)})"
        for kind, name, grantee, privilege, grantable, grantor in conn.execute(
            _INITIAL_ACLS_SQL, oids
        )
    )
    return CitusOwned(tuple(sorted(prefixes)), frozenset(lines), initial)


def drop_owned_lines(
    snapshot: catalog.Snapshot, citus_owned: CitusOwned
) -> tuple[catalog.Snapshot, int]:
    """``snapshot`` without the lines of Citus-owned objects, and how many were dropped."""
    if not citus_owned:
        return snapshot, 0
    kept: catalog.Snapshot = {}
    dropped = 0
    for section, lines in snapshot.items():
        kept[section] = []
        for line in lines:
            if section == "ACLs":
                noise = line in citus_owned.initial_acls
            else:
                noise = line in citus_owned.lines or line.startswith(citus_owned.prefixes)
            if noise:
                dropped += 1
            else:
                kept[section].append(line)
    return kept, dropped


# ------------------------------------------------------------------------------------------------
# The distributed shape (ADR 0149): what the distribution revision changes in the catalog
# ------------------------------------------------------------------------------------------------

_QUEUE = "public.payment_outbox_pending"
_KEYS = "public.payment_outbox_idempotency_keys"

#: The expected (plain PostgreSQL) line, as a prefix up to its key columns, and what it reads on
#: a distributed database: the keys the distribution revision widens (ADR 0163), the key table's
#: participant_id made NOT NULL by its primary key, and the owner's LOGIN (ADR 0146).
DISTRIBUTED_REPLACEMENTS: tuple[tuple[str, str, str], ...] = (
    ("roles", "role symphony_owner: NOLOGIN ", "role symphony_owner: LOGIN "),
    (
        "structure",
        f"{_QUEUE} constraint pk_payment_outbox_pending PRIMARY KEY (outbox_id)",
        f"{_QUEUE} constraint pk_payment_outbox_pending PRIMARY KEY (participant_id, outbox_id)",
    ),
    (
        "structure",
        f"{_QUEUE} index pk_payment_outbox_pending: CREATE UNIQUE INDEX pk_payment_outbox_pending"
        f" ON {_QUEUE} USING btree (outbox_id)",
        f"{_QUEUE} index pk_payment_outbox_pending: CREATE UNIQUE INDEX pk_payment_outbox_pending"
        f" ON {_QUEUE} USING btree (participant_id, outbox_id)",
    ),
    (
        "structure",
        f"{_QUEUE} constraint uq_payment_outbox_pending_instruction_idempotency UNIQUE"
        " (instruction_id, idempotency_key)",
        f"{_QUEUE} constraint uq_payment_outbox_pending_instruction_idempotency UNIQUE"
        " (participant_id, instruction_id, idempotency_key)",
    ),
    (
        "structure",
        f"{_QUEUE} index uq_payment_outbox_pending_instruction_idempotency: CREATE UNIQUE INDEX"
        f" uq_payment_outbox_pending_instruction_idempotency ON {_QUEUE} USING btree"
        " (instruction_id, idempotency_key)",
        f"{_QUEUE} index uq_payment_outbox_pending_instruction_idempotency: CREATE UNIQUE INDEX"
        f" uq_payment_outbox_pending_instruction_idempotency ON {_QUEUE} USING btree"
        " (participant_id, instruction_id, idempotency_key)",
    ),
    (
        "structure",
        f"{_KEYS} column participant_id text --",
        f"{_KEYS} column participant_id text NOT NULL --",
    ),
    (
        "structure",
        f"{_KEYS} constraint pk_payment_outbox_idempotency_keys PRIMARY KEY"
        " (instruction_id, idempotency_key)",
        f"{_KEYS} constraint pk_payment_outbox_idempotency_keys PRIMARY KEY"
        " (participant_id, instruction_id, idempotency_key)",
    ),
    (
        "structure",
        f"{_KEYS} index pk_payment_outbox_idempotency_keys: CREATE UNIQUE INDEX"
        f" pk_payment_outbox_idempotency_keys ON {_KEYS} USING btree"
        " (instruction_id, idempotency_key)",
        f"{_KEYS} index pk_payment_outbox_idempotency_keys: CREATE UNIQUE INDEX"
        f" pk_payment_outbox_idempotency_keys ON {_KEYS} USING btree"
        " (participant_id, instruction_id, idempotency_key)",
    ),
)

#: The lines only a distributed database has: the plain indexes for the queue's look-ups by
#: outbox_id and by key, each with the prefix of the sorted block of lines it joins.
DISTRIBUTED_ADDITIONS: tuple[tuple[str, str, str], ...] = (
    (
        "structure",
        f"{_QUEUE} index ",
        f"{_QUEUE} index ix_payment_outbox_pending_key: CREATE INDEX ix_payment_outbox_pending_key"
        f" ON {_QUEUE} USING btree (instruction_id, idempotency_key)",
    ),
    (
        "structure",
        f"{_QUEUE} index ",
        f"{_QUEUE} index ix_payment_outbox_pending_outbox_id: CREATE INDEX"
        f" ix_payment_outbox_pending_outbox_id ON {_QUEUE} USING btree (outbox_id)",
    ),
    ("storage", "index ", "index public.ix_payment_outbox_pending_key: options=[]"),
    ("storage", "index ", "index public.ix_payment_outbox_pending_outbox_id: options=[]"),
)


def is_distributed(conn: catalog.Conn) -> bool:
    """Whether a table of schema public is known to Citus (the distribution revision ran)."""
    row = conn.execute(
        "SELECT EXISTS (SELECT 1 FROM pg_catalog.pg_extension WHERE extname = 'citus')"
    ).fetchone()
    if not (row and row[0]):
        return False
    row = conn.execute(
        "SELECT EXISTS (SELECT 1 FROM pg_catalog.pg_dist_partition AS d"
        " JOIN pg_catalog.pg_class AS c ON c.oid = d.logicalrelid"
        " WHERE c.relnamespace = 'public'::pg_catalog.regnamespace)"
    ).fetchone()
    return bool(row and row[0])


def distributed_expectation(expected: catalog.Snapshot) -> tuple[catalog.Snapshot, int]:
    """``expected`` (the baseline, built on plain PostgreSQL) as a distributed database reads
    it: :data:`DISTRIBUTED_REPLACEMENTS` applied, :data:`DISTRIBUTED_ADDITIONS` added to their
    sorted block of lines; and how many lines changed. A replacement whose line is not in the
    baseline changes nothing, so a later revision that changes these keys shows as drift here
    until this table follows it."""
    result = {name: list(lines) for name, lines in expected.items()}
    changed = 0
    for section, old, new in DISTRIBUTED_REPLACEMENTS:
        lines = result.get(section)
        if lines is None:
            continue
        for i, line in enumerate(lines):
            if line.startswith(old):
                lines[i] = new + line[len(old) :]
                changed += 1
    for section, block, added in DISTRIBUTED_ADDITIONS:
        lines = result.get(section)
        if lines is None:
            continue
        if section == "storage":  # sorted by object name, tables and indexes interleaved
            keyed = [(i, line.split(" ", 1)[1]) for i, line in enumerate(lines)]
            key = added.split(" ", 1)[1]
        else:  # the table's index lines, sorted
            keyed = [(i, line) for i, line in enumerate(lines) if line.startswith(block)]
            key = added
        if not keyed:
            continue
        before = [i for i, other in keyed if other < key]
        lines.insert(before[-1] + 1 if before else keyed[0][0], added)
        changed += 1
    return result, changed
