"""The request desk: due dates, the moves a request may make, labels that cannot carry personal data."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from server.requests.lifecycle import (
    RequestError,
    RequestErrorCode,
    RequestStatus,
    check_label,
    check_move,
    due_at,
)


@pytest.mark.parametrize(
    ("received", "due"),
    [
        (datetime(2026, 1, 31, 9, 30, tzinfo=UTC), datetime(2026, 2, 28, 9, 30, tzinfo=UTC)),
        (datetime(2028, 1, 31, tzinfo=UTC), datetime(2028, 2, 29, tzinfo=UTC)),
        (datetime(2026, 12, 15, tzinfo=UTC), datetime(2027, 1, 15, tzinfo=UTC)),
        (datetime(2026, 3, 31, tzinfo=UTC), datetime(2026, 4, 30, tzinfo=UTC)),
        (datetime(2026, 4, 30, tzinfo=UTC), datetime(2026, 5, 30, tzinfo=UTC)),
    ],
)
def test_a_request_is_due_one_calendar_month_after_receipt(received: datetime, due: datetime) -> None:
    assert due_at(received) == due


@pytest.mark.parametrize(
    ("current", "target", "code"),
    [
        (RequestStatus.RECEIVED, RequestStatus.EXECUTING, RequestErrorCode.NOT_VERIFIED),
        (RequestStatus.VERIFIED, RequestStatus.VERIFIED, RequestErrorCode.ALREADY_VERIFIED),
        (RequestStatus.COMPLETED, RequestStatus.EXECUTING, RequestErrorCode.ALREADY_CLOSED),
        (RequestStatus.REJECTED, RequestStatus.VERIFIED, RequestErrorCode.ALREADY_CLOSED),
        (RequestStatus.COMPLETED, RequestStatus.REJECTED, RequestErrorCode.ALREADY_CLOSED),
    ],
)
def test_moves_out_of_order_are_refused_with_their_rule(
    current: RequestStatus, target: RequestStatus, code: RequestErrorCode
) -> None:
    with pytest.raises(RequestError) as refused:
        check_move(current, target)
    assert refused.value.code is code


def test_an_interrupted_request_may_run_again() -> None:
    check_move(RequestStatus.EXECUTING, RequestStatus.EXECUTING)


@pytest.mark.parametrize("value", ["", "jane@example.org", "passport 123", "x" * 65, "-leading-dash", "ticket\n1"])
def test_verification_labels_refuse_free_text_without_echoing_it(value: str) -> None:
    with pytest.raises(RequestError) as refused:
        check_label("reference", value)
    assert refused.value.field == "reference"
    if value:
        assert value not in refused.value.message


def test_verification_labels_accept_references() -> None:
    assert check_label("method", "email-challenge") == "email-challenge"
    assert check_label("reference", "ticket:4711/a.b") == "ticket:4711/a.b"
