from __future__ import annotations

from typing import NewType

import strawberry

from schema.errors import DomainError
from schema.permissions import requires
from server.auth.principal import Role

SENDERS = requires(Role.PARTNER, Role.ADMIN)
ADMIN = requires(Role.ADMIN)


SegmentEvent = NewType("SegmentEvent", object)
SEGMENT_EVENT_SCALAR = strawberry.scalar(
    name="SegmentEvent",
    description=(
        "One event as a JSON object shaped after the Segment spec's common fields: "
        "{messageId: String!, type: String!, channel: String!, timestamp: ISO-8601 String!, userId, anonymousId, "
        "context: {traits: {email, phone}, partnerUserId, consent: {purposes: [String], gpc: Boolean}}, "
        "properties: {topics: [String], category, amount: Float, currency, campaign, region}}. "
        "A record of another shape is rejected alone with INVALID_RECORD. See docs/ingestion.md."
    ),
    serialize=lambda value: value,
    parse_value=lambda value: value,
)


@strawberry.input
class EventBatchInput:
    events: list[SegmentEvent]
    source: str | None = strawberry.field(
        default=None, description="Admin keys only: the source label; a partner's source is always its own."
    )


@strawberry.type(description="A record that was not stored: its position in the batch, a code and the rule.")
class RejectedRecord:
    index: int = strawberry.field(extensions=SENDERS)
    code: str = strawberry.field(extensions=SENDERS)
    message: str = strawberry.field(extensions=SENDERS)


@strawberry.type
class IngestEventsPayload:
    received: int = strawberry.field(extensions=SENDERS)
    accepted: int = strawberry.field(
        extensions=SENDERS,
        description="Records taken in. For partner keys this includes records dropped for consent, erasure "
        "or an ambiguous identity: a partner never learns a person's consent or erasure status, nor whom we know.",
    )
    duplicates: int = strawberry.field(extensions=SENDERS)
    rejected: list[RejectedRecord] = strawberry.field(
        extensions=SENDERS,
        description="Records refused for their content (for partners: format and registration errors only).",
    )
    dropped_topics: int = strawberry.field(extensions=SENDERS, description="Unknown topics removed from events.")
    dropped_labels: int = strawberry.field(extensions=SENDERS, description="Free-text campaign/region not stored.")
    dropped_fields: int = strawberry.field(
        extensions=SENDERS, description="Fields outside the event shape (unknown properties, free text): not stored."
    )
    junk_identifiers: int = strawberry.field(extensions=SENDERS)
    new_subjects: int | None = strawberry.field(extensions=ADMIN, description="Admin keys only.")
    merges: int | None = strawberry.field(extensions=ADMIN, description="Admin keys only.")
    refused_merges: int | None = strawberry.field(extensions=ADMIN, description="Admin keys only.")
    identity_limit_hits: int | None = strawberry.field(extensions=ADMIN, description="Admin keys only.")
    errors: list[DomainError] = strawberry.field(extensions=SENDERS)


@strawberry.input(description="Declared attributes of one known person; see docs/attributes.md for how each is kept.")
class AttributeRecordInput:
    user_id: str | None = None
    anonymous_id: str | None = None
    email: str | None = None
    phone: str | None = None
    first_name: str | None = None
    last_name: str | None = None
    birth_date: str | None = strawberry.field(default=None, description="YYYY-MM-DD; encrypted.")
    street_address: str | None = strawberry.field(default=None, description="Encrypted.")
    birth_year: int | None = strawberry.field(default=None, description="Kept only as an age band.")
    gender: str | None = strawberry.field(default=None, description="female, male, other or undisclosed.")
    region: str | None = strawberry.field(default=None, description="A region code such as FR or FR-IDF.")


@strawberry.input
class AttributeBatchInput:
    records: list[AttributeRecordInput]


@strawberry.type
class UpsertAttributesPayload:
    received: int = strawberry.field(extensions=ADMIN)
    accepted: int = strawberry.field(extensions=ADMIN)
    fields_encrypted: int = strawberry.field(extensions=ADMIN)
    rejected: list[RejectedRecord] = strawberry.field(extensions=ADMIN)
    errors: list[DomainError] = strawberry.field(extensions=ADMIN)
