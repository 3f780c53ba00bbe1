"""The same events give the same people with the same consent, however many times they are loaded.

Subject ids are random, so nothing a person ends up with may depend on them: not which subject
survives a merge, not the merged consent, not its dates. Nor may it depend on the order of
records that say different things at the same moment.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Iterator
from contextlib import ExitStack
from dataclasses import replace
from datetime import datetime, timedelta
from pathlib import Path

import polars as pl
import pytest
from pydantic import SecretStr
from sqlalchemy import select

from privacy.consent import ConsentKey, ConsentPurpose, ConsentStatus, LegalBasis
from privacy.identifiers import IdentifierKind
from privacy.keyring import Keyring, dumps_keyring, generate_keyring
from server.auth.principal import SYSTEM_ACTOR
from server.consent import service as consent
from server.consent.requests import find_subjects
from server.demo import DemoPopulation, load
from server.identity.merge import merge_subjects
from server.identity.resolve import IdentityGuardrails
from server.runtime import Runtime, UnitOfWork, build_runtime
from server.settings import Settings
from server.storage.tables import PartnerRow
from server.subjects.service import create_subject
from tests.conftest import fresh_database_url
from tests.ingest.batches import NOW, event, events_of, fixed_clock, ingest, subject_of

ANALYTICS = ConsentKey(ConsentPurpose.ANALYTICS)
ADVERTISING = ConsentKey(ConsentPurpose.ADVERTISING)
PERSONALIZATION = ConsentKey(ConsentPurpose.PERSONALIZATION)

History = dict[ConsentKey, ConsentStatus]


def minute(n: int, *, granted: bool = True) -> ConsentStatus:
    return ConsentStatus(granted, NOW - timedelta(hours=1) + timedelta(minutes=n))


def person(unit: UnitOfWork, history: History) -> int:
    """A subject whose ledger holds ``history``; all of a test's people are created together."""
    subject = create_subject(unit.session, identifiers=[], kit=unit.kit, now=NOW)
    for key, status in history.items():
        consent.record(
            unit.session,
            subject_id=subject,
            key=key,
            granted=status.granted,
            legal_basis=LegalBasis.CONSENT,
            source="cmp-test",
            policy_version="2024-05",
            now=status.since,
        )
    return subject


def merged(runtime: Runtime, winner: History, *losers: History) -> History:
    """The state a merge leaves, for people with these histories, ``winner`` surviving."""
    with runtime.unit_of_work(SYSTEM_ACTOR) as unit:
        survivor = person(unit, winner)
        merge_subjects(unit, [(survivor, person(unit, loser)) for loser in losers], reason="test")
    with runtime.sessions() as session:
        return consent.current_state(session, survivor)


def test_the_merged_consent_and_its_dates_do_not_depend_on_which_subject_survives(runtime: Runtime) -> None:
    """Between subjects created together the winner is a toss-up of random ids; the result is not."""
    phone: History = {ANALYTICS: minute(1), ADVERTISING: minute(1), PERSONALIZATION: minute(2)}
    laptop: History = {ANALYTICS: minute(3), PERSONALIZATION: minute(4, granted=False)}
    expected = {ANALYTICS: minute(3), ADVERTISING: minute(1, granted=False), PERSONALIZATION: minute(4, granted=False)}
    assert merged(runtime, phone, laptop) == expected
    assert merged(runtime, laptop, phone) == expected


def test_a_merge_of_three_does_not_depend_on_the_order_of_its_losers(runtime: Runtime) -> None:
    """A side that never granted analytics keeps it withdrawn, whether or not a later grant of a
    third side happens to be merged after it."""
    never: History = {ADVERTISING: minute(0)}
    early: History = {ANALYTICS: minute(1)}
    late: History = {ANALYTICS: minute(5)}
    results = [merged(runtime, *order) for order in itertools.permutations([never, early, late])]
    assert results[0][ANALYTICS] == minute(5, granted=False)
    assert all(result == results[0] for result in results)


