"""The one flat shape every channel is read into, and the Segment-like nested shape it maps from.

GraphQL, CSV, Parquet and NDJSON all become this frame before validation, so every path runs
the same rules. The nested shape follows the Segment spec's common fields (``messageId``,
``userId``, ``anonymousId``, ``timestamp``, ``context.traits``) one-to-one.
"""

from __future__ import annotations

from typing import Final

import polars as pl

UTC_MICROS = pl.Datetime("us", "UTC")

EVENT_SCHEMA: Final = pl.Schema(
    {
        "message_id": pl.String(),
        "event": pl.String(),
        "channel": pl.String(),
        "timestamp": UTC_MICROS,
        "user_id": pl.String(),
        "anonymous_id": pl.String(),
        "email": pl.String(),
        "phone": pl.String(),
        "partner": pl.String(),
        "partner_user_id": pl.String(),
        "topics": pl.List(pl.String()),
        "category": pl.String(),
        "amount": pl.Float64(),
        "currency": pl.String(),
        "campaign": pl.String(),
        "region": pl.String(),
        "consent_purposes": pl.List(pl.String()),
        "gpc": pl.Boolean(),
    }
)

SEGMENT_SCHEMA: Final = pl.Schema(
    {
        "messageId": pl.String(),
        "type": pl.String(),
        "channel": pl.String(),
        "timestamp": pl.String(),
        "userId": pl.String(),
        "anonymousId": pl.String(),
        "context": pl.Struct(
            {
                "traits": pl.Struct({"email": pl.String(), "phone": pl.String()}),
                "partner": pl.String(),
                "partnerUserId": pl.String(),
                "consent": pl.Struct({"purposes": pl.List(pl.String()), "gpc": pl.Boolean()}),
            }
        ),
        "properties": pl.Struct(
            {
                "topics": pl.List(pl.String()),
                "category": pl.String(),
                "amount": pl.Float64(),
                "currency": pl.String(),
                "campaign": pl.String(),
                "region": pl.String(),
            }
        ),
    }
)


TIMESTAMP_PATTERN: Final = (
    r"^(\d{4}-\d{2}-\d{2})[Tt ](\d{2}:\d{2})(:\d{2})?(\.\d{1,9})?\s?(?:([Zz])|([+-]\d{2})(?::?(\d{2}))?)$"
)
"""The one rule for a timestamp written as text, on every path: an ISO-8601 date and time (``T`` or
a space between them, seconds and fraction optional) and its offset from UTC (``Z``, ``±HH:MM``,
``±HHMM`` or ``±HH``). A date alone or a time without an offset says nothing of the zone: refused."""
_CANONICAL: Final = "%Y-%m-%dT%H:%M:%S%.f%:z"


def parse_timestamps(column: pl.Expr) -> pl.Expr:
    """``TIMESTAMP_PATTERN`` text to UTC microseconds, each value on its own; anything else is null (INVALID_TIMESTAMP).

    Each value is rewritten to one canonical form and parsed with that explicit format: left to infer
    it, Polars takes the format of a column's first value and refuses every value written otherwise.
    """
    parts = column.str.extract_groups(TIMESTAMP_PATTERN)

    def part(group: int) -> pl.Expr:
        return parts.struct.field(str(group))

    offset = (
        pl.when(part(5).is_not_null())
        .then(pl.lit("+00:00"))
        .otherwise(pl.concat_str(part(6), pl.lit(":"), part(7).fill_null("00")))
    )
    canonical = pl.concat_str(part(1), pl.lit("T"), part(2), part(3).fill_null(":00"), part(4).fill_null(""), offset)
    parsed = canonical.str.to_datetime(format=_CANONICAL, time_unit="us", strict=False)
    return parsed.dt.convert_time_zone("UTC")


def from_segment(frame: pl.LazyFrame) -> pl.LazyFrame:
    """Segment-shaped records to the flat frame, in one projection."""
    context, traits, consent, properties = (
        pl.col("context"),
        pl.col("context").struct.field("traits"),
        pl.col("context").struct.field("consent"),
        pl.col("properties"),
    )
    return frame.select(
        message_id=pl.col("messageId"),
        event=pl.col("type"),
        channel=pl.col("channel"),
        timestamp=parse_timestamps(pl.col("timestamp")),
        user_id=pl.col("userId"),
        anonymous_id=pl.col("anonymousId"),
        email=traits.struct.field("email"),
        phone=traits.struct.field("phone"),
        partner=context.struct.field("partner"),
        partner_user_id=context.struct.field("partnerUserId"),
        topics=properties.struct.field("topics"),
        category=properties.struct.field("category"),
        amount=properties.struct.field("amount"),
        currency=properties.struct.field("currency"),
        campaign=properties.struct.field("campaign"),
        region=properties.struct.field("region"),
        consent_purposes=consent.struct.field("purposes"),
        gpc=consent.struct.field("gpc").fill_null(value=False),
    )


def conform(frame: pl.LazyFrame) -> pl.LazyFrame:
    """Any flat input (a CSV's strings included) cast to ``EVENT_SCHEMA``; missing columns are null.

    Null means "not said": a ``gpc`` left out (the column, or a cell) is no signal, as in the
    Segment shape, not an unknown that would block every advertising grant.
    """
    present = frame.collect_schema()
    columns = []
    for name, dtype in EVENT_SCHEMA.items():
        if name == "gpc":
            columns.append(_gpc(present.get(name)))
            continue
        if name not in present:
            columns.append(pl.lit(None, dtype=dtype).alias(name))
            continue
        source = present[name]
        column = pl.col(name)
        if source == dtype:
            columns.append(column)
        elif name == "timestamp" and source == pl.String():
            columns.append(parse_timestamps(column).alias(name))
        elif name == "timestamp":
            # A typed column (Parquet) follows the same rule as text: it must carry a time zone.
            # A naive datetime, a date or a number is refused record by record (INVALID_TIMESTAMP).
            zoned = isinstance(source, pl.Datetime) and source.time_zone is not None
            columns.append(
                column.dt.convert_time_zone("UTC").cast(UTC_MICROS)
                if zoned
                else pl.lit(None, dtype=UTC_MICROS).alias(name)
            )
        elif isinstance(dtype, pl.List) and source == pl.String():
            columns.append(
                pl.when(column.str.strip_chars() == "")
                .then(pl.lit([], dtype=dtype))
                .otherwise(column.str.split(";"))
                .alias(name)
            )
        else:
            columns.append(column.cast(dtype, strict=False))
    return frame.select(columns)


def _gpc(source: pl.DataType | None) -> pl.Expr:
    """The GPC flag: true only where the input says so (a CSV's ``true``, ``1`` or ``yes``)."""
    if source is None:
        return pl.lit(value=False).alias("gpc")
    column = pl.col("gpc")
    said = (
        column.str.to_lowercase().is_in(["true", "1", "yes"])
        if source == pl.String()
        else column.cast(pl.Boolean, strict=False)
    )
    return said.fill_null(value=False).alias("gpc")
