"""purge: delete what is past its retention now, partition by partition (docs/retention.md)."""

from __future__ import annotations

import argparse
from typing import Any

from rich.console import Console
from rich.table import Table

from server.cli.errors import CliError
from server.cli.progress import counted_progress
from server.retention.report import Category, PurgeReport
from server.retention.run import PurgeProgress, PurgeRunning, run_purge
from server.runtime import build_runtime
from server.settings import load_settings
from server.storage import migrate


def register(commands: Any) -> None:
    parser = commands.add_parser(
        "purge",
        help="delete expired data now (events, quiet anonymous subjects, old requests and receipts)",
        description="Delete everything past its AUDIENCE_RETENTION_* time, one partition of subjects at a time, "
        "each committed on its own: an interrupted purge is finished by running it again. The server does the "
        "same every AUDIENCE_RETENTION_INTERVAL_SECONDS.",
    )
    parser.add_argument("--dry-run", action="store_true", help="count what would be deleted; change nothing")
    parser.set_defaults(handler=run_purge_command)


def run_purge_command(arguments: argparse.Namespace, console: Console) -> int:
    runtime = build_runtime(load_settings())
    try:
        if not migrate.is_at_head(runtime.engine):
            raise CliError("the database is not at the latest migration; run `audience migrate`")
        with counted_progress("purging", console) as bar:
            task = bar.add_task("purge", total=None)

            def advance(progress: PurgeProgress) -> None:
                bar.update(task, total=progress.partitions, completed=progress.partitions_done)

            try:
                report = run_purge(runtime, dry_run=arguments.dry_run, progress=advance)
            except PurgeRunning as error:
                raise CliError(str(error)) from None
    finally:
        runtime.dispose()
    console.print(summary(report))
    return 0


def summary(report: PurgeReport) -> Table:
    verb = "would delete" if report.dry_run else "deleted"
    table = Table(title=f"retention purge ({'dry run' if report.dry_run else 'done'}): rows {verb}")
    table.add_column("category")
    table.add_column("table")
    table.add_column("rows", justify="right")
    for category in Category:
        tables = report.removed.get(category, {})
        table.add_row(category.value, "(all)", f"{report.total(category):,}")
        for name, count in sorted(tables.items()):
            if count:
                table.add_row("", name, f"{count:,}")
    table.caption = (
        f"events before {report.cutoffs.events:%Y-%m-%d}; {report.subjects_erased:,} anonymous subjects erased; "
        f"{report.receipts_kept:,} message receipts kept; {report.profile_rows_updated:,} profile rows updated"
    )
    return table
