"""The identity graph as one person on two devices meets it, and as junk tries to fuse strangers:
a login joins the devices into one subject, consent merges most restrictively, PII follows under
the winner's key, the guardrails hold, and a wrong merge can be split again."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta

import pytest
from sqlalchemy import select, update

from privacy.consent import ConsentKey, ConsentPurpose
from privacy.identifiers import IdentifierKind
from privacy.keyring import Keyring, dumps_keyring
from server.auth.principal import SYSTEM_ACTOR
from server.cli.main import main as audience
from server.consent import service as consent
from server.identity.merge import merge_subjects
from server.identity.resolve import IdentityGuardrails
from server.identity.split import SplitError, SplitErrorCode, split_merge
from server.ingest.setup import guardrails_from
from server.runtime import Runtime
from server.settings import Settings
from server.storage.tables import (
    AuditEntryRow,
    EventRow,
    IdentityMergeRow,
    IdentityRow,
    SubjectKeyRow,
    SubjectPiiRow,
    SubjectRow,
)
from server.subjects.service import read_pii, write_pii
from tests.ingest.batches import NOW, count, event, fixed_clock, ingest, subject_of

ANALYTICS = ConsentKey(ConsentPurpose.ANALYTICS)
ADVERTISING = ConsentKey(ConsentPurpose.ADVERTISING)


def at(runtime: Runtime, seconds: int) -> Runtime:
    """Batches a few seconds apart, so the older subject is the merge's winner."""
    return fixed_clock(runtime, NOW + timedelta(seconds=seconds))


def device(runtime: Runtime, name: str) -> int:
    subject = subject_of(runtime, IdentifierKind.DEVICE_ID, name)
    assert subject is not None
    return subject


def events_on(runtime: Runtime, subject_id: int) -> int:
    return count(runtime, EventRow, EventRow.subject_id == subject_id)


def identities_on(runtime: Runtime, subject_id: int) -> set[str]:
    with runtime.sessions() as session:
        return set(session.scalars(select(IdentityRow.kind).where(IdentityRow.subject_id == subject_id)))


def audited(runtime: Runtime, action: str) -> list[AuditEntryRow]:
    with runtime.sessions() as session:
        return list(session.scalars(select(AuditEntryRow).where(AuditEntryRow.action == action)))


@dataclass(frozen=True)
class TwoDevices:
    phone: int
    laptop: int


def browse_on_two_devices(runtime: Runtime) -> TwoDevices:
    """Anonymous browsing: two events on the phone (analytics + advertising), three on the laptop
    (analytics only), and the laptop's owner's name stored as PII."""
    ingest(at(runtime, 0), [event(anonymous_id="phone-1", consent_purposes=["analytics", "advertising"])])
    ingest(at(runtime, 1), [event(anonymous_id="phone-1", consent_purposes=["analytics", "advertising"])])
    ingest(at(runtime, 2), [event(anonymous_id="laptop-2") for _ in range(3)])
    devices = TwoDevices(phone=device(runtime, "phone-1"), laptop=device(runtime, "laptop-2"))
    assert devices.phone != devices.laptop
    with runtime.unit_of_work(SYSTEM_ACTOR) as unit:
        write_pii(unit.session, devices.laptop, {"first_name": "Yara"}, unit.kit, unit.clock())
    return devices


def log_in_on_both(runtime: Runtime) -> None:
    """The login carries no consent statement: it is judged by the subject's state."""
    first = ingest(
        at(runtime, 3),
        [event(user_id="cust-ana", email="ana@example.org", anonymous_id="phone-1", consent_purposes=None)],
    )
    second = ingest(at(runtime, 4), [event(user_id="cust-ana", anonymous_id="laptop-2", consent_purposes=None)])
    assert (first.accepted, first.merges, second.accepted, second.merges) == (1, 0, 1, 1)


