"""Whom a data-subject request reaches: every person an identifier is linked to, whole.

A request names one identifier, but the same email may be linked in our scope and in any
partner's (partner links are kept apart, docs/ingestion.md), and each link's subject may have
absorbed others by merges. Erasure, access, rectification, restriction and objection all act on
what ``persons_reached`` returns, so none of them can miss a fragment of the person or a scope.
"""

from __future__ import annotations

from collections.abc import Iterable

from sqlalchemy import select, tuple_
from sqlalchemy.orm import Session

from privacy.identifiers import NormalizedIdentifier
from server.privacy_kit import PrivacyKit
from server.storage.lookup import select_where_in
from server.storage.tables import IdentityRow

__all__ = ["linked_subjects", "persons_by_pseudonym", "persons_reached", "with_merged"]


def linked_subjects(session: Session, identifier: NormalizedIdentifier, kit: PrivacyKit) -> list[int]:
    """Subjects the identifier is linked to, in every scope and under every identifier-key version."""
    candidates = [(p.key_version, p.digest) for p in kit.pseudonymizer.pseudonyms_for_all_versions(identifier)]
    found = session.scalars(
        select(IdentityRow.subject_id)
        .where(IdentityRow.kind == identifier.kind.value)
        .where(tuple_(IdentityRow.key_version, IdentityRow.pseudonym).in_(candidates))
    )
    return sorted(set(found))


def with_merged(session: Session, subject_ids: Iterable[int]) -> list[int]:
    """``subject_ids`` and every subject merged into any of them, however long ago and however
    many merges deep (a loser keeps ``merged_into`` its first winner, which may itself have lost
    since): the rows of each, re-pointed or not, belong to the same person."""
    reached = set(subject_ids)
    frontier = sorted(reached)
    while frontier:
        rows = select_where_in(session, "SELECT id FROM subjects WHERE merged_into {in}", frontier)
        frontier = sorted({int(row[0]) for row in rows} - reached)
        reached.update(frontier)
    return sorted(reached)


def persons_reached(session: Session, identifier: NormalizedIdentifier, kit: PrivacyKit) -> list[int]:
    """Every subject id of every person the identifier reaches; empty for an unknown identifier."""
    return with_merged(session, linked_subjects(session, identifier, kit))


def persons_by_pseudonym(session: Session, kind: str, key_version: int, digest: bytes) -> list[int]:
    """``persons_reached`` for an identifier known only by its keyed hash (a filed request keeps
    no other form of it): links under that key version, in every scope, with the merged."""
    found = session.scalars(
        select(IdentityRow.subject_id).where(
            IdentityRow.kind == kind, IdentityRow.key_version == key_version, IdentityRow.pseudonym == digest
        )
    )
    return with_merged(session, set(found))
