"""Rectifying a person's declared attributes (Art. 16): new values checked, normalized and kept
exactly as ingestion keeps them (``server.ingest.attributes``), or removed.

Declared attributes are the catalogue's (``server.ingest.catalogue``): the PII fields, encrypted
under the subject's data key, and the coarse traits (a birth year kept as its age band, a gender
category, a region code). A value of ``None`` removes the field. Only the person's active subjects
are changed: a merged fragment holds no PII or traits (the merge moved them to its winner). A
rectified email or phone is the stored attribute only; the identifiers that link the person
(keyed hashes in ``identities``) are not changed.

Every changed field is audited (``request.rectified``) with the kind of value before and after,
``present`` or ``absent``: never a value, never a length. A refused change (an unknown field, an
invalid value) raises ``RectificationError`` naming the field, never echoing the value, before
anything is written.

    RectificationError
      code: UNKNOWN_FIELD | NO_CHANGES | NO_ACTIVE_SUBJECT | INVALID_* (ingestion's codes)
"""

from __future__ import annotations

import enum
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Final

import polars as pl
from sqlalchemy import select
from sqlalchemy.orm import Session

from server.ingest.attributes import (
    ATTRIBUTE_MESSAGES,
    ATTRIBUTE_SCHEMA,
    TRAIT_OF,
    attribute_rules,
    identifier_rules,
    pii_values,
    trait_values,
    with_normalized_identifiers,
)
from server.ingest.catalogue import CATALOGUE, PII_FIELDS
from server.ingest.vocabulary import REJECT_MESSAGES, RejectCode
from server.runtime import UnitOfWork
from server.storage.locks import serialize_identity_writes
from server.storage.tables import SubjectPiiRow, SubjectRow, SubjectTraitsRow
from server.storage.upsert import upsert
from server.subjects.service import delete_pii_field, write_pii

__all__ = ["RECTIFIABLE", "FieldChange", "RectificationError", "ValueKind", "checked_changes", "rectify"]

RECTIFIABLE: Final = frozenset(CATALOGUE)
TRAIT_COLUMNS: Final = ("age_band", "gender", "region")


class RectificationError(Exception):
    """A refused rectification: ``field`` names the attribute, the message never holds its value."""

    def __init__(self, code: str, message: str, *, field: str | None = None) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.field = field


class ValueKind(enum.StrEnum):
    PRESENT = "present"
    ABSENT = "absent"


@dataclass(frozen=True, slots=True)
class FieldChange:
    subject_id: int
    field: str
    before: ValueKind
    after: ValueKind


def rectify(unit: UnitOfWork, subject_ids: Sequence[int], changes: Mapping[str, str | None]) -> list[FieldChange]:
    """Apply ``changes`` (attribute -> new value, ``None`` to remove it) to the active subjects of
    ``subject_ids``; one ``FieldChange`` per subject and field, in field order."""
    now = unit.clock()
    stored = checked_changes(unit, changes)
    session = unit.session
    serialize_identity_writes(session)  # a merge re-encrypting this person's PII waits, or goes first
    roots = _active(session, subject_ids)
    if not roots:
        raise RectificationError("NO_ACTIVE_SUBJECT", "the person has no active subject to rectify")
    fields = sorted(changes)
    pii = {name: stored[name] for name in fields if name in PII_FIELDS}
    traits = {TRAIT_OF[name]: stored[name] for name in fields if name in TRAIT_OF}
    result: list[FieldChange] = []
    for subject_id in roots:
        before = _present(session, subject_id)
        written = {name: value for name, value in pii.items() if value is not None}
        if written:
            write_pii(session, subject_id, written, unit.kit, now)
        for name in (name for name, value in pii.items() if value is None):
            delete_pii_field(session, subject_id, name)
        if traits and (before.has_traits or any(value is not None for value in traits.values())):
            upsert(
                session,
                SubjectTraitsRow,
                [{"subject_id": subject_id, **traits, "updated_at": now}],
                keys=["subject_id"],
                update=[*traits, "updated_at"],
            )
        for name in fields:
            change = FieldChange(
                subject_id,
                name,
                ValueKind.PRESENT if (TRAIT_OF.get(name, name)) in before.fields else ValueKind.ABSENT,
                ValueKind.ABSENT if stored[name] is None else ValueKind.PRESENT,
            )
            unit.audit(
                "request.rectified",
                target=f"subject:{subject_id}",
                details={"field": name, "before": change.before.value, "after": change.after.value},
            )
            result.append(change)
    return result


