"""audit verify|search."""

from __future__ import annotations

import argparse
from datetime import UTC, datetime
from typing import Any

from rich.console import Console
from rich.table import Table
from rich.text import Text

from privacy.audit import AuditEntry
from privacy.identifiers import InvalidIdentifier
from server.audit import service
from server.audit.search import MAX_PAGE, AuditFilters, AuditSearchError, PageBounds
from server.auth.principal import SYSTEM_ACTOR
from server.cli.errors import CliError
from server.cli.identifier_options import add_identifier_options, flag_of, identifier_of
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
    search = audit.add_parser(
        "search",
        help="entries about a person (by identifier, through its keyed hash), by action and time, oldest first",
    )
    add_identifier_options(search, required=False)
    search.add_argument("--target", action="append", help="an entry target such as request:12 (repeatable)")
    search.add_argument("--action", action="append", help="an action such as consent.grant (repeatable, exact)")
    search.add_argument("--since", type=_moment, help="ISO 8601 time, inclusive (UTC when no offset is given)")
    search.add_argument("--until", type=_moment, help="ISO 8601 time, exclusive (UTC when no offset is given)")
    search.add_argument("--after", type=_seq, metavar="SEQ", help="start after this sequence number (to page on)")
    search.add_argument("--limit", type=_limit, default=50, help=f"how many to show (1-{MAX_PAGE}, default 50)")
    search.set_defaults(handler=run_audit_search)


def _moment(text: str) -> datetime:
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(
            "must be an ISO 8601 date or time, such as 2026-05-01T09:00:00+02:00"
        ) from None
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)


def _seq(text: str) -> int:
    if not text.isdigit():
        raise argparse.ArgumentTypeError("must be a sequence number from the seq column")
    return int(text)


def _limit(text: str) -> int:
    if not text.isdigit() or not 1 <= int(text) <= MAX_PAGE:
        raise argparse.ArgumentTypeError(f"must be a whole number between 1 and {MAX_PAGE}")
    return int(text)


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


def run_audit_search(arguments: argparse.Namespace, console: Console) -> int:
    subject = identifier_of(arguments)
    flag = "" if subject is None else flag_of(subject.kind)
    filters = AuditFilters(
        targets=arguments.target, actions=arguments.action, since=arguments.since, until=arguments.until
    )
    bounds = PageBounds(first=arguments.limit, after=arguments.after)
    runtime = build_runtime(load_settings())
    try:
        with runtime.unit_of_work(SYSTEM_ACTOR) as unit:
            try:
                found = service.search(unit, subject=subject, filters=filters, bounds=bounds)
            except InvalidIdentifier as error:
                raise CliError(f"{flag}: {error.message}") from None
            except AuditSearchError as error:
                raise CliError(error.message) from None
    finally:
        runtime.dispose()
    console.print(_table(found.entries))
    if found.has_next_page and found.end_seq is not None:
        console.print(f"more entries follow: run again with --after {found.end_seq}")
    return 0


def _table(entries: list[AuditEntry]) -> Table:
    """Cells are plain text (a stored detail is never read as Rich markup) and fold rather than
    being cut short: an auditor reads every character of a target or a time."""
    table = Table()
    for column in ("seq", "at", "role", "key", "action", "target", "details"):
        table.add_column(column, overflow="fold")
    for entry in entries:
        table.add_row(
            Text(str(entry.seq)),
            Text(entry.at.isoformat(timespec="seconds")),
            Text(entry.actor_role),
            Text(entry.actor_key_id or ""),
            Text(entry.action),
            Text(entry.target or ""),
            Text(" ".join(f"{key}={value}" for key, value in sorted(entry.details.items()) if value is not None)),
        )
    return table