def test_a_login_on_two_devices_joins_them_into_one_subject(runtime: Runtime) -> None:
    devices = browse_on_two_devices(runtime)
    log_in_on_both(runtime)
    winner = device(runtime, "laptop-2")
    assert winner == devices.phone == subject_of(runtime, IdentifierKind.EMAIL, "ana@example.org")
    assert events_on(runtime, winner) == 7
    assert count(runtime, IdentityRow, IdentityRow.subject_id == winner) == 4
    assert identities_on(runtime, winner) == {"device_id", "customer_id", "email"}
    with runtime.sessions() as session:
        loser = session.get(SubjectRow, devices.laptop)
        assert loser is not None
        assert (loser.status, loser.merged_into) == ("merged", winner)
        [journal] = session.scalars(select(IdentityMergeRow)).all()
    assert (journal.winner_subject_id, journal.loser_subject_id) == (winner, devices.laptop)
    assert (journal.identities_moved, journal.events_moved, journal.split_at) == (1, 3, None)
    [entry] = audited(runtime, "identity.merge")
    assert entry.details["events_moved"] == 3
    assert "Yara" not in repr(entry.details)


def test_the_merged_subject_has_the_most_restrictive_consent(runtime: Runtime) -> None:
    devices = browse_on_two_devices(runtime)
    with runtime.sessions() as session:
        assert {k for k, s in consent.current_state(session, devices.phone).items() if s.granted} == {
            ANALYTICS,
            ADVERTISING,
        }
    log_in_on_both(runtime)
    with runtime.sessions() as session:
        state = consent.current_state(session, devices.phone)
        assert consent.current_state(session, devices.laptop) == {}, "the loser keeps no state of its own"
    assert state[ANALYTICS].granted
    assert not state[ADVERTISING].granted, "the laptop never granted advertising"


def test_the_losers_pii_is_readable_under_the_winner_and_its_key_is_gone(runtime: Runtime) -> None:
    devices = browse_on_two_devices(runtime)
    log_in_on_both(runtime)
    with runtime.sessions() as session:
        assert read_pii(session, devices.phone, runtime.kit) == {"first_name": "Yara"}
        assert session.get(SubjectKeyRow, devices.laptop) is None
        assert session.scalars(select(SubjectPiiRow).where(SubjectPiiRow.subject_id == devices.laptop)).all() == []


def test_a_merge_is_most_restrictive_even_against_a_grant_stamped_ahead(runtime: Runtime) -> None:
    ahead = NOW + timedelta(minutes=4)
    ingest(
        at(runtime, 0), [event(anonymous_id="phone-1", consent_purposes=["analytics", "advertising"], timestamp=ahead)]
    )
    ingest(at(runtime, 1), [event(anonymous_id="laptop-2")])
    ingest(at(runtime, 2), [event(anonymous_id="phone-1", user_id="cust-ana", consent_purposes=None)])
    assert (
        ingest(at(runtime, 3), [event(anonymous_id="laptop-2", user_id="cust-ana", consent_purposes=None)]).merges == 1
    )
    with runtime.sessions() as session:
        state = consent.current_state(session, device(runtime, "laptop-2"))
    assert not state[ADVERTISING].granted


# --- guardrails -----------------------------------------------------------------------------


@pytest.mark.parametrize(("cap", "hits"), [(None, 2), (3, 4)], ids=["default", "from-settings"])
def test_emails_past_the_per_kind_cap_are_not_linked_and_counted(runtime: Runtime, cap: int | None, hits: int) -> None:
    settings = runtime.settings if cap is None else runtime.settings.model_copy(update={"max_emails_per_subject": cap})
    addresses = [f"ana{n}@example.org" for n in range(7)]
    result = ingest(
        fixed_clock(runtime),
        [event(user_id="cust-ana", email=address) for address in addresses],
        guardrails=guardrails_from(settings),
    )
    assert (result.accepted, result.new_subjects, result.identity_limit_hits) == (7, 1, hits)
    linked = [a for a in addresses if subject_of(runtime, IdentifierKind.EMAIL, a) is not None]
    assert linked == addresses[: 7 - hits], "the first ones seen are kept"
    later = ingest(
        at(runtime, 1), [event(user_id="cust-ana", email="ana-new@example.org")], guardrails=guardrails_from(settings)
    )
    assert (later.accepted, later.identity_limit_hits) == (1, 1), "the cap holds across batches"


def customers_then_shared_email(runtime: Runtime, people: int, guardrails: IdentityGuardrails) -> list[int]:
    ingest(at(runtime, 0), [event(user_id=f"cust-{n}") for n in range(people)], guardrails=guardrails)
    subjects = [subject_of(runtime, IdentifierKind.CUSTOMER_ID, f"cust-{n}") for n in range(people)]
    assert None not in subjects
    return [s for s in subjects if s is not None]


