"""The extension point for what is derived from subjects and outlives their rows.

Today every piece of derived data is a subject-keyed table in the registry (profile state,
rebuild marks), so erasure deletes it like any other row. Two kinds to come are not rows of the
person and need more than a delete, which is why this seam exists:

- models (``server/ml``, not built yet): a model trained on a snapshot that included an erased
  subject must be marked stale (docs/DESIGN, invariant 2), so it is retrained without them;
- segment memberships granted to partners (not built yet): an erased member must leave every
  granted segment as an ordinary exit in the change log partners read, so a partner's copy drops
  them as it drops anyone else, and the exit itself says nothing about why.

Each such capability registers a ``DerivedData`` here when it lands; ``erase_subjects`` calls
every one in its transaction before any row is deleted (memberships are read to emit the exits).
None is registered today, so erasure does nothing here: no model or membership exists to mark.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

from server.runtime import UnitOfWork

__all__ = ["DERIVED", "DerivedData", "notify_derived"]


class DerivedData(Protocol):
    """Something computed from subjects that an erasure must update, not just delete."""

    name: str

    def subjects_erased(self, unit: UnitOfWork, subject_ids: Sequence[int]) -> int:
        """Mark stale, or emit exits, for ``subject_ids`` in ``unit``; returns how many things changed
        (models marked, memberships ended) for the receipt. Never commits; idempotent."""
        ...


DERIVED: list[DerivedData] = []
"""Registered by the capabilities that derive data (models, partner segments) when they exist."""


def notify_derived(unit: UnitOfWork, subject_ids: Sequence[int]) -> dict[str, int]:
    """Each registered ``DerivedData``'s count, by name (empty while none is registered)."""
    return {derived.name: derived.subjects_erased(unit, subject_ids) for derived in DERIVED}