def checked_changes(unit: UnitOfWork, changes: Mapping[str, str | None]) -> dict[str, str | None]:
    """Refuses unknown attributes and invalid values before anything is written (or any request
    moves); returns each value as it would be stored."""
    if not changes:
        raise RectificationError("NO_CHANGES", "name at least one attribute to rectify")
    for name in sorted(changes):
        if name not in RECTIFIABLE:
            # The name given is not echoed (it is the caller's text, whatever it holds): the
            # message lists the names that exist instead.
            raise RectificationError(
                "UNKNOWN_FIELD", f"a change names no declared attribute; they are {', '.join(sorted(RECTIFIABLE))}"
            )
    return _checked(changes, current_year=unit.clock().year, unit=unit)


def _checked(changes: Mapping[str, str | None], *, current_year: int, unit: UnitOfWork) -> dict[str, str | None]:
    """Each attribute's value as it would be stored (``None``: removed), by ingestion's own rules."""
    given = {name: value for name, value in changes.items() if value is not None}
    raw = pl.DataFrame(
        {name: [given.get(name)] for name in ATTRIBUTE_SCHEMA if name != "birth_year"},
        schema={name: dtype for name, dtype in ATTRIBUTE_SCHEMA.items() if name != "birth_year"},
    )
    year = given.get("birth_year")
    birth_year = pl.Series("birth_year", [year], dtype=pl.String).str.strip_chars().cast(pl.Int64, strict=False)
    if year is not None and birth_year.is_null().all():
        raise _invalid("birth_year", "INVALID_BIRTH_YEAR")
    frame = with_normalized_identifiers(raw.with_columns(birth_year), unit.kit.rules)
    rules = [*identifier_rules(list(given)), *attribute_rules(current_year=current_year)]
    checks = [(field, broken, code) for field, broken, code in rules if field in given]
    if checks:
        verdicts = frame.select(broken.fill_null(value=False).alias(field) for field, broken, _code in checks)
        for field, _broken, code in checks:
            if verdicts[field][0]:
                raise _invalid(field, code)
    values = frame.select(*pii_values(), *trait_values(current_year=current_year)).row(0, named=True)
    return {name: None if changes[name] is None else values[TRAIT_OF.get(name, name)] for name in changes}


def _invalid(field: str, code: str) -> RectificationError:
    message = ATTRIBUTE_MESSAGES.get(code) or REJECT_MESSAGES[RejectCode(code)]
    return RectificationError(code, message, field=field)


@dataclass(frozen=True, slots=True)
class _Held:
    fields: frozenset[str]
    """PII field names and trait columns holding a value."""
    has_traits: bool


def _present(session: Session, subject_id: int) -> _Held:
    pii = session.scalars(select(SubjectPiiRow.field).where(SubjectPiiRow.subject_id == subject_id)).all()
    traits = session.execute(
        select(SubjectTraitsRow.age_band, SubjectTraitsRow.gender, SubjectTraitsRow.region).where(
            SubjectTraitsRow.subject_id == subject_id
        )
    ).first()
    held = {column for column, value in zip(TRAIT_COLUMNS, traits or (), strict=False) if value is not None}
    return _Held(frozenset({*pii, *held}), has_traits=traits is not None)


def _active(session: Session, subject_ids: Sequence[int]) -> list[int]:
    ids = sorted(set(subject_ids))
    return sorted(
        session.scalars(select(SubjectRow.id).where(SubjectRow.id.in_(ids), SubjectRow.status == "active")).all()
    )
