"""The ``audience`` command line.

Each failure ends in one line on stderr and a non-zero exit; tracebacks are for bugs only.
"""

from __future__ import annotations

import argparse
import sqlite3
import sys
from collections.abc import Callable, Sequence

import psycopg
from rich.console import Console
from sqlalchemy.exc import DBAPIError, OperationalError

from privacy.keyring import KeyringError
from server.cli import (
    access_commands,
    audit_commands,
    bi_commands,
    build_commands,
    identity_commands,
    import_commands,
    purge_commands,
    request_commands,
    segment_commands,
    setup_commands,
)
from server.cli.errors import CliError
from server.cli.parser import Parser
from server.gc_tuning import tune_for_throughput
from server.settings import SettingsError, load_settings
from server.storage.failures import StorageFailure, StorageUnavailable, failure_of

Handler = Callable[[argparse.Namespace, Console], int]


def build_parser() -> argparse.ArgumentParser:
    parser = Parser(
        prog="audience",
        description="A privacy-first audience server. Settings come from AUDIENCE_* variables "
        "and the TOML file named by AUDIENCE_CONFIG (see docs/configuration.md).",
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    setup_commands.register(commands)
    access_commands.register(commands)
    audit_commands.register(commands)
    import_commands.register(commands)
    identity_commands.register(commands)
    build_commands.register(commands)
    purge_commands.register(commands)
    request_commands.register(commands)
    segment_commands.register(commands)
    bi_commands.register(commands)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    arguments = parser.parse_args(argv)
    console = Console(stderr=False, highlight=False)
    errors = Console(stderr=True, highlight=False)
    handler: Handler = arguments.handler
    tune_for_throughput()
    try:
        return handler(arguments, console)
    except (SettingsError, KeyringError, CliError) as error:
        errors.print(f"[red]error:[/red] {error}", markup=True, soft_wrap=True)
        return 2
    except (DBAPIError, sqlite3.Error, psycopg.Error, StorageUnavailable) as error:
        failure = failure_of(error)
        if failure is None and not isinstance(error, OperationalError | sqlite3.OperationalError):
            raise  # not the database's state: a bug, with its traceback
        errors.print(f"[red]error:[/red] {storage_message(failure)}", markup=True, soft_wrap=True)
        return 2
    except KeyboardInterrupt:
        errors.print("interrupted")
        return 130


def storage_message(failure: StorageFailure | None) -> str:
    """What to do about ``failure``; where the SQLite file lives is named by its setting, never its path."""
    if failure is StorageFailure.DISK_FULL:
        return (
            "the database could not write: its disk is full (or a file size limit was reached); free space and "
            "run the command again (what was committed stays, and an import run again stores nothing twice)"
        )
    if failure is StorageFailure.NOT_WRITABLE:
        where = (
            "the directory of the SQLite file in AUDIENCE_DATABASE_URL"
            if _sqlite_url_set()
            else "the data directory (AUDIENCE_DATA_DIR)"
        )
        return f"{where} is not writable by this user (permissions, or a read-only file system)"
    return "the database is unreachable or refused the operation (check AUDIENCE_DATABASE_URL)"


def _sqlite_url_set() -> bool:
    try:
        return load_settings().database_url.startswith("sqlite")
    except SettingsError:
        return False


if __name__ == "__main__":
    sys.exit(main())
