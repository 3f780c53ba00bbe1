"""Partners: the organisations that send events and read their granted segments."""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from privacy.purposes import Purpose
from server.storage.tables import PartnerRow

_NAME_PATTERN = re.compile(r"^[a-z0-9][a-z0-9_-]{1,63}$")


class PartnerError(Exception):
    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


@dataclass(frozen=True, slots=True)
class PartnerInfo:
    id: int
    name: str
    purposes: tuple[Purpose, ...]
    created_at: datetime


def create_partner(session: Session, *, name: str, purposes: Iterable[Purpose], now: datetime) -> PartnerInfo:
    """Partner names are slugs: they appear in logs and audit entries, so they must carry no PII."""
    if not _NAME_PATTERN.match(name):
        raise PartnerError("INVALID_NAME", "partner name must be 2-64 characters of a-z, 0-9, '-' or '_'")
    chosen = tuple(sorted(set(purposes)))
    if not chosen:
        raise PartnerError("NO_PURPOSE", "a partner must declare at least one purpose")
    if session.scalar(select(PartnerRow.id).where(PartnerRow.name == name)) is not None:
        raise PartnerError("DUPLICATE_NAME", "a partner with this name already exists")
    row = PartnerRow(name=name, purposes=[p.value for p in chosen], created_at=now)
    session.add(row)
    session.flush()
    return _to_info(row)


def list_partners(session: Session) -> list[PartnerInfo]:
    return [_to_info(row) for row in session.scalars(select(PartnerRow).order_by(PartnerRow.id))]


def find_partner(session: Session, name: str) -> PartnerInfo | None:
    row = session.scalar(select(PartnerRow).where(PartnerRow.name == name))
    return None if row is None else _to_info(row)


def _to_info(row: PartnerRow) -> PartnerInfo:
    return PartnerInfo(
        id=row.id, name=row.name, purposes=tuple(Purpose(p) for p in row.purposes), created_at=row.created_at
    )
