"""Erasure killed mid-way (SIGKILL after each step, and just before the commit), then run again.

Probed as an operator whose server died during an erasure: the killed run must leave nothing half
done (one transaction), and the next run with the same ids must leave the complete end state —
no row of the person in any registry table, one receipt, the identifiers suppressed, the event
keys kept, the merge journal unlinked, the audit chain intact.
"""

from __future__ import annotations

import signal
import subprocess
import sys
from pathlib import Path

import pytest
from pydantic import SecretStr
from sqlalchemy import func, select

from privacy.keyring import Keyring, dumps_keyring
from server.audit.service import verify
from server.runtime import Runtime
from server.storage.subject_tables import SUBJECT_TABLES
from server.storage.tables import (
    AuditEntryRow,
    ErasureReceiptRow,
    EventRow,
    IdentityMergeRow,
    MessageReceiptRow,
    SuppressionRow,
)
from tests.privacy.erasure_crash import RECEIPT
from tests.privacy.erasure_people import ANA, erase, pseudonyms_of, reached, setup_two
from tests.privacy.test_erasure_registry import rows_of_person

ROOT = Path(__file__).resolve().parents[2]
KILL_POINTS = [table.name for table in SUBJECT_TABLES] + [RECEIPT]


def run_killed(runtime: Runtime, keyring: Keyring, kill_at: str, subject_ids: list[int]) -> int:
    settings = runtime.settings
    environment = {
        "AUDIENCE_DATABASE_URL": settings.effective_database_url,
        "AUDIENCE_KEYRING": dumps_keyring(keyring),
        "AUDIENCE_DATA_DIR": str(settings.data_dir),
        "PATH": "/usr/bin:/bin",
    }
    process = subprocess.run(
        [sys.executable, "-m", "tests.privacy.erasure_crash", kill_at, ",".join(map(str, subject_ids))],
        env=environment,
        cwd=ROOT,
        capture_output=True,
        timeout=120,
        check=False,
    )
    return process.returncode


@pytest.mark.parametrize("kill_at", KILL_POINTS)
def test_an_erasure_killed_after_any_step_leaves_nothing_half_done_and_a_rerun_finishes_it(
    runtime: Runtime, keyring: Keyring, kill_at: str
) -> None:
    assert runtime.settings.keyring == SecretStr(dumps_keyring(keyring))
    setup_two(runtime)
    ana = reached(runtime, ANA)
    before = rows_of_person(runtime.engine, ana)
    pseudonyms = pseudonyms_of(runtime, ana)
    with runtime.sessions() as session:
        event_keys = set(session.scalars(select(EventRow.message_key).where(EventRow.subject_id.in_(ana))))
        audited = session.scalar(select(func.count()).select_from(AuditEntryRow))

    assert run_killed(runtime, keyring, kill_at, ana) == -signal.SIGKILL

    assert rows_of_person(runtime.engine, ana) == before, "the killed run changed nothing"
    with runtime.sessions() as session:
        assert session.scalar(select(func.count()).select_from(ErasureReceiptRow)) == 0
        assert session.scalar(select(func.count()).select_from(SuppressionRow)) == 0
        assert session.scalar(select(func.count()).select_from(AuditEntryRow)) == audited

    receipt = erase(runtime, ana, request_id=7)

    assert sum(rows_of_person(runtime.engine, ana).values()) == 0
    assert receipt.subjects == 3
    assert receipt.identifiers_suppressed == len(pseudonyms)
    with runtime.sessions() as session:
        assert [r.id for r in session.scalars(select(ErasureReceiptRow))] == [receipt.id]
        assert set(session.scalars(select(SuppressionRow.pseudonym))) == pseudonyms
        assert event_keys <= set(session.scalars(select(MessageReceiptRow.message_key)))
        assert (None, None) in session.execute(
            select(IdentityMergeRow.winner_subject_id, IdentityMergeRow.loser_subject_id)
        ).all()
        [entry] = session.scalars(select(AuditEntryRow).where(AuditEntryRow.action == "erasure.completed"))
        assert (entry.target, entry.details["subjects"]) == ("request:7", 3)
        assert verify(session, runtime.keyring).intact


def test_an_erasure_run_to_its_end_in_another_process_commits(runtime: Runtime, keyring: Keyring) -> None:
    """The harness itself: without a kill point the same process erases and exits cleanly."""
    setup_two(runtime)
    ana = reached(runtime, ANA)
    assert run_killed(runtime, keyring, "none", ana) == 0
    assert sum(rows_of_person(runtime.engine, ana).values()) == 0
