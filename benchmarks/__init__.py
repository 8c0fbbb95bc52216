"""Symphony outbox benchmarks (docs/contract/quality.md §1).

``python -m benchmarks`` / ``nox -s bench``.

One psycopg 3 driver drives every system the same way (one connection per worker process,
autocommit, one transaction per call, same payload, same warm-up): our outbox functions, PGMQ
(its SQL installed from the ``pgmq`` package into the same scratch database) and the commit
ceiling (a single-row INSERT per transaction, through this driver and through ``pgbench``).
Results, plots and the README go to ``docs/benchmarks/`` (``--quick``: a smoke run elsewhere).
"""
