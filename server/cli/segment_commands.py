"""segments evaluate: bring segment members up to date now (docs/segment-evaluation.md).

For operators after a file import done by this CLI (the server's worker drains the marks its own
commits leave, and another process's within its poll interval; a CLI import has no worker of its
own), or from cron when the server's sweep is turned off.
"""

from __future__ import annotations

import argparse
from typing import Any

from rich.console import Console

from server.cli.errors import CliError
from server.cli.progress import counted_progress
from server.runtime import build_runtime
from server.segments.drain import drain_marks
from server.segments.evaluate import Selection, evaluate_population
from server.settings import load_settings
from server.storage import migrate


def register(commands: Any) -> None:
    segments = commands.add_parser("segments", help="segment evaluation").add_subparsers(
        dest="segments_command", required=True, metavar="ACTION"
    )
    evaluate = segments.add_parser(
        "evaluate",
        help="evaluate the subjects whose data changed (and segments never evaluated); --all: every segment",
        description="Without --all: evaluate every segment not yet evaluated, then every subject marked as "
        "changed (an import, a consent change), as the server's worker does. With --all: evaluate every segment "
        "over every subject, partition by partition, each committed on its own.",
    )
    evaluate.add_argument("--all", action="store_true", help="evaluate every segment over the whole population")
    evaluate.set_defaults(handler=run_segments_evaluate)


def run_segments_evaluate(arguments: argparse.Namespace, console: Console) -> int:
    runtime = build_runtime(load_settings())
    try:
        if not migrate.is_at_head(runtime.engine):
            raise CliError("the database is not at the latest migration; run `audience migrate`")
        selection = Selection.ALL if arguments.all else Selection.PENDING
        with counted_progress("evaluating segments", console) as bar:
            task = bar.add_task("segments", total=None)

            def advance(done: int, partitions: int) -> None:
                bar.update(task, total=partitions, completed=done)

            run = evaluate_population(runtime, selection=selection, progress=advance)
        drained = drain_marks(runtime)
    finally:
        runtime.dispose()
    failed = f", {len(run.failed)} failed (see their status)" if run.failed else ""
    console.print(
        f"{run.segments} segments evaluated over {run.partitions} partitions ({run.changes:,} stays changed){failed}; "
        f"{drained:,} changed subjects evaluated"
    )
    return 1 if run.failed else 0
