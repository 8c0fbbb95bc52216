"""The boot policy: ``public.policy_versions`` from outside the migrations (docs/contract/schema.md
§7). One job per module:

* :mod:`~symphony_schema.policy.document` - policy documents without a database: parsing, the
  RFC 8785 checksum, the ``--from-env`` contract;
* :mod:`~symphony_schema.policy.seed` - seeding the ACTIVE version;
* :mod:`~symphony_schema.policy.rotation` - rotating, listing and retiring versions (0016);
* :mod:`~symphony_schema.policy.boot` - the boot check.

The names below are re-exported so that ``from symphony_schema import policy`` gives the whole
surface.
"""

from __future__ import annotations

from symphony_schema.policy.boot import (
    BOOT_QUERY,
    BootStatus,
    GraceVersion,
    boot_check,
    boot_status,
)
from symphony_schema.policy.document import (
    CHECKSUM_RE,
    DEFAULT_POLICY_FILE,
    ENV_CHECKSUM,
    ENV_DOCUMENT,
    ENV_FILE,
    ENV_VERSION,
    MAX_POLICY_BYTES,
    MAX_VERSION_LENGTH,
    VERSION_FIELD,
    PinnedPolicy,
    PolicyError,
    canonical_checksum,
    load_policy_file,
    parse_policy_text,
    pinned_policy_from_env,
    pinned_policy_of,
    policy_version_of,
    validate_checksum,
    validate_version,
)
from symphony_schema.policy.seed import (
    SEED_LOCK_TIMEOUT,
    SeedResult,
    seed_pinned_policy,
    seed_policy_document,
    seed_policy_file,
    seed_policy_from_env,
)

__all__ = [
    "BOOT_QUERY",
    "CHECKSUM_RE",
    "DEFAULT_POLICY_FILE",
    "ENV_CHECKSUM",
    "ENV_DOCUMENT",
    "ENV_FILE",
    "ENV_VERSION",
    "MAX_POLICY_BYTES",
    "MAX_VERSION_LENGTH",
    "SEED_LOCK_TIMEOUT",
    "VERSION_FIELD",
    "BootStatus",
    "GraceVersion",
    "PinnedPolicy",
    "PolicyError",
    "SeedResult",
    "boot_check",
    "boot_status",
    "canonical_checksum",
    "load_policy_file",
    "parse_policy_text",
    "pinned_policy_from_env",
    "pinned_policy_of",
    "policy_version_of",
    "seed_pinned_policy",
    "seed_policy_document",
    "seed_policy_file",
    "seed_policy_from_env",
    "validate_checksum",
    "validate_version",
]
