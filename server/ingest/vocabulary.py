"""What an event may say: its types, channels, and the codes a rejected record gets."""

from __future__ import annotations

import enum
from typing import Final

# The vocabulary of types and channels lives with the frame contracts (profiles read it too and
# may not import ingestion); it is re-exported here so that ingestion's callers keep their imports.
from server.frames.vocabulary import (
    ADVERTISING_EVENT_TYPES,
    CHANNEL_ORDER,
    CHANNELS,
    EVENT_TYPE_ORDER,
    EVENT_TYPES,
)

__all__ = [
    "ADVERTISING_EVENT_TYPES",
    "CHANNELS",
    "CHANNEL_ORDER",
    "EVENT_TYPES",
    "EVENT_TYPE_ORDER",
    "REJECT_MESSAGES",
    "REJECT_SETTINGS",
    "RejectCode",
]


class RejectCode(enum.StrEnum):
    """Stable codes for a rejected record; each message names the rule, never the value."""

    INVALID_RECORD = "INVALID_RECORD"
    INVALID_MESSAGE_ID = "INVALID_MESSAGE_ID"
    UNKNOWN_EVENT_TYPE = "UNKNOWN_EVENT_TYPE"
    UNKNOWN_CHANNEL = "UNKNOWN_CHANNEL"
    INVALID_TIMESTAMP = "INVALID_TIMESTAMP"
    FUTURE_TIMESTAMP = "FUTURE_TIMESTAMP"
    TOO_OLD = "TOO_OLD"
    INVALID_EMAIL = "INVALID_EMAIL"
    INVALID_PHONE = "INVALID_PHONE"
    INVALID_DEVICE_ID = "INVALID_DEVICE_ID"
    INVALID_CUSTOMER_ID = "INVALID_CUSTOMER_ID"
    INVALID_PARTNER_USER_ID = "INVALID_PARTNER_USER_ID"
    UNKNOWN_PARTNER = "UNKNOWN_PARTNER"
    NO_IDENTIFIER = "NO_IDENTIFIER"
    INVALID_AMOUNT = "INVALID_AMOUNT"
    INVALID_CURRENCY = "INVALID_CURRENCY"
    UNKNOWN_PURPOSE = "UNKNOWN_PURPOSE"
    PURPOSE_NOT_DECLARED = "PURPOSE_NOT_DECLARED"
    SUPPRESSED = "SUPPRESSED"
    NO_CONSENT = "NO_CONSENT"
    AMBIGUOUS_IDENTITY = "AMBIGUOUS_IDENTITY"
    TOO_LARGE = "TOO_LARGE"


REJECT_MESSAGES: Final[dict[RejectCode, str]] = {
    RejectCode.INVALID_RECORD: "the record is not an event object, or a field has the wrong type",
    RejectCode.INVALID_MESSAGE_ID: "messageId is required: 1 to 128 printable characters",
    RejectCode.UNKNOWN_EVENT_TYPE: "type is not a declared event type",
    RejectCode.UNKNOWN_CHANNEL: "channel must be one of web, app, email, ads, offline, partner",
    RejectCode.INVALID_TIMESTAMP: "timestamp is required: an ISO-8601 date and time with its offset (Z or +HH:MM)",
    RejectCode.FUTURE_TIMESTAMP: "timestamp is in the future beyond the allowed clock skew",
    RejectCode.TOO_OLD: "timestamp is older than the retention window",
    RejectCode.INVALID_EMAIL: "email is not a valid address",
    RejectCode.INVALID_PHONE: "phone is not a valid number (E.164, or national in the default region)",
    RejectCode.INVALID_DEVICE_ID: "anonymousId is not a valid device id",
    RejectCode.INVALID_CUSTOMER_ID: "userId is not a valid customer id",
    RejectCode.INVALID_PARTNER_USER_ID: "partnerUserId is not valid, or was sent without a partner",
    RejectCode.UNKNOWN_PARTNER: "partner is not a registered partner",
    RejectCode.NO_IDENTIFIER: "the record carries no usable identifier",
    RejectCode.INVALID_AMOUNT: "amount must be a finite number >= 0 with a currency",
    RejectCode.INVALID_CURRENCY: "currency must be a three-letter ISO 4217 code",
    RejectCode.UNKNOWN_PURPOSE: "consent lists a purpose outside the vocabulary",
    RejectCode.PURPOSE_NOT_DECLARED: "the event serves only purposes the partner did not declare when registered",
    RejectCode.SUPPRESSED: "an identifier of this record belongs to an erased person",
    RejectCode.NO_CONSENT: "the person has no consent for any purpose this event can serve",
    RejectCode.AMBIGUOUS_IDENTITY: "a partner's identifiers point at more than one known person; attached to none",
    RejectCode.TOO_LARGE: "the batch is larger than the configured limit",
}

REJECT_SETTINGS: Final[dict[RejectCode, str]] = {
    RejectCode.TOO_OLD: "AUDIENCE_RETENTION_DAYS",
    RejectCode.FUTURE_TIMESTAMP: "AUDIENCE_INGEST_FUTURE_SKEW_SECONDS",
    RejectCode.UNKNOWN_EVENT_TYPE: "AUDIENCE_EXTRA_EVENT_TYPES",
    RejectCode.INVALID_PHONE: "AUDIENCE_PHONE_DEFAULT_REGION",
    RejectCode.TOO_LARGE: "AUDIENCE_INGEST_MAX_BATCH",
}
"""The setting that moves a rule's line, for the codes that have one: what an operator may change
when a whole file is refused for that reason (docs/configuration.md)."""
