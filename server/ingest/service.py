"""Ingest a batch of events: validate, de-duplicate, resolve identities, gate on consent, store.

The same function serves GraphQL batches and file chunks, so both give the same answers. It
never commits: the caller's unit of work does, so a batch lands whole or not at all. A record
judged once (stored, or refused for consent or suppression) is a duplicate when sent again
(``server.ingest.receipts``): a replay changes nothing and answers the same for everyone.
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from itertools import accumulate

import polars as pl
from sqlalchemy.orm import Session

from privacy.consent import merged_state
from privacy.purposes import Purpose
from server.consent import service as consent
from server.frames.events import ROW
from server.frames.profiles import STATE_EVENT_SCHEMA
from server.frames.tallies import Outcome
from server.identity.merge import merge_subjects
from server.identity.rebuilds import RebuildReason, mark_for_rebuild
from server.identity.resolve import (
    HashedIdentifiers,
    IdentityGuardrails,
    Merge,
    Resolution,
    hash_batch,
    identifier_pairs,
    plan,
    prepare,
)
from server.ingest import consent_gate, receipts, store
from server.ingest.purposes import limited_to_declared
from server.ingest.tallies import record_tallies, tally_frame
from server.ingest.validate import REJECT, ValidatedBatch, ValidationContext, validate
from server.ingest.vocabulary import REJECT_MESSAGES, RejectCode
from server.privacy_kit import PrivacyKit
from server.profiles import store as profiles
from server.runtime import UnitOfWork
from server.storage.locks import serialize_identity_writes


@dataclass(frozen=True, slots=True)
class RejectedRecord:
    index: int
    code: RejectCode

    @property
    def message(self) -> str:
        return REJECT_MESSAGES[self.code]


@dataclass(slots=True)
class IngestResult:
    received: int = 0
    accepted: int = 0
    duplicates: int = 0
    rejected: list[RejectedRecord] = field(default_factory=list)
    dropped_topics: int = 0
    dropped_labels: int = 0
    junk_identifiers: int = 0
    new_subjects: int = 0
    merges: int = 0
    refused_merges: int = 0
    identity_limit_hits: int = 0

    def add(self, other: IngestResult, *, index_offset: int = 0) -> None:
        """Fold a chunk's result into a file's, renumbering rejected records."""
        self.received += other.received
        self.accepted += other.accepted
        self.duplicates += other.duplicates
        self.rejected.extend(RejectedRecord(r.index + index_offset, r.code) for r in other.rejected)
        for name in (
            "dropped_topics",
            "dropped_labels",
            "junk_identifiers",
            "new_subjects",
            "merges",
            "refused_merges",
            "identity_limit_hits",
        ):
            setattr(self, name, getattr(self, name) + getattr(other, name))


@dataclass(frozen=True, slots=True)
class CheckedEvents:
    """A batch validated, normalized and hashed: everything that needs no database.

    Kept apart so that a file import checks the next chunk on another core while the database
    stores this one; ``ingest_checked`` does the rest in the caller's unit of work.
    """

    validated: ValidatedBatch
    valid: pl.DataFrame
    rejected: dict[int, RejectCode]
    hashed: HashedIdentifiers


def check_events(
    events: pl.DataFrame, context: ValidationContext, kit: PrivacyKit, *, malformed: Collection[int] = ()
) -> CheckedEvents:
    """``malformed``: indices of records the caller could not read; they are rejected as such."""
    validated = validate(events, context)
    frame = limited_to_declared(validated.frame, context.partner_purposes)
    if malformed:
        frame = frame.with_columns(
            pl.when(pl.col(ROW).is_in(sorted(malformed)))
            .then(pl.lit(RejectCode.INVALID_RECORD.value))
            .otherwise(pl.col(REJECT))
            .alias(REJECT)
        )
    invalid = frame.filter(pl.col(REJECT).is_not_null()).select(ROW, REJECT)
    valid = receipts.with_message_keys(frame.filter(pl.col(REJECT).is_null()), kit)
    return CheckedEvents(
        validated=validated,
        valid=valid,
        rejected={row: RejectCode(code) for row, code in invalid.iter_rows()},
        hashed=hash_batch(valid, kit),
    )


def ingest_events(
    unit: UnitOfWork,
    events: pl.DataFrame,
    *,
    source: str,
    context: ValidationContext,
    guardrails: IdentityGuardrails,
    malformed: Collection[int] = (),
    known_as: Sequence[str] = (),
) -> IngestResult:
    """Check and store a batch in the caller's unit of work."""
    checked = check_events(events, context, unit.kit, malformed=malformed)
    return ingest_checked(unit, checked, source=source, guardrails=guardrails, known_as=known_as)


