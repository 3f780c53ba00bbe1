"""import: events from a CSV, NDJSON or Parquet file, chunk by chunk, one commit per chunk."""

from __future__ import annotations

import argparse
import re
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

from server.cli.errors import CliError
from server.cli.progress import rows_progress
from server.ingest.files import (
    DEFAULT_CHUNK_SIZE,
    EventChunk,
    EventFile,
    FileFormat,
    FileImportError,
    ImportTotals,
    RejectedReport,
    default_report_path,
    detect_format,
    import_chunks,
)
from server.ingest.service import IngestResult
from server.ingest.vocabulary import REJECT_MESSAGES, REJECT_SETTINGS
from server.runtime import build_runtime
from server.settings import load_settings
from server.storage import migrate

SOURCE_PATTERN = re.compile(r"^[a-z0-9][a-z0-9_.:-]{0,63}$")


def register(commands: Any) -> None:
    parser = commands.add_parser(
        "import",
        help="import events from a CSV, NDJSON (Segment-shaped) or Parquet file",
        description="Import events chunk by chunk, each chunk committed on its own: rerunning a file "
        "(after a crash, say) stores nothing twice. Rejected records are listed in a report by "
        "record number and code, never by value.",
    )
    parser.add_argument("file", type=Path, help="the file; its format comes from the extension unless --format")
    parser.add_argument("--format", choices=[f.value for f in FileFormat], help="override the extension")
    parser.add_argument(
        "--chunk-size",
        type=_positive,
        default=DEFAULT_CHUNK_SIZE,
        help=f"records per commit (default {DEFAULT_CHUNK_SIZE:,})",
    )
    parser.add_argument(
        "--source",
        default="import",
        help="source label stored with each event; duplicates are per source (default: import)",
    )
    parser.add_argument("--report", type=Path, help="where to list rejected records (default: FILE.rejected.csv)")
    parser.set_defaults(handler=run_import)


def _positive(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError("must be a whole number") from None
    if value < 1:
        raise argparse.ArgumentTypeError("must be at least 1")
    return value


def run_import(arguments: argparse.Namespace, console: Console) -> int:
    if not SOURCE_PATTERN.match(arguments.source):
        raise CliError("--source must be 1-64 characters of a-z, 0-9, '.', ':', '_' or '-'")
    path: Path = arguments.file
    report_path: Path = arguments.report or default_report_path(path)
    settings = load_settings()
    try:
        file_format = detect_format(path, arguments.format)
        with EventFile(path, file_format) as events:
            runtime = build_runtime(settings)
            try:
                if not migrate.is_at_head(runtime.engine):
                    raise CliError("the database is not at the latest migration; run `audience migrate`")
                with RejectedReport(report_path) as report, rows_progress(console) as progress:
                    task = progress.add_task(f"importing {path.name}", total=events.total, rows=0, rate=0.0)

                    def chunk_done(chunk: EventChunk, result: IngestResult) -> None:
                        report.write(result.rejected, offset=chunk.offset)
                        rows = chunk.offset + chunk.frame.height
                        elapsed = progress.tasks[task].elapsed or 0.0
                        rate = rows / elapsed if elapsed > 0 else 0.0
                        progress.update(task, completed=chunk.done, rows=rows, rate=rate)

                    forms = runtime.kit.labels.every_form(arguments.source)  # stored first, then earlier forms
                    totals = import_chunks(
                        runtime,
                        events.chunks(arguments.chunk_size),
                        source=forms[0],  # declared, or a keyed hash
                        known_as=forms[1:],
                        on_chunk=chunk_done,
                    )
                    progress.update(task, completed=events.total)
            finally:
                runtime.dispose()
    except FileImportError as error:
        raise CliError(str(error)) from None
    console.print(summary_table(totals, title=f"{path.name} ({file_format.value}, source {arguments.source})"))
    if events.ignored_columns:
        console.print(f"{events.ignored_columns} column(s) outside the event shape were not read (nothing stored)")
    if events.dropped_fields:
        console.print(f"{events.dropped_fields:,} field(s) outside the event shape were dropped (nothing stored)")
    if totals.rejected:
        console.print(f"rejected records listed in {report_path} (record number and code only)")
    refusal = nothing_accepted(totals)
    if refusal is not None:
        raise CliError(refusal)
    return 0


def nothing_accepted(totals: ImportTotals) -> str | None:
    """Why a file that stored nothing new failed, naming the commonest code and the setting behind it.

    A file whose records were all stored before (a rerun after a crash) did not fail.
    """
    result = totals.result
    if result.accepted or result.duplicates:
        return None
    if not result.received:
        return "the file holds no records"
    code, count = totals.rejected_by_code.most_common(1)[0]
    setting = REJECT_SETTINGS.get(code)
    governed = f"; the limit is set by {setting}" if setting else ""
    return (
        f"nothing was accepted: {count:,} of {result.received:,} records were rejected as {code.value} "
        f"({REJECT_MESSAGES[code]}{governed}); see the report"
    )


def summary_table(totals: ImportTotals, *, title: str) -> Table:
    result = totals.result
    table = Table("", "records", title=title, title_justify="left")
    table.columns[1].justify = "right"
    rows: list[tuple[str, int]] = [
        ("received", result.received),
        ("accepted", result.accepted),
        ("duplicates", result.duplicates),
        ("rejected", totals.rejected),
        *((f"  rejected {code.value}", count) for code, count in sorted(totals.rejected_by_code.items())),
        ("dropped topics", result.dropped_topics),
        ("dropped labels", result.dropped_labels),
        ("junk identifiers", result.junk_identifiers),
        ("new subjects", result.new_subjects),
        ("merges", result.merges),
        ("refused merges", result.refused_merges),
        ("identity cap hits", result.identity_limit_hits),
        ("chunks committed", totals.chunks),
    ]
    for name, value in rows:
        table.add_row(name, f"{value:,}")
    return table
