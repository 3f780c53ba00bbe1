"""Building event batches and reading back what a batch left behind, for the ingestion tests.

Records are written as a sender would write them (a dict per event, raw identifiers), so a
test reads like the batch it sends; counts come from the tables, not from the result alone.
"""

from __future__ import annotations

import dataclasses
import itertools
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

import polars as pl
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from privacy.identifiers import IdentifierKind, normalize
from privacy.purposes import Purpose
from server.auth.principal import SYSTEM_ACTOR
from server.identity.resolve import IdentityGuardrails
from server.ingest.records import EVENT_SCHEMA
from server.ingest.service import IngestResult, ingest_events
from server.ingest.setup import guardrails_from, validation_context
from server.partners.service import create_partner
from server.runtime import Runtime
from server.storage.base import Base
from server.storage.tables import EventRow, IdentityRow, SubjectRow
from server.subjects.service import find_subject

NOW = datetime(2024, 6, 1, 12, 0, tzinfo=UTC)
SOURCE = "web-test"
EVERYTHING = [purpose.value for purpose in Purpose]
_ids = itertools.count(1)


def fixed_clock(runtime: Runtime, now: datetime = NOW) -> Runtime:
    """The same runtime with a frozen clock, so timestamps and the validation window agree."""
    return dataclasses.replace(runtime, clock=lambda: now)


def event(**fields: Any) -> dict[str, Any]:
    """A valid page view with analytics consent and a fresh message id; ``fields`` override it."""
    record: dict[str, Any] = {
        "message_id": f"m-{next(_ids)}",
        "event": "page_view",
        "channel": "web",
        "timestamp": NOW - timedelta(minutes=1),
        "consent_purposes": ["analytics"],
        "gpc": False,
    }
    record.update(fields)
    return record


def frame(records: Sequence[Mapping[str, Any]]) -> pl.DataFrame:
    return pl.DataFrame([dict(r) for r in records], schema=EVENT_SCHEMA)


def ingest(
    runtime: Runtime,
    records: Sequence[Mapping[str, Any]],
    *,
    source: str = SOURCE,
    guardrails: IdentityGuardrails | None = None,
) -> IngestResult:
    """One batch in one unit of work, configured from the runtime's settings like every real path."""
    with runtime.unit_of_work(SYSTEM_ACTOR) as unit:
        context = validation_context(unit.session, runtime.settings, unit.kit, now=unit.clock())
        return ingest_events(
            unit,
            frame(records),
            source=source,
            context=context,
            guardrails=guardrails or guardrails_from(runtime.settings),
        )


def add_partner(runtime: Runtime, name: str) -> int:
    with runtime.unit_of_work(SYSTEM_ACTOR) as unit:
        return create_partner(unit.session, name=name, purposes=[Purpose.ANALYTICS], now=unit.clock()).id


def count(runtime: Runtime, model: type[Base], *where: Any) -> int:
    with runtime.sessions() as session:
        return int(session.scalar(select(func.count()).select_from(model).where(*where)) or 0)


def subject_of(runtime: Runtime, kind: IdentifierKind, raw: str, *, partner_id: int | None = None) -> int | None:
    with runtime.sessions() as session:
        return find_subject(session, normalize(kind, raw, partner_id=partner_id, rules=runtime.kit.rules), runtime.kit)


def footprint(runtime: Runtime) -> tuple[int, int, int]:
    """(subjects, identities, events): what a rejected record must leave unchanged."""
    return count(runtime, SubjectRow), count(runtime, IdentityRow), count(runtime, EventRow)


def events_of(session: Session, subject_id: int) -> list[bytes]:
    """The message keys of a subject's events."""
    return sorted(session.scalars(select(EventRow.message_key).where(EventRow.subject_id == subject_id)))


def message_key(runtime: Runtime, message_id: str) -> bytes:
    """What the events table holds of a message id: its keyed hash under the current key."""
    return runtime.kit.message_keys.digest_many([message_id])[0]
