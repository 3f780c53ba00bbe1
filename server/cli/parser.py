"""The command-line parser, worded so that a mistyped command never prints what was typed.

argparse repeats the offending argument in its errors ("unrecognized arguments: ana@example.org",
"invalid int value: '...'"). Commands take identifiers (``audience audit search --email``), so a
slip such as a missing flag name would put a person's email on the terminal, in CI logs and in
shell transcripts; here the message keeps the rule and drops the value.
"""

from __future__ import annotations

import argparse
import re
from typing import NoReturn

_ECHOES = (
    (re.compile(r"unrecognized arguments: .*", re.DOTALL), "unrecognized arguments (see --help)"),
    (re.compile(r"(invalid [\w ]*?(?:value|choice)): .*?(?= \(choose from|$)", re.DOTALL), r"\1"),
    (re.compile(r"ambiguous option: .*? could match", re.DOTALL), "ambiguous option: it could match"),
)


def scrubbed(message: str) -> str:
    for pattern, replacement in _ECHOES:
        message = pattern.sub(replacement, message)
    return message


class Parser(argparse.ArgumentParser):
    """Subcommand parsers are built from the same class (``add_subparsers`` uses ``type(self)``)."""

    def error(self, message: str) -> NoReturn:
        super().error(scrubbed(message))
