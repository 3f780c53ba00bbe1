"""The audit targets that stand for one person: what a search of the log "by subject" matches.

Entries about a person name a subject (``subject:<id>``) or a data-subject request
(``request:<id>``), never an identifier. An identifier reaches every subject of every person it
is linked to (``persons_reached``: all scopes, all key versions, fragments merged in); requests
hold only the keyed hash of the identifier they were filed with, so they are found by the
identifier's hash under every key version, and by the hashes of the person's other identifiers
(a request filed by phone belongs to the person searched by email). After an erasure the subjects
are gone, and the requests found by the identifier are what remains of the person in the log.
"""

from __future__ import annotations

from sqlalchemy import select, tuple_
from sqlalchemy.orm import Session

from privacy.identifiers import NormalizedIdentifier
from server.privacy_kit import PrivacyKit
from server.storage.lookup import select_where_in
from server.storage.tables import IdentityRow, SubjectRequestRow
from server.subjects.reach import persons_reached

__all__ = ["targets_of"]


def targets_of(session: Session, identifier: NormalizedIdentifier, kit: PrivacyKit) -> list[str]:
    """Every ``subject:`` and ``request:`` target of the person; empty for an identifier we never saw."""
    subjects = persons_reached(session, identifier, kit)
    requests = _requests_filed_with(session, identifier, kit) | _requests_filed_by_identities(session, subjects)
    return [f"subject:{subject}" for subject in subjects] + [f"request:{request}" for request in sorted(requests)]


def _requests_filed_with(session: Session, identifier: NormalizedIdentifier, kit: PrivacyKit) -> set[int]:
    candidates = [(p.key_version, p.digest) for p in kit.pseudonymizer.pseudonyms_for_all_versions(identifier)]
    found = session.scalars(
        select(SubjectRequestRow.id)
        .where(SubjectRequestRow.identifier_kind == identifier.kind.value)
        .where(tuple_(SubjectRequestRow.identifier_key_version, SubjectRequestRow.identifier_pseudonym).in_(candidates))
    )
    return set(found)


def _requests_filed_by_identities(session: Session, subjects: list[int]) -> set[int]:
    """Requests whose hash is one of the person's identities (same kind, same key version)."""
    rows = select_where_in(
        session,
        f"SELECT r.id FROM {SubjectRequestRow.__tablename__} r JOIN {IdentityRow.__tablename__} i "
        "ON i.kind = r.identifier_kind AND i.key_version = r.identifier_key_version "
        "AND i.pseudonym = r.identifier_pseudonym WHERE i.subject_id {in}",
        subjects,
    )
    return {int(row[0]) for row in rows}
