"""The typed context every resolver receives (never Strawberry's default dict)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, TypeVar

from sqlalchemy.orm import Session
from starlette.concurrency import run_in_threadpool

from server.auth.principal import Principal
from server.auth.verified_keys import VerifiedKeys
from server.ingest.group_commit import GroupCommitter
from server.runtime import Runtime, UnitOfWork

T = TypeVar("T")


@dataclass(slots=True)
class Context:
    runtime: Runtime
    principal: Principal | None
    request_id: str
    log_fields: dict[str, Any] = field(default_factory=dict)
    group_commit: GroupCommitter | None = None
    verified_keys: VerifiedKeys | None = None

    @property
    def caller(self) -> Principal:
        """The principal, which permissions have already proven present on any guarded field."""
        if self.principal is None:
            raise PermissionError("no principal on a guarded field")
        return self.principal

    def forget_key(self, key_id: str) -> None:
        """A key revoked here stops at once in this worker, not at the end of its cache time."""
        if self.verified_keys is not None:
            self.verified_keys.forget(key_id)

    async def run(self, work: Callable[[UnitOfWork], T]) -> T:
        """Run ``work`` in one transaction on a worker thread, so blocking I/O never stalls the loop."""
        actor = self.caller.actor

        def in_transaction() -> T:
            with self.runtime.unit_of_work(actor) as unit:
                return work(unit)

        return await run_in_threadpool(in_transaction)

    async def analytics(self, work: Callable[[UnitOfWork], T]) -> T:
        """Run ``work`` in a reading unit (``Runtime.reading``) on a worker thread: aggregates read
        for long and write one ledger row at the end, in a unit of work of its own."""
        actor = self.caller.actor

        def in_reading() -> T:
            with self.runtime.reading(actor) as unit:
                return work(unit)

        return await run_in_threadpool(in_reading)

    async def read(self, work: Callable[[Session], T]) -> T:
        """Run ``work`` on a plain session on a worker thread: for reads of non-personal records
        (build history) that need no audit entry and should not queue behind writers for a turn."""

        def in_session() -> T:
            with self.runtime.sessions() as session:
                return work(session)

        return await run_in_threadpool(in_session)
