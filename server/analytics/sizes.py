"""Segment sizes now and as a daily trend, over countable members (``population``).

The trend is drawn from the stays (entered, exited) rather than from stored daily snapshots: a
person who withdraws consent, is restricted or is erased leaves every past day at once, as
invariants 2 and 3 ask, which a snapshot table would keep counting until rewritten.
"""

from __future__ import annotations

from datetime import date, timedelta
from typing import Final

import polars as pl
from sqlalchemy.orm import Session

from server.analytics.population import countable_stays, segment_sizes
from server.analytics.questions import Question
from server.analytics.refusals import QuestionRefused
from server.analytics.release import TOTAL, Truth
from server.segments.definitions import SegmentError, segment_row
from server.storage.arrow_reads import SessionReader
from server.storage.tables import SegmentRow

__all__ = [
    "MAX_TREND_DAYS",
    "daily_sizes",
    "known_segment",
    "size_question",
    "size_truth",
    "trend_question",
    "trend_truth",
]

MAX_TREND_DAYS: Final = 366


def known_segment(session: Session, name: str, *, field: str = "segment") -> SegmentRow:
    try:
        return segment_row(session, name)
    except SegmentError:
        raise QuestionRefused(field, "UNKNOWN_SEGMENT", "no segment has this name") from None


def size_question(segment_id: int) -> Question:
    """One question per segment, whoever asks (an analyst's size, a marketer's member count)."""
    return Question.of("segment_size", segment=segment_id)


def size_truth(session: Session, segment: SegmentRow) -> Truth:
    return Truth(segment_sizes(session, [segment.id])[segment.id])


def trend_question(segment: SegmentRow) -> Question:
    """Neither the length nor the last day: cells are named by their date, and a day's count must
    get the same noise in every trend that shows it (``release`` seeds noise per named value)."""
    return Question.of("segment_trend", segment=segment.id)


def daily_sizes(stays: pl.DataFrame, days: list[date]) -> list[int]:
    """Members at the end of each day: entered by then and not exited by then. Columns only:
    sorted enter and exit dates, each day's position found by binary search."""
    entered = stays["entered_at"].dt.date().sort()
    exited = stays["exited_at"].drop_nulls().dt.date().sort()
    ends = pl.Series(days, dtype=pl.Date())
    inside = entered.search_sorted(ends, side="right").cast(pl.Int64) - exited.search_sorted(ends, side="right").cast(
        pl.Int64
    )
    return [int(value) for value in inside]


def trend_truth(session: Session, segment: SegmentRow, days: int, last_day: date) -> Truth:
    """One count per day, ``days`` days up to ``last_day``; each day a count of its own (a person
    is in many days, so the sensitivity is the number of days)."""
    if not 1 <= days <= MAX_TREND_DAYS:
        raise QuestionRefused("days", "BAD_INPUT", f"days must be between 1 and {MAX_TREND_DAYS}")
    wanted = [last_day - timedelta(days=offset) for offset in range(days - 1, -1, -1)]
    sizes = daily_sizes(countable_stays(SessionReader(session), [segment.id]), wanted)
    # Every day is the segment's size as it stood: its noise is the one ``segmentSize`` gets for
    # that count (``Truth.same_as``; sticky noise is keyed by the true value), so the total and the
    # last day are the size now, and a size that stays put for a year is one draw, shown every day
    # or none, not 365 draws to average or to try the threshold with.
    now = (size_question(segment.id), TOTAL)
    return Truth(
        sizes[-1],
        {day.isoformat(): size for day, size in zip(wanted, sizes, strict=True)},
        sensitivity=days + 1,
        partition=False,
        same_as={TOTAL: now, **{day.isoformat(): now for day in wanted}},
    )
