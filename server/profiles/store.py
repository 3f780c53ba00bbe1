"""The profile state of subjects in the database, read and written in the caller's transaction.

Three ways in, all through ``server.profiles.state``: ``fold`` adds a batch of stored events (the
real-time path), ``combine_subjects`` joins merged subjects' state, and ``recompute`` rebuilds
subjects from their events (a split, a subject whose state was missing). Only subjects with
``profiling`` consent get state (DESIGN, invariant 3); ``drop`` removes it.

A subject under a processing restriction (Art. 18, ``server.storage.restrictions``) is *frozen*:
no path updates its state and none drops it (``forget`` and ``recompute`` pass it by, a fold
skips it, a merge only moves its rows onto the surviving subject), until the restriction is lifted.

Additive tables are folded in by the database (``bulk_accumulate``: no read before the write);
interest accumulators, whose decay SQLite cannot compute, are read, combined and written back.
That read-modify-write is safe because every writer of state holds the identity writers' turn
(``server.storage.locks``): ingestion, merges, splits, consent changes (a withdrawal drops state)
and each partition of a build.
"""

from __future__ import annotations

from collections.abc import Collection, Sequence

import polars as pl
from sqlalchemy import delete
from sqlalchemy.orm import Session

from privacy.purposes import Purpose
from server.frames.profiles import (
    DAILY_SCHEMA,
    INTEREST_SCHEMA,
    STATE_EVENT_SCHEMA,
    SUMMARY_SCHEMA,
)
from server.profiles.config import InterestConfig
from server.profiles.state import ProfileState, combine, state_of
from server.storage.arrow_reads import SessionReader
from server.storage.base import Base
from server.storage.bulk import bulk_accumulate, bulk_insert, bulk_upsert
from server.storage.lookup import frame_where_in, rows_per_subject, select_where_in
from server.storage.restrictions import restricted_among, unrestricted
from server.storage.tables import (
    ProfileDailyRow,
    ProfileInterestRow,
    ProfileSummaryRow,
)

__all__ = [
    "STATE_KEYS",
    "STATE_TABLES",
    "catch_up",
    "combine_subjects",
    "consenting",
    "drop",
    "fold",
    "forget",
    "read_state",
    "recompute",
    "write_state",
]

STATE_TABLES: tuple[tuple[type[Base], pl.Schema], ...] = (
    (ProfileDailyRow, DAILY_SCHEMA),
    (ProfileSummaryRow, SUMMARY_SCHEMA),
    (ProfileInterestRow, INTEREST_SCHEMA),
)
STATE_KEYS: dict[str, list[str]] = {
    ProfileDailyRow.__tablename__: ["subject_id", "day", "type", "channel"],
    ProfileSummaryRow.__tablename__: ["subject_id"],
    ProfileInterestRow.__tablename__: ["subject_id", "topic"],
}
"""Each state table's primary key."""
CHUNK = 5_000


def consenting(session: Session, subject_ids: Sequence[int]) -> list[int]:
    """Those of ``subject_ids`` who currently grant ``profiling`` (our own purpose, not a partner's)
    and are under no restriction: whose state may be computed and shown now."""
    rows = select_where_in(
        session,
        "SELECT subject_id FROM consent_state WHERE purpose = ? AND partner_id = 0 AND granted "
        f"AND {unrestricted('consent_state.subject_id')} AND subject_id {{in}}",
        sorted(set(subject_ids)),
        params=(Purpose.PROFILING.value,),
    )
    return sorted(int(row[0]) for row in rows)


def read_state(session: Session, subject_ids: Sequence[int], *, scan: bool = False) -> ProfileState:
    """The stored state of ``subject_ids``.

    ``scan``: read each table whole, in one sequential pass, and keep the subjects' rows here. For
    a population holding most of the state (a single partition of everyone) it is the faster way
    on SQLite, where a read by key list or key range visits the key's index and then the table row
    by row (profile_daily of the demo: about 4x as long by its key range as by a scan).
    """
    ids = sorted(set(subject_ids))
    if scan:
        reader, wanted = SessionReader(session), pl.Series("subject_id", ids, pl.Int64()).implode()
        return ProfileState(
            *(
                reader.frame(f"SELECT {', '.join(schema)} FROM {model.__tablename__}", schema).filter(
                    pl.col("subject_id").is_in(wanted)
                )
                for model, schema in STATE_TABLES
            )
        )
    frames = [
        frame_where_in(
            session, f"SELECT {', '.join(schema)} FROM {model.__tablename__} WHERE subject_id {{in}}", ids, schema
        )
        for model, schema in STATE_TABLES
    ]
    return ProfileState(*frames)


