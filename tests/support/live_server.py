"""A real ``audience serve`` process on a loopback port, with its log captured to a file."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

from privacy.keyring import Keyring, write_keyring_file
from privacy.purposes import Purpose
from server.auth import api_keys
from server.auth.principal import SYSTEM_ACTOR, Role
from server.partners import service as partners
from server.runtime import Runtime, build_runtime
from server.settings import Settings

STARTUP_TIMEOUT_S = 30.0


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@dataclass
class LiveServer:
    base_url: str
    log_path: Path
    runtime: Runtime
    process: subprocess.Popen[bytes]
    _partner_counter: list[int] = field(default_factory=lambda: [0])

    def issue_key(self, role: Role, *, partner_id: int | None = None) -> str:
        with self.runtime.unit_of_work(SYSTEM_ACTOR) as unit:
            if role is Role.PARTNER and partner_id is None:
                partner_id = self.new_partner(unit_session=unit.session).id
            issued = api_keys.create_key(unit.session, role=role, label="test", partner_id=partner_id, now=unit.clock())
        return issued.token

    def new_partner(
        self, *, unit_session: Any = None, purposes: tuple[Purpose, ...] = (Purpose.ANALYTICS,)
    ) -> partners.PartnerInfo:
        self._partner_counter[0] += 1
        name = f"partner-{os.getpid()}-{self._partner_counter[0]}-{time.monotonic_ns() % 100000}"
        if unit_session is not None:
            return partners.create_partner(unit_session, name=name, purposes=purposes, now=self.runtime.clock())
        with self.runtime.unit_of_work(SYSTEM_ACTOR) as unit:
            return partners.create_partner(unit.session, name=name, purposes=purposes, now=unit.clock())

    def graphql(
        self, query: str, *, token: str | None = None, variables: dict[str, Any] | None = None, **extra: Any
    ) -> httpx.Response:
        headers = {"authorization": f"Bearer {token}"} if token else {}
        body: dict[str, Any] = {"query": query}
        if variables is not None:
            body["variables"] = variables
        body.update(extra)
        return httpx.post(f"{self.base_url}/graphql", json=body, headers=headers, timeout=30)

    def log_text(self) -> str:
        return self.log_path.read_text(encoding="utf-8", errors="replace")

    def log_lines_containing(self, marker: str, *, timeout_s: float = 30.0) -> list[str]:
        """The request line is written just after the response is sent, so wait for it (returning as
        soon as it is there: the bound is for a loaded machine, not the usual wait)."""
        deadline = time.monotonic() + timeout_s
        while True:
            lines = [line for line in self.log_text().splitlines() if marker in line]
            if lines or time.monotonic() > deadline:
                return lines
            time.sleep(0.05)

    def stop(self) -> None:
        self.process.terminate()
        try:
            self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.process.kill()
        self.runtime.dispose()


@contextmanager
def serving(*, directory: Path, database_url: str, keyring: Keyring, **settings: str) -> Iterator[LiveServer]:
    """``start_server`` for a fixture or a ``with`` block: stopped however the block ends."""
    server = start_server(directory=directory, database_url=database_url, keyring=keyring, **settings)
    try:
        yield server
    finally:
        server.stop()


def start_server(*, directory: Path, database_url: str, keyring: Keyring, **settings: str) -> LiveServer:
    directory.mkdir(parents=True, exist_ok=True)
    keyring_path = directory / "keyring.json"
    if not keyring_path.exists():
        write_keyring_file(keyring_path, keyring)
    port = free_port()
    environment = (
        {key: value for key, value in os.environ.items() if not key.startswith("AUDIENCE_")}
        | {
            "AUDIENCE_DATA_DIR": str(directory),
            "AUDIENCE_DATABASE_URL": database_url,
            "AUDIENCE_PORT": str(port),
            "AUDIENCE_LOG_LEVEL": "debug",
            # Tests write events dated by a fixed clock, long past under the server's real one: no
            # purge behind their back. A test of the scheduled run passes its own interval.
            "AUDIENCE_RETENTION_INTERVAL_SECONDS": "0",
        }
        | {f"AUDIENCE_{key.upper()}": value for key, value in settings.items()}
    )
    log_path = directory / "server.log"
    with log_path.open("wb") as log:
        process = subprocess.Popen(
            [sys.executable, "-m", "server.cli.main", "serve"],
            env=environment,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    base_url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + STARTUP_TIMEOUT_S
    while True:
        if process.poll() is not None:
            raise RuntimeError(f"server exited at start-up: {log_path.read_text()[-2000:]}")
        try:
            if httpx.get(f"{base_url}/healthz", timeout=1).status_code == 200:
                break
        except httpx.TransportError:
            pass
        if time.monotonic() > deadline:
            process.kill()
            raise RuntimeError("server did not start in time")
        time.sleep(0.1)
    runtime = build_runtime(Settings(data_dir=directory, database_url=database_url), keyring=keyring)
    return LiveServer(base_url=base_url, log_path=log_path, runtime=runtime, process=process)
