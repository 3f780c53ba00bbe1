"""The counts of people in the operational reports analysts read (the build history and the
data-quality report), released like every other aggregate.

Those reports are for running the pipeline, and most of their figures count records or days. A
few count people: the profiles a build wrote, and per source the subjects it created, merged,
failed to merge or to link, and those with a bot-like day. "Two bot-like subjects came through
source X" is an aggregate below k like any other (invariant 5), and an exact count of every
profile, build after build, is the differencing attacker's "everyone" minus one. So for callers
who may not ask exact figures each of these goes through ``release`` (floor on the true value,
sticky noise, the key's budget): one question per build, and one per build and source holding all
of that source's counts of people. Admins, who operate the pipeline, read them exact.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Final

from sqlalchemy.orm import Session

from privacy.noise import NoiseSource
from server.analytics.listed import BUDGET_SPENT, answered_each, released_each
from server.analytics.questions import Question
from server.analytics.release import Asker, Figure, Truth
from server.settings import Settings

__all__ = ["BOT_LIKE", "build_profiles", "source_people"]

BOT_LIKE: Final = "bot_like_subjects"


def build_profiles(
    session: Session,
    asker: Asker,
    profiles: Mapping[int, int],
    *,
    settings: Settings,
    noise: NoiseSource,
    as_of: datetime,
) -> dict[int, Figure]:
    """Each build's profiles written (``profiles``: by build id), as ``asker`` may see them."""
    if asker.may_ask_exact:
        return {build: Figure(count) for build, count in profiles.items()}
    counts = {build: (Question.of("build_profiles", build=build), count) for build, count in profiles.items()}
    released = released_each(session, asker, counts, settings=settings, noise=noise, as_of=as_of)
    return {build: figure for build, (figure, _scale) in released.items()}


def source_people(
    session: Session,
    asker: Asker,
    counts: Mapping[tuple[int, str], Mapping[str, int]],
    *,
    settings: Settings,
    noise: NoiseSource,
    as_of: datetime,
) -> dict[tuple[int, str], dict[str, Figure]]:
    """Each (build, source)'s counts of people (``BOT_LIKE`` and each tally by period, named by
    the caller), as ``asker`` may see them: one release per build and source, each value floored
    on its own (a person may be counted in several)."""
    if asker.may_ask_exact:
        return {row: {name: Figure(value) for name, value in values.items()} for row, values in counts.items()}
    truths = {
        (build, source): (
            Question.of("source_people", build=build, source=source),
            Truth(
                values[BOT_LIKE],
                {name: value for name, value in values.items() if name != BOT_LIKE},
                sensitivity=len(values),
                partition=False,
            ),
        )
        for (build, source), values in counts.items()
    }
    answers = answered_each(session, asker, truths, settings=settings, noise=noise, as_of=as_of)
    return {
        row: {name: Figure(None, BUDGET_SPENT) for name in counts[row]}
        if answer is None
        else {BOT_LIKE: answer.total, **answer.cells}
        for row, answer in answers.items()
    }
