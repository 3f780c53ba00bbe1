"""The ``audience`` command run as a user runs it: a child process, its own working directory."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path


def run_audience(
    *args: str,
    directory: Path,
    env: dict[str, str] | None = None,
    timeout: float = 120,
    preexec_fn: Callable[[], None] | None = None,
) -> subprocess.CompletedProcess[str]:
    """None of the caller's ``AUDIENCE_`` settings reach the child, only ``env``; wide output for parsing.

    ``preexec_fn`` runs in the child before the command (a resource limit, say).
    """
    environment = {k: v for k, v in os.environ.items() if not k.startswith("AUDIENCE_")} | {"COLUMNS": "200"}
    return subprocess.run(
        [sys.executable, "-m", "server.cli.main", *args],
        cwd=directory,
        env=environment | (env or {}),
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
        preexec_fn=preexec_fn,
    )
