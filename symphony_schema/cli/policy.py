"""``symphony-schema seed-policy``, ``boot-check`` and ``policy rotate|status|retire-expired``."""

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
    _register_policy(subparsers)


def _register_policy(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    group = subparsers.add_parser(
        "policy",
        help="rotate the boot policy with a grace window, show its versions, retire expired ones",
        description=(
            "Operate public.policy_versions after seeding (runbook: 'Rotating the policy'). "
            "Roll-out order: rotate, deploy the services with the new policy, wait for the grace "
            "window to end, retire-expired. Run as the migrating user or a login that is a "
            "member of symphony_control. Refusals exit 2 with one line naming the SQLSTATE, "
            "and write nothing."
        ),
    )
    actions = group.add_subparsers(dest="action", metavar="ACTION", required=True)
    rotate = actions.add_parser(
        "rotate",
        help="make a new policy version ACTIVE; the current one stays accepted as GRACE",
        description=(
            "Insert the document's policyVersion as the ACTIVE version and demote the current "
            "ACTIVE version to GRACE until now + --grace, in one transaction "
            "(public.rotate_policy_version). Running it again with the same version and document "
            "is a no-op. Refused, exit 2, nothing written: a --grace that is not a positive "
            "duration of at most 366 days, the same version with another checksum (P7101), a "
            "version not newer than every published one (P7102; digit runs compare as numbers: "
            "2025.10 is newer than 2025.9), no ACTIVE version to rotate from (P7103: use "
            "seed-policy), a login without EXECUTE (42501), and every document problem "
            "seed-policy refuses. " + _FROM_ENV_CONTRACT
        ),
    )
    source = rotate.add_mutually_exclusive_group(required=True)
    source.add_argument("--file", type=Path, metavar="PATH", help="the new policy document (JSON)")
    source.add_argument(
        "--from-env",
        action="store_true",
        help=f"read {policy.ENV_VERSION} plus {policy.ENV_DOCUMENT}, {policy.ENV_FILE} or "
        f"{policy.ENV_CHECKSUM} from the environment, as seed-policy does",
    )
    rotate.add_argument(
        "--grace",
        required=True,
        metavar="DURATION",
        help="how long the previous version stays accepted: 24h, 90m, 1d12h, 2w (at most 366d)",
    )
    add_url_argument(rotate)
    rotate.set_defaults(handler=_rotate)

    status = actions.add_parser(
        "status",
        help="list the policy versions: status, checksum prefix, accepted now, grace left",
        description=(
            "One line per policy version, oldest first: version, status (ACTIVE, GRACE, "
            "RETIRED), the first 12 hex digits of its checksum, whether services accept it now "
            "(public.policy_version_accepted: ACTIVE, or GRACE before its expiry), the grace "
            "left and the expiry. A GRACE version past its expiry is shown as 'expired' until "
            "retire-expired runs (it is already refused)."
        ),
    )
    add_url_argument(status)
    status.set_defaults(handler=_status)

    retire = actions.add_parser(
        "retire-expired",
        help="move GRACE versions past their expiry to RETIRED",
        description=(
            "Run public.retire_expired_policy_versions(): every GRACE version whose grace window "
            "has ended becomes RETIRED (kept for audit, never changed again). Safe to run at any "
            "time and as often as wanted (a scheduler); acceptance never waits for it."
        ),
    )
    add_url_argument(retire)
    retire.set_defaults(handler=_retire)


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
            "With --policy-file or --policy-from-env, also fail unless that version with that "
            "checksum is the ACTIVE policy or a GRACE one still accepted (a service rolled out "
            "before a rotation). Exit 0 with one OK line naming the head, the ACTIVE policy and "
            "the GRACE versions with their expiry otherwise. Run it as the migrating user: it "
            "owns alembic_version and the migration ledger, which runtime logins cannot read."
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


def _rotate(args: argparse.Namespace) -> int:
    from symphony_schema.policy import rotation

    grace = rotation.parse_grace(args.grace)
    if args.from_env:
        pinned = policy.pinned_policy_from_env()
    else:
        pinned = policy.pinned_policy_of(
            policy.load_policy_file(args.file), f"policy file {args.file}"
        )
    selected = select_database(args.url)
    print(rotation.rotate_policy(selected.conninfo, pinned, grace).message)
    return 0


def _status(args: argparse.Namespace) -> int:
    from symphony_schema.policy import rotation

    selected = select_database(args.url)
    rows = rotation.policy_status(selected.conninfo)
    if not rows:
        print("no policy versions: seed one with 'symphony-schema seed-policy --file PATH'")
        return 0
    table = [("VERSION", "STATUS", "CHECKSUM", "ACCEPTED", "GRACE LEFT", "GRACE UNTIL")]
    for row in rows:
        left = "-"
        if row.status == "GRACE" and row.grace_left is not None:
            left = rotation.format_duration(row.grace_left) if row.accepted else "expired"
        until = rotation.timestamp(row.grace_expires_at) if row.status != "ACTIVE" else "-"
        table.append(
            (
                row.version,
                row.status,
                row.checksum[:12],
                "yes" if row.accepted else "no",
                left,
                until,
            )
        )
    widths = [max(len(line[i]) for line in table) for i in range(len(table[0]))]
    for line in table:
        print(
            "  ".join(cell.ljust(width) for cell, width in zip(line, widths, strict=True)).rstrip()
        )
    return 0


def _retire(args: argparse.Namespace) -> int:
    from symphony_schema.policy import rotation

    selected = select_database(args.url)
    retired = rotation.retire_expired(selected.conninfo)
    if not retired:
        print("no GRACE policy version has expired: nothing to retire")
    for version, expires in retired:
        print(f"retired policy version {version!r} (its grace ended {rotation.timestamp(expires)})")
    return 0
