"""Process-wide runtime (settings, engine, keyring, clock) and the unit of work built on it.

Built once by the app factory or a CLI command, never at import time. A unit of work owns
one transaction: services receive its session and audit writer, and never commit.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager, nullcontext
from dataclasses import dataclass, field
from datetime import datetime

from sqlalchemy import Engine
from sqlalchemy.orm import Session, sessionmaker

from privacy.audit import AuditEntry, AuditRecord, DetailValue, append_record
from privacy.keyring import Keyring, KeyringError, load_keyring_file, loads_keyring
from server.auth.principal import Actor
from server.keys.binding import ensure_keyring_belongs
from server.privacy_kit import PrivacyKit, build_kit
from server.profiles.config import ProfileConfig, profile_config
from server.retention.policy import RetentionPolicy, retention_policy
from server.settings import Settings
from server.storage.audit_store import SqlAuditStore
from server.storage.base import utc_now
from server.storage.bounded_waits import DatabaseTimeouts, bounded_turn
from server.storage.checkpointer import WAL_BOUND_PAGES, WalCheckpointer, sqlite_file
from server.storage.engine import SQLITE_CHECKPOINT_PAGES, WRITE_INTENT, build_engine, is_sqlite, session_factory
from server.taxonomy.taxonomy import taxonomy_for

Clock = Callable[[], datetime]


@dataclass(frozen=True, slots=True)
class UnitOfWork:
    session: Session
    keyring: Keyring
    kit: PrivacyKit
    clock: Clock
    actor: Actor
    profiles: ProfileConfig
    retention: RetentionPolicy
    writer: Callable[[], AbstractContextManager[UnitOfWork]] | None = None
    """Set on a reading unit (``Runtime.reading``): opens a writing unit of its own, for the short
    write that follows a long read (an analyst's answer and its ledger row)."""

    def audit(
        self, action: str, *, target: str | None = None, details: dict[str, DetailValue] | None = None
    ) -> AuditEntry:
        record = AuditRecord(self.actor.key_id, self.actor.role, action, target, details)
        return append_record(SqlAuditStore(self.session), self.keyring, self.clock, record)


@dataclass(frozen=True, slots=True)
class Runtime:
    settings: Settings
    engine: Engine
    sessions: sessionmaker[Session]
    keyring: Keyring
    kit: PrivacyKit
    profiles: ProfileConfig
    retention: RetentionPolicy
    clock: Clock = utc_now
    # SQLite files only: copies the WAL back beside the writers, so that commits need not.
    checkpointer: WalCheckpointer | None = None
    # SQLite has one writer. Threads of this process queue here and each wakes the moment the
    # previous one commits; without it they would poll SQLite's busy handler, which sleeps in
    # growing steps (measured: four concurrent ingest clients slower than one).
    _sqlite_writer: threading.RLock = field(default_factory=threading.RLock)
    # Set after every unit of work commits: wakes the segment worker (``server.jobs.segment_worker``)
    # to drain the marks that commit may have written, at once rather than at its next poll.
    committed: threading.Event = field(default_factory=threading.Event)

    @contextmanager
    def unit_of_work(self, actor: Actor) -> Iterator[UnitOfWork]:
        with self._writer_turn(), self.sessions.begin() as session:
            session.connection(execution_options={WRITE_INTENT: True})
            yield UnitOfWork(
                session=session,
                keyring=self.keyring,
                kit=self.kit,
                clock=self.clock,
                actor=actor,
                profiles=self.profiles,
                retention=self.retention,
            )
        self.committed.set()
        if self.checkpointer is not None:
            self.checkpointer.request()

    @contextmanager
    def reading(self, actor: Actor) -> Iterator[UnitOfWork]:
        """A unit over a plain session: no writers' turn, so a long read (an aggregate over every
        profile) never holds up ingestion on SQLite, whose writers take turns. Write nothing in it;
        its ``writer`` opens a unit of work for that."""
        with self.sessions() as session:
            yield UnitOfWork(
                session=session,
                keyring=self.keyring,
                kit=self.kit,
                clock=self.clock,
                actor=actor,
                profiles=self.profiles,
                retention=self.retention,
                writer=lambda: self.unit_of_work(actor),
            )

    def _writer_turn(self) -> AbstractContextManager[object]:
        if not is_sqlite(self.engine):
            return nullcontext()
        return bounded_turn(self._sqlite_writer, self.settings.database_pool_timeout_seconds)

    def dispose(self) -> None:
        if self.checkpointer is not None:
            self.checkpointer.stop()
        self.engine.dispose()


def load_keyring(settings: Settings) -> Keyring:
    """The environment variable wins, for containers; otherwise the 0600 file."""
    if settings.keyring is not None:
        return loads_keyring(settings.keyring.get_secret_value(), origin="AUDIENCE_KEYRING")
    return load_keyring_file(settings.effective_keyring_path)


def keyring_origin(settings: Settings) -> str:
    """Where ``load_keyring`` takes the keyring from, for messages."""
    return "AUDIENCE_KEYRING" if settings.keyring is not None else f"file {settings.effective_keyring_path}"


def build_runtime(settings: Settings, *, keyring: Keyring | None = None) -> Runtime:
    """Refuses a keyring the database does not belong to before anything else touches it.

    On a SQLite file, also the thread that checkpoints its WAL; ``dispose()`` stops it.
    """
    if keyring is None:
        keyring = load_keyring(settings)
    kit = build_kit(keyring, settings)
    database = sqlite_file(settings.effective_database_url)
    autocheckpoint = SQLITE_CHECKPOINT_PAGES if database is None else WAL_BOUND_PAGES
    engine = build_engine(
        settings.effective_database_url, wal_autocheckpoint=autocheckpoint, timeouts=database_timeouts(settings)
    )
    sessions = session_factory(engine)
    try:
        ensure_keyring_belongs(sessions, keyring, origin=keyring_origin(settings))
    except BaseException:
        engine.dispose()
        raise
    checkpointer = None if database is None else WalCheckpointer(database).start()
    return Runtime(
        settings=settings,
        engine=engine,
        sessions=sessions,
        keyring=keyring,
        kit=kit,
        profiles=profile_config(settings, taxonomy_for(settings.taxonomy_extra)),
        retention=retention_policy(settings),
        checkpointer=checkpointer,
    )


def database_timeouts(settings: Settings) -> DatabaseTimeouts:
    return DatabaseTimeouts(
        connect_s=settings.database_connect_timeout_seconds,
        statement_s=settings.database_statement_timeout_seconds,
        pool_s=settings.database_pool_timeout_seconds,
        sqlite_busy_s=settings.sqlite_busy_timeout_seconds,
    )


__all__ = ["Clock", "KeyringError", "Runtime", "UnitOfWork", "build_runtime", "keyring_origin", "load_keyring"]
