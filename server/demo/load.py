"""Filling an empty demo database: a population generated in memory, ingested like any file.

The made-up people never touch the disk in clear: the frames live in memory and go through
``ingest_events`` (validation, keyed hashes, consent gate, a data key per new subject) chunk by
chunk, exactly as ``audience import`` would store them. Only ``audience demo generate`` writes
them to files, on purpose.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

import polars as pl
from sqlalchemy import select

from privacy.purposes import Purpose
from server.auth import api_keys
from server.auth.principal import SYSTEM_ACTOR, Role
from server.demo.generator import DemoPopulation, Progress, generate_population
from server.ingest.attributes import ATTRIBUTE_SCHEMA, AttributeResult, upsert_attributes
from server.ingest.files import DEFAULT_CHUNK_SIZE, ChunkDone, ImportTotals, chunks_of, import_chunks
from server.ingest.setup import guardrails_from, taxonomy_for
from server.partners import service as partners
from server.runtime import Runtime
from server.storage.tables import EventRow

DEMO_SOURCE: Final = "demo"
DEMO_DAYS: Final = 180
DEMO_PARTNERS: Final[dict[str, tuple[Purpose, ...]]] = {
    "partner-alpha": (Purpose.ANALYTICS, Purpose.ADVERTISING),
    "partner-beta": (Purpose.ANALYTICS, Purpose.PERSONALIZATION),
}
DEMO_KEY_PARTNER: Final = "partner-alpha"


@dataclass(frozen=True, slots=True)
class DemoKey:
    role: Role
    label: str
    token: str


def has_events(runtime: Runtime) -> bool:
    with runtime.sessions() as session:
        return session.scalar(select(EventRow.id).limit(1)) is not None


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
    records = population.attributes.select(
        "user_id", "email", "phone", "first_name", "last_name", pl.col("birth_year").cast(pl.Int64), "gender", "region"
    ).with_columns(
        anonymous_id=pl.lit(None, dtype=pl.String),
        birth_date=pl.lit(None, dtype=pl.String),
        street_address=pl.lit(None, dtype=pl.String),
    ).select(ATTRIBUTE_SCHEMA.names())
    totals = AttributeResult()
    guardrails = guardrails_from(runtime.settings)
    for offset in range(0, records.height, chunk_size):
        with runtime.unit_of_work(SYSTEM_ACTOR) as unit:
            result = upsert_attributes(unit, records.slice(offset, chunk_size), current_year=unit.clock().year,
                                       rules=unit.kit.rules, guardrails=guardrails)
        totals.received += result.received
        totals.accepted += result.accepted
        totals.fields_encrypted += result.fields_encrypted
        totals.rejected.extend((row + offset, code) for row, code in result.rejected)
    return totals


def issue_demo_keys(runtime: Runtime) -> list[DemoKey]:
    """Fresh compliance, analyst and partner keys at each start, so the tour always has them to paste."""
    keys: list[DemoKey] = []
    with runtime.unit_of_work(SYSTEM_ACTOR) as unit:
        partner = partners.find_partner(unit.session, DEMO_KEY_PARTNER)
        wanted: list[tuple[Role, str, int | None]] = [
            (Role.COMPLIANCE, "demo compliance", None),
            (Role.ANALYST, "demo analyst", None),
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
    "DemoKey",
    "ensure_partners",
    "generate",
    "has_events",
    "issue_demo_keys",
    "load_attributes",
    "load_population",
]
