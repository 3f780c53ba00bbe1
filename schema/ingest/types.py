from __future__ import annotations

import strawberry

from schema.errors import DomainError
from schema.permissions import requires
from server.auth.principal import Role

SENDERS = requires(Role.PARTNER, Role.ADMIN)


@strawberry.input
class TraitsInput:
    email: str | None = None
    phone: str | None = None


@strawberry.input(description="Consent captured with the event: purposes granted at collection, and the GPC flag.")
class ConsentContextInput:
    purposes: list[str] | None = None
    gpc: bool = False


@strawberry.input
class EventContextInput:
    traits: TraitsInput | None = None
    partner_user_id: str | None = None
    consent: ConsentContextInput | None = None


@strawberry.input
class EventPropertiesInput:
    topics: list[str] | None = strawberry.field(default=None, description="Topic ids from the taxonomy.")
    category: str | None = strawberry.field(default=None, description="A topic id or name; mapped to a topic.")
    amount: float | None = None
    currency: str | None = None
    campaign: str | None = None
    region: str | None = None


@strawberry.input(description="One event, shaped after the Segment spec's common fields.")
class EventInput:
    message_id: str = strawberry.field(description="The sender's id for this event: the idempotency key.")
    event_type: str = strawberry.field(name="type")
    channel: str
    timestamp: str = strawberry.field(description="ISO-8601 with a zone, e.g. 2026-11-02T10:00:00Z.")
    user_id: str | None = strawberry.field(default=None, description="Customer id.")
    anonymous_id: str | None = strawberry.field(default=None, description="Device id.")
    context: EventContextInput | None = None
    properties: EventPropertiesInput | None = None


@strawberry.input
class EventBatchInput:
    events: list[EventInput]
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
    accepted: int = strawberry.field(extensions=SENDERS)
    duplicates: int = strawberry.field(extensions=SENDERS)
    rejected: list[RejectedRecord] = strawberry.field(extensions=SENDERS)
    dropped_topics: int = strawberry.field(extensions=SENDERS, description="Unknown topics removed from events.")
    dropped_labels: int = strawberry.field(extensions=SENDERS, description="Free-text campaign/region not stored.")
    junk_identifiers: int = strawberry.field(extensions=SENDERS)
    new_subjects: int = strawberry.field(extensions=SENDERS)
    merges: int = strawberry.field(extensions=SENDERS)
    refused_merges: int = strawberry.field(extensions=SENDERS)
    identity_limit_hits: int = strawberry.field(extensions=SENDERS)
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
    received: int = strawberry.field(extensions=SENDERS)
    accepted: int = strawberry.field(extensions=SENDERS)
    fields_encrypted: int = strawberry.field(extensions=SENDERS)
    rejected: list[RejectedRecord] = strawberry.field(extensions=SENDERS)
    errors: list[DomainError] = strawberry.field(extensions=SENDERS)
