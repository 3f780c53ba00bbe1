"""requests file|verify|reject|execute|export|rectify|lift|list|show|receipts|resume."""

from __future__ import annotations

import argparse
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import orjson
from rich.console import Console
from rich.table import Table

from privacy.consent import ConsentError
from privacy.identifiers import InvalidIdentifier
from privacy.private_files import PRIVATE_FILE_MODE
from server.auth.principal import SYSTEM_ACTOR
from server.cli.errors import CliError
from server.cli.identifier_options import add_identifier_options, identifier_of
from server.erasure.receipts import receipts_of_request
from server.rectification.service import RectificationError
from server.requests import execution, records
from server.requests.lifecycle import RejectionReason, RequestError, RequestKind
from server.requests.records import RequestView
from server.runtime import Runtime, build_runtime
from server.settings import load_settings

T = TypeVar("T")


def register(commands: Any) -> None:
    requests = commands.add_parser("requests", help="data-subject requests (erasure, access, ...)").add_subparsers(
        dest="requests_command", required=True, metavar="ACTION"
    )
    file = requests.add_parser("file", help="file a request in the person's name (the identifier is only hashed)")
    file.add_argument("--kind", required=True, choices=[kind.value for kind in RequestKind])
    add_identifier_options(file, required=True)
    file.set_defaults(handler=run_file)

    verify = requests.add_parser("verify", help="record how the requester's identity was verified")
    verify.add_argument("id", type=int)
    verify.add_argument("--method", required=True, help="a label, e.g. email-challenge, account-login")
    verify.add_argument("--reference", required=True, help="a reference to the proof (a ticket), never the document")
    verify.set_defaults(handler=run_verify)

    reject = requests.add_parser("reject", help="refuse an open request")
    reject.add_argument("id", type=int)
    reject.add_argument("--reason", required=True, choices=[reason.value for reason in RejectionReason])
    reject.set_defaults(handler=run_reject)

    execute = requests.add_parser("execute", help="carry out a verified erasure, restriction or objection")
    execute.add_argument("id", type=int)
    execute.set_defaults(handler=run_execute)

    export = requests.add_parser("export", help="write everything held on the person of an access request (JSON)")
    export.add_argument("id", type=int)
    export.add_argument("--out", type=Path, required=True, help="a new file, created readable by you only")
    export.set_defaults(handler=run_export)

    rectify = requests.add_parser("rectify", help="correct declared attributes of a rectification request")
    rectify.add_argument("id", type=int)
    rectify.add_argument(
        "--set", action="append", default=[], metavar="FIELD=VALUE", help="'FIELD=-' reads the value from stdin"
    )
    rectify.add_argument("--unset", action="append", default=[], metavar="FIELD")
    rectify.set_defaults(handler=run_rectify)

    lift = requests.add_parser("lift", help="lift a completed restriction")
    lift.add_argument("id", type=int)
    lift.set_defaults(handler=run_lift)

    listing = requests.add_parser("list", help="requests, the one due soonest first")
    which = listing.add_mutually_exclusive_group()
    which.add_argument("--overdue", action="store_const", dest="which", const="overdue", help="open and past due")
    which.add_argument("--all", action="store_const", dest="which", const="all", help="closed ones too")
    listing.add_argument("--kind", action="append", choices=[kind.value for kind in RequestKind], default=[])
    listing.add_argument("--limit", type=int, default=100)
    listing.set_defaults(handler=run_list, which="open")

    show = requests.add_parser("show", help="one request and its receipts")
    show.add_argument("id", type=int)
    show.set_defaults(handler=run_show)

    requests.add_parser("resume", help="finish interrupted erasures, restrictions and objections").set_defaults(
        handler=run_resume
    )


def _with_runtime(work: Callable[[Runtime], T]) -> T:
    runtime = build_runtime(load_settings())
    try:
        return work(runtime)
    except RequestError as error:
        raise CliError(error.message) from None
    except RectificationError as error:
        raise CliError(error.message if error.field is None else f"{error.field}: {error.message}") from None
    except (InvalidIdentifier, ConsentError) as error:
        raise CliError(f"identifier: {error.message}") from None
    finally:
        runtime.dispose()


def _report(console: Console, view: RequestView) -> None:
    console.print(f"request {view.id} ({view.kind.value}): {view.status.value}, due {view.due_at:%Y-%m-%d}")
    if view.outcome:
        console.print("  " + ", ".join(f"{key} {value}" for key, value in view.outcome.items()))


def run_file(arguments: argparse.Namespace, console: Console) -> int:
    identifier = identifier_of(arguments)
    assert identifier is not None  # the option group is required

    def work(runtime: Runtime) -> RequestView:
        with runtime.unit_of_work(SYSTEM_ACTOR) as unit:
            return records.file_request(unit, kind=RequestKind(arguments.kind), identifier=identifier)

    _report(console, _with_runtime(work))
    return 0


