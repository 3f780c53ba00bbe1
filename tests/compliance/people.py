"""People as the compliance tests need them: known through real ingestion, reached by email the way a
request reaches them (``persons_reached``), restricted or lifted through the services."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from sqlalchemy import text

from privacy.identifiers import IdentifierKind, normalize
from server.auth.principal import SYSTEM_ACTOR
from server.restriction.service import lift, restrict
from server.runtime import Runtime
from server.subjects.reach import persons_reached
from tests.ingest.batches import NOW, event

EVERY_PURPOSE = ["analytics", "personalization", "advertising", "profiling"]


def visit(email: str, minutes_ago: int, *, purposes: list[str] | None = None, **fields: Any) -> dict[str, Any]:
    """A page view (or ``fields``) of ``email`` consenting to every purpose unless told otherwise."""
    return event(
        email=email,
        timestamp=NOW - timedelta(minutes=minutes_ago),
        consent_purposes=EVERY_PURPOSE if purposes is None else purposes,
        topics=["sports/football"],
        **fields,
    )


def reached(runtime: Runtime, email: str) -> list[int]:
    with runtime.sessions() as session:
        identifier = normalize(IdentifierKind.EMAIL, email, rules=runtime.kit.rules)
        return persons_reached(session, identifier, runtime.kit)


def restrict_person(runtime: Runtime, email: str, *, request_id: int | None = 7) -> int:
    with runtime.unit_of_work(SYSTEM_ACTOR) as unit:
        return restrict(unit, reached(runtime, email), request_id=request_id)


def lift_person(runtime: Runtime, email: str, *, request_id: int | None = 7) -> int:
    with runtime.unit_of_work(SYSTEM_ACTOR) as unit:
        return lift(unit, reached(runtime, email), request_id=request_id)


STATE_TABLES = ("profile_daily", "profile_summary", "profile_interests")


def state_of(runtime: Runtime, subject_id: int) -> dict[str, list[tuple[Any, ...]]]:
    """Every profile state row of ``subject_id``, as stored, sorted."""
    with runtime.engine.connect() as connection:
        return {
            table: sorted(
                (
                    tuple(row)
                    for row in connection.execute(
                        text(f"SELECT * FROM {table} WHERE subject_id = :s"), {"s": subject_id}
                    )
                ),
                key=repr,
            )
            for table in STATE_TABLES
        }
