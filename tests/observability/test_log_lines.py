"""A log line fills in a message's arguments only where they cannot carry anyone's data."""

from __future__ import annotations

import json
import logging

import pytest

from server.observability.logs import JsonLineFormatter
from tests.support.live_server import LiveServer

EMAIL = "ana.lopez@example.org"


def formatted(logger: str, message: str, *args: object) -> str:
    record = logging.LogRecord(logger, logging.INFO, __file__, 1, message, args, None)
    return str(json.loads(JsonLineFormatter().format(record))["msg"])


def test_the_server_start_line_names_the_address_it_listens_on(live_server: LiveServer) -> None:
    port = live_server.base_url.rsplit(":", 1)[1]
    [line] = live_server.log_lines_containing("Uvicorn running on")
    assert json.loads(line)["msg"] == f"Uvicorn running on http://127.0.0.1:{port} (Press CTRL+C to quit)"
    [started] = live_server.log_lines_containing("Started server process")
    assert json.loads(started)["msg"] == f"Started server process [{live_server.process.pid}]"


@pytest.mark.parametrize(
    ("logger", "message", "args"),
    [
        ("uvicorn.error", "Exception in ASGI application: %s", (EMAIL,)),  # uvicorn's logger, another template
        (
            "server.anything",
            "Uvicorn running on %s://%s:%d (Press CTRL+C to quit)",
            ("http", EMAIL, 1),
        ),  # another logger
        ("sqlalchemy.engine", "[cached] %s", (EMAIL,)),  # a library that logs parameters
    ],
)
def test_other_arguments_are_never_filled_in(logger: str, message: str, args: tuple[object, ...]) -> None:
    assert formatted(logger, message, *args) == message


def test_an_allowed_template_with_arguments_it_cannot_take_stays_unfilled() -> None:
    assert formatted("uvicorn.error", "Started server process [%d]", EMAIL) == "Started server process [%d]"
