"""``symphony-schema seed-policy`` and ``symphony-schema boot-check``."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from symphony_schema import policy
from symphony_schema.cli import add_url_argument
from symphony_schema.database import select_database

_FROM_ENV_CONTRACT = (
    f"--from-env reads {policy.ENV_VERSION} (required) plus exactly one of {policy.ENV_DOCUMENT} "
    f"(the JSON document as text) or {policy.ENV_FILE} (a path to it); or, when the document is "
    f"kept elsewhere, only {policy.ENV_CHECKSUM} (64 lowercase hex digits). {policy.ENV_CHECKSUM} "
    "given together with a document pins it: the computed checksum must match. Empty variables "
    "count as unset. The document's policyVersion must equal POLICY_VERSION."
)


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    _register_seed(subparsers)
    _register_boot_check(subparsers)


def _register_seed(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    seed = subparsers.add_parser(
        "seed-policy",
        help="insert the boot policy as the ACTIVE row of public.policy_versions (idempotent)",
        description=(
            "Seed the boot policy. The version is the document's policyVersion (a non-empty "
            "string); the checksum is the lowercase hex SHA-256 of the RFC 8785 canonical JSON "
            "of the whole document, so key order and whitespace do not change it. Seeding the "
            "same version with the same checksum again is a no-op. Refused, with nothing "
            "written and exit status 2: a missing version, an unreadable file, anything but a "
            "regular file of at most 1 MiB (FIFO, device), invalid or non-object JSON, a "
            "number that does not round-trip exactly through an IEEE 754 double (its JSON path "
            "is named), a document without a canonical form (lone surrogates), a "
            "different checksum for an existing version, or a second ACTIVE version. An "
            "existing row is never changed. " + _FROM_ENV_CONTRACT
        ),
        epilog=f"development policy: {_shown(policy.DEFAULT_POLICY_FILE)}",
    )
    source = seed.add_mutually_exclusive_group(required=True)
    source.add_argument(
        "--file",
        type=Path,
        metavar="PATH",
        help="the policy document (JSON object); for development use "
        f"{_shown(policy.DEFAULT_POLICY_FILE)}",
    )
    source.add_argument(
        "--from-env",
        action="store_true",
        help=f"read {policy.ENV_VERSION} plus {policy.ENV_DOCUMENT}, {policy.ENV_FILE} or "
        f"{policy.ENV_CHECKSUM} from the environment (CI)",
    )
    seed.add_argument(
        "--dry-run",
        action="store_true",
        help="validate the document and print its version and checksum without connecting "
        "(use it to compute the POLICY_CHECKSUM to pin)",
    )
    add_url_argument(seed)
    seed.set_defaults(handler=_seed)


def _register_boot_check(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    check = subparsers.add_parser(
        "boot-check",
        help="exit non-zero with the reasons when the database is not fit to boot",
        description=(
            "Fail closed (exit 1, one line per reason) when there is no ACTIVE policy (or more "
            "than one, or one with a malformed checksum), when the database is not at the "
            "newest revision, when the migration ledger disagrees with the revision files, or "
            "when the live catalog (functions, triggers, ACLs, roles, memberships, settings...) "
            "differs from baseline/catalog.txt (live drift, see 'symphony-schema drift'). "
            "With --policy-file or --policy-from-env, also fail when the ACTIVE policy is not "
            "that version with that checksum. Exit 0 with one OK line naming the head and the "
            "ACTIVE policy otherwise. Run it as the migrating user: it owns alembic_version "
            "and the migration ledger, which runtime logins cannot read."
        ),
    )
    expected = check.add_mutually_exclusive_group()
    expected.add_argument(
        "--policy-file",
        type=Path,
        metavar="PATH",
        help="also require the ACTIVE policy to be this document (version and checksum)",
    )
    expected.add_argument(
        "--policy-from-env",
        action="store_true",
        help="also require the ACTIVE policy to be the one the seed-policy --from-env variables "
        "describe",
    )
    add_url_argument(check)
    check.set_defaults(handler=_boot_check)


def _shown(path: Path) -> str:
    try:
        return str(path.relative_to(Path.cwd()))
    except ValueError:
        return str(path)


def _seed(args: argparse.Namespace) -> int:
    if args.from_env:
        pinned = policy.pinned_policy_from_env()
    else:
        pinned = policy.pinned_policy_of(
            policy.load_policy_file(args.file), f"policy file {args.file}"
        )
    if args.dry_run:
        print(
            f"policy version {pinned.version!r}, checksum {pinned.checksum} "
            f"(from {pinned.source}; valid, not seeded: --dry-run)"
        )
        return 0
    selected = select_database(args.url)
    result = policy.seed_pinned_policy(selected.conninfo, pinned)
    print(result.message)
    return 0


def _boot_check(args: argparse.Namespace) -> int:
    expected: policy.PinnedPolicy | None = None
    if args.policy_from_env:
        expected = policy.pinned_policy_from_env()
    elif args.policy_file is not None:
        expected = policy.pinned_policy_of(
            policy.load_policy_file(args.policy_file), f"policy file {args.policy_file}"
        )
    selected = select_database(args.url)
    status = policy.boot_status(selected.conninfo, expected=expected)
    if status.ok:
        print(status.summary())
        return 0
    print(
        f"boot-check FAILED: the database is not fit to boot ({len(status.reasons)} reason(s))",
        file=sys.stderr,
    )
    for reason in status.reasons:
        print(f"  - {reason}", file=sys.stderr)
    return 1
