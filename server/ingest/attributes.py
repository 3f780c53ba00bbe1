"""Declared attributes: find the known, consenting subject, then keep each field as the catalogue says.

Attributes never create a subject: a person is known first through events or consent, so PII
is never stored for someone who has not agreed to anything.
"""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass, field
from datetime import datetime
from typing import Final

import polars as pl
from sqlalchemy import select, text
from sqlalchemy.orm import Session

from privacy.field_crypto import WrappedKey, encrypt_many
from privacy.identifiers import NormalizationRules, normalized_expr
from server.frames.events import IDENTIFIER_COLUMNS, NORMALIZED_COLUMNS, ROW
from server.identity.resolve import IdentityGuardrails, plan, prepare
from server.ingest.catalogue import CATALOGUE, PII_FIELDS, age_band, gender_category
from server.ingest.regions import region_code
from server.ingest.store import insert_identities
from server.ingest.validate import INVALID_IDENTIFIER
from server.ingest.vocabulary import RejectCode
from server.privacy_kit import PrivacyKit
from server.runtime import UnitOfWork
from server.storage.locks import serialize_identity_writes
from server.storage.restrictions import unrestricted
from server.storage.tables import ConsentStateRow, SubjectKeyRow, SubjectPiiRow, SubjectTraitsRow
from server.storage.upsert import upsert

ATTRIBUTE_SCHEMA: Final = pl.Schema(
    {
        "user_id": pl.String(),
        "anonymous_id": pl.String(),
        "email": pl.String(),
        "phone": pl.String(),
        "first_name": pl.String(),
        "last_name": pl.String(),
        "birth_date": pl.String(),
        "street_address": pl.String(),
        "birth_year": pl.Int64(),
        "gender": pl.String(),
        "region": pl.String(),
    }
)
DATE_PATTERN = r"^\d{4}-\d{2}-\d{2}$"
TEXT_FIELDS: Final = ("first_name", "last_name", "street_address")
TEXT_PATTERN = r"^[^\x00-\x1f\x7f]+$"


class AttributeCode:
    INVALID_BIRTH_YEAR = "INVALID_BIRTH_YEAR"
    INVALID_BIRTH_DATE = "INVALID_BIRTH_DATE"
    INVALID_GENDER = "INVALID_GENDER"
    INVALID_REGION = "INVALID_REGION"
    INVALID_TEXT = "INVALID_TEXT"
    UNKNOWN_SUBJECT = "UNKNOWN_SUBJECT"


ATTRIBUTE_MESSAGES: Final = {
    AttributeCode.INVALID_BIRTH_YEAR: "birthYear must be a year between 1900 and this year",
    AttributeCode.INVALID_BIRTH_DATE: "birthDate must be YYYY-MM-DD",
    AttributeCode.INVALID_GENDER: "gender must be female, male, other or undisclosed (or a common synonym)",
    AttributeCode.INVALID_REGION: "region must be a country code with at most 3 more characters: FR, FR-IDF, FR1",
    AttributeCode.INVALID_TEXT: "a text attribute is too long or holds control characters",
    AttributeCode.UNKNOWN_SUBJECT: "no known person matches these identifiers; send events or consent first",
    RejectCode.SUPPRESSED.value: "an identifier of this record belongs to an erased person",
    RejectCode.NO_CONSENT.value: "the person has no consent for any purpose",
    RejectCode.NO_IDENTIFIER.value: "the record carries no usable identifier",
}


@dataclass(slots=True)
class AttributeResult:
    received: int = 0
    accepted: int = 0
    rejected: list[tuple[int, str]] = field(default_factory=list)
    fields_encrypted: int = 0


