"""bi publish|grant|revoke|export: the published aggregates for BI tools (docs/bi-sql.md)."""

from __future__ import annotations

import argparse
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

from rich.console import Console

from server.analytics.bi_access import generated_password, grant_reader, revoke_reader
from server.analytics.bi_export import export_published
from server.analytics.publish import Published, publish
from server.analytics.release import BudgetExhausted
from server.cli.errors import CliError
from server.runtime import Runtime, build_runtime
from server.settings import load_settings
from server.storage import migrate
from server.storage.bi_schema import BI_SCHEMA, RoleRefused

T = TypeVar("T")


def register(commands: Any) -> None:
    bi = commands.add_parser("bi", help="published aggregates for BI tools (SQL views, Parquet)").add_subparsers(
        dest="bi_command", required=True, metavar="ACTION"
    )
    bi.add_parser(
        "publish",
        help="release the aggregates and replace the published ones now",
        description="Release every published aggregate (segment sizes and breakdowns) as analysts get them: "
        "suppressed below k, noisy. The server does this on its own every AUDIENCE_BI_PUBLISH_SECONDS.",
    ).set_defaults(handler=run_publish)

    grant = bi.add_parser(
        "grant",
        help=f"create a PostgreSQL login that reads the {BI_SCHEMA} views only",
        description=f"Create login role NAME that can read the views of schema {BI_SCHEMA} and no table. "
        "Without --password-file, a generated password is printed once.",
    )
    grant.add_argument("name", help="lower-case letters, digits and _ (a name for the tool, not a person)")
    grant.add_argument("--password-file", type=Path, help="a file holding the password (first line)")
    grant.set_defaults(handler=run_grant)

    revoke = bi.add_parser("revoke", help="drop a login created by `audience bi grant`")
    revoke.add_argument("name")
    revoke.set_defaults(handler=run_revoke)

    export = bi.add_parser(
        "export",
        help="write the published aggregates as Parquet files (publishing first if none are)",
        description="One Parquet file per view (segment_sizes, segment_breakdowns, aggregates) in DIR, each "
        "replaced whole.",
    )
    export.add_argument("directory", type=Path, metavar="DIR")
    export.set_defaults(handler=run_export)


def _with_runtime(work: Callable[[Runtime], T]) -> T:
    runtime = build_runtime(load_settings())
    try:
        if not migrate.is_at_head(runtime.engine):
            raise CliError("the database is not at the latest migration; run `audience migrate`")
        return work(runtime)
    except RoleRefused as error:
        raise CliError(str(error)) from None
    except BudgetExhausted:
        raise CliError(
            "the differential-privacy budget of the publisher is spent for this period; the published "
            "aggregates stay as they were (see AUDIENCE_DP_EPSILON_PER_PERIOD)"
        ) from None
    finally:
        runtime.dispose()


def _report(console: Console, published: Published) -> None:
    console.print(
        f"{published.aggregates} aggregates published ({published.rows} rows, {published.suppressed} suppressed) "
        f"as of {published.as_of.isoformat(timespec='seconds')}"
    )


def run_publish(_arguments: argparse.Namespace, console: Console) -> int:
    _report(console, _with_runtime(publish))
    return 0


def _password(arguments: argparse.Namespace) -> tuple[str, bool]:
    """(the password, whether it was generated and must be shown)."""
    if arguments.password_file is None:
        return generated_password(), True
    try:
        lines = arguments.password_file.read_text(encoding="utf-8").splitlines()
    except OSError:
        raise CliError("the password file cannot be read") from None
    if not lines or not lines[0]:
        raise CliError("the password file is empty: its first line is the password")
    return lines[0], False


def run_grant(arguments: argparse.Namespace, console: Console) -> int:
    password, generated = _password(arguments)
    _with_runtime(lambda runtime: grant_reader(runtime, arguments.name, password))
    console.print(f"role {arguments.name} created: it reads the views of schema {BI_SCHEMA} only")
    if generated:
        console.print("password, shown once:")
        console.print(password, soft_wrap=True)
    return 0


def run_revoke(arguments: argparse.Namespace, console: Console) -> int:
    _with_runtime(lambda runtime: revoke_reader(runtime, arguments.name))
    console.print(f"role {arguments.name} dropped")
    return 0


def run_export(arguments: argparse.Namespace, console: Console) -> int:
    written = _with_runtime(lambda runtime: export_published(runtime, arguments.directory))
    for path in written:
        console.print(f"wrote {path}")
    return 0
