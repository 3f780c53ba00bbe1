"""identity merges|split: read the merge journal and undo a wrong merge."""

from __future__ import annotations

import argparse
from typing import Any

from rich.console import Console
from rich.table import Table

from server.auth.principal import SYSTEM_ACTOR
from server.cli.errors import CliError
from server.identity.split import SplitError, recent_merges, split_merge
from server.runtime import build_runtime
from server.settings import load_settings

MAX_LIMIT = 10_000


def register(commands: Any) -> None:
    identity = commands.add_parser("identity", help="inspect and undo identity merges").add_subparsers(
        dest="identity_command", required=True, metavar="ACTION"
    )
    merges = identity.add_parser("merges", help="list recent merges, newest first")
    merges.add_argument("--limit", type=_limit, default=20, help=f"how many to show (1-{MAX_LIMIT}, default 20)")
    merges.set_defaults(handler=run_identity_merges)
    split = identity.add_parser(
        "split",
        help="undo a wrong merge: the loser gets its identities and events back, with no consent "
        "and a new data key (PII that came over stays with the winner)",
    )
    split.add_argument("merge_id", type=int, help="an id from `audience identity merges`")
    split.set_defaults(handler=run_identity_split)


def _limit(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError("must be a whole number") from None
    if not 1 <= value <= MAX_LIMIT:
        raise argparse.ArgumentTypeError(f"must be between 1 and {MAX_LIMIT}")
    return value


def run_identity_merges(arguments: argparse.Namespace, console: Console) -> int:
    runtime = build_runtime(load_settings())
    try:
        with runtime.sessions() as session:
            found = recent_merges(session, limit=arguments.limit)
    finally:
        runtime.dispose()
    table = Table("id", "winner", "loser", "reason", "identities", "events", "merged", "split")
    for merge in found:
        table.add_row(
            str(merge.id),
            "erased" if merge.winner_subject_id is None else str(merge.winner_subject_id),
            "erased" if merge.loser_subject_id is None else str(merge.loser_subject_id),
            merge.reason,
            str(merge.identities_moved),
            str(merge.events_moved),
            merge.merged_at.isoformat(timespec="seconds"),
            merge.split_at.isoformat(timespec="seconds") if merge.split_at else "",
        )
    console.print(table)
    return 0


def run_identity_split(arguments: argparse.Namespace, console: Console) -> int:
    runtime = build_runtime(load_settings())
    try:
        with runtime.unit_of_work(SYSTEM_ACTOR) as unit:
            try:
                result = split_merge(unit, arguments.merge_id)
            except SplitError as error:
                raise CliError(error.message) from None
    finally:
        runtime.dispose()
    console.print(
        f"split merge {result.merge_id}: subject {result.loser_subject_id} is active again with "
        f"{result.identities_moved} identities and {result.events_moved} events, no consent and a new data key; "
        f"PII that came over at the merge stays with subject {result.winner_subject_id}"
    )
    return 0
