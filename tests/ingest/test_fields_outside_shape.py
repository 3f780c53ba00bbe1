"""An NDJSON file's fields outside the event shape: counted as a GraphQL batch counts them, never kept.

The count is read off ``EventFile.dropped_fields`` after the chunks, as ``audience import`` does;
the CLI's summary line is checked in test_file_import.py.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import polars as pl
import pytest

import server.ingest.files
from schema.ingest.convert import unknown_fields
from server.ingest.event_shape import FILE_EVENT_KEYS, fields_outside_records
from server.ingest.files import EventFile, FileFormat
from server.ingest.records import SEGMENT_SCHEMA


def segment_event(index: int, **extra: Any) -> dict[str, Any]:
    return {
        "messageId": f"m-{index}",
        "type": "page_view",
        "channel": "web",
        "timestamp": "2024-05-31T12:00:00Z",
        "anonymousId": f"device-{index}",
        "context": {"traits": {"email": f"p{index}@example.org"}, "consent": {"purposes": ["analytics"]}},
        "properties": {"topics": ["sports/football"]},
        **extra,
    }


def chatty_event(index: int) -> dict[str, Any]:
    """Five fields outside the shape, one on each level the shape nests, plus one holding an object."""
    event = segment_event(index, searchQuery="flights for Ana Lopez to Lima", integrations={"All": True})
    event["context"] |= {"ip": "203.0.113.7"}
    event["context"]["traits"] |= {"name": "Ana Lopez"}
    event["context"]["consent"] |= {"agentNote": "said yes"}
    event["properties"] |= {"note": "called about her divorce"}
    return event


def write_ndjson(path: Path, records: list[dict[str, Any]]) -> Path:
    path.write_text("".join(json.dumps(record) + "\n" for record in records))
    return path


def read_through(path: Path) -> tuple[int, int]:
    """(records read, fields outside the shape), as the import sees them once every chunk is read."""
    with EventFile(path, FileFormat.NDJSON) as events:
        read = sum(chunk.frame.height for chunk in events.chunks(size=40))
        return read, events.dropped_fields


def test_an_ndjson_file_counts_the_fields_a_graphql_batch_counts(tmp_path: Path) -> None:
    records = [chatty_event(i) if i % 3 else segment_event(i) for i in range(90)]

    read, dropped = read_through(write_ndjson(tmp_path / "events.ndjson", records))

    assert read == 90
    assert dropped == unknown_fields(records) == 60 * 6


def test_known_fields_are_read_as_without_the_others(tmp_path: Path) -> None:
    records = [chatty_event(i) for i in range(30)]
    plain = write_ndjson(tmp_path / "plain.ndjson", [segment_event(i) for i in range(30)])
    chatty = write_ndjson(tmp_path / "chatty.ndjson", records)

    with EventFile(plain, FileFormat.NDJSON) as events:
        expected = pl.concat(chunk.frame for chunk in events.chunks())
    with EventFile(chatty, FileFormat.NDJSON) as events:
        got = pl.concat(chunk.frame for chunk in events.chunks())

    assert got.equals(expected)
    assert "Lopez" not in str(got.rows())


def test_the_count_does_not_depend_on_blocks_or_on_the_types_a_key_holds(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Blocks cut mid-file, and a block Arrow cannot type (one key, three types) read record by record."""
    records = [chatty_event(i) for i in range(60)]
    for index, value in enumerate(["3", 3, {"arm": "b"}, [1], 2.5, True]):
        records[20 + index]["experiment"] = value
    path = write_ndjson(tmp_path / "events.ndjson", records)
    whole = read_through(path)

    monkeypatch.setattr(server.ingest.files, "BLOCK_BYTES", 2_048)
    in_blocks = read_through(path)

    assert whole == in_blocks == (60, 60 * 6 + 6)
    assert fields_outside_records(records, FILE_EVENT_KEYS) == 60 * 6 + 6


def test_a_key_without_a_value_is_not_counted(tmp_path: Path) -> None:
    records = [segment_event(0, sentAt=None), segment_event(1, sentAt="2024-05-31T12:00:01Z")]
    records[0]["properties"] |= {"note": None}

    assert read_through(write_ndjson(tmp_path / "events.ndjson", records)) == (2, 1)


def test_the_partner_a_file_names_is_read_not_dropped(tmp_path: Path) -> None:
    records = [segment_event(0)]
    records[0]["context"] |= {"partner": "partner-alpha", "partnerUserId": "42"}

    assert read_through(write_ndjson(tmp_path / "events.ndjson", records)) == (1, 0)


def test_any_key_name_is_counted_as_text(tmp_path: Path) -> None:
    """Sender keys that Polars would take for a column pattern, and keys that are personal data."""
    names = ["^.*$", "*", "", "a.b", "ana@example.org", "ünïcödé", 'quote"d']
    records = [segment_event(i, **{name: i}) for i, name in enumerate(names)]
    records[0]["properties"] |= dict.fromkeys(names, "x")

    assert read_through(write_ndjson(tmp_path / "events.ndjson", records)) == (7, 14)


def test_keys_that_differ_per_record_are_counted_in_bounded_memory(tmp_path: Path) -> None:
    """Product ids used as keys: one inferred column per key would make a block quadratic in size."""
    records = [segment_event(i) for i in range(20_000)]
    for index, record in enumerate(records):
        record["properties"][f"sku-{index}"] = 1

    assert read_through(write_ndjson(tmp_path / "events.ndjson", records)) == (20_000, 20_000)


def test_a_deeply_nested_value_does_not_crash_the_import(tmp_path: Path) -> None:
    """Arrow's schema inference recurses and crashes (SIGSEGV) on nesting this deep; Python's decoder refuses it.

    So the record that holds it goes uncounted, and the rest of its block is counted as ever.
    """
    deep = "[" * 100_000 + "]" * 100_000
    path = tmp_path / "events.ndjson"
    path.write_text(json.dumps(chatty_event(0)) + "\n" + json.dumps(segment_event(1))[:-1] + f', "x": {deep}}}\n')

    assert read_through(path) == (2, 6)


def test_a_file_s_event_shape_is_what_the_reader_reads() -> None:
    """A key the reader reads is never counted as dropped, and every key counted is one it ignores."""

    def levels(schema: pl.Schema | pl.Struct, path: tuple[str, ...] = ()) -> dict[tuple[str, ...], frozenset[str]]:
        fields = dict(schema.items()) if isinstance(schema, pl.Schema) else {f.name: f.dtype for f in schema.fields}
        found = {path: frozenset(fields)}
        for name, dtype in fields.items():
            if isinstance(dtype, pl.Struct):
                found |= levels(dtype, (*path, name))
        return found

    assert levels(SEGMENT_SCHEMA) == FILE_EVENT_KEYS
