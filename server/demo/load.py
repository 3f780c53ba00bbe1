"""Filling an empty demo database: a population generated in memory, ingested like any file.

The made-up people never touch the disk in clear: the frames live in memory and go through
``ingest_events`` (validation, keyed hashes, consent gate, a data key per new subject) chunk by
chunk, exactly as ``audience import`` would store them; their declared attributes go through
``upsert_attributes``, and the consent banner's grants and withdrawals into the consent ledger,
found by the keyed hashes of the identifiers they name. Only ``audience demo generate`` writes
them to files, on purpose.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

import polars as pl
from sqlalchemy import select
from sqlalchemy.orm import Session

from privacy.consent import NO_PARTNER, ConsentError, LegalBasis, PrivacySignal
from privacy.identifiers import IdentifierKind
from privacy.purposes import Purpose
from server.auth import api_keys
from server.auth.principal import SYSTEM_ACTOR, Role
from server.consent import service as consent
from server.consent.requests import find_subjects
from server.demo.generator import DemoPopulation, Progress, generate_population
from server.ingest.attributes import ATTRIBUTE_SCHEMA, AttributeResult, upsert_attributes
from server.ingest.files import DEFAULT_CHUNK_SIZE, ChunkDone, ImportTotals, chunks_of, import_chunks
from server.ingest.setup import guardrails_from
from server.partners import service as partners
from server.runtime import Runtime
from server.storage.tables import ConsentRecordRow, EventRow
from server.taxonomy.taxonomy import taxonomy_for

DEMO_SOURCE: Final = "demo"
DEMO_DAYS: Final = 180
DEMO_PARTNERS: Final[dict[str, tuple[Purpose, ...]]] = {
    "partner-alpha": (Purpose.ANALYTICS, Purpose.ADVERTISING),
    "partner-beta": (Purpose.ANALYTICS, Purpose.PERSONALIZATION),
}
DEMO_KEY_PARTNER: Final = "partner-alpha"
DEMO_POLICY_VERSION: Final = "demo"
# Which identifier columns of a consent change name the person, and as what.
CONSENT_CHANGE_IDENTIFIERS: Final = (
    ("user_id", IdentifierKind.CUSTOMER_ID),
    ("anonymous_id", IdentifierKind.DEVICE_ID),
)


@dataclass(frozen=True, slots=True)
class DemoKey:
    role: Role
    label: str
    token: str


def has_events(runtime: Runtime) -> bool:
    with runtime.sessions() as session:
        return session.scalar(select(EventRow.message_key).limit(1)) is not None


def ensure_partners(runtime: Runtime) -> dict[str, int]:
    """The generator's partners, registered with their declared purposes unless they exist already."""
    ids: dict[str, int] = {}
    with runtime.unit_of_work(SYSTEM_ACTOR) as unit:
        for name, purposes in DEMO_PARTNERS.items():
            found = partners.find_partner(unit.session, name)
            if found is None:
                found = partners.create_partner(unit.session, name=name, purposes=purposes, now=unit.clock())
                unit.audit("partner.create", target=f"partner:{found.id}", details={"purposes": ",".join(purposes)})
            ids[name] = found.id
    return ids


def generate(runtime: Runtime, *, people: int, seed: int, on_progress: Progress | None = None) -> DemoPopulation:
    """In memory, ending now, so every event falls inside the retention window."""
    return generate_population(
        people=people,
        days=DEMO_DAYS,
        seed=seed,
        end=runtime.clock(),
        taxonomy=taxonomy_for(runtime.settings.taxonomy_extra),
        progress=on_progress,
    )


def load_population(
    runtime: Runtime,
    population: DemoPopulation,
    *,
    chunk_size: int = DEFAULT_CHUNK_SIZE,
    on_chunk: ChunkDone | None = None,
) -> ImportTotals:
    """The demo partners first (events name them), then the events in chunks, one commit each."""
    ensure_partners(runtime)
    return import_chunks(runtime, chunks_of(population.events, chunk_size), source=DEMO_SOURCE, on_chunk=on_chunk)


def load_attributes(runtime: Runtime, population: DemoPopulation, *, chunk_size: int = 5_000) -> AttributeResult:
    """The people's declared attributes, through the same path as any first-party source."""
    records = (
        population.attributes.select(
            "user_id",
            "email",
            "phone",
            "first_name",
            "last_name",
            pl.col("birth_year").cast(pl.Int64),
            "gender",
            "region",
        )
        .with_columns(
            anonymous_id=pl.lit(None, dtype=pl.String),
            birth_date=pl.lit(None, dtype=pl.String),
            street_address=pl.lit(None, dtype=pl.String),
        )
        .select(ATTRIBUTE_SCHEMA.names())
    )
    totals = AttributeResult()
    guardrails = guardrails_from(runtime.settings)
    for offset in range(0, records.height, chunk_size):
        with runtime.unit_of_work(SYSTEM_ACTOR) as unit:
            result = upsert_attributes(
                unit,
                records.slice(offset, chunk_size),
                current_year=unit.clock().year,
                rules=unit.kit.rules,
                guardrails=guardrails,
            )
        totals.received += result.received
        totals.accepted += result.accepted
        totals.fields_encrypted += result.fields_encrypted
        totals.rejected.extend((row + offset, code) for row, code in result.rejected)
    return totals


@dataclass(frozen=True, slots=True)
class ConsentChangesResult:
    """Counts only: who changed what stays in the ledger, behind the subjects' pseudonyms."""

    received: int
    withdrawals: int
    recorded: int
    already_recorded: int
    unknown: int
    subjects: int


