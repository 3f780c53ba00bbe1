"""Writing a demo population to the file formats the CLI imports: Parquet, CSV and NDJSON.

The NDJSON is shaped like Segment's spec (``messageId``, ``type``, ``context.traits``...) because
that is what most trackers emit; it is built with struct expressions, never row by row.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from pathlib import Path
from typing import Final, Literal, get_args

import polars as pl

from server.demo.generator import EVENTS_SCHEMA, DemoPopulation, Progress, generate_population
from server.taxonomy import Taxonomy, load_taxonomy

__all__ = ["FORMATS", "SEGMENT_SCHEMA", "Format", "generate_to_directory", "segment_shape", "write_population"]

Format = Literal["parquet", "csv", "ndjson"]
FORMATS: Final[tuple[Format, ...]] = get_args(Format)
ISO_UTC: Final = "%Y-%m-%dT%H:%M:%S%.3fZ"
LIST_SEPARATOR: Final = ";"


def segment_shape(events: pl.LazyFrame) -> pl.LazyFrame:
    """Flat event columns to the nested, Segment-like record written one per NDJSON line."""
    return events.select(
        messageId="message_id",
        type="event",
        channel="channel",
        timestamp=pl.col("timestamp").dt.strftime(ISO_UTC),
        userId="user_id",
        anonymousId="anonymous_id",
        context=pl.struct(
            traits=pl.struct(email="email", phone="phone"),
            partner="partner",
            partnerUserId="partner_user_id",
            consent=pl.struct(purposes="consent_purposes", gpc="gpc"),
        ),
        properties=pl.struct("topics", "category", "amount", "currency", "campaign", "region"),
    )


SEGMENT_SCHEMA: Final = segment_shape(pl.LazyFrame(schema=EVENTS_SCHEMA)).collect_schema()
"""Pass it to ``pl.read_ndjson``: inference from the first rows fails on columns that start all-null."""


def write_population(
    population: DemoPopulation,
    out_dir: Path,
    formats: Sequence[Format] = FORMATS,
    *,
    progress: Progress | None = None,
) -> list[Path]:
    """Write events (every format asked) and the side tables (Parquet and CSV); returns the paths."""
    unknown = sorted(set(formats) - set(FORMATS))
    if unknown:
        raise ValueError(f"unknown format(s) {', '.join(unknown)}; choose from {', '.join(FORMATS)}")
    out_dir.mkdir(parents=True, exist_ok=True)
    tables = {
        "events": population.events,
        "attributes": population.attributes,
        "consent_changes": population.consent_changes,
        "defects": population.defects,
    }
    jobs: list[tuple[Path, pl.DataFrame, Format]] = [
        (out_dir / f"{name}.{fmt}", frame, fmt)
        for fmt in dict.fromkeys(formats)
        for name, frame in tables.items()
        if fmt != "ndjson" or name == "events"
    ]
    for done, (path, frame, fmt) in enumerate(jobs, start=1):
        _write(frame, path, fmt)
        if progress is not None:
            progress(f"wrote {path.name}", done / len(jobs))
    return [path for path, _, _ in jobs]


def generate_to_directory(
    out: Path,
    *,
    people: int = 20_000,
    days: int = 180,
    seed: int = 7,
    end: datetime,
    formats: Sequence[Format] = FORMATS,
    taxonomy: Taxonomy | None = None,
    progress: Progress | None = None,
) -> list[Path]:
    """The CLI's entry point: generation reports the first 60 % of progress, writing the rest."""

    def generating(stage: str, fraction: float) -> None:
        if progress is not None:
            progress(stage, 0.6 * fraction)

    def writing(stage: str, fraction: float) -> None:
        if progress is not None:
            progress(stage, 0.6 + 0.4 * fraction)

    population = generate_population(
        people=people,
        days=days,
        seed=seed,
        end=end,
        taxonomy=taxonomy if taxonomy is not None else load_taxonomy(),
        progress=generating,
    )
    return write_population(population, out, formats, progress=writing)


def _write(frame: pl.DataFrame, path: Path, fmt: Format) -> None:
    if fmt == "parquet":
        frame.write_parquet(path)
    elif fmt == "ndjson":
        segment_shape(frame.lazy()).collect().write_ndjson(path)
    else:
        _flat_for_csv(frame).write_csv(path)


def _flat_for_csv(frame: pl.DataFrame) -> pl.DataFrame:
    """CSV has no lists or time zones: lists are ``;``-joined, times are ISO-8601 with a ``Z``.

    An empty list is written as an empty quoted string, which readers should take as "none".
    """
    return frame.with_columns(
        pl.col(pl.List(pl.String)).list.join(LIST_SEPARATOR),
        pl.col(pl.Datetime).dt.strftime(ISO_UTC),
    )