def test_the_merge_storm_breaker_refuses_and_keeps_each_record_with_its_subject(runtime: Runtime) -> None:
    guardrails = guardrails_from(runtime.settings)
    assert guardrails.max_subjects_per_merge == 3
    subjects = customers_then_shared_email(runtime, 4, guardrails)
    storm = [event(user_id=f"cust-{n}", email="office@example.org") for n in range(4)]
    result = ingest(at(runtime, 1), storm, guardrails=guardrails)
    assert (result.accepted, result.refused_merges, result.merges) == (4, 1, 0)
    assert count(runtime, IdentityMergeRow) == 0
    assert count(runtime, SubjectRow, SubjectRow.status == "active") == 4
    assert [events_on(runtime, s) for s in subjects] == [2, 2, 2, 2]
    assert subject_of(runtime, IdentifierKind.EMAIL, "office@example.org") is None, "a refused merge links nothing"


@pytest.mark.parametrize(("limit", "refused"), [(3, False), (2, True)])
def test_the_breaker_limit_comes_from_settings(runtime: Runtime, limit: int, refused: bool) -> None:
    guardrails = guardrails_from(runtime.settings.model_copy(update={"max_subjects_per_merge": limit}))
    customers_then_shared_email(runtime, 3, guardrails)
    storm = [event(user_id=f"cust-{n}", email="office@example.org") for n in range(3)]
    result = ingest(at(runtime, 1), storm, guardrails=guardrails)
    assert (result.refused_merges, result.merges) == ((1, 0) if refused else (0, 2))
    assert count(runtime, SubjectRow, SubjectRow.status == "active") == (3 if refused else 1)


def test_guardrails_from_reads_every_limit() -> None:
    settings = Settings(
        max_emails_per_subject=2,
        max_phones_per_subject=3,
        max_device_ids_per_subject=4,
        max_customer_ids_per_subject=5,
        max_partner_user_ids_per_subject=6,
        max_subjects_per_merge=7,
        max_identities_after_merge=8,
    )
    guardrails = guardrails_from(settings)
    assert dict(guardrails.max_per_kind) == {
        "email": 2,
        "phone": 3,
        "device_id": 4,
        "customer_id": 5,
        "partner_user_id": 6,
    }
    assert (guardrails.max_subjects_per_merge, guardrails.max_identities_after_merge) == (7, 8)


# --- split ------------------------------------------------------------------------------------


def only_merge_id(runtime: Runtime) -> int:
    with runtime.sessions() as session:
        [merge_id] = session.scalars(select(IdentityMergeRow.id).where(IdentityMergeRow.split_at.is_(None))).all()
    return merge_id


def test_a_split_gives_the_loser_back_what_it_had(runtime: Runtime) -> None:
    devices = browse_on_two_devices(runtime)
    log_in_on_both(runtime)
    merge_id = only_merge_id(runtime)
    later = at(runtime, 10)
    with later.unit_of_work(SYSTEM_ACTOR) as unit:
        result = split_merge(unit, merge_id)
    assert (result.winner_subject_id, result.loser_subject_id) == (devices.phone, devices.laptop)
    assert (result.identities_moved, result.events_moved, result.origins) == (1, 3, 1)

    assert events_on(runtime, devices.laptop) == 3
    assert identities_on(runtime, devices.laptop) == {"device_id"}
    assert events_on(runtime, devices.phone) == 4, "the two login events were first seen on the winner"
    assert identities_on(runtime, devices.phone) == {"device_id", "customer_id", "email"}
    with runtime.sessions() as session:
        loser = session.get(SubjectRow, devices.laptop)
        assert loser is not None
        assert (loser.status, loser.merged_into) == ("active", None)
        key = session.get(SubjectKeyRow, devices.laptop)
        assert key is not None
        assert key.created_at == NOW + timedelta(seconds=10), "a new data key"
        assert read_pii(session, devices.laptop, runtime.kit) == {}
        assert read_pii(session, devices.phone, runtime.kit) == {"first_name": "Yara"}, "PII stays, as documented"
        assert consent.current_state(session, devices.laptop) == {}, "the loser restarts without consent"
        journal = session.get(IdentityMergeRow, merge_id)
        assert journal is not None
        assert journal.split_at == NOW + timedelta(seconds=10)
    [entry] = audited(runtime, "identity.split")
    assert entry.target == f"identity_merge:{merge_id}"
    assert entry.details == {"identities_moved": 1, "events_moved": 3, "origins": 1}

    again = ingest(at(runtime, 11), [event(anonymous_id="laptop-2", consent_purposes=["analytics"])])
    assert (again.accepted, again.merges) == (1, 0)
    assert device(runtime, "laptop-2") == devices.laptop
    assert events_on(runtime, devices.laptop) == 4


