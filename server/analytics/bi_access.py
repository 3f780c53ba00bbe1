"""Who reads the published aggregates over SQL: PostgreSQL login roles made for BI tools.

A role is created with its password's SCRAM verifier only (``server.storage.bi_schema``), and the
grant and the revocation are admin actions, so each is in the audit log, by role name (a name an
operator chose for a tool, never a person's) and never with the password.
"""

from __future__ import annotations

import secrets
from typing import Final

from server.auth.principal import SYSTEM_ACTOR
from server.runtime import Runtime
from server.storage.bi_schema import RoleRefused, create_reader, drop_reader
from server.storage.engine import is_sqlite

__all__ = ["MIN_PASSWORD_LENGTH", "generated_password", "grant_reader", "revoke_reader"]

MIN_PASSWORD_LENGTH: Final = 16


def generated_password() -> str:
    """256 bits, URL-safe: pastes into any BI tool's connection form without quoting."""
    return secrets.token_urlsafe(32)


def _postgres_only(runtime: Runtime) -> None:
    if is_sqlite(runtime.engine):
        raise RoleRefused(
            "BI roles need PostgreSQL (SQLite has no roles); on SQLite, `audience bi export DIR` writes the "
            "published aggregates as Parquet files"
        )


def grant_reader(runtime: Runtime, name: str, password: str) -> None:
    """Create role ``name``, able to read the ``audience_bi`` views only. Raises ``RoleRefused``."""
    _postgres_only(runtime)
    if len(password) < MIN_PASSWORD_LENGTH:
        raise RoleRefused(f"the password must be at least {MIN_PASSWORD_LENGTH} characters")
    with runtime.unit_of_work(SYSTEM_ACTOR) as unit:
        create_reader(unit.session.connection(), name, password)
        unit.audit("bi_role.grant", target=f"bi_role:{name}")


def revoke_reader(runtime: Runtime, name: str) -> None:
    """Drop role ``name`` if ``grant_reader`` made it. Raises ``RoleRefused``."""
    _postgres_only(runtime)
    with runtime.unit_of_work(SYSTEM_ACTOR) as unit:
        drop_reader(unit.session.connection(), name)
        unit.audit("bi_role.revoke", target=f"bi_role:{name}")
