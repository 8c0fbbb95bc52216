"""The red-team tests reuse the schema tests' fixtures (logins, the outbox API)."""

from tests.integration.conftest import connect, login, outbox, outbox_for

__all__ = ["connect", "login", "outbox", "outbox_for"]
