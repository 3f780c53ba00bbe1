"""The keys an event object may carry, and how many fields outside them a batch or file held.

Senders put more into an event than is kept — a search query, an IP address, a note an agent
typed — and any of it may be personal data. A key outside the shape is never read, so nothing of
it is stored; the answer only says how many there were. The one definition here serves a GraphQL
batch (``droppedFields``) and an NDJSON file (``audience import``), so both drop the same keys.

Keys are looked at on the levels the shape nests (the event, ``context``, ``context.traits``,
``context.consent``, ``properties``). A key outside the shape counts once, whatever it holds:
what lies under it is not looked at. In a file, a key set to null is not counted (it holds
nothing, and a column cannot tell it from a key left out). Only counts leave this module, never
a key: a sender's key name is as free as its value (``"ana@example.org": true``).
"""

from __future__ import annotations

import io
import json
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from typing import Final

import numpy as np
import polars as pl
import pyarrow as pa
import pyarrow.json as pa_json

KnownKeys = Mapping[tuple[str, ...], frozenset[str]]
"""Per level of an event object (a path of keys from the top), the keys that level may have."""

EVENT_KEYS: Final[KnownKeys] = {
    (): frozenset({"messageId", "type", "channel", "timestamp", "userId", "anonymousId", "context", "properties"}),
    ("context",): frozenset({"traits", "partnerUserId", "consent"}),
    ("context", "traits"): frozenset({"email", "phone"}),
    ("context", "consent"): frozenset({"purposes", "gpc"}),
    ("properties",): frozenset({"topics", "category", "amount", "currency", "campaign", "region"}),
}
"""The event as a sender writes it (docs/ingestion.md, the ``SegmentEvent`` scalar)."""

FILE_EVENT_KEYS: Final[KnownKeys] = {**EVENT_KEYS, ("context",): EVENT_KEYS[("context",)] | {"partner"}}
"""A file's event may also name the registered partner it came through (``partner`` in CSV)."""

MAX_BRACKETS_PER_LINE: Final = 64
"""Arrow infers a schema recursively and crashes on deep enough nesting; a line with no more
brackets than this is no deeper."""
MAX_INFERRED_CELLS: Final = 4_000_000
"""Key names times records: an inferred table holds a column per key, as long as the block. Keys
that differ per record (product ids used as keys, say) would make it quadratic in the block."""
_KEY: Final = r'"(?:[^"\\]|\\.)*"\s*:'
"""A JSON key with its colon. In valid JSON no match can start inside a string and swallow a key
after it (a string value is never followed by a colon), so no key name goes uncounted."""


def fields_outside_ndjson(lines: bytes, known: KnownKeys) -> int:
    """Values under keys outside ``known`` in whole NDJSON lines; nulls are not counted.

    Arrow infers the block's schema, which names every key, and the values are counted in
    columns. A block whose inference could crash or grow without bound (see the limits above), or
    that Arrow cannot type (a key holding text in one record and a number in another), is counted
    record by record. A parser's message is never passed on: it may quote the line.
    """
    if not lines.strip():
        return 0
    if _inferable(lines):
        try:
            table = pa_json.read_json(io.BytesIO(lines), read_options=pa_json.ReadOptions(block_size=len(lines)))
            counted = fields_outside(pl.DataFrame(table), known)
        except (pa.ArrowException, pl.exceptions.PolarsError):
            counted = None  # types that differ between records, or lines that are not JSON
        if counted is not None:
            return counted
    return fields_outside_records(_decoded(lines), known)


def fields_outside(frame: pl.DataFrame, known: KnownKeys) -> int | None:
    """Values under keys outside ``known``, in records read with an inferred schema; nulls are not counted.

    ``None`` when a level of the shape is something other than an object in some record (the
    reader then widened it to text, hiding its keys): ``fields_outside_records`` can still tell.
    """
    total = 0
    for path, keys in known.items():
        level = _level(frame, path)
        if level is None:
            return None
        outside = [values for name, values in level.members.items() if name not in keys]
        total += sum(int((values.is_not_null() & level.present).sum()) for values in outside)
    return total


def fields_outside_records(records: Iterable[object], known: KnownKeys) -> int:
    """``fields_outside`` for decoded records, one at a time: for what a columnar reader cannot type."""
    total = 0
    for record in records:
        for path, keys in known.items():
            level = record
            for step in path:
                level = level.get(step) if isinstance(level, dict) else None
            if isinstance(level, dict):
                total += sum(1 for key, value in level.items() if key not in keys and value is not None)
    return total


def _inferable(lines: bytes) -> bool:
    """Whether Arrow can infer the block's schema in bounded time and memory (conservatively)."""
    data = np.frombuffer(lines, dtype=np.uint8)
    ends = np.flatnonzero(data == ord("\n"))
    brackets = np.flatnonzero((data == ord("[")) | (data == ord("{")))
    if brackets.size and np.bincount(np.searchsorted(ends, brackets)).max() > MAX_BRACKETS_PER_LINE:
        return False
    try:
        texts = pl.Series(lines.split(b"\n"), dtype=pl.Binary).cast(pl.String)
    except pl.exceptions.PolarsError:
        return False  # not UTF-8: Arrow refuses it too
    names = texts.str.extract_all(_KEY).explode().drop_nulls().n_unique()
    return names * texts.len() <= MAX_INFERRED_CELLS


def _decoded(lines: bytes) -> Iterator[object]:
    for line in lines.split(b"\n"):
        if not line.strip():
            continue
        try:
            yield json.loads(line)
        except (ValueError, RecursionError):
            continue  # not JSON (the file reader refuses the file there) or nested too deep to decode: not counted


@dataclass(frozen=True, slots=True)
class _Level:
    """The keys found on one level, each with its values (one per record), and which records have the level."""

    members: dict[str, pl.Series]
    present: pl.Series


def _level(frame: pl.DataFrame, path: tuple[str, ...]) -> _Level | None:
    """Members are taken by position, never by name: a key such as ``^.*$`` would be a Polars pattern."""
    everyone = pl.repeat(True, frame.height, eager=True)
    level = _Level(dict(zip(frame.columns, frame.iter_columns(), strict=True)), everyone)
    for step in path:
        found = level.members.get(step)
        if found is None or found.dtype == pl.Null:
            return _Level({}, level.present)
        if not isinstance(found.dtype, pl.Struct):
            return None
        names = [member.name for member in found.dtype.fields]
        children = found.struct.rename_fields([str(i) for i in range(len(names))]).struct.unnest()
        level = _Level(dict(zip(names, children.iter_columns(), strict=True)), level.present & found.is_not_null())
    return level


__all__ = [
    "EVENT_KEYS",
    "FILE_EVENT_KEYS",
    "KnownKeys",
    "fields_outside",
    "fields_outside_ndjson",
    "fields_outside_records",
]
