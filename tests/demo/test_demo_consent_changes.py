"""The demo's consent banner reaches the ledger: withdrawals stick, nobody new appears, a reload is a no-op."""

from __future__ import annotations

from dataclasses import replace
from datetime import datetime

import polars as pl
import pytest
from sqlalchemy import func, select

from privacy.consent import NO_PARTNER
from privacy.identifiers import IdentifierKind, normalize
from server.auth.principal import SYSTEM_ACTOR
from server.consent import service
from server.consent.requests import RawIdentifier, consent_of, find_subjects
from server.demo import DemoPopulation, load
from server.runtime import Runtime
from server.storage.tables import AuditEntryRow, ConsentRecordRow, SubjectRow
from server.subjects.service import find_subject

PEOPLE = 200
SEED = 3
IDENTIFIERS = (("user_id", IdentifierKind.CUSTOMER_ID), ("anonymous_id", IdentifierKind.DEVICE_ID))

State = dict[int, dict[tuple[str, int], tuple[bool, datetime]]]


@pytest.fixture
def population(runtime: Runtime) -> DemoPopulation:
    return load.generate(runtime, people=PEOPLE, seed=SEED)


def states(runtime: Runtime) -> State:
    with runtime.sessions() as session:
        subjects = list(session.scalars(select(SubjectRow.id)))
        found = service.current_states(session, subjects)
    return {
        subject: {(key.purpose.value, key.partner_id): (status.granted, status.since) for key, status in keys.items()}
        for subject, keys in found.items()
    }


def subject_count(runtime: Runtime) -> int:
    with runtime.sessions() as session:
        return int(session.scalar(select(func.count()).select_from(SubjectRow)) or 0)


def named_subjects(runtime: Runtime, changes: pl.DataFrame) -> pl.DataFrame:
    """Each change with every subject one of its identifiers is stored under (the changes naming no one drop out)."""
    with runtime.sessions() as session:
        return (
            pl.concat(
                [
                    changes.with_columns(find_subjects(session, kind=kind, values=changes[column], kit=runtime.kit))
                    for column, kind in IDENTIFIERS
                ]
            )
            .drop_nulls("subject_id")
            .unique()
        )


def withdrawn_keys(runtime: Runtime, population: DemoPopulation) -> set[tuple[int, str]]:
    withdrawals = population.consent_changes.filter(~pl.col("granted"))
    return set(named_subjects(runtime, withdrawals).select("subject_id", "purpose").iter_rows())


def demo_ledger(runtime: Runtime) -> pl.DataFrame:
    columns = [
        ConsentRecordRow.subject_id,
        ConsentRecordRow.purpose,
        ConsentRecordRow.partner_id,
        ConsentRecordRow.granted,
        ConsentRecordRow.source,
        ConsentRecordRow.recorded_at,
    ]
    with runtime.sessions() as session:
        rows = session.execute(select(*columns).where(ConsentRecordRow.source.startswith("demo:"))).all()
    schema = pl.Schema(
        {
            "subject_id": pl.Int64(),
            "purpose": pl.String(),
            "partner_id": pl.Int64(),
            "granted": pl.Boolean(),
            "source": pl.String(),
            "timestamp": pl.Datetime("us", "UTC"),
        }
    )
    return pl.DataFrame([tuple(row) for row in rows], schema=schema, orient="row")


def still_granted(after: State, keys: set[tuple[int, str]]) -> list[tuple[int, str]]:
    return [(s, p) for s, p in sorted(keys) if after.get(s, {}).get((p, NO_PARTNER), (True,))[0] is not False]


def test_each_withdrawal_is_recorded_and_leaves_the_people_it_names_withdrawn(
    runtime: Runtime, population: DemoPopulation
) -> None:
    load.load_population(runtime, population)

    result = load.load_consent_changes(runtime, population)

    changes = population.consent_changes
    withdrawals = changes.filter(~pl.col("granted"))
    assert (result.received, result.withdrawals) == (changes.height, withdrawals.height)
    assert withdrawn_keys(runtime, population), "some withdrawers are known to the server"
    assert still_granted(states(runtime), withdrawn_keys(runtime, population)) == []
    expected = named_subjects(runtime, withdrawals).select(
        "subject_id",
        "purpose",
        pl.lit(NO_PARTNER, dtype=pl.Int64).alias("partner_id"),
        "granted",
        pl.format("demo:{}", "source").alias("source"),
        "timestamp",
    )
    assert expected.join(demo_ledger(runtime), on=expected.columns, how="anti").is_empty()
    resolved = named_subjects(runtime, changes.with_row_index("change"))["change"].n_unique()
    assert result.unknown == changes.height - resolved


def test_no_one_but_the_withdrawers_changes_state_and_no_one_is_created(
    runtime: Runtime, population: DemoPopulation
) -> None:
    load.load_population(runtime, population)
    before, subjects = states(runtime), subject_count(runtime)

    load.load_consent_changes(runtime, population)

    after = states(runtime)
    withdrawn = withdrawn_keys(runtime, population)
    # The banner's grants predate the events' own statements, so the later statements keep the state.
    moved = {
        (subject, purpose, partner): (before.get(subject, {}).get((purpose, partner)), status)
        for subject, keys in after.items()
        for (purpose, partner), status in keys.items()
        if before.get(subject, {}).get((purpose, partner)) != status
    }
    assert {(s, p) for s, p, _ in moved} <= withdrawn
    assert all(partner == NO_PARTNER and status[0] is False for (_, _, partner), (_, status) in moved.items())
    assert all(before[subject].keys() <= after[subject].keys() for subject in before)
    assert subject_count(runtime) == subjects


