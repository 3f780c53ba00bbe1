"""Group commit: concurrent event batches of one sender stored together.

A pass through resolution, the consent gate and the bulk inserts has a fixed cost of tens of
milliseconds whatever its size, and writers take turns (SQLite has one writer; identity writers
hold an advisory lock on PostgreSQL). While one pass runs, batches that arrive for the same
source and key wait; the next writer takes all of them (up to ``max_events``) in one transaction
and one pass. Each request still gets its own answer (``ingest_together``). A lone batch is
stored at once, as before: nothing waits for company.
"""

from __future__ import annotations

import asyncio
from collections import defaultdict
from dataclasses import dataclass, field

from starlette.concurrency import run_in_threadpool

from server.auth.principal import Actor
from server.identity.resolve import IdentityGuardrails
from server.ingest.service import CheckedEvents, IngestResult, ingest_together
from server.runtime import Runtime


@dataclass(frozen=True, slots=True)
class GroupKey:
    """Batches are stored together only if they would be stored alike: same source, same caller."""

    source: str
    actor: Actor
    known_as: tuple[str, ...] = ()  # the source's earlier stored forms; follow from ``source``


@dataclass(slots=True, eq=False)  # compared by identity: a batch waits once
class _Waiting:
    checked: CheckedEvents
    answer: asyncio.Future[IngestResult]


@dataclass(slots=True)
class GroupCommitter:
    runtime: Runtime
    max_events: int
    _waiting: dict[GroupKey, list[_Waiting]] = field(default_factory=lambda: defaultdict(list))
    _writer: asyncio.Lock = field(default_factory=asyncio.Lock)

    async def ingest(self, key: GroupKey, checked: CheckedEvents, guardrails: IdentityGuardrails) -> IngestResult:
        mine = _Waiting(checked, asyncio.get_running_loop().create_future())
        self._waiting[key].append(mine)
        try:
            async with self._writer:
                # An earlier writer may have stored this batch with its group; if not, store the
                # oldest waiting group of this key until this batch is among the stored. Shielded: a
                # caller that goes away mid-store must not leave the others of its group unanswered.
                while not mine.answer.done():
                    group = self._take(key)
                    await asyncio.shield(asyncio.ensure_future(self._store_and_answer(key, group, guardrails)))
        except asyncio.CancelledError:
            self._withdraw(key, mine)  # gone before its turn: not stored on behalf of nobody
            raise
        return await mine.answer

    async def _store_and_answer(self, key: GroupKey, group: list[_Waiting], guardrails: IdentityGuardrails) -> None:
        """A group that fails is tried again one batch at a time: one bad batch fails only itself."""
        attempts = [group] if len(group) == 1 else [group, *([waiting] for waiting in group)]
        for attempt in attempts:
            if all(waiting.answer.done() for waiting in attempt):
                continue
            try:
                results = await run_in_threadpool(self._store, key, attempt, guardrails)
            except Exception as error:  # noqa: BLE001 - the caller gets the failure it would get alone
                if len(attempt) == 1:
                    attempt[0].answer.set_exception(error)
                continue
            for waiting, result in zip(attempt, results, strict=True):
                waiting.answer.set_result(result)

    def _withdraw(self, key: GroupKey, mine: _Waiting) -> None:
        queue = self._waiting.get(key, [])
        if mine in queue:
            queue.remove(mine)
            if not queue:
                del self._waiting[key]

    def _take(self, key: GroupKey) -> list[_Waiting]:
        queue = self._waiting[key]
        taken = [queue.pop(0)]
        events = taken[0].checked.validated.frame.height
        while queue and events + queue[0].checked.validated.frame.height <= self.max_events:
            events += queue[0].checked.validated.frame.height
            taken.append(queue.pop(0))
        if not queue:
            del self._waiting[key]
        return taken

    def _store(self, key: GroupKey, group: list[_Waiting], guardrails: IdentityGuardrails) -> list[IngestResult]:
        with self.runtime.unit_of_work(key.actor) as unit:
            return ingest_together(
                unit, [w.checked for w in group], source=key.source, guardrails=guardrails, known_as=key.known_as
            )
