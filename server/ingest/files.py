"""Event files (CSV, NDJSON, Parquet) read in chunks, and chunks ingested one unit of work each.

A file may be larger than memory, so it is never read whole: a pull-based Arrow reader decodes
the next block only when the previous chunk has been stored, and blocks are re-cut into chunks
of exactly ``chunk_size`` records, so chunk boundaries do not depend on the reader's block size.
Each chunk is committed on its own: a crash loses at most the chunk in flight, and a rerun finds
the earlier chunks' ``(source, message_id)`` pairs in the database and stores nothing twice.

Why Arrow readers and not ``LazyFrame.collect_batches``: in Polars 2.1, ``collect_batches`` and
``sink_batches`` over ``scan_csv`` / ``scan_ndjson`` keep decoding while the consumer is busy, so
with a consumer slower than the reader (ingestion is) the whole file ends up buffered in memory
(measured: resident memory grows with the file's size). ``pyarrow.csv.open_csv``,
``pyarrow.json.open_json`` and ``ParquetFile.iter_batches`` decode on demand; Polars takes over
from each block (``conform`` / ``from_segment``, whole-column expressions).

Errors name the format and the record number, never a value: a parser's own message may quote
the offending line, which can hold personal data.
"""

from __future__ import annotations

import csv
import enum
import io
import json
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack
from dataclasses import dataclass, field, replace
from pathlib import Path
from types import TracebackType
from typing import IO, Final

import polars as pl
import pyarrow as pa
import pyarrow.csv as pa_csv
import pyarrow.json as pa_json
import pyarrow.parquet as pa_parquet
from polars.datatypes import DataTypeClass

from server.auth.principal import SYSTEM_ACTOR, Actor
from server.ingest.event_shape import FILE_EVENT_KEYS, fields_outside_ndjson
from server.ingest.records import EVENT_SCHEMA, SEGMENT_SCHEMA, conform, from_segment
from server.ingest.service import CheckedEvents, IngestResult, RejectedRecord, check_events, ingest_checked
from server.ingest.setup import guardrails_from, validation_context
from server.ingest.vocabulary import REJECT_MESSAGES, RejectCode
from server.runtime import Runtime

# Larger chunks amortize the per-pass lookups of people whose events span chunks: on a 600,000-event
# file, 50,000 → 24.5 k events/s, 200,000 → 38.9 k/s, for 0.5 GB more peak memory (two chunks in flight).
DEFAULT_CHUNK_SIZE: Final = 200_000
BLOCK_BYTES: Final = 8 << 20
"""Arrow reads CSV and NDJSON in blocks of this size; an NDJSON line must fit in one block (a longer
one is named in the error, ``first_line_longer_than``)."""
REQUIRED_COLUMN: Final = "message_id"


class FileFormat(enum.StrEnum):
    CSV = "csv"
    NDJSON = "ndjson"
    PARQUET = "parquet"


EXTENSIONS: Final[dict[str, FileFormat]] = {
    ".csv": FileFormat.CSV,
    ".ndjson": FileFormat.NDJSON,
    ".jsonl": FileFormat.NDJSON,
    ".parquet": FileFormat.PARQUET,
    ".pq": FileFormat.PARQUET,
}


class FileImportError(Exception):
    """The file cannot be read (missing, unknown format, missing column, unparsable); one line, no values."""


@dataclass(frozen=True, slots=True)
class EventChunk:
    """``frame`` has ``EVENT_SCHEMA``; ``offset`` is the number of records before it in the file."""

    frame: pl.DataFrame
    offset: int
    done: int
    total: int


def detect_format(path: Path, explicit: str | None = None) -> FileFormat:
    if explicit is not None:
        try:
            return FileFormat(explicit.lower())
        except ValueError:
            raise FileImportError(f"unknown format; choose one of {', '.join(FileFormat)}") from None
    found = EXTENSIONS.get(path.suffix.lower())
    if found is None:
        raise FileImportError(
            f"cannot tell the format from the extension {path.suffix or '(none)'!r}; "
            f"use {', '.join(EXTENSIONS)} or pass --format"
        )
    return found