def test_a_split_is_refused_for_an_unknown_or_already_split_merge(runtime: Runtime) -> None:
    browse_on_two_devices(runtime)
    log_in_on_both(runtime)
    merge_id = only_merge_id(runtime)
    with runtime.unit_of_work(SYSTEM_ACTOR) as unit:
        with pytest.raises(SplitError) as unknown:
            split_merge(unit, merge_id + 1000)
        split_merge(unit, merge_id)
        with pytest.raises(SplitError) as twice:
            split_merge(unit, merge_id)
    assert (unknown.value.code, twice.value.code) == (SplitErrorCode.UNKNOWN_MERGE, SplitErrorCode.ALREADY_SPLIT)
    assert len(audited(runtime, "identity.split")) == 1


def three_devices(runtime: Runtime) -> tuple[int, int, int]:
    ingest(at(runtime, 0), [event(anonymous_id="dev-a")])
    ingest(at(runtime, 1), [event(anonymous_id="dev-b"), event(anonymous_id="dev-b")])
    ingest(at(runtime, 2), [event(anonymous_id="dev-c"), event(anonymous_id="dev-c"), event(anonymous_id="dev-c")])
    return device(runtime, "dev-a"), device(runtime, "dev-b"), device(runtime, "dev-c")


def merge(runtime: Runtime, winner: int, loser: int, seconds: int) -> int:
    with at(runtime, seconds).unit_of_work(SYSTEM_ACTOR) as unit:
        merge_subjects(unit, [(winner, loser)], reason="test")
        merge_id = unit.session.scalar(
            select(IdentityMergeRow.id).where(
                IdentityMergeRow.loser_subject_id == loser, IdentityMergeRow.split_at.is_(None)
            )
        )
    assert merge_id is not None
    return merge_id


def test_a_chain_of_merges_comes_apart_one_link_at_a_time(runtime: Runtime) -> None:
    a, b, c = three_devices(runtime)
    c_into_b = merge(runtime, b, c, 3)
    b_into_a = merge(runtime, a, b, 4)
    assert events_on(runtime, a) == 6
    with at(runtime, 5).unit_of_work(SYSTEM_ACTOR) as unit:
        result = split_merge(unit, b_into_a)
    assert (result.events_moved, result.identities_moved, result.origins) == (5, 2, 2)
    assert [events_on(runtime, s) for s in (a, b, c)] == [1, 5, 0], "c's rows go back to b, which c is merged into"
    assert device(runtime, "dev-c") == b
    with at(runtime, 6).unit_of_work(SYSTEM_ACTOR) as unit:
        split_merge(unit, c_into_b)
    assert [events_on(runtime, s) for s in (a, b, c)] == [1, 2, 3]
    assert [device(runtime, name) for name in ("dev-a", "dev-b", "dev-c")] == [a, b, c]


def test_a_split_is_refused_while_the_winner_is_merged_away(runtime: Runtime) -> None:
    a, b, c = three_devices(runtime)
    b_into_a = merge(runtime, a, b, 3)
    a_into_c = merge(runtime, c, a, 4)
    with runtime.unit_of_work(SYSTEM_ACTOR) as unit, pytest.raises(SplitError) as refused:
        split_merge(unit, b_into_a)
    assert refused.value.code is SplitErrorCode.WINNER_MERGED_AWAY
    with at(runtime, 5).unit_of_work(SYSTEM_ACTOR) as unit:
        split_merge(unit, a_into_c)
    assert events_on(runtime, a) == 3, "a gets back its own rows and b's, still merged into it"
    with at(runtime, 6).unit_of_work(SYSTEM_ACTOR) as unit:
        split_merge(unit, b_into_a)
    assert [events_on(runtime, s) for s in (a, b, c)] == [1, 2, 3]