def write_state(session: Session, state: ProfileState) -> int:
    """Insert ``state`` (whose subjects have none stored); returns the rows written."""
    frames = (state.daily, state.summary, state.interests)
    for (model, _schema), frame in zip(STATE_TABLES, frames, strict=True):
        bulk_insert(session, model, frame, ignore_conflicts=False)
    return sum(frame.height for frame in frames)


def drop(session: Session, subject_ids: Sequence[int]) -> None:
    ids = sorted(set(subject_ids))
    for model, _schema in STATE_TABLES:
        column = model.__table__.c.subject_id
        for start in range(0, len(ids), CHUNK):
            session.execute(delete(model).where(column.in_(ids[start : start + CHUNK])))


def forget(session: Session, subject_ids: Sequence[int]) -> None:
    """Drop the state of those of ``subject_ids`` not frozen by a restriction (which keeps it)."""
    frozen = restricted_among(session, subject_ids)
    drop(session, [subject for subject in subject_ids if subject not in frozen])


def catch_up(session: Session, subject_ids: Sequence[int], config: InterestConfig) -> None:
    """State, at once, for those of ``subject_ids`` who grant ``profiling`` now but hold none.

    A grant can arrive without an event to fold (through the consent API, or on a record the gate
    refused for its own purpose): without this, their stored events would count only at their
    next event or the next build, and a read in between would show no profile for someone who
    consents and has one. Restricted subjects are passed by (``consenting`` leaves them out).
    """
    granted = consenting(session, subject_ids)
    if not granted:
        return
    holding = {
        int(row[0])
        for row in select_where_in(session, "SELECT subject_id FROM profile_summary WHERE subject_id {in}", granted)
    }
    missing = [subject for subject in granted if subject not in holding]
    if missing:
        write_state(session, state_of(events_of(session, missing).lazy(), config))


def events_of(session: Session, subject_ids: Sequence[int]) -> pl.DataFrame:
    """Every stored event of ``subject_ids``, in the shape the state is built from."""
    return frame_where_in(
        session,
        f"SELECT {', '.join(STATE_EVENT_SCHEMA)} FROM events WHERE subject_id {{in}}",
        sorted(set(subject_ids)),
        STATE_EVENT_SCHEMA,
    )


def recompute(session: Session, subject_ids: Sequence[int], config: InterestConfig) -> None:
    """Rebuild from the events: the consenting subjects get fresh state, the others none, and the
    frozen (restricted) keep theirs untouched."""
    frozen = restricted_among(session, subject_ids)
    thawed = [subject for subject in subject_ids if subject not in frozen]
    drop(session, thawed)
    keep = consenting(session, thawed)
    if keep:
        write_state(session, state_of(events_of(session, keep).lazy(), config))


def fold(session: Session, events: pl.DataFrame, config: InterestConfig, *, new_subjects: Collection[int]) -> None:
    """Fold a batch of just-stored events (``STATE_EVENT_SCHEMA``) into their subjects' state.

    A subject seen before whose state is missing (its consent to ``profiling`` is new, or a build
    removed it) is recomputed from all its events instead, so state never covers only part of
    them; a subject without the consent keeps no state (a withdrawal recorded elsewhere already
    dropped it: ``server.consent.service``); a restricted subject's state is left as it stands.
    """
    touched = events["subject_id"].unique().to_list()
    granted = consenting(session, touched)
    if not granted:
        return
    created = set(new_subjects)
    known = [s for s in granted if s not in created]
    with_state = {
        int(row[0])
        for row in select_where_in(session, "SELECT subject_id FROM profile_summary WHERE subject_id {in}", known)
    }
    missing = [s for s in known if s not in with_state]
    if missing:
        recompute(session, missing, config)
    folded = [s for s in granted if s in created or s in with_state]
    if not folded:
        return
    incoming = state_of(events.filter(pl.col("subject_id").is_in(folded)).lazy(), config)
    fresh = [s for s in folded if s in created]
    if len(fresh) == len(folded):
        write_state(session, incoming)  # nothing stored to fold into: plain inserts
        return
    if fresh:
        new_ones = pl.col("subject_id").is_in(fresh)
        write_state(session, incoming.where(new_ones))
        incoming = incoming.where(~new_ones)
    _accumulate(session, incoming, config)