class EventFile:
    """An open event file; iterate ``chunks(size)`` once. Use as a context manager to close it."""

    def __init__(self, path: Path, file_format: FileFormat) -> None:
        self.path, self.format = path, file_format
        self.ignored_columns = 0  # columns outside the event shape: never read, never stored
        self.dropped_fields = 0  # NDJSON: values under keys outside the event shape, never stored; final once read
        self._stack = ExitStack()
        try:
            self._stream: IO[bytes] = self._stack.enter_context(path.open("rb"))
        except FileNotFoundError:
            raise FileImportError(f"{path.name}: no such file") from None
        except IsADirectoryError:
            raise FileImportError(f"{path.name}: is a directory, not a file") from None
        except OSError:
            raise FileImportError(f"{path.name}: cannot be opened (check permissions)") from None
        try:
            self._columns = self._check_columns()
        except BaseException:
            self._stack.close()
            raise

    def __enter__(self) -> EventFile:
        return self

    def __exit__(
        self, kind: type[BaseException] | None, error: BaseException | None, trace: TracebackType | None
    ) -> None:
        self.close()

    def close(self) -> None:
        self._stack.close()

    @property
    def total(self) -> int:
        """Progress units: rows for Parquet, bytes for the text formats (counting rows would read the file twice)."""
        if self.format is FileFormat.PARQUET:
            return int(self._parquet().metadata.num_rows)
        return self.path.stat().st_size

    def chunks(self, size: int = DEFAULT_CHUNK_SIZE) -> Iterator[EventChunk]:
        if size < 1:
            raise ValueError("chunk size must be positive")
        total, offset, done = self.total, 0, 0
        blocks = self._blocks(size)
        while True:
            try:
                frame = next(blocks)
            except StopIteration:
                return
            except (pa.ArrowException, pl.exceptions.PolarsError, OSError, UnicodeDecodeError, ValueError):
                raise self._unreadable(after=offset) from None
            done = offset + frame.height if self.format is FileFormat.PARQUET else min(self._stream.tell(), total)
            yield EventChunk(frame=frame, offset=offset, done=done, total=total)
            offset += frame.height

    def _unreadable(self, *, after: int) -> FileImportError:
        """Why the reader stopped: a line over its limit is named (the reader only says it is lost)."""
        if self.format is FileFormat.NDJSON:
            line = first_line_longer_than(self.path, BLOCK_BYTES)
            if line is not None:
                return FileImportError(
                    f"{self.path.name}: line {line:,} is longer than {BLOCK_BYTES >> 20} MiB, the most an NDJSON "
                    "record may take; split that record or leave it out"
                )
        return FileImportError(f"{self.path.name}: not readable as {self.format.value} after record {after:,}")

    def _blocks(self, size: int) -> Iterator[pl.DataFrame]:
        return _rechunk((self._to_events(pl.from_arrow(batch)) for batch in self._batches(size)), size)

    def _to_events(self, frame: pl.DataFrame | pl.Series) -> pl.DataFrame:
        if not isinstance(frame, pl.DataFrame):
            raise TypeError("a record batch became a series")
        lazy = from_segment(frame.lazy()) if self.format is FileFormat.NDJSON else frame.lazy()
        return conform(lazy).collect()

    def _batches(self, size: int) -> Iterator[pa.RecordBatch]:
        if self.format is FileFormat.PARQUET:
            yield from self._parquet().iter_batches(batch_size=size, columns=self._columns)
            return
        self._stream.seek(0)
        if self.format is FileFormat.CSV:
            yield from pa_csv.open_csv(
                self._stream,
                read_options=pa_csv.ReadOptions(block_size=BLOCK_BYTES),
                parse_options=pa_csv.ParseOptions(newlines_in_values=True),
                convert_options=pa_csv.ConvertOptions(
                    include_columns=self._columns,
                    column_types=dict.fromkeys(self._columns, pa.string()),
                    strings_can_be_null=True,
                    quoted_strings_can_be_null=False,
                    null_values=[""],
                ),
            )
            return
        reader = pa_json.open_json(
            self._stream,
            read_options=pa_json.ReadOptions(block_size=BLOCK_BYTES),
            parse_options=pa_json.ParseOptions(
                explicit_schema=ARROW_SEGMENT_SCHEMA, unexpected_field_behavior="ignore"
            ),
        )
        outside = _FieldsOutsideShape(self._stack.enter_context(self.path.open("rb")))
        for batch in reader:
            outside.count_through(self._stream.tell())
            yield batch
        self.dropped_fields = outside.count_rest()

    def _parquet(self) -> pa_parquet.ParquetFile:
        if not hasattr(self, "_parquet_file"):
            self._stream.seek(0)
            self._parquet_file = pa_parquet.ParquetFile(self._stream)
        return self._parquet_file

    def _check_columns(self) -> list[str]:
        """The known columns present; unknown ones are ignored, ``message_id`` is required."""
        if self.format is FileFormat.NDJSON:
            first = self._first_json_object()
            if "messageId" not in first:
                raise FileImportError(f"{self.path.name}: the first record has no messageId")
            return list(SEGMENT_SCHEMA.names())
        try:
            if self.format is FileFormat.PARQUET:
                names = list(self._parquet().schema_arrow.names)
            else:
                text = io.TextIOWrapper(self._stream, encoding="utf-8-sig", newline="")
                try:
                    names = next(csv.reader(text), [])
                finally:
                    text.detach()
        except (pa.ArrowException, OSError, UnicodeDecodeError, csv.Error):
            raise FileImportError(f"{self.path.name}: not readable as {self.format.value}") from None
        if REQUIRED_COLUMN not in names:
            raise FileImportError(f"{self.path.name}: no {REQUIRED_COLUMN} column")
        known = [name for name in EVENT_SCHEMA.names() if name in names]
        self.ignored_columns = len(set(names) - set(known))
        return known

    def _first_json_object(self) -> dict[str, object]:
        try:
            for line in self._stream:
                if line.strip():
                    found = json.loads(line)
                    if not isinstance(found, dict):
                        break
                    return found
        except (ValueError, OSError):
            pass
        raise FileImportError(f"{self.path.name}: not readable as ndjson (one JSON object per line)")


