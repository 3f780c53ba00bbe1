"""An attacker with database access edits, removes or reorders audit entries; verification names it."""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

import pytest
from sqlalchemy import delete, insert, select, text, update
from sqlalchemy.exc import DBAPIError
from sqlalchemy.orm import Session

from privacy.audit import AuditRecord, verify_chain
from privacy.keyring import KeyPurpose, generate_keyring
from server.audit import service
from server.auth.principal import Actor
from server.runtime import Runtime
from server.storage.audit_store import iter_entries, read_head
from server.storage.tables import AuditEntryRow, AuditHeadRow

ACTOR = Actor(key_id="0123456789abcdef", role="compliance")


def record_entries(runtime: Runtime, count: int) -> None:
    for index in range(count):
        with runtime.unit_of_work(ACTOR) as unit:
            unit.audit("consent.record", target=f"subject:{index}", details={"purpose": "analytics", "n": index})


def verdict(runtime: Runtime) -> tuple[bool, int | None, int]:
    with runtime.sessions() as session:
        result = service.verify(session, runtime.keyring)
    return result.intact, result.first_bad_seq, result.checked


def test_untouched_chain_verifies(runtime: Runtime) -> None:
    record_entries(runtime, 5)
    assert verdict(runtime) == (True, None, 5)


@pytest.mark.parametrize(
    "change",
    [
        {"action": "consent.withdraw"},
        {"target": "subject:999"},
        {"details": {"purpose": "advertising", "n": 2}},
        {"actor_role": "admin"},
        {"actor_key_id": None},
    ],
    ids=["action", "target", "details", "role", "actor"],
)
def test_edited_entry_is_named(runtime: Runtime, change: dict[str, object]) -> None:
    record_entries(runtime, 5)
    with runtime.sessions.begin() as session:
        session.execute(update(AuditEntryRow).where(AuditEntryRow.seq == 3).values(**change))
    assert verdict(runtime)[:2] == (False, 3)


def test_edit_with_recomputed_plain_hash_is_still_caught(runtime: Runtime) -> None:
    """Without the audit key, re-hashing the edited entry cannot produce the HMAC."""
    import hashlib

    record_entries(runtime, 3)
    with runtime.sessions.begin() as session:
        forged = hashlib.sha256(b"forged").digest()
        session.execute(update(AuditEntryRow).where(AuditEntryRow.seq == 2).values(action="x", entry_hash=forged))
        session.execute(update(AuditEntryRow).where(AuditEntryRow.seq == 3).values(prev_hash=forged))
    assert verdict(runtime)[:2] == (False, 2)


def test_removed_entry_is_named(runtime: Runtime) -> None:
    record_entries(runtime, 5)
    with runtime.sessions.begin() as session:
        session.execute(delete(AuditEntryRow).where(AuditEntryRow.seq == 2))
    assert verdict(runtime)[:2] == (False, 2)


def test_swapped_entries_are_named(runtime: Runtime) -> None:
    record_entries(runtime, 5)
    with runtime.sessions.begin() as session:
        rows = {row.seq: row for row in session.scalars(select(AuditEntryRow).where(AuditEntryRow.seq.in_([2, 3])))}
        contents = {
            seq: {
                c: getattr(row, c)
                for c in ("at", "action", "target", "details", "prev_hash", "entry_hash", "actor_key_id", "actor_role")
            }
            for seq, row in rows.items()
        }
        session.execute(update(AuditEntryRow).where(AuditEntryRow.seq == 2).values(**contents[3]))
        session.execute(update(AuditEntryRow).where(AuditEntryRow.seq == 3).values(**contents[2]))
    assert verdict(runtime)[:2] == (False, 2)


def test_truncated_tail_is_caught_by_the_head(runtime: Runtime) -> None:
    record_entries(runtime, 4)
    with runtime.sessions.begin() as session:
        session.execute(delete(AuditEntryRow).where(AuditEntryRow.seq == 4))
    assert verdict(runtime)[:2] == (False, 4)


def test_chain_cannot_be_verified_with_another_key(runtime: Runtime) -> None:
    record_entries(runtime, 2)
    with runtime.sessions() as session:
        result = verify_chain(iter_entries(session), generate_keyring(), head=read_head(session))
    assert (result.intact, result.first_bad_seq) == (False, 1)


def test_entries_stay_verifiable_after_audit_key_rotation(runtime: Runtime) -> None:
    record_entries(runtime, 2)
    rotated = runtime.keyring.with_new_version(KeyPurpose.AUDIT)
    with runtime.sessions.begin() as session:
        from privacy.audit import append_record
        from server.storage.audit_store import SqlAuditStore

        append_record(SqlAuditStore(session), rotated, runtime.clock, AuditRecord(None, "operator", "key.rotate"))
    with runtime.sessions() as session:
        result = verify_chain(iter_entries(session), rotated, head=read_head(session))
    assert (result.intact, result.checked) == (True, 3)