def test_a_change_naming_no_known_person_changes_nothing_and_is_counted(
    runtime: Runtime, population: DemoPopulation
) -> None:
    load.load_population(runtime, population)
    strangers = pl.DataFrame(
        {
            "user_id": ["cus_00000001", None],
            "anonymous_id": ["6f0c2a47-1f5e-4d0e-9a7b-0c1d2e3f4a5b", "7a1b2c3d-4e5f-4a6b-8c7d-9e0f1a2b3c4d"],
            "purpose": ["advertising", "analytics"],
            "granted": [False, True],
            "timestamp": [runtime.clock(), runtime.clock()],
            "source": ["preference-center", "consent-banner"],
        },
        schema=population.consent_changes.schema,
    )
    before, subjects, ledger = states(runtime), subject_count(runtime), demo_ledger(runtime)

    result = load.load_consent_changes(runtime, replace(population, consent_changes=strangers))

    assert (result.received, result.unknown, result.recorded, result.subjects) == (2, 2, 0, 0)
    assert (states(runtime), subject_count(runtime)) == (before, subjects)
    assert demo_ledger(runtime).equals(ledger)
    with runtime.unit_of_work(SYSTEM_ACTOR) as unit:
        seen = consent_of(unit, identifier=RawIdentifier(IdentifierKind.CUSTOMER_ID, "cus_00000001"))
    assert not seen.found


def test_loading_twice_appends_nothing_and_moves_nothing(runtime: Runtime, population: DemoPopulation) -> None:
    load.load_population(runtime, population)
    first = load.load_consent_changes(runtime, population)
    ledger, after_first = demo_ledger(runtime), states(runtime)

    second = load.load_consent_changes(runtime, population)

    assert first.recorded > 0
    assert (second.recorded, second.already_recorded, second.unknown) == (0, first.recorded, first.unknown)
    assert demo_ledger(runtime).sort(ledger.columns).equals(ledger.sort(ledger.columns))
    assert states(runtime) == after_first
    assert ledger.height == first.recorded == ledger.unique().height


def test_a_withdrawal_dated_after_the_events_wins_and_an_early_load_is_caught_up_later(
    runtime: Runtime, population: DemoPopulation
) -> None:
    withdrawals = population.consent_changes.filter(~pl.col("granted"))
    cut = withdrawals["timestamp"].sort()[withdrawals.height // 3]
    load.load_population(runtime, replace(population, events=population.events.filter(pl.col("timestamp") < cut)))
    before = states(runtime)

    early = load.load_consent_changes(runtime, population)

    withdrawn = withdrawn_keys(runtime, population)
    flipped = [(s, p) for s, p in withdrawn if before.get(s, {}).get((p, NO_PARTNER), (False,))[0] is True]
    assert flipped, "some people were still granted when their later withdrawal was loaded"
    assert still_granted(states(runtime), withdrawn) == []
    assert early.unknown > 0, "changes of people whose events are not loaded yet find no one"

    load.load_population(runtime, replace(population, events=population.events.filter(pl.col("timestamp") >= cut)))
    late = load.load_consent_changes(runtime, population)

    assert late.unknown < early.unknown
    assert late.already_recorded == early.recorded
    assert still_granted(states(runtime), withdrawn_keys(runtime, population)) == []
    ledger = demo_ledger(runtime)
    assert ledger.height == ledger.unique().height == early.recorded + late.recorded


def test_the_load_is_audited_with_counts_and_no_identifier(runtime: Runtime, population: DemoPopulation) -> None:
    load.load_population(runtime, population)

    result = load.load_consent_changes(runtime, population)

    with runtime.sessions() as session:
        entries = session.execute(select(AuditEntryRow.action, AuditEntryRow.target, AuditEntryRow.details)).all()
    [details] = [row.details for row in entries if row.action == "consent.import"]
    assert details == {
        "source": load.DEMO_SOURCE,
        "received": result.received,
        "recorded": result.recorded,
        "already_recorded": result.already_recorded,
        "unknown": result.unknown,
        "subjects": result.subjects,
    }
    written = " ".join(f"{row.target} {row.details}" for row in entries).lower()
    identifiers = pl.concat([population.consent_changes["user_id"], population.consent_changes["anonymous_id"]])
    assert [value for value in identifiers.drop_nulls().unique().to_list() if value.lower() in written] == []


def test_the_bulk_resolver_finds_whom_the_compliance_lookup_finds(runtime: Runtime, population: DemoPopulation) -> None:
    load.load_population(runtime, population)
    with runtime.sessions() as session:
        for column, kind in IDENTIFIERS:
            # Sixty of the identifiers the banner named, the first in the file: `unique()` alone drew
            # a different sixty each run, sometimes with none known under one of the two columns.
            values = population.consent_changes[column].drop_nulls().unique(maintain_order=True).head(60)
            bulk = find_subjects(session, kind=kind, values=values, kit=runtime.kit).to_list()
            one_by_one = [
                None if value is None else find_subject(session, normalize(kind, value), runtime.kit)
                for value in values.to_list()
            ]
            assert bulk == one_by_one
            assert any(subject is not None for subject in bulk)
