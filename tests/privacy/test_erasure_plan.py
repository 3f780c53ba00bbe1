"""The erasure plan's rules, and the after-commit scrub of SQLite's WAL.

The order rule is what keeps suppression and receipts from being skipped by a cascade; the reason
rule keeps free text (a name typed as a reason) out of every receipt and audit entry; a policy the
registry declares without a step must stop the server at import, not erase half a person.
"""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest
from sqlalchemy.engine import make_url

from privacy.erasure import ErasureReceipt, check_erasure_order, check_reason
from server.erasure import scrub_database_files, steps
from server.runtime import Runtime
from server.storage.subject_tables import ErasePolicy, check_carried_out
from tests.ingest.batches import add_partner
from tests.privacy.erasure_people import ANA, erase, populate, reached


def test_subjects_must_be_erased_last_and_each_table_once() -> None:
    assert check_erasure_order(["identities", "subjects"], subject_rows="subjects") == ("identities", "subjects")
    with pytest.raises(ValueError, match="last"):
        check_erasure_order(["subjects", "identities"], subject_rows="subjects")
    with pytest.raises(ValueError, match="twice"):
        check_erasure_order(["events", "events", "subjects"], subject_rows="subjects")


@pytest.mark.parametrize("reason", ["Anastasia Lindqvist", "ana@example.org", "", "r" * 25, "Request"])
def test_a_reason_that_is_not_a_label_is_refused(reason: str) -> None:
    with pytest.raises(ValueError, match="label") as refused:
        check_reason(reason)
    assert reason not in str(refused.value) or reason == ""


def test_a_policy_without_a_step_is_refused() -> None:
    partial: dict[ErasePolicy, frozenset[str] | None] = {
        policy: step.knows for policy, step in steps.STEPS.items() if policy is not ErasePolicy.UNLINK
    }
    with pytest.raises(RuntimeError, match="unlink"):
        check_carried_out("erase", ErasePolicy, steps.ERASE_STEPS, partial)


def test_the_receipts_audit_details_are_counts_and_labels_only() -> None:
    at = datetime(2024, 6, 1, tzinfo=UTC)
    receipt = ErasureReceipt(3, 9, "request", at, at, 2, 1, 4, {"events": 7, "subjects": 2})
    assert receipt.audit_details() == {
        "receipt_id": 3,
        "request_id": 9,
        "reason": "request",
        "subjects": 2,
        "keys_destroyed": 1,
        "identifiers_suppressed": 4,
        "rows.events": 7,
        "rows.subjects": 2,
    }


@pytest.mark.parametrize("backend", ["sqlite"])
def test_the_scrub_after_commit_empties_the_wal(runtime: Runtime) -> None:
    add_partner(runtime, "acme")
    populate(runtime, ANA, partner="acme")
    if runtime.checkpointer is not None:
        runtime.checkpointer.stop()  # its passes would copy the log back on their own
    erase(runtime, reached(runtime, ANA))
    wal = Path(str(make_url(runtime.settings.effective_database_url).database) + "-wal")
    assert wal.stat().st_size > 0, "the erasure's commit and the pages before it are in the log"

    assert scrub_database_files(runtime.engine).complete

    assert wal.stat().st_size == 0


@pytest.mark.parametrize("backend", ["postgresql"])
def test_on_postgresql_the_scrub_has_nothing_to_do(runtime: Runtime) -> None:
    scrubbed = scrub_database_files(runtime.engine)
    assert (scrubbed.applies, scrubbed.complete) == (False, True)
