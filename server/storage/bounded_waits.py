"""Every wait for the database has a bound, so that a partition or a full disk is an answer, not a hang.

Without bounds a request whose database stopped answering (a network partition: the peer's
kernel accepted the packets, nothing replies) waits for as long as the partition lasts, and so
does ``/readyz``. The bounds, from settings (see docs/configuration.md):

- connecting (PostgreSQL ``connect_timeout``, the whole start-up exchange);
- a statement (PostgreSQL ``statement_timeout``, enforced by the server), and on the client each
  wait for the server's answer, the statement's bound plus ``CLIENT_GRACE_S``: a server that is
  alive cancels first and says so; one that is not can no longer hold the thread. The client
  bound covers every round trip psycopg makes (statements, COPY, commit, the pool's ping);
- a free connection of the pool, and on SQLite this process's turn to write;
- SQLite's busy timeout: another process's write lock (a file import).

A connection whose wait expired is closed at once (its protocol state is unknown), so the pool
discards it instead of handing it out again.
"""

from __future__ import annotations

import math
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, TypeVar

import psycopg
from psycopg.abc import PQGen
from psycopg.errors import _WaitTimeout  # what Connection.wait(timeout=...) raises, per its docstring
from sqlalchemy import Engine, event

from server.storage.availability import WaitExpired

RV = TypeVar("RV")
CLIENT_GRACE_S = 2.0
# libpq reads connect_timeout in whole seconds, and psycopg treats anything under 2 as 2.
_MIN_CONNECT_TIMEOUT_S = 2


@dataclass(frozen=True, slots=True)
class DatabaseTimeouts:
    connect_s: float
    statement_s: float
    pool_s: float
    sqlite_busy_s: float

    @property
    def answer_s(self) -> float:
        """How long the client waits for any one answer from PostgreSQL."""
        return self.statement_s + CLIENT_GRACE_S


class BoundedWaitConnection(psycopg.Connection[Any]):
    """A psycopg connection on which no wait for the server outlasts ``answer_timeout_s``."""

    answer_timeout_s: float | None = None

    def wait(self, gen: PQGen[RV], interval: float | None = None, timeout: float | None = None) -> RV:
        bound = timeout if timeout is not None else self.answer_timeout_s
        try:
            if interval is None:
                return super().wait(gen, timeout=bound)
            return super().wait(gen, interval=interval, timeout=bound)
        except _WaitTimeout:
            self.close()
            raise psycopg.OperationalError(f"the database did not answer within {bound:g} s") from None


def bound_postgres(engine: Engine, timeouts: DatabaseTimeouts) -> None:
    """Connect with the connect and statement timeouts, through ``BoundedWaitConnection``.

    Options given in the URL (``?options=...``) are kept; the statement timeout is added to them.
    """

    @event.listens_for(engine, "do_connect")
    def _connect(_dialect: Any, _record: Any, cargs: list[Any], cparams: dict[str, Any]) -> psycopg.Connection[Any]:
        cparams.setdefault("connect_timeout", max(_MIN_CONNECT_TIMEOUT_S, math.ceil(timeouts.connect_s)))
        statement = f"-c statement_timeout={round(timeouts.statement_s * 1000)}"
        cparams["options"] = f"{cparams.get('options', '')} {statement}".strip()
        connection = BoundedWaitConnection.connect(*cargs, **cparams)
        connection.answer_timeout_s = timeouts.answer_s
        return connection


@contextmanager
def bounded_turn(lock: threading.RLock, timeout_s: float) -> Iterator[None]:
    """Take ``lock`` within ``timeout_s`` or raise ``WaitExpired``."""
    if not lock.acquire(timeout=timeout_s):
        raise WaitExpired(f"no turn to write within {timeout_s:g} s")
    try:
        yield
    finally:
        lock.release()