@pytest.mark.parametrize("withdrawal_first", [False, True], ids=["grant-first", "withdrawal-first"])
def test_a_grant_and_a_withdrawal_at_the_same_moment_leave_no_grant_in_either_order(
    runtime: Runtime, withdrawal_first: bool
) -> None:
    clocked = fixed_clock(runtime)
    moment = NOW - timedelta(minutes=5)
    records = [
        event(anonymous_id="dev-1", consent_purposes=["analytics"], timestamp=moment),
        event(anonymous_id="dev-1", consent_purposes=[], timestamp=moment),
    ]
    ingest(clocked, records[::-1] if withdrawal_first else records)
    subject = subject_of(runtime, IdentifierKind.DEVICE_ID, "dev-1")
    assert subject is not None
    with runtime.sessions() as session:
        state = consent.current_state(session, subject)
    assert ANALYTICS not in state or not state[ANALYTICS].granted


# --- the same demo events loaded into two databases --------------------------------------------

PEOPLE = 300
SEEDS = (11, 12)  # a few people per seed were merged from subjects created together


@pytest.fixture
def fresh_runtime(
    request: pytest.FixtureRequest, backend: str, tmp_path: Path, keyring: Keyring
) -> Iterator[Callable[[], Runtime]]:
    """Runtimes on fresh databases of the test's backend, all with the same keyring."""
    made = itertools.count()
    with ExitStack() as stack:

        def make() -> Runtime:
            directory = tmp_path / f"run-{next(made)}"
            directory.mkdir()
            urls = fresh_database_url(request, backend, directory)
            stack.callback(urls.close)
            settings = Settings(data_dir=directory, database_url=next(urls), keyring=SecretStr(dumps_keyring(keyring)))
            runtime = build_runtime(settings, keyring=keyring)
            stack.callback(runtime.dispose)
            return runtime

        yield make


Person = tuple[frozenset[str], dict[tuple[str, str | None], tuple[bool, datetime]]]


def people(runtime: Runtime, population: DemoPopulation) -> dict[str, Person]:
    """Per device: the devices found to be the same person, and that person's consent (partners by name)."""
    devices = population.events["anonymous_id"].drop_nulls().unique().sort()
    with runtime.sessions() as session:
        found = pl.DataFrame(
            {
                "device": devices,
                "subject_id": find_subjects(session, kind=IdentifierKind.DEVICE_ID, values=devices, kit=runtime.kit),
            }
        )
        states = consent.current_states(session, found["subject_id"].drop_nulls().unique().to_list())
        partners: dict[int, str] = {
            number: name for number, name in session.execute(select(PartnerRow.id, PartnerRow.name))
        }
    together = {subject: frozenset(names) for subject, names in found.group_by("subject_id").agg("device").iter_rows()}
    return {
        device: (
            together[subject],
            {
                (key.purpose.value, partners.get(key.partner_id)): (status.granted, status.since)
                for key, status in states.get(subject, {}).items()
            },
        )
        for device, subject in found.iter_rows()
    }


