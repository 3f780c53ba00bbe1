"""A keep-alive HTTP/1.1 load generator on raw asyncio sockets, for ``bench/serve.py``.

Run in a process of its own (``drive`` is the target of a spawned process), so that the client's
work does not share the interpreter with the server's. Raw sockets because an HTTP client library
costs more per request than the servers measured here do: the generator would be the bottleneck.
Each connection sends the prepared requests in turn (offset per connection), one at a time, and
records the time from writing the request to reading the last byte of the answer.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass

import uvloop


@dataclass(frozen=True, slots=True)
class LoadResult:
    requests: int
    failures: int
    seconds: float
    latencies: list[float]  # seconds, one per answered request


def request_bytes(host: str, port: int, path: str, body: bytes, headers: dict[str, str]) -> bytes:
    lines = [f"POST {path} HTTP/1.1", f"host: {host}:{port}", "content-type: application/json"]
    lines += [f"{name}: {value}" for name, value in headers.items()]
    lines.append(f"content-length: {len(body)}")
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + body


async def _answer(reader: asyncio.StreamReader) -> tuple[int, bytes]:
    head = await reader.readuntil(b"\r\n\r\n")
    status = int(head.split(b" ", 2)[1])
    length = 0
    for line in head.split(b"\r\n")[1:]:
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            length = int(value)
    return status, await reader.readexactly(length)


async def _connection(
    host: str, port: int, requests: list[bytes], offset: int, until: float, measure_from: float, out: list[float]
) -> int:
    reader, writer = await asyncio.open_connection(host, port)
    failures, index = 0, offset
    try:
        while True:
            started = time.perf_counter()
            if started >= until:
                return failures
            writer.write(requests[index % len(requests)])
            index += 1
            status, _body = await _answer(reader)
            if started >= measure_from:
                out.append(time.perf_counter() - started)
                failures += status != 200
    finally:
        writer.close()


async def _run(
    host: str, port: int, requests: list[bytes], connections: int, warmup: float, seconds: float
) -> LoadResult:
    start = time.perf_counter()
    measure_from, until = start + warmup, start + warmup + seconds
    latencies: list[float] = []
    spread = max(1, len(requests) // connections)
    failures = await asyncio.gather(
        *(_connection(host, port, requests, i * spread, until, measure_from, latencies) for i in range(connections))
    )
    return LoadResult(len(latencies), sum(failures), seconds, latencies)


def drive(host: str, port: int, requests: list[bytes], connections: int, warmup: float, seconds: float) -> LoadResult:
    """``connections`` keep-alive connections for ``warmup`` + ``seconds``; the last ``seconds`` counted."""
    return uvloop.run(_run(host, port, requests, connections, warmup, seconds))
