"""Every identifier a partner sends is linked in its own scope, also one we link ourselves: the
partner then finds the visitor by all it sent (and by nothing else), whether or not we knew it,
while our own records keep following our links only. Those links follow the person through a
merge, a split and an erasure like ours."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import select

from privacy.identifiers import IdentifierKind, normalize
from server.auth.principal import SYSTEM_ACTOR
from server.identity.split import split_merge
from server.ingest.setup import guardrails_from
from server.partners.lookup import subject_in_partner_scope
from server.runtime import Runtime
from server.storage.tables import EventRow, IdentityMergeRow, IdentityRow, SuppressionRow
from server.subjects.reach import persons_reached
from tests.ingest.batches import NOW, add_partner, count, event, fixed_clock, ingest, subject_of
from tests.privacy.erasure_people import erase

EMAIL = "ana@example.org"
USER = "acme-user-7"
Link = tuple[int | None, str]
"""(partner id, kind) of a stored link: the partner id is None for ours."""


def at(runtime: Runtime, seconds: int) -> Runtime:
    return fixed_clock(runtime, NOW + timedelta(seconds=seconds))


def ours(runtime: Runtime, seconds: int = 0, **identifiers: str) -> int:
    """A first-hand record of a person; returns the subject our links give it."""
    assert ingest(at(runtime, seconds), [event(**identifiers)]).accepted == 1
    kind, value = next(iter(identifiers.items()))
    subject = subject_of(runtime, KINDS[kind], value)
    assert subject is not None
    return subject


KINDS = {
    "email": IdentifierKind.EMAIL,
    "anonymous_id": IdentifierKind.DEVICE_ID,
    "user_id": IdentifierKind.CUSTOMER_ID,
    "phone": IdentifierKind.PHONE,
}


def from_partner(runtime: Runtime, partner: str, seconds: int = 1, **identifiers: str) -> None:
    record = event(partner=partner, channel="partner", consent_purposes=["analytics"], **identifiers)
    assert ingest(at(runtime, seconds), [record]).accepted == 1


def found_by(runtime: Runtime, partner_id: int, kind: IdentifierKind, value: str) -> int | None:
    with runtime.sessions() as session:
        return subject_in_partner_scope(session, runtime.kit, partner_id=partner_id, kind=kind, value=value)


def links(runtime: Runtime, subject_id: int) -> list[Link]:
    """The subject's links, ours first, then by partner and kind."""
    with runtime.sessions() as session:
        rows = session.execute(
            select(IdentityRow.partner_id, IdentityRow.kind).where(IdentityRow.subject_id == subject_id)
        )
        found: list[Link] = [(partner_id, kind) for partner_id, kind in rows]
    return sorted(found, key=lambda link: (link[0] or 0, link[1]))


@pytest.fixture
def acme(runtime: Runtime) -> int:
    return add_partner(runtime, "acme")


def test_an_email_we_know_is_linked_in_the_partners_scope_too_and_found_only_by_that_partner(
    runtime: Runtime, acme: int
) -> None:
    beta = add_partner(runtime, "beta")
    ana = ours(runtime, email=EMAIL)
    from_partner(runtime, "acme", email=EMAIL, partner_user_id=USER)

    assert links(runtime, ana) == [(None, "email"), (acme, "email"), (acme, "partner_user_id")]
    assert found_by(runtime, acme, IdentifierKind.EMAIL, EMAIL) == ana
    assert found_by(runtime, acme, IdentifierKind.PARTNER_USER_ID, USER) == ana
    assert found_by(runtime, beta, IdentifierKind.EMAIL, EMAIL) is None, "another partner found acme's email"
    assert found_by(runtime, beta, IdentifierKind.PARTNER_USER_ID, USER) is None

    from_partner(runtime, "beta", seconds=2, email=EMAIL)
    assert found_by(runtime, beta, IdentifierKind.EMAIL, EMAIL) == ana, "the second partner got no link of its own"
    assert links(runtime, ana) == [(None, "email"), (acme, "email"), (acme, "partner_user_id"), (beta, "email")]


def test_the_partners_answer_is_the_same_whether_we_knew_the_email_or_not(runtime: Runtime, acme: int) -> None:
    """What a partner can look up is what it sent: no oracle on which of its emails we held."""
    ours(runtime, email=EMAIL)
    for email, user in ((EMAIL, USER), ("stranger@example.org", "acme-user-8")):
        from_partner(runtime, "acme", email=email, partner_user_id=user)
        by_email = found_by(runtime, acme, IdentifierKind.EMAIL, email)
        assert by_email is not None
        assert by_email == found_by(runtime, acme, IdentifierKind.PARTNER_USER_ID, user)


def test_a_resend_and_a_new_record_with_the_same_identifiers_link_nothing_new(runtime: Runtime, acme: int) -> None:
    ours(runtime, email=EMAIL)
    record = event(partner="acme", channel="partner", email=EMAIL, partner_user_id=USER, consent_purposes=["analytics"])
    ingest(at(runtime, 1), [record])
    linked = count(runtime, IdentityRow)
    assert ingest(at(runtime, 2), [record]).duplicates == 1
    again = {**record, "message_id": "m-again"}
    assert ingest(at(runtime, 3), [again, {**again, "message_id": "m-again-2"}]).accepted == 2
    assert count(runtime, IdentityRow) == linked