def load_consent_changes(runtime: Runtime, population: DemoPopulation) -> ConsentChangesResult:
    """The banner's grants and withdrawals, into the ledger like consent collected by a CMP; after the events.

    Each change reaches the subjects that the identifiers it names (customer id, device id) are
    stored under, found by their keyed hashes in bulk. A change naming no one the server knows
    changes nothing and is counted: unlike ``recordConsent`` it never creates a subject, since
    the demo's people are made known by their events. The ledger's latest-dated entry wins
    whatever the loading order: a banner grant older than the events' own statements is kept as
    history without moving the state, and a withdrawal dated after them leaves the person
    withdrawn. Order matters in one way only: a change loaded before its person's events finds no
    one, so this runs after them, and a later run records what an earlier one could not. An entry
    already in the ledger (from an earlier run) is not appended again.
    """
    changes = population.consent_changes.with_row_index("change")
    purposes = [purpose.value for purpose in Purpose]
    if not changes["purpose"].is_in(purposes).all():
        raise ConsentError("UNKNOWN_PURPOSE", f"a consent change names a purpose outside {', '.join(purposes)}")
    labelled = changes.with_columns(
        source=pl.format(f"{DEMO_SOURCE}:{{}}", "source"),
        policy_version=pl.when(pl.col("source") == PrivacySignal.GLOBAL_PRIVACY_CONTROL.value)
        .then(pl.lit(PrivacySignal.GLOBAL_PRIVACY_CONTROL.value))
        .otherwise(pl.lit(DEMO_POLICY_VERSION)),
    )
    for source, policy_version in labelled.select("source", "policy_version").unique().iter_rows():
        consent.check_labels(source=source, policy_version=policy_version)
    with runtime.unit_of_work(SYSTEM_ACTOR) as unit:
        named = pl.concat(
            [
                changes.select(
                    "change",
                    find_subjects(unit.session, kind=kind, values=changes[column], kit=unit.kit).alias("subject_id"),
                )
                for column, kind in CONSENT_CHANGE_IDENTIFIERS
            ]
        ).drop_nulls("subject_id")
        ledger = (
            labelled.join(named, on="change", how="inner")
            .select(
                "subject_id",
                "purpose",
                pl.lit(NO_PARTNER).alias("partner_id"),
                "granted",
                pl.lit(LegalBasis.CONSENT.value).alias("legal_basis"),
                "source",
                "policy_version",
                pl.col("timestamp").alias("recorded_at"),
            )
            .cast(consent.LEDGER_SCHEMA)
            .unique(maintain_order=True)
        )
        subjects = ledger["subject_id"].unique().to_list()
        earlier = _demo_ledger_entries(unit.session, subjects)
        fresh = ledger.join(earlier, on=ledger.columns, how="anti", nulls_equal=True)
        consent.record_frame(unit.session, fresh)
        result = ConsentChangesResult(
            received=changes.height,
            withdrawals=int((~changes["granted"]).sum()),
            recorded=fresh.height,
            already_recorded=ledger.height - fresh.height,
            unknown=changes.height - named["change"].n_unique(),
            subjects=len(subjects),
        )
        unit.audit(
            "consent.import",
            details={
                "source": DEMO_SOURCE,
                "received": result.received,
                "recorded": result.recorded,
                "already_recorded": result.already_recorded,
                "unknown": result.unknown,
                "subjects": result.subjects,
            },
        )
    return result


def _demo_ledger_entries(session: Session, subject_ids: list[int]) -> pl.DataFrame:
    """The entries an earlier run left for these subjects, in ``LEDGER_SCHEMA``: one query per chunk."""
    found: list[tuple[object, ...]] = []
    columns = [getattr(ConsentRecordRow, name) for name in consent.LEDGER_SCHEMA.names()]
    for start in range(0, len(subject_ids), consent.CHECK_CHUNK):
        query = select(*columns).where(
            ConsentRecordRow.subject_id.in_(subject_ids[start : start + consent.CHECK_CHUNK]),
            ConsentRecordRow.source.startswith(f"{DEMO_SOURCE}:"),
        )
        found.extend(tuple(row) for row in session.execute(query))
    return pl.DataFrame(found, schema=consent.LEDGER_SCHEMA, orient="row")


def issue_demo_keys(runtime: Runtime) -> list[DemoKey]:
    """Fresh compliance, analyst, marketer and partner keys at each start, so the tour always has them to paste."""
    keys: list[DemoKey] = []
    with runtime.unit_of_work(SYSTEM_ACTOR) as unit:
        partner = partners.find_partner(unit.session, DEMO_KEY_PARTNER)
        wanted: list[tuple[Role, str, int | None]] = [
            (Role.COMPLIANCE, "demo compliance", None),
            (Role.ANALYST, "demo analyst", None),
            (Role.MARKETER, "demo marketer", None),
        ]
        if partner is not None:
            wanted.append((Role.PARTNER, f"demo {DEMO_KEY_PARTNER}", partner.id))
        for role, label, partner_id in wanted:
            issued = api_keys.create_key(unit.session, role=role, label=label, now=unit.clock(), partner_id=partner_id)
            unit.audit("api_key.create", target=f"api_key:{issued.key_id}", details={"role": role.value})
            keys.append(DemoKey(role=role, label=label, token=issued.token))
    return keys


__all__ = [
    "DEMO_PARTNERS",
    "DEMO_SOURCE",
    "ConsentChangesResult",
    "DemoKey",
    "ensure_partners",
    "generate",
    "has_events",
    "issue_demo_keys",
    "load_attributes",
    "load_consent_changes",
    "load_population",
]