def halves(population: DemoPopulation) -> tuple[DemoPopulation, DemoPopulation]:
    events = population.events
    cut = events["timestamp"].sort()[events.height // 2]
    return (
        replace(population, events=events.filter(pl.col("timestamp") < cut)),
        replace(population, events=events.filter(pl.col("timestamp") >= cut)),
    )


def test_the_same_events_loaded_in_two_runs_give_the_same_people_with_the_same_consent(
    fresh_runtime: Callable[[], Runtime],
) -> None:
    """Early half, then late half, into two databases: the late half merges subjects that the
    early half created together, so each database picked its winners among random ids."""
    for seed in SEEDS:
        first, second = fresh_runtime(), fresh_runtime()
        population = load.generate(first, people=PEOPLE, seed=seed)
        for runtime in (first, second):
            for half in halves(population):
                load.load_population(runtime, half)
        assert people(first, population) == people(second, population), f"seed {seed}"


def linked_after_a_later_grant(runtime: Runtime, *, granting_device_first: bool) -> ConsentStatus:
    """A device with analytics granted and one that never granted it, seen one after the other
    (the first survives the merge), then joined by records that grant analytics after both."""
    tag = "granting-first" if granting_device_first else "granting-second"
    granting, never = f"{tag}-granting", f"{tag}-never"
    said = {granting: ["analytics"], never: ["personalization"]}
    for seconds, device in enumerate([granting, never] if granting_device_first else [never, granting]):
        ingest(
            fixed_clock(runtime, NOW + timedelta(seconds=seconds)),
            [event(anonymous_id=device, consent_purposes=said[device], timestamp=NOW - timedelta(hours=3))],
        )
    linking = [event(anonymous_id=device, user_id=f"cust-{tag}", consent_purposes=["analytics"]) for device in said]
    assert ingest(fixed_clock(runtime, NOW + timedelta(seconds=5)), linking).merges == 1
    subject = subject_of(runtime, IdentifierKind.DEVICE_ID, granting)
    assert subject is not None
    with runtime.sessions() as session:
        return consent.current_state(session, subject)[ANALYTICS]


def test_a_grant_on_the_records_that_join_two_subjects_holds_whichever_survives(runtime: Runtime) -> None:
    """The records are judged on the merged consent and their grant is the latest word: it must
    not be merged away again with the state of the side that never granted."""
    linked_at = NOW - timedelta(minutes=1)
    assert linked_after_a_later_grant(runtime, granting_device_first=False) == ConsentStatus(True, linked_at)
    assert linked_after_a_later_grant(runtime, granting_device_first=True) == ConsentStatus(True, linked_at)


# --- the same events under two keyrings --------------------------------------------------------

PAIRS = 24  # each pair is a coin toss between keyrings if pseudonyms decide: 2**-24 to pass by luck


def pair_records(n: int) -> tuple[list[dict[str, object]], list[dict[str, object]]]:
    """Two people created together (a device that granted analytics, a customer that withdrew it),
    then an email seen with each of them (a merge the guardrails refuse) and once alone."""
    device, customer, email = f"pair-{n}-device", f"pair-{n}-customer", f"pair-{n}@example.org"
    created = [
        event(anonymous_id=device, consent_purposes=["analytics"], timestamp=NOW - timedelta(hours=3)),
        event(user_id=customer, consent_purposes=["analytics"], timestamp=NOW - timedelta(hours=3)),
        event(user_id=customer, consent_purposes=[], timestamp=NOW - timedelta(hours=2)),
    ]
    linked = [
        event(anonymous_id=device, email=email, consent_purposes=None),
        event(user_id=customer, email=email, consent_purposes=None),
        event(email=email, consent_purposes=None),  # no identifier known: goes to the senior side
    ]
    return created, linked


def outcome_per_person(runtime: Runtime) -> dict[str, tuple[int, dict[str, bool]]]:
    """Per device and customer: how many events its subject holds, and its consent."""
    with runtime.sessions() as session:
        found = {}
        for n in range(PAIRS):
            for kind, value in (
                (IdentifierKind.DEVICE_ID, f"pair-{n}-device"),
                (IdentifierKind.CUSTOMER_ID, f"pair-{n}-customer"),
            ):
                subject = subject_of(runtime, kind, value)
                assert subject is not None
                state = consent.current_state(session, subject)
                found[value] = (
                    len(events_of(session, subject)),
                    {k.purpose.value: s.granted for k, s in state.items()},
                )
    return found


def test_the_same_events_under_two_keyrings_give_the_same_people_with_the_same_consent(
    request: pytest.FixtureRequest, backend: str, tmp_path: Path
) -> None:
    """Pseudonyms differ per keyring, so nothing may follow their bytes: here, which of two people
    created together is the senior one that a refused merge's unattached record goes to."""
    records = [pair_records(n) for n in range(PAIRS)]
    refuse_every_merge = IdentityGuardrails(max_subjects_per_merge=1)
    outcomes = []
    for run, keyring in enumerate((generate_keyring(), generate_keyring())):
        directory = tmp_path / f"keyring-{run}"
        directory.mkdir()
        urls = fresh_database_url(request, backend, directory)
        settings = Settings(data_dir=directory, database_url=next(urls), keyring=SecretStr(dumps_keyring(keyring)))
        runtime = fixed_clock(build_runtime(settings, keyring=keyring))
        try:
            ingest(runtime, [r for created, _linked in records for r in created])
            ingest(runtime, [r for _created, linked in records for r in linked], guardrails=refuse_every_merge)
            outcomes.append(outcome_per_person(runtime))
        finally:
            runtime.dispose()
            urls.close()
    first, second = outcomes
    assert {person for person in first if first[person] != second[person]} == set()
