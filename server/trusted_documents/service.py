"""Registered (trusted) documents: stored by the sha256 of their exact UTF-8 text, owned by a partner or by all.

The id is the content's hash, so a document never changes under its id and nothing cached needs
invalidating. Ownership is what scopes use: a partner's document is found for that partner's keys
only, a global one (registered by an admin without a partner) for every caller. The table keys on
the hash alone, so a text registered for two different owners is one row: it becomes global
rather than refusing the second owner (which would tell it that someone else uses that text).
Checking a document against the schema is the caller's job (``schema.trusted_documents``); this
module stores, finds and lists.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import ColumnElement, or_, select, update
from sqlalchemy.orm import Session

from server.storage.tables import PartnerRow, TrustedDocumentRow
from server.storage.upsert import insert_ignoring_conflicts

__all__ = [
    "DOCUMENT_ID_PREFIX",
    "MAX_DOCUMENTS_PER_CALL",
    "MAX_DOCUMENT_BYTES",
    "StoredDocument",
    "TrustedDocumentInfo",
    "document_hash",
    "document_id",
    "find_document",
    "hash_of_document_id",
    "list_documents",
    "partner_exists",
    "register_documents",
]

DOCUMENT_ID_PREFIX = "sha256:"
MAX_DOCUMENTS_PER_CALL = 100
MAX_DOCUMENT_BYTES = 64 * 1024
_HEX_SHA256 = re.compile(r"^[0-9a-f]{64}$")


@dataclass(frozen=True, slots=True)
class StoredDocument:
    text: str
    partner_id: int | None  # None: usable by every caller the fields' permissions allow


@dataclass(frozen=True, slots=True)
class TrustedDocumentInfo:
    sha256: str
    partner_id: int | None
    registered_at: datetime
    registered_by: str | None
    document: str


def document_hash(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def document_id(sha256: str) -> str:
    return DOCUMENT_ID_PREFIX + sha256


def hash_of_document_id(value: object) -> str | None:
    """The hex hash of ``sha256:<hex>``, or None for anything else (answered like an unknown id)."""
    if not isinstance(value, str) or not value.startswith(DOCUMENT_ID_PREFIX):
        return None
    return valid_hash(value[len(DOCUMENT_ID_PREFIX) :])


def valid_hash(value: object) -> str | None:
    """Lower-case 64-digit hex, as stored; Apollo clients send exactly that."""
    return value if isinstance(value, str) and _HEX_SHA256.match(value) else None


def register_documents(
    session: Session, *, texts: Sequence[str], partner_id: int | None, registered_by: str | None, now: datetime
) -> list[str]:
    """Store each text under its hash (already stored: kept); the hashes, in the order given.

    Two statements whatever the count: one insert skipping hashes already there, one update making
    global those of them that another owner registered first.
    """
    hashes = [document_hash(text) for text in texts]
    rows = {
        sha256: {
            "sha256": sha256,
            "document": text,
            "partner_id": partner_id,
            "registered_at": now,
            "registered_by": registered_by,
        }
        for sha256, text in zip(hashes, texts, strict=True)
    }
    insert_ignoring_conflicts(session, TrustedDocumentRow, list(rows.values()))
    owned_by_another: list[ColumnElement[bool]] = [TrustedDocumentRow.partner_id.is_not(None)]
    if partner_id is not None:
        owned_by_another.append(TrustedDocumentRow.partner_id != partner_id)
    session.execute(
        update(TrustedDocumentRow)
        .where(TrustedDocumentRow.sha256.in_(list(rows)), *owned_by_another)
        .values(partner_id=None)
    )
    return hashes


def find_document(session: Session, sha256: str) -> StoredDocument | None:
    row = session.execute(
        select(TrustedDocumentRow.document, TrustedDocumentRow.partner_id).where(TrustedDocumentRow.sha256 == sha256)
    ).first()
    return None if row is None else StoredDocument(text=row.document, partner_id=row.partner_id)


def list_documents(session: Session, *, partner_id: int | None, limit: int) -> list[TrustedDocumentInfo]:
    """Newest first; ``partner_id`` narrows to what that partner can run (its own and the global ones)."""
    query = select(TrustedDocumentRow).order_by(TrustedDocumentRow.registered_at.desc(), TrustedDocumentRow.sha256)
    if partner_id is not None:
        query = query.where(or_(TrustedDocumentRow.partner_id == partner_id, TrustedDocumentRow.partner_id.is_(None)))
    return [
        TrustedDocumentInfo(
            sha256=row.sha256,
            partner_id=row.partner_id,
            registered_at=row.registered_at,
            registered_by=row.registered_by,
            document=row.document,
        )
        for row in session.scalars(query.limit(limit))
    ]


def partner_exists(session: Session, partner_id: int) -> bool:
    return session.scalar(select(PartnerRow.id).where(PartnerRow.id == partner_id)) is not None
