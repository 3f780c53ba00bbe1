"""Erasure against the live schema, probed as an auditor who trusts no list but the database's own.

The schema is reflected as the migrations built it; every column that holds a subject id must be
declared in the registry (``schema_drift``), and after a person is put into every one of those
tables through the product's own paths, erasure must leave no row in any of them that holds one of
the person's subject ids, while another person's rows stay exactly as they were.
"""

from __future__ import annotations

from collections.abc import Sequence

import pytest
from sqlalchemy import Engine, func, or_, select

from server.profiles import store as profiles
from server.runtime import Runtime
from server.storage.subject_tables import SUBJECT_TABLES, SchemaDrift, schema_drift
from server.storage.tables import (
    ErasureReceiptRow,
    EventRow,
    IdentityMergeRow,
    MessageReceiptRow,
    ProfileSummaryRow,
    SubjectRow,
    SuppressionRow,
)
from tests.privacy.erasure_people import ANA, BEN, erase, pseudonyms_of, reached, setup_two


def rows_holding(engine: Engine, subject_ids: Sequence[int]) -> dict[str, int]:
    """Per declared ``table.column``, the rows whose value is one of ``subject_ids``."""
    found: dict[str, int] = {}
    with engine.connect() as connection:
        for declared in SUBJECT_TABLES:
            for column in declared.columns:
                table = declared.table
                count = connection.scalar(
                    select(func.count()).select_from(table).where(table.c[column].in_(list(subject_ids)))
                )
                found[f"{declared.name}.{column}"] = int(count or 0)
    return found


def rows_of_person(engine: Engine, subject_ids: Sequence[int]) -> dict[str, int]:
    """Per declared table, the rows any of whose subject columns holds one of ``subject_ids``."""
    found: dict[str, int] = {}
    with engine.connect() as connection:
        for declared in SUBJECT_TABLES:
            table = declared.table
            where = or_(*(table.c[column].in_(list(subject_ids)) for column in declared.columns))
            found[declared.name] = int(connection.scalar(select(func.count()).select_from(table).where(where)) or 0)
    return found


@pytest.fixture
def two(runtime: Runtime) -> Runtime:
    setup_two(runtime)
    return runtime


def test_the_live_schema_has_no_subject_column_the_registry_does_not_declare(two: Runtime) -> None:
    with two.engine.connect() as connection:
        assert schema_drift(connection) == SchemaDrift(undeclared=(), missing=())


def test_erasure_empties_every_subject_keyed_table_for_the_person_and_only_for_them(two: Runtime) -> None:
    ana, ben = reached(two, ANA), reached(two, BEN)
    assert len(ana) == 3, "our active subject, the device merged into it, the partner's own subject"
    before = rows_of_person(two.engine, ana)
    assert all(count > 0 for count in before.values()), f"the person is in every table first: {before}"
    ben_before = rows_of_person(two.engine, ben)

    receipt = erase(two, ana)

    assert rows_holding(two.engine, ana) == dict.fromkeys(rows_holding(two.engine, ana), 0)
    assert rows_of_person(two.engine, ben) == ben_before, "another person loses nothing"
    unlinked = before.pop("identity_merges")
    told = before.pop("grant_changes")  # the partner was told of an enter; erasure adds its exit, then unlinks both
    audience = before.pop("grant_audience")  # ended by that exit, before its own DELETE step comes
    assert {table: receipt.rows_removed[table] for table in before} == before
    assert receipt.rows_removed["grant_audience"] == audience == told, "counted, though the exit removed them"
    assert receipt.rows_removed["identity_merges"] == unlinked
    assert receipt.rows_removed["grant_changes"] == 2 * told
    assert (receipt.subjects, receipt.keys_destroyed) == (3, 2), "the merged device's key went at the merge"
    with two.sessions() as session:
        journal = session.execute(select(IdentityMergeRow.winner_subject_id, IdentityMergeRow.loser_subject_id)).all()
        assert sorted(journal, key=lambda row: row[0] is None) == [
            (journal_side(journal, ben, 0), journal_side(journal, ben, 1)),
            (None, None),
        ], "Ana's merge stays as a receipt, unlinked; Ben's untouched"
        assert session.scalar(select(func.count()).select_from(IdentityMergeRow)) == 2


