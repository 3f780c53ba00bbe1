"""A process that erases subjects and kills itself (SIGKILL) right after one step, before its commit.

    python -m tests.privacy.erasure_crash <step> <subject id>,<subject id>,...

``<step>`` is a registry table name (the process dies once that table's step has run, the steps
before it done, nothing committed) or ``receipt`` (dies after the receipt and the audit entry are
written, just before the commit) or ``none`` (runs to the end and commits). Settings come from the
environment (``AUDIENCE_DATABASE_URL``, ``AUDIENCE_KEYRING``, ``AUDIENCE_DATA_DIR``), as for the CLI.
"""

from __future__ import annotations

import dataclasses
import os
import signal
import sys

from server.auth.principal import SYSTEM_ACTOR
from server.erasure import erase_subjects, steps
from server.runtime import build_runtime
from server.settings import load_settings
from server.storage.subject_tables import SubjectTable

RECEIPT = "receipt"


def die() -> None:
    os.kill(os.getpid(), signal.SIGKILL)


def dying_after(kill_at: str) -> None:
    """Every step wrapped: the one for ``kill_at`` runs, then the process dies."""

    def wrap(step: steps.EraseStep) -> steps.EraseStep:
        def run(erasure: steps.Erasure, table: SubjectTable) -> int:
            removed = step.run(erasure, table)
            if table.name == kill_at:
                erasure.session.flush()
                die()
            return removed

        return dataclasses.replace(step, run=run)

    steps.STEPS = {policy: wrap(step) for policy, step in steps.STEPS.items()}


def main(kill_at: str, subject_ids: list[int]) -> None:
    dying_after(kill_at)
    runtime = build_runtime(load_settings())
    with runtime.unit_of_work(SYSTEM_ACTOR) as unit:
        erase_subjects(unit, subject_ids, request_id=7, reason="request")
        if kill_at == RECEIPT:
            unit.session.flush()
            die()
    runtime.dispose()


if __name__ == "__main__":
    main(sys.argv[1], [int(s) for s in sys.argv[2].split(",")])
