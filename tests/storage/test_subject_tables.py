"""The registry of subject-keyed tables against the live schema, as the migrations build it on
SQLite and PostgreSQL: every column holding a subject id is declared, every declared column
exists, and a table added without a declaration is caught. Also the order merge and split run in."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator

import pytest
from sqlalchemy import Engine

from server.storage.engine import build_engine
from server.storage.subject_tables import (
    MERGE_ORDER,
    MERGE_STEPS,
    SPLIT_ORDER,
    SPLIT_STEPS,
    SUBJECT_TABLES,
    ErasePolicy,
    ExportPolicy,
    MergePolicy,
    SchemaDrift,
    SplitPolicy,
    SubjectTable,
    schema_drift,
    steps_of,
    subject_table,
)


@pytest.fixture
def engine(database_url: str) -> Iterator[Engine]:
    built = build_engine(database_url)
    try:
        yield built
    finally:
        built.dispose()


def drift(engine: Engine, tables: tuple[SubjectTable, ...] = SUBJECT_TABLES) -> SchemaDrift:
    with engine.connect() as connection:
        return schema_drift(connection, tables)


def test_every_column_holding_a_subject_id_is_declared_and_every_declared_one_exists(engine: Engine) -> None:
    assert drift(engine) == SchemaDrift(undeclared=(), missing=())
    assert not drift(engine)


def test_a_new_table_holding_subject_ids_without_a_declaration_is_found(engine: Engine) -> None:
    """By name, and by a foreign key to ``subjects.id`` whatever the column is called."""
    with engine.begin() as connection:
        connection.exec_driver_sql("CREATE TABLE segment_members (segment_id BIGINT, subject_id BIGINT)")
        connection.exec_driver_sql(
            "CREATE TABLE lookalikes (seed_subject_id BIGINT, person BIGINT REFERENCES subjects (id), score FLOAT)"
        )
        connection.exec_driver_sql("ALTER TABLE partners ADD COLUMN owner_subject_id BIGINT")
    assert drift(engine) == SchemaDrift(
        undeclared=(
            "lookalikes.person",
            "lookalikes.seed_subject_id",
            "partners.owner_subject_id",
            "segment_members.subject_id",
        ),
        missing=(),
    )


def test_a_declared_table_or_column_the_schema_lacks_is_found(engine: Engine) -> None:
    journal = subject_table("identity_merges")
    renamed = dataclasses.replace(journal, columns=("winner_subject_id", "first_subject_id"))
    ghost = dataclasses.replace(subject_table("profile_daily"), name="segment_members")
    tables = (*(t for t in SUBJECT_TABLES if t is not journal), renamed, ghost)
    assert drift(engine, tables) == SchemaDrift(
        undeclared=("identity_merges.loser_subject_id",),
        missing=("identity_merges.first_subject_id", "segment_members.subject_id"),
    )


def test_each_table_is_declared_once() -> None:
    names = [table.name for table in SUBJECT_TABLES]
    assert len(names) == len(set(names))
    assert "message_receipts" not in names, "receipts must not say whose record it was"


def test_the_profile_tables_are_combined_and_recomputed_in_one_step() -> None:
    profile = {"profile_daily", "profile_summary", "profile_interests"}
    [combine] = [step for step in MERGE_STEPS if step.policy is MergePolicy.COMBINE]
    [recompute] = [step for step in SPLIT_STEPS if step.policy is SplitPolicy.RECOMPUTE]
    assert {t.name for t in combine.tables} == {t.name for t in recompute.tables} == profile


def moved(name: str, *, before: str, tables: tuple[SubjectTable, ...] = SUBJECT_TABLES) -> tuple[SubjectTable, ...]:
    """``tables`` with ``name`` declared just before ``before``."""
    table = subject_table(name)
    rest = [t for t in tables if t is not table]
    at = next(n for n, t in enumerate(rest) if t.name == before)
    return (*rest[:at], table, *rest[at:])


def test_an_order_that_destroys_the_losers_key_before_its_pii_is_moved_is_refused() -> None:
    with pytest.raises(ValueError, match=r"re_encrypt.*drop_loser"):
        steps_of(lambda t: t.merge, moved("subject_keys", before="subject_pii"), MERGE_ORDER)


def test_an_order_that_recomputes_profiles_before_the_events_go_back_is_refused() -> None:
    late = moved("events", before="derived_rebuilds", tables=moved("identities", before="derived_rebuilds"))
    with pytest.raises(ValueError, match=r"by_origin.*recompute"):
        steps_of(lambda t: t.split, late, SPLIT_ORDER)


def test_a_policy_declared_in_two_places_is_refused() -> None:
    """Its step would run twice: the profile state combined twice."""
    with pytest.raises(ValueError, match="declared together"):
        steps_of(lambda t: t.merge, moved("profile_summary", before="subjects"), MERGE_ORDER)


def test_a_declaration_must_be_carried_out_as_declared() -> None:
    with pytest.raises(ValueError, match="origin"):
        SubjectTable(
            "consent_records",
            ("subject_id",),
            MergePolicy.REPOINT,
            SplitPolicy.BY_ORIGIN,
            ErasePolicy.DELETE,
            ExportPolicy.INCLUDE,
            "consent_history",
        )
    with pytest.raises(ValueError, match="section"):
        SubjectTable(
            "subject_keys",
            ("subject_id",),
            MergePolicy.DROP_LOSER,
            SplitPolicy.NEW_KEY,
            ErasePolicy.SHRED,
            ExportPolicy.INCLUDE,
        )