def ingest_checked(
    unit: UnitOfWork,
    checked: CheckedEvents,
    *,
    source: str,
    guardrails: IdentityGuardrails,
    known_as: Sequence[str] = (),
) -> IngestResult:
    return ingest_together(unit, [checked], source=source, guardrails=guardrails, known_as=known_as)[0]


def ingest_together(
    unit: UnitOfWork,
    batches: Sequence[CheckedEvents],
    *,
    source: str,
    guardrails: IdentityGuardrails,
    known_as: Sequence[str] = (),
) -> list[IngestResult]:
    """Batches of one source stored in one pass; each gets its own result and audit entry.

    ``source`` is the form stored now; ``known_as``, the other forms it was stored under before
    (``LabelKeeper.every_form``): records sent under any of them are duplicates.

    One pass costs about the same for one batch of 1,000 as for four, so concurrent batches are
    stored together (``server.ingest.group_commit``). Records are renumbered into one sequence and
    back; a batch's answer counts only its own records. Merges, refused merges and identity-limit
    hits belong to the pass, not to a record, and are reported on the first batch of the pass.
    The pass's counts by outcome join the source's tallies (``server.ingest.tallies``) under
    ``source``, the stored form, never a raw undeclared label.
    """
    valid, rejected, hashed, offsets = _combined(batches)
    outcome = _store(unit, valid, rejected, hashed, sources=(source, *known_as), guardrails=guardrails)
    record_tallies(unit.session, outcome.tallies(source))
    results: list[IngestResult] = []
    for position, (batch, offset) in enumerate(zip(batches, offsets, strict=True)):
        result = outcome.result_for(batch, offset, first=position == 0)
        unit.audit(
            "ingest.batch",
            details={
                "source": source,
                "received": result.received,
                "accepted": result.accepted,
                "duplicates": result.duplicates,
                "rejected": len(result.rejected),
                "new_subjects": result.new_subjects,
                "merges": result.merges,
                "refused_merges": result.refused_merges,
            },
        )
        results.append(result)
    return results


@dataclass(frozen=True, slots=True)
class _Outcome:
    """What a pass did, by record number in the combined sequence."""

    rejected: dict[int, RejectCode]
    duplicate_rows: pl.Series
    accepted_rows: pl.Series
    new_subject_rows: pl.Series  # the first stored record of each new subject
    merges: int
    refused_merges: int
    identity_limit_hits: int
    at: datetime  # when the pass ran: the day its tallies count for

    def tallies(self, source: str) -> pl.DataFrame:
        return tally_frame(
            source=source,
            at=self.at,
            counts={
                Outcome.ACCEPTED: self.accepted_rows.len(),
                Outcome.DUPLICATE: self.duplicate_rows.len(),
                Outcome.NEW_SUBJECT: self.new_subject_rows.len(),
                Outcome.MERGE: self.merges,
                Outcome.REFUSED_MERGE: self.refused_merges,
                Outcome.IDENTITY_LIMIT: self.identity_limit_hits,
            },
            rejected=self.rejected.values(),
        )

    def result_for(self, batch: CheckedEvents, offset: int, *, first: bool) -> IngestResult:
        validated = batch.validated
        end = offset + validated.frame.height

        def within(rows: pl.Series) -> int:
            return int(((rows >= offset) & (rows < end)).sum())

        return IngestResult(
            received=validated.frame.height,
            accepted=within(self.accepted_rows),
            duplicates=within(self.duplicate_rows),
            rejected=[
                RejectedRecord(row - offset, code) for row, code in sorted(self.rejected.items()) if offset <= row < end
            ],
            dropped_topics=validated.dropped_topics,
            dropped_labels=validated.dropped_labels,
            junk_identifiers=validated.junk_identifiers,
            new_subjects=within(self.new_subject_rows),
            merges=self.merges if first else 0,
            refused_merges=self.refused_merges if first else 0,
            identity_limit_hits=self.identity_limit_hits if first else 0,
        )