def upsert_attributes(
    unit: UnitOfWork,
    records: pl.DataFrame,
    *,
    current_year: int,
    rules: NormalizationRules,
    guardrails: IdentityGuardrails,
) -> AttributeResult:
    session = unit.session
    serialize_identity_writes(session)
    frame = _validated(records, current_year=current_year, rules=rules)
    result = AttributeResult(received=frame.height)
    rejected = dict(frame.filter(pl.col("reject_code").is_not_null()).select(ROW, "reject_code").iter_rows())
    valid = frame.filter(pl.col("reject_code").is_null())
    prepared = prepare(session, valid, unit.kit)
    resolution = plan(prepared, guardrails)
    rejected.update(dict.fromkeys(resolution.suppressed_rows.to_list(), RejectCode.SUPPRESSED.value))
    merging = {s for m in resolution.merges for s in (m.winner, *m.losers)}
    new = set(resolution.new_subjects)
    assigned = valid.join(resolution.rows, on=ROW, how="inner")
    unknown = assigned.filter(pl.col("subject_id").is_in(sorted(new)))[ROW].to_list()
    rejected.update(dict.fromkeys(unknown, AttributeCode.UNKNOWN_SUBJECT))
    known = assigned.filter(~pl.col("subject_id").is_in(sorted(new)))
    consenting = _consenting(session, known["subject_id"].unique().to_list())
    rejected.update(
        dict.fromkeys(
            known.filter(~pl.col("subject_id").is_in(sorted(consenting)))[ROW].to_list(), RejectCode.NO_CONSENT.value
        )
    )
    accepted = known.filter(pl.col("subject_id").is_in(sorted(consenting)))

    identities = resolution.new_identities.filter(pl.col("subject_id").is_in(sorted(consenting - merging)))
    insert_identities(session, identities, unit.clock())
    result.fields_encrypted = _write_pii(session, accepted, unit.kit, unit.clock())
    _write_traits(session, accepted, current_year=current_year, now=unit.clock())
    result.accepted = accepted.height
    result.rejected = sorted(rejected.items())
    unit.audit(
        "attributes.upsert",
        details={
            "received": result.received,
            "accepted": result.accepted,
            "rejected": len(result.rejected),
            "fields": result.fields_encrypted,
        },
    )
    return result


def _validated(records: pl.DataFrame, *, current_year: int, rules: NormalizationRules) -> pl.DataFrame:
    frame = with_normalized_identifiers(records.with_row_index(ROW), rules).with_columns(
        partner_id=pl.lit(None, dtype=pl.Int64)
    )
    rules_in_order: list[tuple[pl.Expr, str]] = [
        (broken, code) for _field, broken, code in identifier_rules(records.columns)
    ]
    rules_in_order += [
        (~pl.any_horizontal([pl.col(c).is_not_null() for c in NORMALIZED_COLUMNS]), RejectCode.NO_IDENTIFIER.value),
        *[(broken, code) for _field, broken, code in attribute_rules(current_year=current_year)],
    ]
    code = pl.lit(None, dtype=pl.String)
    for condition, value in reversed(rules_in_order):
        code = pl.when(condition.fill_null(value=False)).then(pl.lit(value)).otherwise(code)
    return frame.with_columns(reject_code=code)


def with_normalized_identifiers(records: pl.DataFrame, rules: NormalizationRules) -> pl.DataFrame:
    """Each identifier column's normalized form beside it (``email_n``...), null where absent or invalid."""
    return records.with_columns(
        *(
            normalized_expr(kind, pl.col(raw), rules).alias(normalized)
            for raw, normalized, kind in IDENTIFIER_COLUMNS
            if raw in records.columns
        ),
        *(
            pl.lit(None, dtype=pl.String).alias(normalized)
            for raw, normalized, _kind in IDENTIFIER_COLUMNS
            if raw not in records.columns
        ),
    )


def identifier_rules(columns: Collection[str]) -> list[tuple[str, pl.Expr, str]]:
    """(column, broken, code) for each identifier column present: given, but not normalizable."""
    return [
        (raw, pl.col(raw).is_not_null() & pl.col(normalized).is_null(), INVALID_IDENTIFIER[kind].value)
        for raw, normalized, kind in IDENTIFIER_COLUMNS
        if raw in columns
    ]


