"""Columns of an event batch as ingestion hands it on: the record number and the identifiers.

Identity reads a batch by these names; before they lived here it imported them from ingestion's
validation, an arrow running back up the layers. What a broken identifier is rejected as stays
with validation (``server.ingest.validate.INVALID_IDENTIFIER``).
"""

from __future__ import annotations

from typing import Final, NamedTuple

from privacy.identifiers import IdentifierKind

__all__ = ["IDENTIFIER_COLUMNS", "NORMALIZED_COLUMNS", "ROW", "IdentifierColumn"]

ROW: Final = "row"
"""Each record's position in its batch: how answers, rejections and resolutions refer to it."""


class IdentifierColumn(NamedTuple):
    raw: str  # as the sender wrote it
    normalized: str  # normalized, in memory only: hashed before anything is stored
    kind: IdentifierKind


IDENTIFIER_COLUMNS: Final = (
    IdentifierColumn("email", "email_n", IdentifierKind.EMAIL),
    IdentifierColumn("phone", "phone_n", IdentifierKind.PHONE),
    IdentifierColumn("anonymous_id", "device_n", IdentifierKind.DEVICE_ID),
    IdentifierColumn("user_id", "customer_n", IdentifierKind.CUSTOMER_ID),
    IdentifierColumn("partner_user_id", "partner_user_n", IdentifierKind.PARTNER_USER_ID),
)
NORMALIZED_COLUMNS: Final = tuple(column.normalized for column in IDENTIFIER_COLUMNS)
