"""People put into every subject-keyed table through the product's own paths, for the erasure probes.

``populate`` stores a person the way a real installation would come to hold one: anonymous
browsing on two devices (events, consent, profile state folded in real time), a login that merges
the devices (merge journal, ``merged_into``, rebuild marks), the same email sent by a partner (an
identity in the partner's scope, on a subject of its own), declared attributes (encrypted PII and
coarse traits), a segment's stay and what its partner grant was told, and an Art. 18 restriction
(which leaves a rebuild mark for the segment evaluator). ``reached`` is what a request by email finds.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta

import polars as pl
from sqlalchemy import select

from privacy.consent import ConsentPurpose
from privacy.identifiers import IdentifierKind, normalize
from privacy.purposes import Purpose
from server.auth.principal import SYSTEM_ACTOR
from server.erasure import ErasureReceipt, erase_subjects
from server.ingest.attributes import ATTRIBUTE_SCHEMA, upsert_attributes
from server.ingest.setup import guardrails_from
from server.restriction.service import restrict
from server.runtime import Runtime
from server.segments.drain import drain_marks
from server.segments.evaluate import evaluate_population
from server.segments.rules import Compare, CompareOp
from server.storage.tables import IdentityRow, PartnerRow, SubjectKeyRow
from server.subjects.reach import persons_reached
from tests.ingest.batches import NOW, add_partner, event, fixed_clock, ingest
from tests.segments.segment_steps import add_grant, add_segment, consent

CONSENTS = ["analytics", "profiling", "advertising"]


@dataclass(frozen=True)
class Person:
    key: str
    first_name: str
    last_name: str
    email: str
    phone: str

    @property
    def customer(self) -> str:
        return f"cust-{self.key}"

    def device(self, n: int) -> str:
        return f"{self.key}-device-{n}"


ANA = Person("ana", "Anastasia", "Querétaro-Lindqvist", "anastasia.lindqvist@example.org", "+49 30 1234567")
BEN = Person("ben", "Bartholomew", "Okonkwo-Whitfield", "bart.okonkwo@example.net", "+33 1 23 45 67 89")


def at(runtime: Runtime, seconds: int) -> Runtime:
    return fixed_clock(runtime, NOW + timedelta(seconds=seconds))


def populate(runtime: Runtime, person: Person, *, partner: str, offset: int = 0, restricted: bool = True) -> None:
    """``partner`` must exist (``add_partner``); each call uses its own device and customer ids.
    ``restricted=False``: without the restriction, for ``restrict_person`` once everyone is evaluated."""
    t = offset * 10
    from_partner = event(
        partner=partner,
        email=person.email,
        partner_user_id=f"pu-{person.key}",
        channel="partner",
        consent_purposes=["analytics"],
    )
    assert ingest(at(runtime, t), [from_partner]).accepted == 1, "the partner links the email first, in its scope"
    for n in (1, 2):
        batch = [event(anonymous_id=person.device(n), consent_purposes=CONSENTS, topics=["travel"]) for _ in range(2)]
        assert ingest(at(runtime, t + n), batch).accepted == 2
    login = event(
        user_id=person.customer,
        email=person.email,
        phone=person.phone,
        anonymous_id=person.device(1),
        consent_purposes=None,
    )
    assert ingest(at(runtime, t + 3), [login]).accepted == 1
    second = event(user_id=person.customer, anonymous_id=person.device(2), consent_purposes=None)
    assert ingest(at(runtime, t + 4), [second]).merges == 1
    # Shared with the partner, whose grant of the segment of everyone then tells it of the person.
    consent(at(runtime, t + 5), person.email, ConsentPurpose.SHARING, partner_id=partner_id(runtime, partner))
    drain_marks(at(runtime, t + 5))
    records = pl.DataFrame(
        [
            {
                "email": person.email,
                "first_name": person.first_name,
                "last_name": person.last_name,
                "birth_year": 1984,
                "region": "DE-BE",
            }
        ],
        schema=ATTRIBUTE_SCHEMA,
    )
    with at(runtime, t + 6).unit_of_work(SYSTEM_ACTOR) as unit:
        result = upsert_attributes(
            unit, records, current_year=NOW.year, rules=unit.kit.rules, guardrails=guardrails_from(runtime.settings)
        )
        assert result.accepted == 1, result.rejected
    if restricted:
        restrict_person(at(runtime, t + 7), person)


def restrict_person(runtime: Runtime, person: Person) -> None:
    """Art. 18 on our own subject; the service marks it for its segments to be evaluated again."""
    with runtime.unit_of_work(SYSTEM_ACTOR) as unit:
        [subject] = reached_in(unit.session, runtime, person, scope_ours=True)
        restrict(unit, [subject], request_id=None)


def reached_in(session: object, runtime: Runtime, person: Person, *, scope_ours: bool = False) -> list[int]:
    """Our own scope's active subject for the email (``scope_ours``), or every subject a request reaches."""
    email = normalize(IdentifierKind.EMAIL, person.email, rules=runtime.kit.rules)
    if scope_ours:
        pseudonym = runtime.kit.pseudonymizer.pseudonym(email)
        return list(
            session.scalars(  # type: ignore[attr-defined]
                select(IdentityRow.subject_id).where(
                    IdentityRow.pseudonym == pseudonym.digest, IdentityRow.partner_id.is_(None)
                )
            )
        )
    return persons_reached(session, email, runtime.kit)  # type: ignore[arg-type]


def reached(runtime: Runtime, person: Person) -> list[int]:
    with runtime.sessions() as session:
        return reached_in(session, runtime, person)


def pseudonyms_of(runtime: Runtime, subject_ids: list[int]) -> set[bytes]:
    with runtime.sessions() as session:
        return {
            bytes(p)
            for p in session.scalars(select(IdentityRow.pseudonym).where(IdentityRow.subject_id.in_(subject_ids)))
        }


def wrapped_keys_of(runtime: Runtime, subject_ids: list[int]) -> set[bytes]:
    with runtime.sessions() as session:
        return {
            bytes(k)
            for k in session.scalars(select(SubjectKeyRow.wrapped_dek).where(SubjectKeyRow.subject_id.in_(subject_ids)))
        }


def erase(runtime: Runtime, subject_ids: list[int], *, request_id: int | None = None) -> ErasureReceipt:
    with runtime.unit_of_work(SYSTEM_ACTOR) as unit:
        return erase_subjects(unit, subject_ids, request_id=request_id, reason="request")


def partner_id(runtime: Runtime, name: str) -> int:
    with runtime.sessions() as session:
        found = session.scalar(select(PartnerRow.id).where(PartnerRow.name == name))
        assert found is not None
        return found


def setup_two(runtime: Runtime) -> str:
    """Ana and Ben, both whole, each in a segment granted to the partner; returns the partner's name."""
    acme = add_partner(runtime, "acme")
    everyone = add_segment(runtime, "everyone", Compare("events_lifetime", CompareOp.GE, 1))
    evaluate_population(fixed_clock(runtime))
    add_grant(fixed_clock(runtime), everyone, acme, Purpose.ANALYTICS)
    populate(runtime, ANA, partner="acme", offset=0, restricted=False)
    populate(runtime, BEN, partner="acme", offset=1, restricted=False)
    for person in (ANA, BEN):  # after both were evaluated: a restriction ends the stays at the next drain
        restrict_person(at(runtime, 30), person)
    return "acme"