def _combined(
    batches: Sequence[CheckedEvents],
) -> tuple[pl.DataFrame, dict[int, RejectCode], HashedIdentifiers, list[int]]:
    """The batches' valid records, rejections and hashes, numbered on as one; and where each batch starts."""
    if len(batches) == 1:
        return batches[0].valid, batches[0].rejected, batches[0].hashed, [0]
    offsets = list(accumulate((b.validated.frame.height for b in batches[:-1]), initial=0))
    valid = pl.concat(
        b.valid.with_columns(pl.col(ROW) + pl.lit(offset, dtype=pl.UInt32))
        for b, offset in zip(batches, offsets, strict=True)
    )
    rejected = {
        row + offset: code for b, offset in zip(batches, offsets, strict=True) for row, code in b.rejected.items()
    }
    hashed = HashedIdentifiers(
        identifier_pairs(valid),  # in the order one batch of all these records would have
        pl.concat(b.hashed.digests for b in batches).unique(subset=["kind", "value", "scope", "key_version"]),
    )
    return valid, rejected, hashed, offsets


def _store(
    unit: UnitOfWork,
    valid: pl.DataFrame,
    rejected_before: dict[int, RejectCode],
    hashed: HashedIdentifiers,
    *,
    sources: Sequence[str],
    guardrails: IdentityGuardrails,
) -> _Outcome:
    """``sources``: the form to store first, then every other form it had (all are looked up)."""
    source = sources[0]
    session, now = unit.session, unit.clock()
    serialize_identity_writes(session)
    rejected = dict(rejected_before)
    # Judged before, whatever became of it, or earlier in this pass: a duplicate, never judged again.
    fresh = valid["message_id"].is_first_distinct() & ~receipts.already_judged(
        session, sources, valid[receipts.MESSAGE_KEYS]
    )
    candidates = valid.filter(fresh)
    duplicate_rows = valid.filter(~fresh)[ROW]

    prepared = prepare(session, candidates, unit.kit, hashed)
    first = plan(prepared, guardrails)
    rejected.update(dict.fromkeys(first.suppressed_rows.to_list(), RejectCode.SUPPRESSED))
    rejected.update(dict.fromkeys(first.ambiguous_rows.to_list(), RejectCode.AMBIGUOUS_IDENTITY))
    resolved = candidates.join(first.rows, on=ROW, how="inner")
    known_subjects = sorted(set(resolved["subject_id"].to_list()) - set(first.new_subjects))
    states = consent_gate.current_states(session, known_subjects)
    if first.merges:
        states = _with_merged_states(session, states, first.merges)
    restricted = consent_gate.restricted_subjects(session, known_subjects, first.merges)
    decision = consent_gate.decide(resolved, states, source=source, now=now, restricted=restricted)
    ledger_known = decision.ledger.filter(pl.col("subject_id").is_in(known_subjects))

    allowed_rows = decision.allowed_rows.to_frame(ROW)
    allowed = resolved.join(allowed_rows, on=ROW, how="semi")
    final: Resolution = first
    if allowed.height < resolved.height:
        refused = resolved.join(allowed_rows, on=ROW, how="anti")[ROW]
        rejected.update(dict.fromkeys(refused.to_list(), RejectCode.NO_CONSENT))
        final = plan(prepared, guardrails, rows=decision.allowed_rows)
        allowed = allowed.drop("subject_id").join(final.rows, on=ROW, how="inner")
    ledger_new = _ledger_of_new_subjects(decision.ledger, resolved, first, final)

    # Merge first, then record the batch's statements: they are newer than either side's state, and
    # merged after recording they would be weighed again against the losers' older state.
    created = (  # the first stored record of each new subject
        allowed.filter(pl.col("subject_id").is_in(final.new_subjects)).group_by("subject_id").agg(pl.col(ROW).min())
    )
    merge_subjects(unit, [(m.winner, loser) for m in final.merges for loser in m.losers], reason="shared identifier")
    store.create_subjects(session, created, unit.kit, now)
    consent.record_frame(session, pl.concat([ledger_known, ledger_new]))  # one pass: disjoint subjects
    store.insert_identities(session, final.new_identities, now)
    stored_events = store.event_rows(allowed, source=source, now=now)
    store.insert_events(session, stored_events)
    profiles.fold(
        session,
        stored_events.select(list(STATE_EVENT_SCHEMA)),
        unit.profiles.interests,
        new_subjects=final.new_subjects,
    )
    profiles.catch_up(session, _granted_profiling(ledger_known, stored_events), unit.profiles.interests)
    # Segments re-evaluate these subjects once this commits (consent changes mark their own, and
    # the merge above marked its sides with its own reason, which is kept).
    merged = {subject for m in final.merges for subject in (m.winner, *m.losers)}
    folded = stored_events.filter(~pl.col("subject_id").is_in(sorted(merged)))["subject_id"].unique().to_list()
    mark_for_rebuild(session, folded, reason=RebuildReason.EVENTS, now=now)
    receipts.insert_receipts(session, candidates.join(allowed.select(ROW), on=ROW, how="anti"), source=source)

    return _Outcome(
        rejected=rejected,
        duplicate_rows=duplicate_rows,
        accepted_rows=allowed[ROW],
        new_subject_rows=created[ROW],
        merges=sum(len(m.losers) for m in final.merges),
        refused_merges=final.refused_merges,
        identity_limit_hits=final.identity_limit_hits,
        at=now,
    )


