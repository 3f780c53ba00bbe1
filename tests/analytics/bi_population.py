"""A small population for the published aggregates: k = 10, one segment of 193 people whose regions
make a cell shown (FR: 120, far past the noisy threshold), a region below k (DE: 3, never named,
counted in ``other``), and 70 without a region (the smallest shown cell, hidden with ``other``, or
the size minus FR would tell how few are there); and one segment of 3 people (below k). Every
margin is many noise scales wide at scale 5, so the pattern is the same under every keyring."""

from __future__ import annotations

import polars as pl

from server.auth.principal import SYSTEM_ACTOR
from server.ingest.attributes import ATTRIBUTE_SCHEMA, upsert_attributes
from server.ingest.setup import guardrails_from
from server.runtime import Runtime
from server.segments.evaluate import evaluate_population
from server.segments.rules import Compare, CompareOp, EventWindow, LastDays
from tests.ingest.batches import event, ingest
from tests.segments.segment_steps import add_segment

K = 10
PEOPLE = 193
REGIONS = ["FR"] * 120 + ["DE"] * 3  # the last 70 people declare none
BUYERS = 3
EVERYONE = "everyone"
FEW_BUYERS = "few_buyers"


def email(n: int) -> str:
    return f"bi{n}@example.org"


def _declare_regions(runtime: Runtime) -> None:
    records = pl.DataFrame(
        [{"email": email(n), "region": region} for n, region in enumerate(REGIONS)], schema=ATTRIBUTE_SCHEMA
    )
    with runtime.unit_of_work(SYSTEM_ACTOR) as unit:
        result = upsert_attributes(
            unit,
            records,
            current_year=unit.clock().year,
            rules=unit.kit.rules,
            guardrails=guardrails_from(runtime.settings),
        )
    assert result.accepted == len(REGIONS), result.rejected


def populate(runtime: Runtime) -> dict[str, int]:
    """Both segments, evaluated; returns their ids by name."""
    consenting = ["analytics", "profiling"]
    ingest(runtime, [event(email=email(n), consent_purposes=consenting) for n in range(PEOPLE)])
    ingest(
        runtime,
        [
            event(email=email(n), event="purchase", consent_purposes=consenting, amount=10.0, currency="EUR")
            for n in range(BUYERS)
        ],
    )
    _declare_regions(runtime)
    ids = {
        EVERYONE: add_segment(runtime, EVERYONE, Compare("events_lifetime", CompareOp.GE, 1)),
        FEW_BUYERS: add_segment(runtime, FEW_BUYERS, EventWindow("purchase", LastDays(30), at_least=1)),
    }
    evaluate_population(runtime)
    return ids
