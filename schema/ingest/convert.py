"""GraphQL event inputs to the flat ingestion frame (one column list per field, then one frame)."""

from __future__ import annotations

import polars as pl

from schema.ingest.types import EventInput
from server.ingest.records import EVENT_SCHEMA, parse_timestamps


def events_frame(events: list[EventInput]) -> pl.DataFrame:
    contexts = [e.context for e in events]
    traits = [c.traits if c else None for c in contexts]
    consents = [c.consent if c else None for c in contexts]
    properties = [e.properties for e in events]
    raw = pl.DataFrame(
        {
            "message_id": [e.message_id for e in events],
            "event": [e.event_type for e in events],
            "channel": [e.channel for e in events],
            "timestamp": [e.timestamp for e in events],
            "user_id": [e.user_id for e in events],
            "anonymous_id": [e.anonymous_id for e in events],
            "email": [t.email if t else None for t in traits],
            "phone": [t.phone if t else None for t in traits],
            "partner": [None] * len(events),
            "partner_user_id": [c.partner_user_id if c else None for c in contexts],
            "topics": [p.topics if p else None for p in properties],
            "category": [p.category if p else None for p in properties],
            "amount": [p.amount if p else None for p in properties],
            "currency": [p.currency if p else None for p in properties],
            "campaign": [p.campaign if p else None for p in properties],
            "region": [p.region if p else None for p in properties],
            "consent_purposes": [c.purposes if c else None for c in consents],
            "gpc": [bool(c.gpc) if c else False for c in consents],
        },
        schema={**EVENT_SCHEMA, "timestamp": pl.String()},
    )
    return raw.with_columns(parse_timestamps(pl.col("timestamp")).alias("timestamp"))
