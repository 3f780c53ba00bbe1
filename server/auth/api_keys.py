"""API keys: random 256-bit secrets, shown once, stored as SHA-256, checked in constant time.

A plain SHA-256 suffices (no slow password hash) because the secret has 256 bits of entropy:
there is nothing to brute-force. The key id is public and lets us find the row without
comparing against every hash.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from server.auth.principal import Principal, Role
from server.storage.tables import ApiKeyRow, PartnerRow

KEY_PREFIX = "aud"
# A label names a purpose ("acme web"), never a person: no '@', no '+', bounded.
_LABEL_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9 ._:/-]{0,63}$")
_KEY_PATTERN = re.compile(r"^aud_([0-9a-f]{16})\.([A-Za-z0-9_-]{43})$")


class ApiKeyError(Exception):
    """A key request is invalid (unknown partner, partner role without partner, ...)."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


@dataclass(frozen=True, slots=True)
class IssuedKey:
    """The only moment the full token exists outside the caller's hands."""

    key_id: str
    token: str
    role: Role
    partner_id: int | None


@dataclass(frozen=True, slots=True)
class ApiKeyInfo:
    key_id: str
    role: Role
    partner_id: int | None
    label: str
    created_at: datetime
    revoked_at: datetime | None


def _hash_secret(secret: str) -> bytes:
    return hashlib.sha256(secret.encode("ascii")).digest()


def create_key(session: Session, *, role: Role, label: str, now: datetime, partner_id: int | None = None) -> IssuedKey:
    if role is Role.PARTNER and partner_id is None:
        raise ApiKeyError("PARTNER_REQUIRED", "a partner key must be bound to a partner")
    if role is not Role.PARTNER and partner_id is not None:
        raise ApiKeyError("PARTNER_NOT_ALLOWED", "only partner keys are bound to a partner")
    if partner_id is not None and session.get(PartnerRow, partner_id) is None:
        raise ApiKeyError("UNKNOWN_PARTNER", "no partner has this id")
    if not _LABEL_PATTERN.match(label):
        raise ApiKeyError(
            "INVALID_LABEL", "label must be 1-64 characters of letters, digits, spaces and ._:/- (no personal data)"
        )
    key_id, secret = secrets.token_hex(8), secrets.token_urlsafe(32)
    session.add(
        ApiKeyRow(
            key_id=key_id,
            secret_hash=_hash_secret(secret),
            role=role.value,
            partner_id=partner_id,
            label=label,
            created_at=now,
        )
    )
    session.flush()
    return IssuedKey(key_id=key_id, token=f"{KEY_PREFIX}_{key_id}.{secret}", role=role, partner_id=partner_id)


def authenticate(session: Session, token: str) -> Principal | None:
    """None for anything that is not a live key; the caller never learns which part failed."""
    match = _KEY_PATTERN.match(token)
    if match is None:
        return None
    key_id, secret = match.groups()
    row = _key_with_purposes(session, key_id)
    candidate = _hash_secret(secret)
    if row is None:
        hmac.compare_digest(candidate, bytes(32))  # same work whether or not the id exists
        return None
    key, purposes = row
    if not hmac.compare_digest(candidate, key.secret_hash) or key.revoked_at is not None:
        return None
    return _principal(key, purposes)


def current_principal(session: Session, principal: Principal) -> Principal | None:
    """The key as it stands now, for a connection that proved its secret earlier (an open WebSocket).

    None once the key is revoked; otherwise its role, partner and purposes as stored now, so a
    change made after the socket opened applies to its next operation.
    """
    row = _key_with_purposes(session, principal.key_id)
    if row is None or row[0].revoked_at is not None:
        return None
    return _principal(*row)


def _key_with_purposes(session: Session, key_id: str) -> tuple[ApiKeyRow, list[str] | None] | None:
    row = session.execute(
        select(ApiKeyRow, PartnerRow.purposes)
        .outerjoin(PartnerRow, PartnerRow.id == ApiKeyRow.partner_id)
        .where(ApiKeyRow.key_id == key_id)
    ).one_or_none()
    return None if row is None else (row[0], row[1])


def _principal(key: ApiKeyRow, purposes: list[str] | None) -> Principal:
    return Principal(
        key_id=key.key_id,
        role=Role(key.role),
        partner_id=key.partner_id,
        partner_purposes=frozenset(purposes or ()),
    )


def revoke_key(session: Session, *, key_id: str, now: datetime) -> bool:
    result = session.execute(
        update(ApiKeyRow).where(ApiKeyRow.key_id == key_id, ApiKeyRow.revoked_at.is_(None)).values(revoked_at=now)
    )
    return bool(result.rowcount)  # type: ignore[attr-defined]


def list_keys(session: Session) -> list[ApiKeyInfo]:
    rows = session.scalars(select(ApiKeyRow).order_by(ApiKeyRow.id)).all()
    return [
        ApiKeyInfo(
            key_id=row.key_id,
            role=Role(row.role),
            partner_id=row.partner_id,
            label=row.label,
            created_at=row.created_at,
            revoked_at=row.revoked_at,
        )
        for row in rows
    ]
