"""Symphony's invariants: the rules of ``docs/contract/schema.md`` made mechanical.

Every rule has an id (``INV-NNN``) in ``docs/invariants/INVARIANTS_MANIFEST.yml``, the one source
of truth. The manifest says *which* checks verify each rule; the checks live here:

- :mod:`.lints` — static checks on the revisions' SQL (``lint:<name>``), runnable on any directory;
- :mod:`.gate` — SQL checks against a live, migrated database (``gate:<name>``);
- :mod:`.process` — repository checks without a database (``process:<name>``): manifest schema,
  generated docs, the change rule, promotion and exceptions;
- :mod:`.runner` — the ``verify`` / ``invariants`` sequences (lint, migrate, seed, gate, process)
  with reporting and the evidence bundle (:mod:`.evidence`).

A check returns the list of problems it found (empty = pass); it never stops at the first one, and
the runner never stops at the first failing check.
"""

from __future__ import annotations