def test_erasing_one_fragment_of_a_merged_person_removes_the_whole_person(two: Runtime) -> None:
    ana = reached(two, ANA)
    with two.sessions() as session:
        [loser] = session.scalars(
            select(SubjectRow.id).where(SubjectRow.id.in_(ana), SubjectRow.merged_into.is_not(None))
        )
        [merged_into] = session.scalars(select(SubjectRow.merged_into).where(SubjectRow.id == loser))
    assert merged_into is not None
    winner: int = merged_into
    partner_subject = next(s for s in ana if s not in {loser, winner})

    receipt = erase(two, [loser])

    assert rows_of_person(two.engine, [loser, winner]) == dict.fromkeys(rows_of_person(two.engine, [loser]), 0)
    assert receipt.subjects == 2, "the loser and its winner: one person"
    assert rows_of_person(two.engine, [partner_subject])["subjects"] == 1, "a scope not passed is not reached"
    erase(two, ana)
    assert sum(rows_of_person(two.engine, ana).values()) == 0, "passed every subject a request reaches, all scopes go"


def test_a_second_erasure_finds_nothing_and_says_so_with_zeros(two: Runtime) -> None:
    ana = reached(two, ANA)
    first = erase(two, ana, request_id=41)
    state = rows_of_person(two.engine, reached(two, BEN)), suppressed(two), receipts_kept(two)

    second = erase(two, ana, request_id=41)

    assert first.total_rows > 0
    assert not first.removed_nothing
    assert second.removed_nothing
    assert set(second.rows_removed.values()) == {0}
    assert (second.subjects, second.keys_destroyed, second.identifiers_suppressed) == (0, 0, 0)
    assert (rows_of_person(two.engine, reached(two, BEN)), suppressed(two), receipts_kept(two)) == state
    with two.sessions() as session:
        assert session.scalar(select(func.count()).select_from(ErasureReceiptRow)) == 2


def test_counts_exclude_the_person_and_their_identifiers_are_suppressed_their_event_keys_kept(two: Runtime) -> None:
    ana = reached(two, ANA)
    ana_pseudonyms = pseudonyms_of(two, ana)
    with two.sessions() as session:
        subjects, profiled = count(session, SubjectRow), count(session, ProfileSummaryRow)
        ana_events = set(session.scalars(select(EventRow.message_key).where(EventRow.subject_id.in_(ana))))
        consenting = profiles.consenting(session, reached(two, BEN) + ana)

    receipt = erase(two, ana)

    with two.sessions() as session:
        assert count(session, SubjectRow) == subjects - 3
        assert count(session, ProfileSummaryRow) == profiled - receipt.rows_removed["profile_summary"]
        assert profiles.consenting(session, reached(two, BEN) + ana) == [s for s in consenting if s not in ana]
        assert set(session.scalars(select(SuppressionRow.pseudonym))) == ana_pseudonyms
        receipts = set(session.scalars(select(MessageReceiptRow.message_key)))
    assert receipt.identifiers_suppressed == len(ana_pseudonyms)
    assert ana_events <= receipts, "every erased event's key is kept: a resend stays a duplicate"


def journal_side(journal: Sequence[tuple[int | None, int | None]], person: Sequence[int], side: int) -> int:
    [found] = [row[side] for row in journal if row[side] in person]
    assert found is not None
    return found


def count(session: object, model: type) -> int:
    return int(session.scalar(select(func.count()).select_from(model)) or 0)  # type: ignore[attr-defined]


def suppressed(runtime: Runtime) -> set[bytes]:
    with runtime.sessions() as session:
        return set(session.scalars(select(SuppressionRow.pseudonym)))


def receipts_kept(runtime: Runtime) -> int:
    with runtime.sessions() as session:
        return count(session, MessageReceiptRow)
