"""Membership lookups find exactly the stored values, whatever bytes or characters they hold.

PostgreSQL gets each kind of value packed into one parameter that the server parses; a value that
the packing could mangle (a separator inside text, a backslash or brace inside bytes) must still
match itself and nothing else.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from sqlalchemy import BigInteger, Column, LargeBinary, MetaData, String, Table

from server.runtime import Runtime
from server.storage.lookup import select_where_in

PROBES = MetaData()
TEXTS = Table("lookup_texts", PROBES, Column("value", String(64), primary_key=True))
BYTES = Table("lookup_bytes", PROBES, Column("value", LargeBinary(40), primary_key=True))
NUMBERS = Table("lookup_numbers", PROBES, Column("value", BigInteger, primary_key=True, autoincrement=False))

AWKWARD_BYTES = [b"", b"\x00", b"\\", b"\\x41", b"{}", b'"', b",", b"\xff" * 32, bytes(range(32))]
AWKWARD_TEXTS = ["", "a,b", "{x}", '"q"', "back\\slash", "sep\x1fin", "é✓"]


@pytest.fixture
def probes(runtime: Runtime) -> Iterator[Runtime]:
    PROBES.create_all(runtime.engine)
    try:
        yield runtime
    finally:
        PROBES.drop_all(runtime.engine)


def stored_and_found(runtime: Runtime, table: Table, stored: list[Any], asked: list[Any]) -> set[Any]:
    with runtime.sessions.begin() as session:
        session.execute(table.insert(), [{"value": value} for value in stored])
        rows = select_where_in(session, f"SELECT value FROM {table.name} WHERE value {{in}}", asked)
    return {row[0] for row in rows}


def test_bytes_that_need_escaping_match_themselves_only(probes: Runtime) -> None:
    stored = AWKWARD_BYTES[::2] + [bytes([n]) * 32 for n in range(0, 256, 7)]
    found = stored_and_found(probes, BYTES, stored, [*AWKWARD_BYTES, b"\x01" * 32])
    assert {bytes(value) for value in found} == set(AWKWARD_BYTES[::2])


def test_text_with_separators_quotes_and_braces_matches_itself_only(probes: Runtime) -> None:
    stored = AWKWARD_TEXTS[1::2] + [f"m-{n}" for n in range(100)]
    found = stored_and_found(probes, TEXTS, stored, [*AWKWARD_TEXTS, "m-7", "m-100"])
    assert found == {*AWKWARD_TEXTS[1::2], "m-7"}


def test_many_numbers_beyond_one_sqlite_chunk(probes: Runtime) -> None:
    stored = [*range(0, 24_000, 2), 2**62]
    asked = [*range(12_000), 2**62, -1]
    assert stored_and_found(probes, NUMBERS, stored, asked) == {*range(0, 12_000, 2), 2**62}
