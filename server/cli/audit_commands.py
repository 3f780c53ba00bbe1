"""audit verify."""

from __future__ import annotations

import argparse
from typing import Any

from rich.console import Console

from server.audit import service
from server.auth.principal import SYSTEM_ACTOR
from server.cli.progress import counted_progress
from server.runtime import build_runtime
from server.settings import load_settings
from server.storage.audit_store import read_head


def register(commands: Any) -> None:
    audit = commands.add_parser("audit", help="work with the audit log").add_subparsers(
        dest="audit_command", required=True, metavar="ACTION"
    )
    audit.add_parser(
        "verify", help="recompute the hash chain; exit 1 naming the first edited, removed or reordered entry"
    ).set_defaults(handler=run_audit_verify)


def run_audit_verify(_arguments: argparse.Namespace, console: Console) -> int:
    runtime = build_runtime(load_settings())
    try:
        with runtime.sessions() as session:
            total = read_head(session)[0]
            with counted_progress("verifying", console) as progress:
                task = progress.add_task("verify", total=total)
                verdict = service.verify(session, runtime.keyring, on_entry=lambda: progress.advance(task))
        with runtime.unit_of_work(SYSTEM_ACTOR) as unit:
            unit.audit("audit.verify", details={"intact": verdict.intact, "checked": verdict.checked})
    finally:
        runtime.dispose()
    if verdict.intact:
        console.print(f"audit log intact: {verdict.checked} entries verified")
        return 0
    console.print(
        f"audit log BROKEN at entry {verdict.first_bad_seq}: {verdict.problem} "
        f"({verdict.checked} entries verified before it)"
    )
    return 1
