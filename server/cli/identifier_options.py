"""How a command takes a person's identifier: one flag per kind, ``-`` to read it from stdin.

Reading from stdin keeps the identifier out of the shell history and the process list; it is
never printed back, in output or in an error.
"""

from __future__ import annotations

import argparse
import sys

from privacy.identifiers import IdentifierKind
from server.cli.errors import CliError
from server.consent.requests import RawIdentifier

_FLAGS = {kind: "--" + kind.value.replace("_", "-") for kind in IdentifierKind}


def flag_of(kind: IdentifierKind) -> str:
    """The option naming ``kind``, for errors that point at what was given without repeating it."""
    return _FLAGS[kind]


def add_identifier_options(parser: argparse.ArgumentParser, *, required: bool) -> None:
    group = parser.add_mutually_exclusive_group(required=required)
    for kind, flag in _FLAGS.items():
        group.add_argument(
            flag,
            dest=f"identifier_{kind.value}",
            metavar="VALUE",
            help=f"the person's {kind.value.replace('_', ' ')}; never printed ('-': read it from stdin)",
        )
    parser.add_argument("--partner-id", type=int, help="the partner whose user id --partner-user-id is")


def identifier_of(arguments: argparse.Namespace) -> RawIdentifier | None:
    for kind in IdentifierKind:
        value = getattr(arguments, f"identifier_{kind.value}", None)
        if value is None:
            continue
        if value == "-":
            value = sys.stdin.readline().rstrip("\r\n")
        if kind is IdentifierKind.PARTNER_USER_ID and arguments.partner_id is None:
            raise CliError("--partner-user-id needs --partner-id")
        return RawIdentifier(kind, value, arguments.partner_id)
    return None