class _FieldsOutsideShape:
    """Counts an NDJSON file's fields outside the event shape on its own handle, whole lines at a time.

    The reader ignores those keys (an explicit schema cannot name keys no one knows), so this
    reads the same bytes again just behind it, and memory stays at a block or two.
    """

    def __init__(self, stream: IO[bytes]) -> None:
        self._stream = stream
        self._partial = b""  # the start of a line whose end is not read yet
        self.total = 0

    def count_through(self, position: int) -> None:
        """Counts the whole lines among the bytes before ``position``."""
        while (wanted := min(position - self._stream.tell(), BLOCK_BYTES)) > 0 and (piece := self._stream.read(wanted)):
            self._add(piece)

    def count_rest(self) -> int:
        """Counts the lines left, the last one even without its newline, and answers the file's total."""
        while piece := self._stream.read(BLOCK_BYTES):
            self._add(piece)
        self.total += fields_outside_ndjson(self._partial, FILE_EVENT_KEYS)
        self._partial = b""
        return self.total

    def _add(self, piece: bytes) -> None:
        data = self._partial + piece
        cut = data.rfind(b"\n") + 1
        self._partial = data[cut:]
        self.total += fields_outside_ndjson(data[:cut], FILE_EVENT_KEYS)


def first_line_longer_than(path: Path, limit: int) -> int | None:
    """The number (from 1) of the first line of ``path`` longer than ``limit`` bytes, if any; read in pieces."""
    line, length = 1, 0
    with path.open("rb") as stream:
        while piece := stream.read(1 << 20):
            start = 0
            while (end := piece.find(b"\n", start)) != -1:
                if length + end - start > limit:
                    return line
                line, length, start = line + 1, 0, end + 1
            length += len(piece) - start
            if length > limit:
                return line
    return None


def _arrow_type(dtype: pl.DataType | DataTypeClass) -> pa.DataType:
    """Plain (not large) Arrow types: pyarrow's JSON reader refuses large lists."""
    instance: pl.DataType = dtype() if isinstance(dtype, DataTypeClass) else dtype
    if isinstance(instance, pl.Struct):
        return pa.struct([pa.field(f.name, _arrow_type(f.dtype)) for f in instance.fields])
    if isinstance(instance, pl.List):
        return pa.list_(_arrow_type(instance.inner))
    simple: dict[pl.DataType, pa.DataType] = {
        pl.String(): pa.string(),
        pl.Float64(): pa.float64(),
        pl.Boolean(): pa.bool_(),
    }
    return simple[instance]


ARROW_SEGMENT_SCHEMA: Final = pa.schema([pa.field(name, _arrow_type(dtype)) for name, dtype in SEGMENT_SCHEMA.items()])


def _rechunk(frames: Iterable[pl.DataFrame], size: int) -> Iterator[pl.DataFrame]:
    """Frames of any height, re-cut into frames of exactly ``size`` rows (the last one shorter)."""
    pending: list[pl.DataFrame] = []
    count = 0
    for frame in frames:
        pending.append(frame)
        count += frame.height
        while count >= size:
            merged = pl.concat(pending, rechunk=False) if len(pending) > 1 else pending[0]
            yield merged.slice(0, size)
            rest = merged.slice(size)
            pending, count = ([rest] if rest.height else []), rest.height
    if count:
        yield pl.concat(pending) if len(pending) > 1 else pending[0]


