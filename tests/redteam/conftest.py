"""The red-team tests reuse the schema and engine tests' fixtures (logins, the outbox API,
throw-away revision trees)."""

from tests.integration.conftest import connect, login, outbox, outbox_for
from tests.migration.conftest import tree

__all__ = ["connect", "login", "outbox", "outbox_for", "tree"]
