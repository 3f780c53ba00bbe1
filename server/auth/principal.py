"""Who is calling: roles and the authenticated principal."""

from __future__ import annotations

import enum
from dataclasses import dataclass


class Role(enum.StrEnum):
    PARTNER = "partner"
    COMPLIANCE = "compliance"
    ANALYST = "analyst"
    MARKETER = "marketer"
    ADMIN = "admin"


@dataclass(frozen=True, slots=True)
class Actor:
    """What the audit log records about whoever acted: a key id and a role, never a person."""

    key_id: str | None
    role: str


SYSTEM_ACTOR = Actor(key_id=None, role="operator")


@dataclass(frozen=True, slots=True)
class Principal:
    key_id: str
    role: Role
    partner_id: int | None = None
    partner_purposes: frozenset[str] = frozenset()

    @property
    def actor(self) -> Actor:
        return Actor(key_id=self.key_id, role=self.role.value)
