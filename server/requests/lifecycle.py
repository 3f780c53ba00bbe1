"""The rules of a data-subject request's life, with no database: kinds, states, moves, due dates.

``received -> verified -> executing -> completed``, or ``rejected`` from any open state. A request
is executed only once someone has verified that the requester is the person (Art. 12(6)), and
``executing`` is its own state so that a request whose work was interrupted (a crash, a kill)
is seen as such and run again, never taken for done.
"""

from __future__ import annotations

import calendar
import enum
import re
from datetime import datetime
from typing import Final

__all__ = [
    "OPEN",
    "RUNS_UNATTENDED",
    "RejectionReason",
    "RequestError",
    "RequestErrorCode",
    "RequestKind",
    "RequestStatus",
    "check_label",
    "check_move",
    "due_at",
]


class RequestKind(enum.StrEnum):
    ERASURE = "erasure"  # Art. 17
    ACCESS = "access"  # Art. 15 and 20
    RECTIFICATION = "rectification"  # Art. 16
    RESTRICTION = "restriction"  # Art. 18
    OBJECTION = "objection"  # Art. 21


class RequestStatus(enum.StrEnum):
    RECEIVED = "received"
    VERIFIED = "verified"
    EXECUTING = "executing"
    COMPLETED = "completed"
    REJECTED = "rejected"


class RejectionReason(enum.StrEnum):
    """Why a request was refused, from a fixed list so that no free text (or personal data) is kept."""

    IDENTITY_NOT_VERIFIED = "identity_not_verified"
    MANIFESTLY_UNFOUNDED = "manifestly_unfounded"
    EXCESSIVE = "excessive"
    DUPLICATE = "duplicate"
    LEGAL_OBLIGATION = "legal_obligation"  # Art. 17(3)(b): the data must be kept
    WITHDRAWN_BY_REQUESTER = "withdrawn_by_requester"


OPEN: Final = frozenset({RequestStatus.RECEIVED, RequestStatus.VERIFIED, RequestStatus.EXECUTING})

# Kinds whose work needs nothing but the request, so an interrupted one is resumed on its own;
# an export must reach whoever asked and a rectification needs the new values, so those two are
# run again by the compliance team.
RUNS_UNATTENDED: Final = frozenset({RequestKind.ERASURE, RequestKind.RESTRICTION, RequestKind.OBJECTION})

_MOVES: Final[dict[RequestStatus, frozenset[RequestStatus]]] = {
    RequestStatus.RECEIVED: frozenset({RequestStatus.VERIFIED, RequestStatus.REJECTED}),
    RequestStatus.VERIFIED: frozenset({RequestStatus.EXECUTING, RequestStatus.REJECTED}),
    # Executing again is the resumption of interrupted work.
    RequestStatus.EXECUTING: frozenset({RequestStatus.EXECUTING, RequestStatus.COMPLETED, RequestStatus.REJECTED}),
    RequestStatus.COMPLETED: frozenset(),
    RequestStatus.REJECTED: frozenset(),
}


class RequestErrorCode(enum.StrEnum):
    UNKNOWN_REQUEST = "UNKNOWN_REQUEST"
    NOT_VERIFIED = "NOT_VERIFIED"
    ALREADY_CLOSED = "ALREADY_CLOSED"
    ALREADY_VERIFIED = "ALREADY_VERIFIED"
    WRONG_KIND = "WRONG_KIND"
    INVALID_LABEL = "INVALID_LABEL"
    NOT_RESTRICTED = "NOT_RESTRICTED"


_MESSAGES: Final[dict[RequestErrorCode, str]] = {
    RequestErrorCode.UNKNOWN_REQUEST: "no request has this id",
    RequestErrorCode.NOT_VERIFIED: "the requester's identity has not been verified yet: verify the request first",
    RequestErrorCode.ALREADY_CLOSED: "the request is closed (completed or rejected)",
    RequestErrorCode.ALREADY_VERIFIED: "the request has already been verified",
    RequestErrorCode.WRONG_KIND: "this action does not apply to a request of this kind",
    RequestErrorCode.INVALID_LABEL: "must be 1-64 characters of letters, digits and ._:/- (a reference, no document)",
    RequestErrorCode.NOT_RESTRICTED: "only a completed restriction request can be lifted",
}


class RequestError(Exception):
    """A refused step; the message states the rule and names the field, never a value sent."""

    def __init__(self, code: RequestErrorCode, field: str | None = None) -> None:
        self.code = code
        self.field = field
        self.message = _MESSAGES[code] if field is None else f"{field}: {_MESSAGES[code]}"
        super().__init__(self.message)


def check_move(current: RequestStatus, target: RequestStatus) -> None:
    if target in _MOVES[current]:
        return
    if current not in OPEN:
        raise RequestError(RequestErrorCode.ALREADY_CLOSED)
    if target is RequestStatus.VERIFIED:
        raise RequestError(RequestErrorCode.ALREADY_VERIFIED)
    raise RequestError(RequestErrorCode.NOT_VERIFIED)


_LABEL: Final = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._:/-]{0,63}$")


def check_label(field: str, value: str) -> str:
    """How the identity was verified and the reference of the proof are labels ('email-challenge',
    'ticket:4711'), never a copy of a document or free text that could carry personal data."""
    if not _LABEL.match(value):
        raise RequestError(RequestErrorCode.INVALID_LABEL, field)
    return value


def due_at(received: datetime) -> datetime:
    """One month after receipt (Art. 12(3)): the same day of the next month, or its last day
    when it has none (31 January is due 28 or 29 February)."""
    year, month = (received.year + 1, 1) if received.month == 12 else (received.year, received.month + 1)
    day = min(received.day, calendar.monthrange(year, month)[1])
    return received.replace(year=year, month=month, day=day)