def test_concurrent_writers_never_fork_the_chain(runtime: Runtime) -> None:
    writers, per_writer = 6, 15
    errors: list[BaseException] = []

    def write() -> None:
        try:
            record_entries(runtime, per_writer)
        except BaseException as error:  # reported below
            errors.append(error)

    threads = [threading.Thread(target=write) for _ in range(writers)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    assert verdict(runtime) == (True, None, writers * per_writer)
    with runtime.sessions() as session:
        head = session.get(AuditHeadRow, 1)
        assert head is not None
        assert head.seq == writers * per_writer


# --- tampering that must neither hide from verification nor stop the server from auditing -------

Tamper = Callable[[Session, int], int]


def copy_of(session: Session, seq: int) -> dict[str, Any]:
    row = session.get(AuditEntryRow, seq)
    assert row is not None
    return {column.key: getattr(row, column.key) for column in AuditEntryRow.__table__.columns}


def forge_past_the_head(session: Session, length: int) -> int:
    """A plausible row after the newest one: the previous entry's hash as ``prev``, a made-up HMAC."""
    forged = copy_of(session, length) | {"seq": length + 1, "action": "consent.record"}
    forged["prev_hash"] = forged["entry_hash"]
    session.execute(insert(AuditEntryRow).values(**forged))
    return length + 1


def forge_past_the_head_and_move_it(session: Session, length: int) -> int:
    """The forger also points the stored head at the forged row."""
    forge_past_the_head(session, length)
    session.execute(update(AuditHeadRow).where(AuditHeadRow.id == 1).values(seq=length + 1, entry_hash=bytes(32)))
    return length + 1


def forge_far_past_the_head(session: Session, length: int) -> int:
    """Appends fill the gap before it; the forged row is still the one named."""
    session.execute(insert(AuditEntryRow).values(**copy_of(session, length) | {"seq": length + 1_000}))
    return length + 1_000


def edit_key_version(version: int) -> Tamper:
    def tamper(session: Session, length: int) -> int:
        session.execute(update(AuditEntryRow).where(AuditEntryRow.seq == length - 1).values(key_version=version))
        return length - 1

    return tamper


def edit_details_to(value: object) -> Tamper:
    def tamper(session: Session, length: int) -> int:
        session.execute(update(AuditEntryRow).where(AuditEntryRow.seq == 2).values(details=value))
        return 2

    return tamper


def delete_a_middle_row(session: Session, length: int) -> int:
    session.execute(delete(AuditEntryRow).where(AuditEntryRow.seq == length // 2))
    return length // 2


def reorder(session: Session, length: int) -> int:
    """Rows 2 and 3 trade places: each keeps its content and hashes but takes the other's seq."""
    second, third = copy_of(session, 2), copy_of(session, 3)
    session.execute(delete(AuditEntryRow).where(AuditEntryRow.seq.in_([2, 3])))
    session.execute(insert(AuditEntryRow).values(**second | {"seq": 3}))
    session.execute(insert(AuditEntryRow).values(**third | {"seq": 2}))
    return 2


TAMPERS: dict[str, Tamper] = {
    "row past the head": forge_past_the_head,
    "row past the head, head moved to it": forge_past_the_head_and_move_it,
    "row far past the head": forge_far_past_the_head,
    "key version not in the keyring": edit_key_version(99),
    "key version zero": edit_key_version(0),
    "key version of the next entry": edit_key_version(2),
    "details not an object": edit_details_to(["purpose", "analytics"]),
    "details a string": edit_details_to("analytics"),
    "details null": edit_details_to(None),
    "middle row deleted": delete_a_middle_row,
    "rows reordered": reorder,
}


@pytest.mark.parametrize("tamper", TAMPERS.values(), ids=TAMPERS.keys())
def test_tampering_is_named_and_auditing_goes_on(runtime: Runtime, tamper: Tamper) -> None:
    record_entries(runtime, 6)
    with runtime.sessions.begin() as session:
        bad = tamper(session, 6)
    assert verdict(runtime)[:2] == (False, bad)
    record_entries(runtime, 3)
    assert verdict(runtime)[:2] == (False, bad), "entries appended afterwards must not hide where it broke"


@pytest.mark.parametrize("value", ["yesterday", "2026-13-45 99:99:99", "12"])
def test_a_time_edited_to_garbage_is_named(runtime: Runtime, backend: str, value: str) -> None:
    """SQLite stores any text in a timestamp column; PostgreSQL refuses most of it on write, and
    reads what it takes (``yesterday``) as a real time, which is an edit all the same."""
    record_entries(runtime, 5)
    try:
        with runtime.engine.begin() as connection:
            connection.execute(text("UPDATE audit_log SET at = :value WHERE seq = 3"), {"value": value})
    except DBAPIError:
        assert backend != "sqlite"
        assert verdict(runtime)[0] is True, "an edit the database refused changes nothing"
        return
    assert verdict(runtime)[:2] == (False, 3)
    record_entries(runtime, 1)
