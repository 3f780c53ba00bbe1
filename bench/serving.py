"""Running a server process for a bench: a free port, its environment, and waiting for /healthz."""

from __future__ import annotations

import os
import socket
import subprocess
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

import httpx

from privacy.keyring import Keyring, dumps_keyring


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def base_environment(url: str, directory: Path, keyring: Keyring, port: int) -> dict[str, str]:
    """``audience serve`` settings for one worker, quiet, with nothing inherited from the caller's AUDIENCE_*."""
    return {k: v for k, v in os.environ.items() if not k.startswith("AUDIENCE_")} | {
        "AUDIENCE_DATA_DIR": str(directory),
        "AUDIENCE_DATABASE_URL": url,
        "AUDIENCE_KEYRING": dumps_keyring(keyring),
        "AUDIENCE_PORT": str(port),
        "AUDIENCE_WORKERS": "1",
        "AUDIENCE_LOG_LEVEL": "warning",
    }


@contextmanager
def server(
    command: Sequence[str], environment: dict[str, str], health: str, *, cwd: Path | None = None
) -> Iterator[None]:
    """The process runs until the block ends; it is ready once ``health`` answers 200."""
    process = subprocess.Popen(command, env=environment, cwd=cwd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + 60
        while True:
            if process.poll() is not None:
                raise RuntimeError(f"server exited: {process.stderr.read().decode()[-800:] if process.stderr else ''}")
            try:
                if httpx.get(health, timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError("server did not start")
            time.sleep(0.1)
        yield
    finally:
        process.terminate()
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:  # a server whose event loop is blocked never sees the signal
            process.kill()
            process.wait()