def chunks_of(frame: pl.DataFrame, size: int = DEFAULT_CHUNK_SIZE) -> Iterator[EventChunk]:
    """An in-memory frame (the demo's) as chunks, with the same shape as a file's."""
    events = conform(frame.lazy()).collect()
    for offset in range(0, events.height, size):
        chunk = events.slice(offset, size)
        yield EventChunk(frame=chunk, offset=offset, done=offset + chunk.height, total=events.height)


@dataclass(slots=True)
class ImportTotals:
    """A whole import's counts; rejected records are counted by code here and listed in the report."""

    result: IngestResult = field(default_factory=IngestResult)
    rejected_by_code: Counter[RejectCode] = field(default_factory=Counter)
    chunks: int = 0

    def add(self, chunk: IngestResult) -> None:
        self.rejected_by_code.update(record.code for record in chunk.rejected)
        self.result.add(replace(chunk, rejected=[]))
        self.chunks += 1

    @property
    def rejected(self) -> int:
        return sum(self.rejected_by_code.values())


ChunkDone = Callable[[EventChunk, IngestResult], None]


def import_chunks(
    runtime: Runtime,
    chunks: Iterable[EventChunk],
    *,
    source: str,
    actor: Actor = SYSTEM_ACTOR,
    on_chunk: ChunkDone | None = None,
    known_as: Sequence[str] = (),
) -> ImportTotals:
    """Each chunk stored by ``ingest_checked`` in its own unit of work; ``on_chunk`` runs after its commit.

    ``known_as``: the other forms ``source`` was stored under (``LabelKeeper.every_form``), so a
    re-import after a key rotation or a newly declared label is still recognised.

    Reading, validating and hashing the next chunk needs no database, so it runs on a second
    thread while this chunk is stored: Polars, the HMACs and SQLite's page work release the GIL,
    and the two overlap on two cores. Partners are read once, at the start of the import.
    """
    totals = ImportTotals()
    guardrails = guardrails_from(runtime.settings)
    with runtime.unit_of_work(actor) as unit:
        context = validation_context(unit.session, runtime.settings, unit.kit, now=unit.clock())

    def check(chunk: EventChunk) -> CheckedEvents:
        return check_events(chunk.frame, replace(context, now=runtime.clock()), runtime.kit)

    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="import-check") as pool:
        for chunk, checked in _checked_ahead(pool, chunks, check):
            with runtime.unit_of_work(actor) as unit:
                result = ingest_checked(unit, checked, source=source, guardrails=guardrails, known_as=known_as)
            totals.add(result)
            if on_chunk is not None:
                on_chunk(chunk, result)
    return totals


def _checked_ahead(
    pool: ThreadPoolExecutor, chunks: Iterable[EventChunk], check: Callable[[EventChunk], CheckedEvents]
) -> Iterator[tuple[EventChunk, CheckedEvents]]:
    """Chunks with their checks, the next one read and checked on ``pool`` while the caller works."""
    iterator = iter(chunks)

    def next_checked() -> tuple[EventChunk, CheckedEvents] | None:
        chunk = next(iterator, None)
        return None if chunk is None else (chunk, check(chunk))

    pending = pool.submit(next_checked)
    while (item := pending.result()) is not None:
        pending = pool.submit(next_checked)
        yield item


class RejectedReport:
    """``row,code,message`` per rejected record: the 1-based record number in file order, never a value."""

    HEADER: Final = ("row", "code", "message")

    def __init__(self, path: Path) -> None:
        self.path = path
        try:
            self._file = path.open("w", newline="", encoding="utf-8")
        except OSError:
            raise FileImportError(
                f"cannot write the report {path.name} (check the directory and permissions)"
            ) from None
        self._writer = csv.writer(self._file)
        self._writer.writerow(self.HEADER)

    def write(self, records: Iterable[RejectedRecord], *, offset: int) -> None:
        self._writer.writerows((offset + r.index + 1, r.code.value, REJECT_MESSAGES[r.code]) for r in records)
        self._file.flush()

    def close(self) -> None:
        self._file.close()

    def __enter__(self) -> RejectedReport:
        return self

    def __exit__(
        self, kind: type[BaseException] | None, error: BaseException | None, trace: TracebackType | None
    ) -> None:
        self.close()


def default_report_path(path: Path) -> Path:
    return path.with_name(f"{path.name}.rejected.csv")


__all__ = [
    "DEFAULT_CHUNK_SIZE",
    "EventChunk",
    "EventFile",
    "FileFormat",
    "FileImportError",
    "ImportTotals",
    "RejectedReport",
    "chunks_of",
    "default_report_path",
    "detect_format",
    "import_chunks",
]
