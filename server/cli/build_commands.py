"""build: recompute every subject's profile state from the stored events, partition by partition."""

from __future__ import annotations

import argparse
from typing import Any

from rich.console import Console

from server.cli.errors import CliError
from server.cli.progress import counted_progress
from server.profiles.build import BuildProgress, run_build
from server.profiles.build_runs import BuildError, BuildRun, BuildStatus
from server.profiles.partitions import EVENTS_PER_PARTITION, MAX_PARTITIONS
from server.runtime import Runtime, build_runtime
from server.settings import load_settings
from server.storage import migrate


def register(commands: Any) -> None:
    parser = commands.add_parser(
        "build",
        help="rebuild the profile state from the stored events (after a change of weights, say)",
        description="Recompute every profile from the stored events, one partition of subjects at a time, "
        "each committed on its own: an interrupted build leaves each partition at its previous or its new "
        "state, readable throughout. Subjects without profiling consent lose their state. Ends with the "
        "value-tier cut points.",
    )
    parser.add_argument(
        "--partitions",
        type=_partitions,
        help=f"how many partitions of subjects (1-{MAX_PARTITIONS:,}; default: one per "
        f"AUDIENCE_BUILD_EVENTS_PER_PARTITION stored events, {EVENTS_PER_PARTITION:,} unless set)",
    )
    parser.set_defaults(handler=run_build_command)


def _partitions(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError("must be a whole number") from None
    if not 1 <= value <= MAX_PARTITIONS:
        raise argparse.ArgumentTypeError(f"must be between 1 and {MAX_PARTITIONS:,}")
    return value


def run_build_command(arguments: argparse.Namespace, console: Console) -> int:
    runtime = build_runtime(load_settings())
    try:
        if not migrate.is_at_head(runtime.engine):
            raise CliError("the database is not at the latest migration; run `audience migrate`")
        run = build_with_progress(runtime, console, partitions=arguments.partitions)
    finally:
        runtime.dispose()
    if run.status is not BuildStatus.SUCCEEDED:
        raise CliError(summary_line(run))
    console.print(summary_line(run))
    return 0


def build_with_progress(runtime: Runtime, console: Console, *, partitions: int | None) -> BuildRun:
    """A build with a progress bar by partition; a refusal (``BUILD_RUNNING``) as a ``CliError``."""
    with counted_progress("building profiles", console) as bar:
        task = bar.add_task("build", total=None)

        def advance(progress: BuildProgress) -> None:
            bar.update(task, total=progress.partitions, completed=progress.partitions_done)

        try:
            return run_build(runtime, partitions=partitions, progress=advance)
        except BuildError as error:
            raise CliError(error.message) from None


def summary_line(run: BuildRun) -> str:
    done = (
        f"{run.partitions_done} of {run.partitions} partitions, {run.events_read:,} events read, "
        f"{run.subjects:,} profiles, {run.rows_written:,} state rows written"
    )
    if run.status is not BuildStatus.SUCCEEDED:
        return f"build {run.id} {run.status.value} ({run.error_code}): {run.error_message}; {done}"
    cuts = run.cut_points
    tiers = (
        "no buyers, no value-tier cut points"
        if cuts is None or cuts.high is None or cuts.low is None
        else f"value tiers: high from {cuts.high:,.2f}, low below {cuts.low:,.2f} ({cuts.buyers:,} buyers)"
    )
    return f"build {run.id} succeeded: {done}; {tiers}"