def attribute_rules(*, current_year: int) -> list[tuple[str, pl.Expr, str]]:
    """(attribute, broken, code) for each declared attribute but the identifiers, in the order
    they are checked, over ``ATTRIBUTE_SCHEMA`` columns (ingestion and rectification alike)."""
    return [
        (
            "birth_year",
            pl.col("birth_year").is_not_null() & ~pl.col("birth_year").is_between(1900, current_year),
            AttributeCode.INVALID_BIRTH_YEAR,
        ),
        (
            "birth_date",
            pl.col("birth_date").is_not_null() & ~pl.col("birth_date").str.contains(DATE_PATTERN),
            AttributeCode.INVALID_BIRTH_DATE,
        ),
        (
            "gender",
            pl.col("gender").is_not_null() & gender_category(pl.col("gender")).is_null(),
            AttributeCode.INVALID_GENDER,
        ),
        (
            "region",
            pl.col("region").is_not_null() & region_code(pl.col("region")).is_null(),
            AttributeCode.INVALID_REGION,
        ),
        *[
            (
                c,
                pl.col(c).is_not_null()
                & (~pl.col(c).str.contains(TEXT_PATTERN) | (pl.col(c).str.len_chars() > CATALOGUE[c].max_length)),
                AttributeCode.INVALID_TEXT,
            )
            for c in TEXT_FIELDS
        ],
    ]


def pii_values() -> list[pl.Expr]:
    """The PII fields as stored (encrypted): email and phone normalized, the others as given."""
    return [
        pl.col("email_n").alias("email"),
        pl.col("phone_n").alias("phone"),
        *[pl.col(name) for name in PII_FIELDS if name not in {"email", "phone"}],
    ]


def trait_values(*, current_year: int) -> list[pl.Expr]:
    """The traits as stored (``subject_traits``): an age band, a gender category, a region code."""
    return [
        pl.when(pl.col("birth_year").is_not_null())
        .then(age_band(pl.col("birth_year"), current_year=current_year))
        .alias("age_band"),
        gender_category(pl.col("gender")).alias("gender"),
        pl.col("region"),
    ]


TRAIT_OF: Final = {"birth_year": "age_band", "gender": "gender", "region": "region"}
"""Which ``subject_traits`` column holds each trait attribute."""


def _consenting(session: Session, subject_ids: list[int]) -> set[int]:
    """Granting some purpose of our own, and not restricted: a restricted person's attributes are
    refused like those of someone who consents to nothing (``NO_CONSENT``), and nothing is stored."""
    found: set[int] = set()
    for start in range(0, len(subject_ids), 5_000):
        found.update(
            session.scalars(
                select(ConsentStateRow.subject_id)
                .where(
                    ConsentStateRow.subject_id.in_(subject_ids[start : start + 5_000]),
                    ConsentStateRow.partner_id == 0,
                    ConsentStateRow.granted.is_(True),
                    text(unrestricted("consent_state.subject_id")),
                )
                .distinct()
            )
        )
    return found


def _write_pii(session: Session, accepted: pl.DataFrame, kit: PrivacyKit, now: datetime) -> int:
    values = (
        accepted.select("subject_id", *pii_values())
        .unpivot(index="subject_id", variable_name="field", value_name="value")
        .drop_nulls("value")
    )
    values = values.unique(subset=["subject_id", "field"], keep="last", maintain_order=True)
    if values.height == 0:
        return 0
    subjects = values["subject_id"].unique().to_list()
    keys = session.execute(
        select(SubjectKeyRow.subject_id, SubjectKeyRow.kek_version, SubjectKeyRow.wrapped_dek).where(
            SubjectKeyRow.subject_id.in_(subjects)
        )
    ).all()
    deks = {s: kit.key_wrapper.unwrap(WrappedKey(v, blob), s) for s, v, blob in keys}
    items = list(values.iter_rows())
    blobs = encrypt_many(items, deks)
    rows = [
        {"subject_id": s, "field": f, "ciphertext": b, "updated_at": now}
        for (s, f, _v), b in zip(items, blobs, strict=True)
    ]
    upsert(session, SubjectPiiRow, rows, keys=["subject_id", "field"], update=["ciphertext", "updated_at"])
    return len(rows)


def _write_traits(session: Session, accepted: pl.DataFrame, *, current_year: int, now: datetime) -> None:
    traits = accepted.select("subject_id", *trait_values(current_year=current_year)).unique(
        subset="subject_id", keep="last", maintain_order=True
    )
    if traits.height == 0:
        return
    rows = [{**row, "updated_at": now} for row in traits.to_dicts()]
    upsert(
        session,
        SubjectTraitsRow,
        rows,
        keys=["subject_id"],
        update=["age_band", "gender", "region", "updated_at"],
        keep_where_null=["age_band", "gender", "region"],
    )
