"""Task runner of Symphony schema. ``nox -l`` lists the sessions with these docstrings.

Every session installs the package with its ``dev`` extra into its own virtualenv and talks to
the embedded PostgreSQL 18 under ``.symphony/pgdata`` (or the database the URL rule selects).
"""

from __future__ import annotations

import os

import nox

nox.options.sessions = ["tests", "lint", "drift", "invariants"]
nox.options.reuse_existing_virtualenvs = True


def _install(session: nox.Session) -> None:
    session.install("-e", ".[dev]")


@nox.session
def tests(session: nox.Session) -> None:
    """Run the full pytest suite against the embedded PostgreSQL 18, in parallel (pytest-xdist, one
    embedded server per worker, ADR 0164; ``-- -n 0`` runs it serially)."""
    _install(session)
    session.run("pytest", *session.posargs)


@nox.session
def lint(session: nox.Session) -> None:
    """ruff (lint + format check), mypy, the repository secret scan and zizmor on the CI
    workflows (offline: pinned SHAs, no persisted credentials, minimal permissions)."""
    _install(session)
    session.run("ruff", "check", ".")
    session.run("ruff", "format", "--check", ".")
    session.run("mypy")
    session.run("symphony-schema", "scan-secrets")
    session.run("zizmor", "--offline", "--no-progress", "--persona=pedantic", ".github/workflows")


@nox.session
def baseline(session: nox.Session) -> None:
    """Regenerate baseline/baseline.sql and baseline/privileges.md from a scratch database."""
    _install(session)
    session.run("symphony-schema", "baseline", "generate", *session.posargs)


@nox.session
def drift(session: nox.Session) -> None:
    """Fail with unified diffs when migrations, baseline, models and privileges disagree."""
    _install(session)
    session.run("symphony-schema", "baseline", "drift", *session.posargs)


@nox.session
def invariants(session: nox.Session) -> None:
    """Lints, migrate + seed a scratch database, the SQL gate, then the process gates."""
    _install(session)
    session.run("symphony-schema", "invariants", *session.posargs)


@nox.session
def bench(session: nox.Session) -> None:
    """Benchmarks against PGMQ and the commit ceiling (``-- --quick`` for a smoke run)."""
    _install(session)
    session.install("pgmq", "matplotlib")
    session.run("python", "-m", "benchmarks", *session.posargs)


@nox.session
def torture(session: nox.Session) -> None:
    """Full-strength reliability and security torture suite (R1-R5, S1-S4); slow."""
    _install(session)
    # serial: the torture tests load the machine themselves (ADR 0164)
    session.run("pytest", "-n", "0", "-m", "slow", "tests/torture", *session.posargs)


#: The Citus source release ``nox -s citus`` builds when none is given (nothing is downloaded).
CITUS_TARBALL = "../shared/vendor/citus-14.0.1.tar.gz"


@nox.session
def citus(session: nox.Session) -> None:
    """Install Citus into this session's embedded PostgreSQL 18 (from a tarball: ``-- --tarball
    PATH``, default ../shared/vendor/citus-14.0.1.tar.gz or SYMPHONY_CITUS_TARBALL) and run the
    cluster suite (tests/cluster) on a local coordinator + 2 workers (one xdist worker runs the
    whole suite: ``-n 0`` saves starting a second one); other args go to pytest."""
    _install(session)
    args = list(session.posargs)
    tarball = os.environ.get("SYMPHONY_CITUS_TARBALL", CITUS_TARBALL)
    if "--tarball" in args:
        at = args.index("--tarball")
        if at + 1 >= len(args):
            session.error("--tarball needs a path")
        tarball = args[at + 1]
        del args[at : at + 2]
    python = os.path.join(session.virtualenv.bin, "python")
    session.run("scripts/install-citus.sh", tarball, python, external=True)
    session.run(
        "pytest",
        "-n",
        "0",
        "-m",
        "citus",
        "tests/cluster",
        *args,
        env={"SYMPHONY_REQUIRE_CITUS": "1"},
    )