def _accumulate(session: Session, incoming: ProfileState, config: InterestConfig) -> None:
    bulk_accumulate(
        session,
        ProfileDailyRow,
        incoming.daily,
        keys=["subject_id", "day", "type", "channel"],
        add=["events", "amount"],
    )
    bulk_accumulate(
        session,
        ProfileSummaryRow,
        incoming.summary,
        keys=["subject_id"],
        least=["first_seen", "first_purchase"],
        greatest=["last_seen", "last_purchase"],
    )
    if incoming.interests.height:
        stored = frame_where_in(
            session,
            "SELECT subject_id, topic, score, as_of FROM profile_interests WHERE subject_id {in}",
            incoming.interests["subject_id"].unique().to_list(),
            INTEREST_SCHEMA,
        ).join(incoming.interests.select("subject_id", "topic"), on=["subject_id", "topic"], how="semi")
        merged = combine(
            [
                ProfileState(DAILY_SCHEMA.to_frame(), SUMMARY_SCHEMA.to_frame(), stored),
                ProfileState(DAILY_SCHEMA.to_frame(), SUMMARY_SCHEMA.to_frame(), incoming.interests),
            ],
            config,
        )
        bulk_upsert(session, ProfileInterestRow, merged.interests, keys=["subject_id", "topic"], newer="as_of")


def combine_subjects(session: Session, pairs: Sequence[tuple[int, int]], config: InterestConfig) -> None:
    """Each (winner, loser): the loser's state joins its winner's and is removed; never lost, never twice.

    Called once the losers' events are the winners' (a merge re-points them first). Combining is
    right only when each side's state covered all of its events, and a side may hold events and no
    state (it had no ``profiling`` consent when they came): combined, the winner would cover only
    part of its events, and folding later batches would never add the rest. So a winner whose
    combined state does not count each of its events once is recomputed from its events instead,
    and keeps no state unless it consents now. A restricted winner only gets its sides' rows,
    combined: neither recomputed nor dropped (its state is frozen; lifting recomputes it).
    """
    if not pairs:
        return
    winner_of = pl.DataFrame(
        {"subject_id": [loser for _w, loser in pairs], "winner": [winner for winner, _l in pairs]},
        schema={"subject_id": pl.Int64(), "winner": pl.Int64()},
    )
    involved = sorted({s for pair in pairs for s in pair})
    stored = read_state(session, involved)
    if stored.summary.height == 0:
        return

    def rekeyed(frame: pl.DataFrame) -> pl.DataFrame:
        return (
            frame.join(winner_of, on="subject_id", how="left")
            .with_columns(pl.coalesce("winner", "subject_id").alias("subject_id"))
            .drop("winner")
        )

    moved = ProfileState(*(rekeyed(f) for f in (stored.daily, stored.summary, stored.interests)))
    combined = combine([moved, ProfileState.empty()], config)
    winners = combined.subjects().to_list()
    frozen = restricted_among(session, winners)
    partial = [s for s in _not_counting_every_event(session, combined) if s not in frozen]
    granted = set(consenting(session, winners))
    unconsented = [s for s in winners if s not in granted and s not in frozen]
    drop(session, involved)
    write_state(session, combined.without([*partial, *unconsented]))  # merged consent may say no
    if partial:
        recompute(session, partial, config)


def _not_counting_every_event(session: Session, state: ProfileState) -> list[int]:
    """Subjects of ``state`` whose daily rollups do not count exactly the events they hold."""
    counted = state.daily.group_by("subject_id").agg(pl.col("events").sum().alias("counted"))
    held = pl.DataFrame(
        list(rows_per_subject(session, "events", state.subjects().to_list()).items()),
        schema={"subject_id": pl.Int64(), "held": pl.Int64()},
        orient="row",
    )
    return sorted(
        state.summary.select("subject_id")
        .join(counted, on="subject_id", how="left")
        .join(held, on="subject_id", how="left")
        .filter(pl.col("counted").fill_null(0) != pl.col("held").fill_null(0))["subject_id"]
        .to_list()
    )
