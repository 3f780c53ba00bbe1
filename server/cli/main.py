"""The ``audience`` command line.

Each failure ends in one line on stderr and a non-zero exit; tracebacks are for bugs only.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Sequence

from rich.console import Console
from sqlalchemy.exc import OperationalError

from privacy.keyring import KeyringError
from server.cli import access_commands, audit_commands, identity_commands, import_commands, setup_commands
from server.cli.errors import CliError
from server.gc_tuning import tune_for_throughput
from server.settings import SettingsError

Handler = Callable[[argparse.Namespace, Console], int]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
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
    except OperationalError:
        errors.print(
            "[red]error:[/red] the database is unreachable or refused the operation (check AUDIENCE_DATABASE_URL)",
            markup=True,
            soft_wrap=True,
        )
        return 2
    except KeyboardInterrupt:
        errors.print("interrupted")
        return 130


if __name__ == "__main__":
    sys.exit(main())