def test_the_cli_lists_merges_and_splits_one(
    runtime: Runtime, keyring: Keyring, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    a, b, _c = three_devices(runtime)
    merge_id = merge(runtime, a, b, 3)
    for name, value in {
        "AUDIENCE_DATA_DIR": str(runtime.settings.data_dir),
        "AUDIENCE_DATABASE_URL": runtime.settings.effective_database_url,
        "AUDIENCE_KEYRING": dumps_keyring(keyring),
        "COLUMNS": "200",
    }.items():
        monkeypatch.setenv(name, value)
    assert audience(["identity", "merges", "--limit", "5"]) == 0
    listing = capsys.readouterr().out
    assert str(merge_id) in listing
    assert str(b) in listing
    assert audience(["identity", "split", str(merge_id)]) == 0
    assert f"split merge {merge_id}" in capsys.readouterr().out
    assert audience(["identity", "split", str(merge_id)]) == 2
    assert capsys.readouterr().err.strip() == "error: this merge has already been split"
    assert events_on(runtime, b) == 2


@pytest.mark.parametrize(
    ("winner_status", "loser_status", "code"),
    [("erased", "merged", SplitErrorCode.WINNER_NOT_ACTIVE), ("active", "active", SplitErrorCode.LOSER_NOT_MERGED)],
)
def test_a_split_is_refused_when_either_side_has_changed(
    runtime: Runtime, winner_status: str, loser_status: str, code: SplitErrorCode
) -> None:
    a, b, _c = three_devices(runtime)
    merge_id = merge(runtime, a, b, 3)
    with runtime.unit_of_work(SYSTEM_ACTOR) as unit:
        unit.session.execute(update(SubjectRow).where(SubjectRow.id == a).values(status=winner_status))
        unit.session.execute(update(SubjectRow).where(SubjectRow.id == b).values(status=loser_status))
    with runtime.unit_of_work(SYSTEM_ACTOR) as unit, pytest.raises(SplitError) as refused:
        split_merge(unit, merge_id)
    assert refused.value.code is code
    assert events_on(runtime, a) == 3, "nothing moved"


def test_a_merging_record_is_judged_on_the_merged_consent(runtime: Runtime) -> None:
    clocked = fixed_clock(runtime)
    """Device of W (analytics granted) + email of L (analytics withdrawn): the merge is most restrictive,
    so a record linking them without its own statement must not be stored on W's grant."""
    ingest(clocked, [event(anonymous_id="dev-w", consent_purposes=["analytics"], timestamp=NOW - timedelta(hours=3))])
    ingest(clocked, [event(email="l@example.org", consent_purposes=["analytics"], timestamp=NOW - timedelta(hours=2))])
    ingest(clocked, [event(email="l@example.org", consent_purposes=[], timestamp=NOW - timedelta(hours=1))])
    linking = ingest(clocked, [event(anonymous_id="dev-w", email="l@example.org", consent_purposes=None)])
    assert [r.code.value for r in linking.rejected] == ["NO_CONSENT"]
    assert linking.accepted == 0


def test_concurrent_batches_with_the_same_new_person_leave_no_orphan(runtime: Runtime) -> None:
    clocked = fixed_clock(runtime)
    """Two writers see the same email as new at the same moment; every stored event stays reachable."""
    import threading

    from sqlalchemy import func

    errors: list[BaseException] = []

    def send(tag: str) -> None:
        try:
            ingest(clocked, [event(email="race@example.org", message_id=f"race-{tag}-{i}") for i in range(50)])
        except BaseException as error:  # reported below
            errors.append(error)

    threads = [threading.Thread(target=send, args=(tag,)) for tag in ("a", "b", "c")]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    with clocked.sessions() as session:
        orphaned = session.scalar(
            select(func.count()).select_from(EventRow).where(~EventRow.subject_id.in_(select(IdentityRow.subject_id)))
        )
        owners = session.scalar(select(func.count(func.distinct(EventRow.subject_id))))
    assert orphaned == 0
    assert owners == 1