def test_our_records_never_follow_the_partners_links(runtime: Runtime, acme: int) -> None:
    """The partner's record carries our email and a device of its own: the device is linked in its
    scope only, so our record naming that device alone is a new person, and our links are unchanged."""
    ana = ours(runtime, email=EMAIL)
    from_partner(runtime, "acme", email=EMAIL, anonymous_id="acme-device-1")
    assert found_by(runtime, acme, IdentifierKind.DEVICE_ID, "acme-device-1") == ana

    stranger = ours(runtime, 2, anonymous_id="acme-device-1")
    assert stranger != ana, "our record followed the partner's device link"
    assert ours(runtime, 3, email=EMAIL) == ana
    assert [link for link in links(runtime, ana) if link[0] is None] == [(None, "email")]


def test_partner_links_count_against_its_own_caps_only(runtime: Runtime, acme: int) -> None:
    """Caps per scope: the partner's link of an email we know takes room in its scope, never in ours."""
    guardrails = guardrails_from(runtime.settings.model_copy(update={"max_emails_per_subject": 2}))
    ana = ours(runtime, user_id="cust-1", email="a1@example.org")
    partner = [
        event(partner="acme", channel="partner", consent_purposes=["analytics"], partner_user_id=USER, email=email)
        for email in ("a1@example.org", "acme-only@example.org", "acme-third@example.org")
    ]
    assert ingest(at(runtime, 1), partner, guardrails=guardrails).identity_limit_hits == 1
    assert ingest(at(runtime, 2), [event(user_id="cust-1", email="a2@example.org")], guardrails=guardrails).accepted
    assert links(runtime, ana).count((None, "email")) == 2, "the partner's emails took our room"
    assert links(runtime, ana).count((acme, "email")) == 2


def test_a_split_takes_the_partners_link_of_our_email_back_with_ours(runtime: Runtime, acme: int) -> None:
    """Ana's email came to Ben's subject by a (wrong) merge; acme sent it meanwhile. After the split
    acme finds Ana by it, and erasing Ana by her email reaches Ana alone, not Ben."""
    ben = ours(runtime, 0, user_id="cust-ben")
    ana = ours(runtime, 1, email=EMAIL)
    assert ingest(at(runtime, 2), [event(user_id="cust-ben", email=EMAIL)]).merges == 1
    from_partner(runtime, "acme", seconds=3, email=EMAIL, partner_user_id=USER)
    assert found_by(runtime, acme, IdentifierKind.EMAIL, EMAIL) == ben

    with runtime.sessions() as session:
        [merge_id] = session.scalars(select(IdentityMergeRow.id)).all()
    with at(runtime, 4).unit_of_work(SYSTEM_ACTOR) as unit:
        split_merge(unit, merge_id)

    assert subject_of(runtime, IdentifierKind.EMAIL, EMAIL) == ana
    assert found_by(runtime, acme, IdentifierKind.EMAIL, EMAIL) == ana
    with runtime.sessions() as session:
        reached = persons_reached(session, normalize(IdentifierKind.EMAIL, EMAIL), runtime.kit)
    assert reached == [ana], "erasing Ana's email would reach Ben"


def test_erasure_removes_the_partners_links_and_suppresses_the_identifiers(runtime: Runtime, acme: int) -> None:
    ana = ours(runtime, email=EMAIL)
    from_partner(runtime, "acme", email=EMAIL, partner_user_id=USER)
    suppressed_before = count(runtime, SuppressionRow)
    erase(runtime, [ana])

    assert links(runtime, ana) == []
    assert found_by(runtime, acme, IdentifierKind.EMAIL, EMAIL) is None
    assert found_by(runtime, acme, IdentifierKind.PARTNER_USER_ID, USER) is None
    assert count(runtime, SuppressionRow) == suppressed_before + 2, "our email (once) and acme's user id"
    resent = event(partner="acme", channel="partner", email=EMAIL, consent_purposes=["analytics"])
    ingest(at(runtime, 5), [resent])
    assert count(runtime, IdentityRow) == 0


def test_a_partner_record_on_a_subject_our_records_merge_in_the_same_pass_goes_to_the_winner(
    runtime: Runtime, acme: int
) -> None:
    """A file holding our login and a partner's record of the same device, stored in one pass."""
    ana = ours(runtime, 0, email=EMAIL)
    laptop = ours(runtime, 1, anonymous_id="laptop-1")
    partner = event(partner="acme", channel="partner", consent_purposes=["analytics"], partner_user_id=USER)
    batch = [event(email=EMAIL, anonymous_id="laptop-1"), {**partner, "anonymous_id": "laptop-1"}]
    assert ingest(at(runtime, 2), batch).merges == 1

    assert found_by(runtime, acme, IdentifierKind.PARTNER_USER_ID, USER) == ana
    assert found_by(runtime, acme, IdentifierKind.DEVICE_ID, "laptop-1") == ana
    assert links(runtime, laptop) == [], "a link was left on the merged-away subject"
    assert count(runtime, EventRow, EventRow.subject_id == laptop) == 0

    with runtime.sessions() as session:
        [merge_id] = session.scalars(select(IdentityMergeRow.id)).all()
    with at(runtime, 3).unit_of_work(SYSTEM_ACTOR) as unit:
        split_merge(unit, merge_id)
    assert found_by(runtime, acme, IdentifierKind.DEVICE_ID, "laptop-1") == laptop, "split left acme's device link"
