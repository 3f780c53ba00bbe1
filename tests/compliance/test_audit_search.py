"""The compliance team searches the audit log by person, action and time, a page at a time.

The log is read back independently (``iter_entries``) and filtered in Python as the oracle; the
search must return exactly those entries, each once, in order, whichever way it is paged.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Iterator
from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import select

from privacy.audit import AuditEntry
from privacy.consent import ConsentPurpose
from privacy.identifiers import IdentifierKind, InvalidIdentifier, normalize
from privacy.keyring import KeyPurpose, Keyring
from server.audit import service
from server.audit.search import AuditFilters, AuditPage, AuditSearchError, PageBounds, search_entries
from server.auth.principal import SYSTEM_ACTOR
from server.consent.requests import RawIdentifier
from server.runtime import Runtime, build_runtime
from server.settings import Settings
from server.storage.audit_store import iter_entries
from server.storage.tables import AuditEntryRow, SubjectRequestRow
from tests.ingest.batches import NOW, event, fixed_clock, ingest, subject_of
from tests.profiles.consent_steps import record_purpose

BASE = datetime(2026, 3, 1, 9, 0, tzinfo=UTC)
ACTIONS = ("consent.grant", "profile.read", "request.file")
TARGETS = ("subject:1", "subject:2", "request:7", None)
# Minutes after BASE, deliberately not in seq order: the time filter reads ``at``, not the position.
MINUTES = [(index * 7) % 23 for index in range(23)]


def seed_log(runtime: Runtime) -> list[AuditEntry]:
    """23 entries over three actions and four targets, their times shuffled against their seqs."""
    times = iter(BASE + timedelta(minutes=minute) for minute in MINUTES)
    with replace(runtime, clock=lambda: next(times)).unit_of_work(SYSTEM_ACTOR) as unit:
        for index in range(len(MINUTES)):
            unit.audit(ACTIONS[index % 3], target=TARGETS[index % 4], details={"n": index})
    return logged(runtime)


def logged(runtime: Runtime) -> list[AuditEntry]:
    with runtime.sessions() as session:
        return [entry for entry in iter_entries(session) if isinstance(entry, AuditEntry)]


WHOLE = PageBounds(first=1000)
ANY = AuditFilters()
FIRST = PageBounds()


def search(runtime: Runtime, filters: AuditFilters, bounds: PageBounds = WHOLE) -> AuditPage:
    with runtime.sessions() as session:
        return search_entries(session, filters, bounds)


def seqs(entries: list[AuditEntry]) -> list[int]:
    return [entry.seq for entry in entries]


FILTERS: dict[str, tuple[AuditFilters, Callable[[AuditEntry], bool]]] = {
    "targets": (
        AuditFilters(targets=["subject:1", "request:7"]),
        lambda e: e.target in {"subject:1", "request:7"},
    ),
    "actions": (AuditFilters(actions=["profile.read"]), lambda e: e.action == "profile.read"),
    "since": (AuditFilters(since=BASE + timedelta(minutes=15)), lambda e: e.at >= BASE + timedelta(minutes=15)),
    "until": (AuditFilters(until=BASE + timedelta(minutes=6)), lambda e: e.at < BASE + timedelta(minutes=6)),
    "all together": (
        AuditFilters(
            targets=["subject:2", "subject:1"],
            actions=["consent.grant", "request.file"],
            since=BASE + timedelta(minutes=3),
            until=BASE + timedelta(minutes=20),
        ),
        lambda e: (
            e.target in {"subject:1", "subject:2"}
            and e.action in {"consent.grant", "request.file"}
            and BASE + timedelta(minutes=3) <= e.at < BASE + timedelta(minutes=20)
        ),
    ),
}


@pytest.mark.parametrize("name", list(FILTERS))
def test_each_filter_narrows_to_exactly_the_matching_entries(runtime: Runtime, name: str) -> None:
    log = seed_log(runtime)
    filters, matches = FILTERS[name]
    expected = [entry for entry in log if matches(entry)]
    assert 0 < len(expected) < len(log), "the filter must keep some entries and drop others"
    found = search(runtime, filters)
    assert found.entries == expected
    assert (found.has_next_page, found.has_previous_page) == (False, False)


def test_a_range_and_an_empty_target_list_can_match_nothing(runtime: Runtime) -> None:
    seed_log(runtime)
    for filters in (AuditFilters(targets=[]), AuditFilters(since=BASE, until=BASE)):
        assert search(runtime, filters) == AuditPage([], False, False, None, None)


def walk_forward(runtime: Runtime, filters: AuditFilters, size: int) -> Iterator[AuditPage]:
    after = None
    while True:
        page = search(runtime, filters, PageBounds(first=size, after=after))
        yield page
        if not page.has_next_page:
            return
        after = page.end_seq


def walk_backward(runtime: Runtime, filters: AuditFilters, size: int) -> Iterator[AuditPage]:
    before = None
    while True:
        page = search(runtime, filters, PageBounds(last=size, before=before))
        yield page
        if not page.has_previous_page:
            return
        before = page.start_seq


@pytest.mark.parametrize("size", [1, 3, 4, 1000])
@pytest.mark.parametrize("name", ["actions", "all together"])
def test_paging_either_way_walks_every_entry_exactly_once_in_order(runtime: Runtime, name: str, size: int) -> None:
    log = seed_log(runtime)
    filters, matches = FILTERS[name]
    expected = seqs([entry for entry in log if matches(entry)])

    forward = list(walk_forward(runtime, filters, size))
    assert [seq for page in forward for seq in seqs(page.entries)] == expected
    assert [page.has_previous_page for page in forward] == [False] + [True] * (len(forward) - 1)
    assert all(len(page.entries) == size for page in forward[:-1])

    backward = list(walk_backward(runtime, filters, size))
    assert [seq for page in reversed(backward) for seq in seqs(page.entries)] == expected
    assert [page.has_next_page for page in backward] == [False] + [True] * (len(backward) - 1)
    for page in backward:
        assert seqs(page.entries) == sorted(seqs(page.entries)), "a page reads oldest first either way"


def test_a_position_from_one_search_brings_none_of_its_entries_into_another(runtime: Runtime) -> None:
    """The cursor is a seq only: the second search applies its own filters from that position."""
    log = seed_log(runtime)
    reads = search(runtime, AuditFilters(actions=["profile.read"]), PageBounds(first=2))
    position = reads.end_seq
    assert position is not None
    grants = search(runtime, AuditFilters(actions=["consent.grant"]), PageBounds(first=1000, after=position))
    assert grants.entries == [e for e in log if e.action == "consent.grant" and e.seq > position]
    assert grants.has_previous_page, "grants exist before the borrowed position"


@pytest.mark.parametrize(
    ("filters", "bounds", "code", "field"),
    [
        (AuditFilters(), PageBounds(first=1, last=1), "FIRST_AND_LAST", "last"),
        (AuditFilters(), PageBounds(first=0), "PAGE_SIZE", "first"),
        (AuditFilters(), PageBounds(last=1001), "PAGE_SIZE", "last"),
        (AuditFilters(since=BASE, until=BASE - timedelta(seconds=1)), PageBounds(), "TIME_RANGE", "since"),
        (AuditFilters(until=datetime(2026, 3, 1)), PageBounds(), "TIME_ZONE_REQUIRED", "until"),
        (AuditFilters(actions=["x"] * 101), PageBounds(), "TOO_MANY_ACTIONS", "actions"),
    ],
)
def test_bad_arguments_are_refused_by_rule(
    runtime: Runtime, filters: AuditFilters, bounds: PageBounds, code: str, field: str
) -> None:
    with pytest.raises(AuditSearchError) as refused:
        search(runtime, filters, bounds)
    assert (refused.value.code, refused.value.field) == (code, field)


# --- by subject -------------------------------------------------------------------------------

EMAIL = "ana.search@example.org"


def at(runtime: Runtime, seconds: int) -> Runtime:
    return fixed_clock(runtime, NOW + timedelta(seconds=seconds))


def grant(runtime: Runtime, kind: IdentifierKind, value: str, purpose: ConsentPurpose) -> None:
    record_purpose(runtime, RawIdentifier(kind, value), purpose, policy_version="2026-10")


def file_request(runtime: Runtime, kind: IdentifierKind, value: str, *, key_version: int | None = None) -> int:
    """A request row as the lead's lifecycle files it (the identifier's hash only), and its audit entry."""
    with runtime.unit_of_work(SYSTEM_ACTOR) as unit:
        normalized = normalize(kind, value, rules=unit.kit.rules)
        pseudonym = unit.kit.pseudonymizer.pseudonym(normalized, key_version=key_version)
        row = SubjectRequestRow(
            kind="access",
            status="received",
            identifier_kind=kind.value,
            identifier_key_version=pseudonym.key_version,
            identifier_pseudonym=pseudonym.digest,
            received_at=unit.clock(),
            due_at=unit.clock() + timedelta(days=30),
        )
        unit.session.add(row)
        unit.session.flush()
        unit.audit("request.file", target=f"request:{row.id}", details={"kind": "access"})
        return row.id


def find(
    runtime: Runtime, subject: RawIdentifier, filters: AuditFilters = ANY, bounds: PageBounds = FIRST
) -> AuditPage:
    with runtime.unit_of_work(SYSTEM_ACTOR) as unit:
        return service.search(unit, subject=subject, filters=filters, bounds=bounds)


def person_on_two_devices(runtime: Runtime) -> tuple[int, int]:
    """Consent given on each device while they were strangers, then a login joins them."""
    ingest(at(runtime, 0), [event(anonymous_id="phone-9")])
    ingest(at(runtime, 1), [event(anonymous_id="laptop-9")])
    grant(runtime, IdentifierKind.DEVICE_ID, "phone-9", ConsentPurpose.PERSONALIZATION)
    grant(runtime, IdentifierKind.DEVICE_ID, "laptop-9", ConsentPurpose.PROFILING)
    phone = subject_of(runtime, IdentifierKind.DEVICE_ID, "phone-9")
    laptop = subject_of(runtime, IdentifierKind.DEVICE_ID, "laptop-9")
    assert phone is not None
    assert laptop is not None
    assert phone != laptop
    ingest(at(runtime, 2), [event(user_id="cust-9", email=EMAIL, anonymous_id="phone-9", consent_purposes=None)])
    assert ingest(at(runtime, 3), [event(user_id="cust-9", anonymous_id="laptop-9", consent_purposes=None)]).merges
    return phone, laptop


def test_by_subject_finds_every_fragment_of_the_person_and_their_requests(runtime: Runtime) -> None:
    phone, laptop = person_on_two_devices(runtime)
    by_email = file_request(runtime, IdentifierKind.EMAIL, f"  {EMAIL.upper()} ")
    by_customer_id = file_request(runtime, IdentifierKind.CUSTOMER_ID, "cust-9")
    stranger = file_request(runtime, IdentifierKind.EMAIL, "someone.else@example.org")
    grant(runtime, IdentifierKind.EMAIL, "someone.else@example.org", ConsentPurpose.ANALYTICS)

    found = find(runtime, RawIdentifier(IdentifierKind.EMAIL, EMAIL))

    mine = {f"subject:{phone}", f"subject:{laptop}", f"request:{by_email}", f"request:{by_customer_id}"}
    assert {entry.target for entry in found.entries} == mine
    assert found.entries == [e for e in logged(runtime) if e.target in mine]
    assert f"request:{stranger}" not in {entry.target for entry in found.entries}
    grants = find(runtime, RawIdentifier(IdentifierKind.DEVICE_ID, "laptop-9"), AuditFilters(actions=["consent.grant"]))
    assert {entry.target for entry in grants.entries} == {f"subject:{phone}", f"subject:{laptop}"}


def test_requests_filed_under_an_older_identifier_key_are_found(
    runtime: Runtime, settings: Settings, keyring: Keyring
) -> None:
    filed = file_request(runtime, IdentifierKind.PHONE, "+33 6 12 34 56 78")
    rotated = build_runtime(settings, keyring=keyring.with_new_version(KeyPurpose.IDENTIFIER_HMAC))
    try:
        assert rotated.kit.pseudonymizer.versions[0] != runtime.kit.pseudonymizer.versions[0]
        found = find(rotated, RawIdentifier(IdentifierKind.PHONE, "+33612345678"))
    finally:
        rotated.dispose()
    assert [entry.target for entry in found.entries] == [f"request:{filed}"]


def test_an_unknown_person_gets_the_answer_of_a_known_person_without_entries(runtime: Runtime) -> None:
    person_on_two_devices(runtime)
    known = find(runtime, RawIdentifier(IdentifierKind.EMAIL, EMAIL), AuditFilters(actions=["erasure.complete"]))
    unknown = find(runtime, RawIdentifier(IdentifierKind.EMAIL, "nobody.ever@example.org"))
    assert known == unknown == AuditPage([], False, False, None, None)
    with pytest.raises(InvalidIdentifier):
        find(runtime, RawIdentifier(IdentifierKind.EMAIL, "not-an-email"))


def test_the_search_is_audited_by_the_shape_of_its_filters_never_the_identifier(runtime: Runtime) -> None:
    person_on_two_devices(runtime)
    find(
        runtime,
        RawIdentifier(IdentifierKind.EMAIL, EMAIL),
        AuditFilters(targets=["ana.search@example.org"], actions=["ana.search@example.org"], since=BASE),
        PageBounds(first=5),
    )
    with runtime.sessions() as session:
        [entry] = session.scalars(select(AuditEntryRow).where(AuditEntryRow.action == "audit.search")).all()
    assert entry.target is None
    assert entry.details == {
        "subject_kind": "email",
        "targets": 1,
        "actions": 1,
        "since": BASE.isoformat(),
        "until": None,
        "first": 5,
        "after": None,
        "last": None,
        "before": None,
        "count": 0,
    }
    assert "ana" not in repr(entry.details)


def test_search_pages_of_one_person_stay_apart_from_the_log_around_them(runtime: Runtime) -> None:
    """Paging by subject in steps of one walks the person's entries and nothing else."""
    phone, laptop = person_on_two_devices(runtime)
    for purpose in itertools.islice(itertools.cycle(ConsentPurpose), 4):
        if purpose is not ConsentPurpose.SHARING:
            grant(runtime, IdentifierKind.EMAIL, EMAIL, purpose)
            grant(runtime, IdentifierKind.EMAIL, "someone.else@example.org", purpose)
    subject = RawIdentifier(IdentifierKind.EMAIL, EMAIL)
    mine = [e.seq for e in logged(runtime) if e.target in {f"subject:{phone}", f"subject:{laptop}"}]
    walked: list[int] = []
    after = None
    while True:
        page = find(runtime, subject, AuditFilters(actions=["consent.grant"]), PageBounds(first=1, after=after))
        walked.extend(seqs(page.entries))
        if not page.has_next_page:
            break
        after = page.end_seq
    assert walked == mine
