"""The one test of a processing restriction (Art. 18), for every path that decides whether a
subject's data may be used.

A restricted subject counts as not allowed everywhere a consent check stands: the ingestion gate,
declared attributes, the real-time fold, the batch build, profile reads and partner purposes. Each
of those asks here, through ``unrestricted`` (a SQL condition to add to its own query) or
``restricted_among`` (a set, where the decision is made in Polars), so the rule is written once.
A restriction keeps the data: the profile paths leave a restricted subject's state as it stands
(``server.profiles.store``), where a missing consent drops it.
"""

from __future__ import annotations

from collections.abc import Iterable

from sqlalchemy.orm import Session

from privacy.purposes import Purpose
from server.storage.lookup import select_where_in

__all__ = ["may_profile", "restricted_among", "unrestricted"]


def unrestricted(subject_column: str) -> str:
    """SQL: the subject in ``subject_column`` (a constant, never input) is under no restriction."""
    return f"NOT EXISTS (SELECT 1 FROM subject_restrictions sr WHERE sr.subject_id = {subject_column})"


def may_profile(subject_column: str) -> str:
    """SQL: the subject in ``subject_column`` (a constant, never input) consents to ``profiling``
    now (our own consent, not a partner's) and is under no restriction: who profiles are built
    for, segments evaluate and aggregates count."""
    return (
        f"EXISTS (SELECT 1 FROM consent_state c WHERE c.subject_id = {subject_column} "
        f"AND c.purpose = '{Purpose.PROFILING.value}' AND c.partner_id = 0 AND c.granted) "
        f"AND {unrestricted(subject_column)}"
    )


def restricted_among(session: Session, subject_ids: Iterable[int]) -> set[int]:
    """Those of ``subject_ids`` under a restriction now."""
    rows = select_where_in(
        session, "SELECT DISTINCT subject_id FROM subject_restrictions WHERE subject_id {in}", sorted(set(subject_ids))
    )
    return {int(row[0]) for row in rows}
