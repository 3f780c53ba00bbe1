"""People put into every subject-keyed table through the product's own paths, for the erasure probes.

``populate`` stores a person the way a real installation would come to hold one: anonymous
browsing on two devices (events, consent, profile state folded in real time), a login that merges
the devices (merge journal, ``merged_into``, rebuild marks), the same email sent by a partner (an
identity in the partner's scope, on a subject of its own), declared attributes (encrypted PII and
coarse traits) and an Art. 18 restriction row. ``reached`` is what a request by email finds.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta

import polars as pl
from sqlalchemy import select

from privacy.identifiers import IdentifierKind, normalize
from server.auth.principal import SYSTEM_ACTOR
from server.erasure import ErasureReceipt, erase_subjects
from server.ingest.attributes import ATTRIBUTE_SCHEMA, upsert_attributes
from server.ingest.setup import guardrails_from
from server.runtime import Runtime
from server.storage.tables import IdentityRow, SubjectKeyRow, SubjectRestrictionRow
from server.subjects.reach import persons_reached
from tests.ingest.batches import NOW, add_partner, event, fixed_clock, ingest

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


def populate(runtime: Runtime, person: Person, *, partner: str, offset: int = 0) -> None:
    """``partner`` must exist (``add_partner``); each call uses its own device and customer ids."""
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
        [subject] = reached_in(unit.session, runtime, person, scope_ours=True)
        unit.session.add(SubjectRestrictionRow(subject_id=subject, request_id=None, since=NOW))


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


def setup_two(runtime: Runtime) -> str:
    """Ana and Ben, both whole; returns the partner's name."""
    add_partner(runtime, "acme")
    populate(runtime, ANA, partner="acme", offset=0)
    populate(runtime, BEN, partner="acme", offset=1)
    return "acme"