def run_verify(arguments: argparse.Namespace, console: Console) -> int:
    def work(runtime: Runtime) -> RequestView:
        with runtime.unit_of_work(SYSTEM_ACTOR) as unit:
            return records.verify_request(unit, arguments.id, method=arguments.method, reference=arguments.reference)

    _report(console, _with_runtime(work))
    return 0


def run_reject(arguments: argparse.Namespace, console: Console) -> int:
    def work(runtime: Runtime) -> RequestView:
        with runtime.unit_of_work(SYSTEM_ACTOR) as unit:
            return records.reject_request(unit, arguments.id, RejectionReason(arguments.reason))

    _report(console, _with_runtime(work))
    return 0


def run_execute(arguments: argparse.Namespace, console: Console) -> int:
    _report(console, _with_runtime(lambda runtime: execution.execute(runtime, SYSTEM_ACTOR, arguments.id)))
    return 0


def run_export(arguments: argparse.Namespace, console: Console) -> int:
    """The file is created before the export runs (0600, never over an existing one), so a refused
    path costs no audited export; it is removed again if the export is refused."""
    out: Path = arguments.out
    try:
        descriptor = os.open(out, os.O_WRONLY | os.O_CREAT | os.O_EXCL, PRIVATE_FILE_MODE)
    except FileExistsError:
        raise CliError("--out names a file that exists; choose a new one") from None
    except OSError as error:
        raise CliError(f"--out cannot be created: {error.strerror}") from None
    try:
        exported = _with_runtime(lambda runtime: execution.export(runtime, SYSTEM_ACTOR, arguments.id))
        os.write(descriptor, orjson.dumps(exported.document, option=orjson.OPT_INDENT_2))
    except BaseException:
        os.close(descriptor)
        out.unlink(missing_ok=True)
        raise
    os.close(descriptor)
    _report(console, exported.request)
    console.print(f"  written to {out}")
    return 0


def run_rectify(arguments: argparse.Namespace, console: Console) -> int:
    changes: dict[str, str | None] = {}
    for assignment in arguments.set:
        field, separator, value = assignment.partition("=")
        if not separator or not field:
            raise CliError("--set takes FIELD=VALUE")
        changes[field] = input() if value == "-" else value
    changes.update({field: None for field in arguments.unset})
    if not changes:
        raise CliError("name at least one --set or --unset")
    rectified = _with_runtime(lambda runtime: execution.rectify_request(runtime, SYSTEM_ACTOR, arguments.id, changes))
    _report(console, rectified.request)
    for change in rectified.changes:
        console.print(f"  {change.field}: {change.before} -> {change.after}")
    return 0


def run_lift(arguments: argparse.Namespace, console: Console) -> int:
    _report(console, _with_runtime(lambda runtime: execution.lift_restriction(runtime, SYSTEM_ACTOR, arguments.id)))
    return 0


def run_list(arguments: argparse.Namespace, console: Console) -> int:
    def work(runtime: Runtime) -> list[RequestView]:
        with runtime.sessions() as session:
            kinds = [RequestKind(kind) for kind in arguments.kind]
            return records.list_requests(
                session, now=runtime.clock(), which=arguments.which, kinds=kinds, limit=arguments.limit
            )

    table = Table("id", "kind", "status", "identifier", "received", "due", "overdue")
    for view in _with_runtime(work):
        table.add_row(
            str(view.id),
            view.kind.value,
            view.status.value,
            view.identifier_kind,
            f"{view.received_at:%Y-%m-%d}",
            f"{view.due_at:%Y-%m-%d}",
            "OVERDUE" if view.overdue else "",
        )
    console.print(table)
    return 0


def run_show(arguments: argparse.Namespace, console: Console) -> int:
    def work(runtime: Runtime) -> tuple[RequestView, list[dict[str, Any]]]:
        with runtime.sessions() as session:
            view = records.find_request(session, arguments.id, runtime.clock())
            receipts = [
                {"receipt": r.id, "completed_at": r.completed_at.isoformat(), "rows_removed": r.rows_removed}
                for r in receipts_of_request(session, arguments.id)
            ]
            return view, receipts

    view, receipts = _with_runtime(work)
    _report(console, view)
    console.print(f"  received {view.received_at:%Y-%m-%d %H:%M} by key {view.filed_by or 'operator (CLI)'}")
    if view.verified_at is not None:
        console.print(
            f"  verified {view.verified_at:%Y-%m-%d %H:%M} by key {view.verified_by or 'operator (CLI)'}: "
            f"{view.verification_method} ({view.verification_reference})"
        )
    if view.rejection_reason:
        console.print(f"  rejected: {view.rejection_reason}")
    for receipt in receipts:
        console.print(f"  receipt {orjson.dumps(receipt).decode()}", soft_wrap=True, markup=False)
    return 0


def run_resume(_arguments: argparse.Namespace, console: Console) -> int:
    finished = _with_runtime(lambda runtime: execution.resume(runtime, SYSTEM_ACTOR))
    for view in finished:
        _report(console, view)
    console.print(f"{len(finished)} interrupted request(s) finished")
    return 0
