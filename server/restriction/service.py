"""Restricting a person's processing (Art. 18) and lifting it.

While a ``subject_restrictions`` row stands, every path that decides whether a subject's data may
be used counts the subject as not allowed (``server.storage.restrictions``, the one test), and the
data is kept: events, identifiers, PII, consent and the profile state as it was (frozen, see
``server.profiles.store``). Lifting deletes the rows and recomputes the profile state from the
events under the consent then in force, so it is current at once, not only after the next build.

Both take the identity writers' turn (``server.storage.locks``) before writing, as consent changes
do: a build partition reads which subjects it may write inside that turn, and a restriction
committed between its read and its write would let it overwrite the state just frozen.
"""

from __future__ import annotations

from collections.abc import Sequence

import polars as pl
from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from server.identity.rebuilds import RebuildReason, mark_for_rebuild
from server.profiles import store as profiles
from server.runtime import UnitOfWork
from server.storage.bulk import bulk_insert
from server.storage.locks import serialize_identity_writes
from server.storage.restrictions import restricted_among as _restricted_among
from server.storage.tables import SubjectRestrictionRow, SubjectRow

__all__ = ["lift", "restrict", "restricted_among"]

CHUNK = 5_000


def restricted_among(session: Session, subject_ids: Sequence[int]) -> set[int]:
    """Those of ``subject_ids`` under a restriction now."""
    return _restricted_among(session, subject_ids)


def restrict(unit: UnitOfWork, subject_ids: Sequence[int], *, request_id: int | None) -> int:
    """Restrict every subject of ``subject_ids`` (the whole person: ``server.subjects.reach``);
    returns how many were not restricted before. Idempotent: one row per subject, however often."""
    session = unit.session
    serialize_identity_writes(session)
    ids = _existing(session, subject_ids)
    already = _restricted_among(session, ids)
    new = [subject for subject in ids if subject not in already]
    bulk_insert(
        session,
        SubjectRestrictionRow,
        pl.DataFrame(
            {"subject_id": new, "request_id": [request_id] * len(new), "since": [unit.clock()] * len(new)},
            schema={"subject_id": pl.Int64(), "request_id": pl.Int64(), "since": pl.Datetime("us", "UTC")},
        ),
        ignore_conflicts=False,
    )
    mark_for_rebuild(session, new, reason=RebuildReason.RESTRICTION, now=unit.clock())  # segments: exits
    unit.audit(
        "restriction.applied",
        target=_target(request_id, ids),
        details={"subjects": len(ids), "newly_restricted": len(new)},
    )
    return len(new)


def lift(unit: UnitOfWork, subject_ids: Sequence[int], *, request_id: int | None) -> int:
    """Lift the restriction of ``subject_ids``; returns how many were restricted. Their profile
    state is recomputed from their events at once (kept only under ``profiling`` consent)."""
    session = unit.session
    serialize_identity_writes(session)
    ids = sorted(set(subject_ids))
    lifted = sorted(_restricted_among(session, ids))
    column = SubjectRestrictionRow.__table__.c.subject_id
    for start in range(0, len(lifted), CHUNK):
        session.execute(delete(SubjectRestrictionRow).where(column.in_(lifted[start : start + CHUNK])))
    if lifted:
        profiles.recompute(session, lifted, unit.profiles.interests)
        mark_for_rebuild(session, lifted, reason=RebuildReason.RESTRICTION, now=unit.clock())  # segments again
    unit.audit(
        "restriction.lifted",
        target=_target(request_id, ids),
        details={"subjects": len(ids), "lifted": len(lifted)},
    )
    return len(lifted)


def _existing(session: Session, subject_ids: Sequence[int]) -> list[int]:
    """The subjects that exist (an erased one has nothing left to restrict)."""
    ids = sorted(set(subject_ids))
    found: set[int] = set()
    for start in range(0, len(ids), CHUNK):
        found.update(session.scalars(select(SubjectRow.id).where(SubjectRow.id.in_(ids[start : start + CHUNK]))))
    return sorted(found)


def _target(request_id: int | None, subject_ids: Sequence[int]) -> str | None:
    """The request when there is one, else the subject when there is one: never a list of ids."""
    if request_id is not None:
        return f"request:{request_id}"
    return f"subject:{subject_ids[0]}" if len(subject_ids) == 1 else None