def _granted_profiling(ledger: pl.DataFrame, folded: pl.DataFrame) -> list[int]:
    """Known subjects whose batch granted ``profiling`` with none of their events stored in it (the
    fold saw them not): ``catch_up`` gives them the state of the events they already had."""
    granted = ledger.filter(
        (pl.col("purpose") == Purpose.PROFILING.value) & (pl.col("partner_id") == 0) & pl.col("granted")
    )["subject_id"]
    return sorted(set(granted.to_list()) - set(folded["subject_id"].to_list()))


def _ledger_of_new_subjects(
    ledger: pl.DataFrame, resolved: pl.DataFrame, first: Resolution, final: Resolution
) -> pl.DataFrame:
    """Consent statements of people created by this batch, from all their records.

    The first decision already holds them (a new person has no prior state), keyed by the first
    pass's subject ids; records refused for lack of consent still speak, so a grant and a later
    withdrawal in one batch leave the withdrawal standing. Each first-pass subject is mapped to
    the subject its stored records finally went to; people with no stored record are not created.
    """
    mapping = (
        resolved.select(ROW, pl.col("subject_id").alias("first_subject"))
        .join(final.rows, on=ROW, how="inner")
        .sort(ROW)  # "first" is the earliest record, whatever order the join produced
        .select("first_subject", "subject_id")
        .unique(subset="first_subject", keep="first", maintain_order=True)
    )
    return (
        ledger.filter(pl.col("subject_id").is_in(sorted(first.new_subjects)))
        .rename({"subject_id": "first_subject"})
        .join(mapping, on="first_subject", how="inner")
        .filter(pl.col("subject_id").is_in(sorted(final.new_subjects)))
        .select(ledger.columns)
    )


def _with_merged_states(session: Session, states: pl.DataFrame, merges: list[Merge]) -> pl.DataFrame:
    """Records that merge subjects are judged on the consent of all of them, merged most-restrictively,
    as the merge itself will leave it: one side's withdrawal is not bypassed by the other's grant."""
    involved = sorted({s for m in merges for s in (m.winner, *m.losers)})
    by_subject = consent.current_states(session, involved)
    rows: list[tuple[object, ...]] = []
    for merge in merges:
        merged = merged_state(*(by_subject.get(side, {}) for side in (merge.winner, *merge.losers)))
        rows += [(merge.winner, k.purpose.value, k.partner_id, v.granted, v.since) for k, v in merged.items()]
    winners = [merge.winner for merge in merges]
    return pl.concat([states.filter(~pl.col("subject_id").is_in(winners)), consent_gate.current_states_frame(rows)])
