"""Reading and verifying the audit chain."""

from __future__ import annotations

from sqlalchemy.orm import Session

from privacy.audit import AuditEntry, ChainVerdict, verify_chain
from privacy.keyring import Keyring
from server.storage.audit_store import iter_entries, read_head

MAX_PAGE = 1_000


def verify(session: Session, keyring: Keyring) -> ChainVerdict:
    return verify_chain(iter_entries(session), keyring, head=read_head(session))


def page(session: Session, *, after_seq: int, first: int) -> list[AuditEntry]:
    return list(iter_entries(session, after_seq=max(after_seq, 0), limit=max(1, min(first, MAX_PAGE))))
