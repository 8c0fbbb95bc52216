"""Gate checks of a Citus cluster (issue 16, ADRs 0126 and 0145), registered in
:data:`symphony_schema.invariants.gate.CHECKS`.

* ``gate:worker-security`` (INV-059): on a Citus coordinator, every active worker holds the same
  security facts as the coordinator: the Symphony roles and their attributes, the memberships in
  them, the default privileges, the owner, ``SECURITY DEFINER``, ``search_path`` and ACL of every
  function in schema ``public`` (Citus's own excepted) and the ACL of schema ``public``. The
  workers are read through ``run_command_on_workers`` (a connection per worker as the gate's own
  login); a worker that cannot be read fails the check. Without the ``citus`` extension there is
  nothing to compare and the check passes.
"""

from __future__ import annotations

from typing import Any, Final

import psycopg

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
