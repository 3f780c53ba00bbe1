"""Suppression: identifiers of erased subjects are refused at the gate until the person consents anew.

Only the keyed hashes are kept, so the list itself reveals no identifier.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from sqlalchemy import delete, select, tuple_
from sqlalchemy.orm import Session

from privacy.identifiers import IdentifierKind, NormalizedIdentifier
from server.privacy_kit import PrivacyKit
from server.storage.tables import IdentityRow, SuppressionRow
from server.storage.upsert import insert_ignoring_conflicts

CHECK_CHUNK = 5_000


def suppress_subject_identifiers(session: Session, subject_id: int, now: datetime) -> int:
    """Copy every identifier hash of a subject into the suppression list (the erasure step)."""
    rows = session.execute(
        select(IdentityRow.kind, IdentityRow.key_version, IdentityRow.pseudonym).where(
            IdentityRow.subject_id == subject_id
        )
    ).all()
    insert_ignoring_conflicts(
        session,
        SuppressionRow,
        [{"kind": r.kind, "key_version": r.key_version, "pseudonym": r.pseudonym, "suppressed_at": now} for r in rows],
    )
    return len(rows)


def suppress_pseudonym(session: Session, kind: str, key_version: int, digest: bytes, now: datetime) -> None:
    """Suppress an identifier known only by its keyed hash (as a filed request keeps it)."""
    insert_ignoring_conflicts(
        session,
        SuppressionRow,
        [{"kind": kind, "key_version": key_version, "pseudonym": digest, "suppressed_at": now}],
    )


def suppress(session: Session, identifier: NormalizedIdentifier, kit: PrivacyKit, now: datetime) -> None:
    pseudonym = kit.pseudonymizer.pseudonym(identifier)
    insert_ignoring_conflicts(
        session,
        SuppressionRow,
        [
            {
                "kind": identifier.kind.value,
                "key_version": pseudonym.key_version,
                "pseudonym": pseudonym.digest,
                "suppressed_at": now,
            }
        ],
    )


def is_suppressed(session: Session, identifier: NormalizedIdentifier, kit: PrivacyKit) -> bool:
    candidates = [(p.key_version, p.digest) for p in kit.pseudonymizer.pseudonyms_for_all_versions(identifier)]
    found = session.scalar(
        select(SuppressionRow.kind)
        .where(SuppressionRow.kind == identifier.kind.value)
        .where(tuple_(SuppressionRow.key_version, SuppressionRow.pseudonym).in_(candidates))
        .limit(1)
    )
    return found is not None


def suppressed_among(session: Session, kind: IdentifierKind, key_version: int, digests: Sequence[bytes]) -> set[bytes]:
    """The gate's bulk check: which of these digests are suppressed."""
    unique = sorted(set(digests))
    hits: set[bytes] = set()
    for start in range(0, len(unique), CHECK_CHUNK):
        hits.update(
            session.scalars(
                select(SuppressionRow.pseudonym).where(
                    SuppressionRow.kind == kind.value,
                    SuppressionRow.key_version == key_version,
                    SuppressionRow.pseudonym.in_(unique[start : start + CHECK_CHUNK]),
                )
            )
        )
    return hits


def lift(session: Session, identifier: NormalizedIdentifier, kit: PrivacyKit) -> bool:
    """A later explicit consent from the person lifts suppression for that identifier only."""
    candidates = [(p.key_version, p.digest) for p in kit.pseudonymizer.pseudonyms_for_all_versions(identifier)]
    result = session.execute(
        delete(SuppressionRow)
        .where(SuppressionRow.kind == identifier.kind.value)
        .where(tuple_(SuppressionRow.key_version, SuppressionRow.pseudonym).in_(candidates))
    )
    return bool(result.rowcount)  # type: ignore[attr-defined]
