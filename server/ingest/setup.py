"""Ingestion configured from settings: one place, so GraphQL, file import and the demo agree."""

from __future__ import annotations

from datetime import datetime, timedelta

from sqlalchemy import select
from sqlalchemy.orm import Session

from privacy.identifiers import IdentifierKind
from server.identity.resolve import IdentityGuardrails
from server.ingest.validate import ValidationContext
from server.privacy_kit import PrivacyKit
from server.settings import Settings
from server.storage.tables import PartnerRow
from server.taxonomy.taxonomy import taxonomy_for


def guardrails_from(settings: Settings) -> IdentityGuardrails:
    return IdentityGuardrails(
        max_per_kind={
            IdentifierKind.EMAIL.value: settings.max_emails_per_subject,
            IdentifierKind.PHONE.value: settings.max_phones_per_subject,
            IdentifierKind.DEVICE_ID.value: settings.max_device_ids_per_subject,
            IdentifierKind.CUSTOMER_ID.value: settings.max_customer_ids_per_subject,
            IdentifierKind.PARTNER_USER_ID.value: settings.max_partner_user_ids_per_subject,
        },
        max_subjects_per_merge=settings.max_subjects_per_merge,
        max_identities_after_merge=settings.max_identities_after_merge,
    )


def validation_context(
    session: Session, settings: Settings, kit: PrivacyKit, *, now: datetime, forced_partner_id: int | None = None
) -> ValidationContext:
    partners = session.execute(select(PartnerRow.name, PartnerRow.id, PartnerRow.purposes)).all()
    return ValidationContext(
        now=now,
        rules=kit.rules,
        taxonomy=taxonomy_for(settings.taxonomy_extra),
        partner_ids={name: partner_id for name, partner_id, _purposes in partners},
        labels=kit.labels,
        forced_partner_id=forced_partner_id,
        partner_purposes={partner_id: frozenset(purposes) for _name, partner_id, purposes in partners},
        future_skew=timedelta(seconds=settings.ingest_future_skew_seconds),
        retention=timedelta(days=settings.retention_days),
        extra_event_types=frozenset(t.strip() for t in settings.extra_event_types.split(",") if t.strip()),
    )
