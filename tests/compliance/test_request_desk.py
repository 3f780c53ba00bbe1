"""Filing, verifying, rejecting and listing requests, with a clock the test moves."""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import select

from privacy.identifiers import IdentifierKind, InvalidIdentifier
from server.auth.principal import Actor
from server.consent.requests import RawIdentifier
from server.requests import records
from server.requests.lifecycle import RejectionReason, RequestError, RequestErrorCode, RequestKind, RequestStatus
from server.runtime import Runtime
from server.storage.tables import AuditEntryRow, SubjectRequestRow

JAN = datetime(2026, 1, 10, 9, tzinfo=UTC)
OFFICER = Actor(key_id="k-officer", role="compliance")


def _at(runtime: Runtime, now: datetime) -> Runtime:
    return dataclasses.replace(runtime, clock=lambda: now)


def _file(runtime: Runtime, kind: RequestKind, email: str) -> int:
    with runtime.unit_of_work(OFFICER) as unit:
        return records.file_request(unit, kind=kind, identifier=RawIdentifier(IdentifierKind.EMAIL, email)).id


def test_open_and_overdue_lists_follow_the_due_dates(runtime: Runtime) -> None:
    old = _file(_at(runtime, JAN), RequestKind.ERASURE, "old@example.org")
    recent = _file(_at(runtime, JAN + timedelta(days=20)), RequestKind.ACCESS, "recent@example.org")
    refused = _file(_at(runtime, JAN), RequestKind.OBJECTION, "refused@example.org")
    with _at(runtime, JAN).unit_of_work(OFFICER) as unit:
        records.reject_request(unit, refused, RejectionReason.MANIFESTLY_UNFOUNDED)

    now = JAN + timedelta(days=35)  # past the first's due date (10 February), before the second's
    with runtime.sessions() as session:
        open_ = [v.id for v in records.list_requests(session, now=now, which="open")]
        overdue = [v.id for v in records.list_requests(session, now=now, which="overdue")]
        every = [v.id for v in records.list_requests(session, now=now, which="all")]
        access = [v.id for v in records.list_requests(session, now=now, which="all", kinds=[RequestKind.ACCESS])]
    assert open_ == [old, recent]
    assert overdue == [old]
    assert set(every) == {old, recent, refused}
    assert access == [recent]


def test_verification_records_who_and_how_and_every_step_is_audited(runtime: Runtime) -> None:
    request_id = _file(runtime, RequestKind.ACCESS, "asker@example.org")
    with runtime.unit_of_work(OFFICER) as unit:
        view = records.verify_request(unit, request_id, method="id-check", reference="ticket:88")
    assert view.status is RequestStatus.VERIFIED
    assert (view.verified_by, view.verification_method, view.verification_reference) == (
        "k-officer",
        "id-check",
        "ticket:88",
    )
    with runtime.unit_of_work(OFFICER) as unit, pytest.raises(RequestError) as twice:
        records.verify_request(unit, request_id, method="id-check", reference="ticket:88")
    assert twice.value.code is RequestErrorCode.ALREADY_VERIFIED
    with runtime.sessions() as session:
        actions = session.scalars(
            select(AuditEntryRow.action)
            .where(AuditEntryRow.target == f"request:{request_id}")
            .order_by(AuditEntryRow.seq)
        ).all()
    assert actions == ["request.filed", "request.verified"]


def test_a_request_keeps_only_the_keyed_hash_of_the_identifier(runtime: Runtime) -> None:
    email = "only.hashed@example.org"
    request_id = _file(runtime, RequestKind.ERASURE, email)
    with runtime.sessions() as session:
        row = session.get(SubjectRequestRow, request_id)
        assert row is not None
        stored = repr([getattr(row, column.key) for column in SubjectRequestRow.__table__.columns])
        audit = repr(session.scalars(select(AuditEntryRow.details)).all())
    assert "only.hashed" not in stored
    assert "only.hashed" not in audit
    assert row.identifier_kind == "email"
    assert len(row.identifier_pseudonym) == 32


def test_an_invalid_identifier_files_nothing(runtime: Runtime) -> None:
    with pytest.raises(InvalidIdentifier), runtime.unit_of_work(OFFICER) as unit:
        records.file_request(unit, kind=RequestKind.ACCESS, identifier=RawIdentifier(IdentifierKind.EMAIL, "x@"))
    with runtime.sessions() as session:
        assert session.scalars(select(SubjectRequestRow)).all() == []


def test_a_closed_request_cannot_be_rejected_or_verified(runtime: Runtime) -> None:
    request_id = _file(runtime, RequestKind.RESTRICTION, "closed@example.org")
    with runtime.unit_of_work(OFFICER) as unit:
        records.reject_request(unit, request_id, RejectionReason.DUPLICATE)
    with runtime.unit_of_work(OFFICER) as unit, pytest.raises(RequestError) as rejected:
        records.reject_request(unit, request_id, RejectionReason.EXCESSIVE)
    assert rejected.value.code is RequestErrorCode.ALREADY_CLOSED
    with runtime.unit_of_work(OFFICER) as unit, pytest.raises(RequestError) as verified:
        records.verify_request(unit, request_id, method="m", reference="r")
    assert verified.value.code is RequestErrorCode.ALREADY_CLOSED
