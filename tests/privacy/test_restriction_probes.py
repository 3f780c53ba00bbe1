"""A sender probing whether someone is restricted learns nothing: the answer to a restricted person's
events and attributes is the answer to someone who consents to nothing, field for field."""

from __future__ import annotations

import polars as pl

from server.auth.principal import SYSTEM_ACTOR
from server.ingest.attributes import ATTRIBUTE_SCHEMA, upsert_attributes
from server.ingest.setup import guardrails_from
from server.runtime import Runtime
from tests.compliance.people import restrict_person, visit
from tests.ingest.batches import NOW, fixed_clock, ingest

KEPT = "kept.restricted@example.org"
SILENT = "silent.nobody@example.org"


def test_a_restricted_person_is_answered_as_one_without_consent(runtime: Runtime) -> None:
    runtime = fixed_clock(runtime)
    ingest(runtime, [visit(KEPT, 50), visit(SILENT, 50, purposes=["analytics"])])
    restrict_person(runtime, KEPT)
    ingest(runtime, [visit(SILENT, 45, purposes=[])])  # Silent now consents to nothing
    # Kept's record grants everything and is refused for the restriction; Silent's grants nothing.
    restricted = ingest(runtime, [visit(KEPT, 30, message_id="probe-1")], source="probe")
    refused = ingest(runtime, [visit(SILENT, 30, purposes=[], message_id="probe-1")], source="probe-b")
    assert restricted == refused

    def declare(email: str) -> object:
        records = pl.DataFrame([{"email": email, "first_name": "Probe"}], schema=ATTRIBUTE_SCHEMA)
        with runtime.unit_of_work(SYSTEM_ACTOR) as unit:
            return upsert_attributes(
                unit, records, current_year=NOW.year, rules=unit.kit.rules, guardrails=guardrails_from(runtime.settings)
            )

    assert declare(KEPT) == declare(SILENT)
