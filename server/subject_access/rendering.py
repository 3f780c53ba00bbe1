"""Turn a frame of stored rows into what the export shows the person: JSON values, meaningful names.

Whole-column rules, so they hold for any table the registry declares later:

- timestamps become ISO 8601 UTC text (``2024-06-01T12:00:00.000000Z``, ``iso``), nested ones too;
- a ``partner_id`` becomes ``partner``, the partner's name (null where there is none: our own
  link, a purpose not shared with a partner);
- a float that is not finite becomes null (JSON has no NaN);
- a text column holding a label stored as its keyed hash (``h<v>:<hex>``, ``privacy.labels``) is
  shown as stored and named in ``hashed_labels``: the label as written was never kept.

A few tables get one more touch (``TOUCHES``), never needed for a table to appear: identifiers show
their scope (``ours`` or the partner's name), an event its topics as a list, a daily rollup its
day as a date.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, date, datetime
from typing import Any, Final

import polars as pl
from polars.datatypes import DataTypeClass

from privacy.labels import HASHED_LABEL_PATTERN

__all__ = ["ISO_FORMAT", "RenderedRows", "iso", "render"]

ISO_FORMAT: Final = "%Y-%m-%dT%H:%M:%S.%fZ"
_POLARS_ISO: Final = "%Y-%m-%dT%H:%M:%S%.6fZ"  # the same text, in chrono's spelling
PARTNER_ID: Final = "partner_id"
OURS: Final = "ours"
EPOCH: Final = date(1970, 1, 1)


def iso(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime(ISO_FORMAT)


@dataclass(frozen=True, slots=True)
class RenderedRows:
    rows: list[dict[str, Any]]
    hashed_labels: tuple[str, ...]
    """Columns where at least one value is a label kept only as its keyed hash."""


def _identities(frame: pl.DataFrame) -> pl.DataFrame:
    return frame.with_columns(pl.col("partner").fill_null(OURS)).rename({"partner": "scope"})


def _events(frame: pl.DataFrame) -> pl.DataFrame:
    return frame.with_columns(pl.col("topics").str.split(";"))


def _daily(frame: pl.DataFrame) -> pl.DataFrame:
    """The rollups number days since 1970-01-01 (UTC); a person reads a date."""
    day = (pl.lit(EPOCH) + pl.duration(days=pl.col("day"))).dt.strftime("%Y-%m-%d")
    return frame.with_columns(day.alias("day")).rename({"day": "date"})


TOUCHES: Final[Mapping[str, Callable[[pl.DataFrame], pl.DataFrame]]] = {
    "identities": _identities,
    "events": _events,
    "profile_daily": _daily,
}


def render(
    frame: pl.DataFrame,
    *,
    partners: Mapping[int, str],
    table: str | None = None,
    json_columns: tuple[str, ...] = (),
) -> RenderedRows:
    """``frame``'s rows as JSON-ready dicts, columns in the frame's order."""
    schema = frame.schema
    hashed = _hashed_label_columns(frame)
    shown = frame.with_columns(_json_ready(pl.col(name), dtype).alias(name) for name, dtype in schema.items())
    if PARTNER_ID in schema:
        named = pl.col(PARTNER_ID).replace_strict(dict(partners), default=None, return_dtype=pl.String)
        shown = shown.select(named.alias("partner") if name == PARTNER_ID else pl.col(name) for name in schema)
    touch = TOUCHES.get(table) if table is not None else None
    if touch is not None:
        shown = touch(shown)
    rows = shown.to_dicts()
    for name in json_columns:
        for row in rows:
            row[name] = None if row[name] is None else json.loads(row[name])
    return RenderedRows(rows=rows, hashed_labels=hashed)


def _json_ready(value: pl.Expr, declared: pl.DataType | DataTypeClass) -> pl.Expr:
    """Timestamps as ISO text and non-finite floats as null, inside lists and structs too."""
    dtype: pl.DataType = declared() if isinstance(declared, DataTypeClass) else declared
    if isinstance(dtype, pl.Datetime):
        return value.dt.strftime(_POLARS_ISO)
    if dtype.is_float():
        return pl.when(value.is_finite()).then(value)
    if isinstance(dtype, pl.List):
        return value.list.eval(_json_ready(pl.element(), dtype.inner))
    if isinstance(dtype, pl.Struct):
        return value.struct.with_fields(_json_ready(pl.field(f.name), f.dtype).alias(f.name) for f in dtype.fields)
    return value


def _hashed_label_columns(frame: pl.DataFrame) -> tuple[str, ...]:
    text = [name for name, dtype in frame.schema.items() if dtype == pl.String()]
    if not text or frame.height == 0:
        return ()
    found = frame.select(pl.col(name).str.contains(HASHED_LABEL_PATTERN).any() for name in text).row(0)
    return tuple(name for name, present in zip(text, found, strict=True) if present)
