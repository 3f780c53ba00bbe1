"""Answering one aggregate question for a caller: compute the truth, then ``release`` it, in one
transaction (the ledger row commits with the answer, or neither does)."""

from __future__ import annotations

from collections.abc import Callable

from sqlalchemy.orm import Session

from server.analytics.questions import Question
from server.analytics.release import Answer, Asker, Truth, release
from server.auth.principal import Principal, Role
from server.runtime import UnitOfWork
from server.settings import Settings

__all__ = ["answer", "asker_of"]


def asker_of(principal: Principal) -> Asker:
    """Admins may ask for exact counts; everyone else gets noisy or estimated ones."""
    return Asker(key_id=principal.key_id, may_ask_exact=principal.role is Role.ADMIN)


def answer(
    unit: UnitOfWork,
    principal: Principal,
    question: Question,
    truth_of: Callable[[Session], Truth],
    *,
    settings: Settings,
    exact: bool = False,
) -> Answer:
    """``truth_of`` reads the data in ``unit``'s session. In a reading unit (``Runtime.reading``)
    the release and its ledger row are then written in a short unit of work of their own, so the
    read never holds the writers' turn; in a writing unit, in the same transaction. A refusal
    (budget, exact) writes nothing."""
    asker = asker_of(principal)
    as_of = unit.clock()
    truth = truth_of(unit.session)
    if unit.writer is None:
        return release(
            unit.session, asker, question, truth, settings=settings, noise=unit.kit.noise, as_of=as_of, exact=exact
        )
    with unit.writer() as writing:
        return release(
            writing.session,
            asker,
            question,
            truth,
            settings=settings,
            noise=writing.kit.noise,
            as_of=as_of,
            exact=exact,
        )
