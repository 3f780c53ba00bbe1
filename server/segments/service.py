"""Evaluating a segment right after a marketer saves it, so its members and health are current
when the answer goes back. A failure is recorded on the segment (``failed``, stale, an error
code) and shown, never raised to the marketer: the definition is saved either way."""

from __future__ import annotations

from sqlalchemy import select

from server.auth.principal import Actor
from server.runtime import Runtime
from server.segments.definitions import SegmentError, SegmentView, find_segment
from server.segments.evaluate import evaluate_population
from server.storage.tables import SegmentRow

__all__ = ["evaluate_after_change"]


def evaluate_after_change(runtime: Runtime, actor: Actor, name: str) -> SegmentView:
    """Evaluate ``name`` (and every segment that reads it) over the whole population."""
    with runtime.sessions() as session:
        segment_id = session.scalar(select(SegmentRow.id).where(SegmentRow.name == name))
    if segment_id is None:
        raise SegmentError("NOT_FOUND", "no segment has this name")
    evaluate_population(runtime, only=[segment_id])
    with runtime.unit_of_work(actor) as unit:
        view = find_segment(unit.session, name, now=unit.clock())
    if view is None:  # deleted meanwhile
        raise SegmentError("NOT_FOUND", "no segment has this name")
    return view
