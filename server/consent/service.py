"""The consent ledger in the database: append an entry, keep the derived state in step, check it.

The state table is a cache of ``privacy.consent.derive_state`` over the ledger, updated in the
same transaction as each append, so a withdrawal is visible to the very next query.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from datetime import datetime

import polars as pl
from sqlalchemy import and_, select, text
from sqlalchemy.orm import Session

from privacy.consent import (
    NO_PARTNER,
    ConsentEntry,
    ConsentError,
    ConsentKey,
    ConsentPurpose,
    ConsentStatus,
    LegalBasis,
    PrivacySignal,
)
from privacy.purposes import Purpose
from server.identity.rebuilds import RebuildReason, mark_for_rebuild
from server.profiles import store as profiles
from server.storage.base import utc_now
from server.storage.bulk import bulk_insert, bulk_upsert
from server.storage.locks import serialize_identity_writes
from server.storage.lookup import frame_where_in
from server.storage.restrictions import unrestricted
from server.storage.tables import ConsentRecordRow, ConsentStateRow, PartnerRow
from server.storage.upsert import table_of

_LABEL = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._:/-]*$")
LABEL_LIMITS = {"source": 64, "policy_version": 32}  # the column widths
CHECK_CHUNK = 5_000


def check_labels(*, source: str, policy_version: str) -> None:
    """Checked before any write, so a refused request leaves nothing behind."""
    _check_label("source", source)
    _check_label("policy_version", policy_version)


def require_partner(session: Session, partner_id: int | None) -> None:
    if partner_id is not None and session.get(PartnerRow, partner_id) is None:
        raise ConsentError("UNKNOWN_PARTNER", "no partner has this id")


def _check_label(name: str, value: str) -> None:
    """Sources and policy versions are labels, not free text, so no personal data can ride along."""
    limit = LABEL_LIMITS[name]
    if len(value) > limit or not _LABEL.match(value):
        raise ConsentError(f"INVALID_{name.upper()}", f"{name} must be 1-{limit} characters of letters, digits, ._:/-")


def record(
    session: Session,
    *,
    subject_id: int,
    key: ConsentKey,
    granted: bool,
    legal_basis: LegalBasis,
    source: str,
    policy_version: str,
    now: datetime,
) -> ConsentEntry:
    _check_label("source", source)
    _check_label("policy_version", policy_version)
    entry = ConsentEntry(key, granted, legal_basis, source, policy_version, now)
    record_many(session, [(subject_id, entry)])
    return entry


LEDGER_SCHEMA = pl.Schema(
    {
        "subject_id": pl.Int64(),
        "purpose": pl.String(),
        "partner_id": pl.Int64(),
        "granted": pl.Boolean(),
        "legal_basis": pl.String(),
        "source": pl.String(),
        "policy_version": pl.String(),
        "recorded_at": pl.Datetime("us", "UTC"),
    }
)
STATE_KEYS = ["subject_id", "purpose", "partner_id"]
STATE_FRAME_SCHEMA = pl.Schema(
    {
        "subject_id": pl.Int64(),
        "purpose": pl.String(),
        "partner_id": pl.Int64(),
        "granted": pl.Boolean(),
        "since": pl.Datetime("us", "UTC"),
    }
)


def record_many(session: Session, entries: Sequence[tuple[int, ConsentEntry]]) -> None:
    """Append entries and move the derived state forward."""
    record_frame(
        session,
        pl.DataFrame(
            [
                (
                    subject_id,
                    e.key.purpose.value,
                    e.key.partner_id,
                    e.granted,
                    e.legal_basis.value,
                    e.source,
                    e.policy_version,
                    e.recorded_at,
                )
                for subject_id, e in entries
            ],
            schema=LEDGER_SCHEMA,
            orient="row",
        ),
    )


def record_frame(session: Session, ledger: pl.DataFrame) -> None:
    """The columnar form of ``record_many`` (``LEDGER_SCHEMA``): one bulk insert, one state upsert.

    The state moves to an entry only if it is not older than the stored state: a statement that
    arrives late (an old file imported after a withdrawal) is kept in the ledger, never in force.

    It takes the identity writers' turn first, as every writer of profile state does: a consent
    change decides whose state a build partition may write, and one committed between the
    partition's read and its write would let the build write state for someone who just withdrew
    (on PostgreSQL; SQLite's one write lock already orders them). Before any write, so that it is
    never waited for while holding row locks a turn-holder needs.
    """
    if ledger.height == 0:
        return
    serialize_identity_writes(session)
    bulk_insert(session, ConsentRecordRow, ledger, ignore_conflicts=False)
    latest = ledger.sort("recorded_at").group_by(STATE_KEYS, maintain_order=True).last()
    bulk_upsert(
        session,
        ConsentStateRow,
        latest.select(*STATE_KEYS, "granted", pl.col("recorded_at").alias("since")),
        keys=STATE_KEYS,
        newer="since",
    )
    _forget_withdrawn_profiles(session, latest)
    # Segments and partner audiences follow consent: re-evaluated once this commits.
    mark_for_rebuild(session, latest["subject_id"].unique().to_list(), reason=RebuildReason.CONSENT, now=utc_now())


def _forget_withdrawn_profiles(session: Session, latest: pl.DataFrame) -> None:
    """A profile exists only under ``profiling`` consent: a withdrawal in force drops its state at
    once, so that nothing folded before it is built on after a later grant (which recomputes). A
    restricted subject's state is kept (``profiles.forget``): lifting recomputes it under the
    consent then in force."""
    withdrawn = latest.filter(
        (pl.col("purpose") == ConsentPurpose.PROFILING.value) & (pl.col("partner_id") == 0) & ~pl.col("granted")
    )["subject_id"].to_list()
    if withdrawn:
        still_granted = set(profiles.consenting(session, withdrawn))
        profiles.forget(session, [subject for subject in withdrawn if subject not in still_granted])


def record_signal(
    session: Session, *, subject_id: int, signal: PrivacySignal, source: str, now: datetime
) -> ConsentEntry:
    """GPC and an Art. 21 objection are recorded as what they mean: advertising withdrawn."""
    return record(
        session,
        subject_id=subject_id,
        key=ConsentKey(ConsentPurpose.ADVERTISING),
        granted=False,
        legal_basis=LegalBasis.CONSENT,
        source=source,
        policy_version=signal.value,
        now=now,
    )


def current_state(session: Session, subject_id: int) -> dict[ConsentKey, ConsentStatus]:
    rows = session.execute(select(ConsentStateRow).where(ConsentStateRow.subject_id == subject_id)).scalars()
    return {
        ConsentKey(ConsentPurpose(row.purpose), row.partner_id): ConsentStatus(row.granted, row.since) for row in rows
    }


def state_frame(session: Session, subject_ids: Sequence[int]) -> pl.DataFrame:
    """Current state of many subjects as a frame (``STATE_FRAME_SCHEMA``), read on the driver."""
    return frame_where_in(
        session,
        "SELECT subject_id, purpose, partner_id, granted, since FROM consent_state WHERE subject_id {in}",
        sorted(set(subject_ids)),
        STATE_FRAME_SCHEMA,
    )


def current_states(session: Session, subject_ids: Sequence[int]) -> dict[int, dict[ConsentKey, ConsentStatus]]:
    """Current state of many subjects as objects, for merges and compliance reads."""
    states: dict[int, dict[ConsentKey, ConsentStatus]] = {}
    keys: dict[tuple[str, int], ConsentKey] = {}
    for subject_id, purpose, partner_id, granted, since in state_frame(session, subject_ids).iter_rows():
        key = keys.get((purpose, partner_id))
        if key is None:
            key = keys[(purpose, partner_id)] = ConsentKey(ConsentPurpose(purpose), partner_id)
        states.setdefault(subject_id, {})[key] = ConsentStatus(granted, since)
    return states


def history(session: Session, subject_id: int) -> list[ConsentEntry]:
    rows = session.execute(
        select(ConsentRecordRow)
        .where(ConsentRecordRow.subject_id == subject_id)
        .order_by(ConsentRecordRow.recorded_at, ConsentRecordRow.id)
    ).scalars()
    return [
        ConsentEntry(
            ConsentKey(ConsentPurpose(row.purpose), row.partner_id),
            row.granted,
            LegalBasis(row.legal_basis),
            row.source,
            row.policy_version,
            row.recorded_at,
        )
        for row in rows
    ]


def declared_purposes(session: Session, partner_id: int) -> frozenset[str]:
    """The purposes a partner registered for; none for a partner that does not exist."""
    partner = session.get(PartnerRow, partner_id)
    return frozenset() if partner is None else frozenset(partner.purposes)


def subjects_allowed(
    session: Session, subject_ids: Iterable[int], purpose: Purpose, *, partner_id: int | None = None
) -> set[int]:
    """The subset of ``subject_ids`` whose data may serve ``purpose`` (and reach ``partner_id``).

    The same rule as ``privacy.consent.may_use``, in one query per chunk of subjects; a partner,
    besides, reaches no one for a purpose it did not declare (``partners.purposes``), and no purpose
    reaches a subject under a processing restriction (``server.storage.restrictions``).
    """
    if partner_id is not None and purpose.value not in declared_purposes(session, partner_id):
        return set()
    ids = sorted(set(subject_ids))
    allowed: set[int] = set()
    for start in range(0, len(ids), CHECK_CHUNK):
        chunk = ids[start : start + CHECK_CHUNK]
        query = select(ConsentStateRow.subject_id).where(
            ConsentStateRow.subject_id.in_(chunk),
            ConsentStateRow.purpose == purpose.value,
            ConsentStateRow.partner_id == NO_PARTNER,
            ConsentStateRow.granted.is_(True),
            text(unrestricted("consent_state.subject_id")),
        )
        if partner_id is not None:
            shared = table_of(ConsentStateRow).alias("shared")
            query = query.join(
                shared,
                and_(
                    shared.c.subject_id == ConsentStateRow.subject_id,
                    shared.c.purpose == ConsentPurpose.SHARING.value,
                    shared.c.partner_id == partner_id,
                    shared.c.granted.is_(True),
                ),
            )
        allowed.update(session.scalars(query))
    return allowed
