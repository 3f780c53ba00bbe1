"""A registered document run by id beside the same text, parser and validation caches warm.

Both sides send ``query Viewer { viewer { role keyId } }`` with a partner key; the id side sends
``{"documentId": "sha256:..."}`` after registering it once. Rounds alternate, best round kept:

    (a) in process: ``schema.execute`` on our schema, no HTTP (the GraphQL layer alone), beside
        graphql-core's ``execute`` of the same parsed tree (no Strawberry around it: the ceiling
        a path that skipped Strawberry's per-request machinery could approach)
    (b) over HTTP: a real ``audience serve`` (SQLite, one worker), ``--clients`` keep-alive
        connections for ``--seconds`` (the API key is looked up in the database on every request,
        on both sides)

    python bench/trusted_documents.py [--clients 8] [--seconds 4] [--rounds 3]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import platform
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from inspect import isawaitable
from pathlib import Path
from typing import Any

import httpx
from graphql import execute, parse
from validation import HERE, ORDINARY, Server, serve  # bench/, beside this script

from privacy.keyring import generate_keyring
from privacy.purposes import Purpose
from schema import build_schema
from schema.context import Context
from server.auth.principal import SYSTEM_ACTOR, Principal, Role
from server.partners import service as partners
from server.runtime import build_runtime
from server.settings import Settings
from server.storage import migrate
from server.storage.engine import build_engine
from server.trusted_documents import service as trusted_documents

DOCUMENT_ID = trusted_documents.document_id(trusted_documents.document_hash(ORDINARY))
BARE = "graphql-core execute"
BODIES: dict[str, dict[str, Any]] = {"text": {"query": ORDINARY}, "documentId": {"documentId": DOCUMENT_ID}}


def in_process_rates(directory: Path, rounds: int, count: int = 4000) -> dict[str, float]:
    url = f"sqlite:///{directory / 'in-process.db'}"
    engine = build_engine(url)
    migrate.upgrade(engine)
    engine.dispose()
    settings = Settings(data_dir=directory, database_url=url)
    runtime = build_runtime(settings, keyring=generate_keyring())
    with runtime.unit_of_work(SYSTEM_ACTOR) as unit:
        partner = partners.create_partner(unit.session, name="bench", purposes=(Purpose.ANALYTICS,), now=unit.clock())
        trusted_documents.register_documents(
            unit.session, texts=[ORDINARY], partner_id=partner.id, registered_by=None, now=unit.clock()
        )
    schema = build_schema(settings)
    principal = Principal(key_id="bench", role=Role.PARTNER, partner_id=partner.id)
    context = Context(runtime=runtime, principal=principal, request_id="bench")

    async def rate(body: dict[str, Any]) -> float:
        query, extensions = body.get("query"), {k: v for k, v in body.items() if k != "query"}
        started = time.perf_counter()
        for _ in range(count):
            result = await schema.execute(query, context_value=context, operation_extensions=extensions or None)
            assert not result.errors, result.errors
        return count / (time.perf_counter() - started)

    document = parse(ORDINARY)

    async def bare_rate() -> float:
        started = time.perf_counter()
        for _ in range(count):
            result = execute(schema._schema, document, context_value=context)
            result = await result if isawaitable(result) else result
            assert not result.errors, result.errors
        return count / (time.perf_counter() - started)

    best = dict.fromkeys([*BODIES, BARE], 0.0)
    for _ in range(rounds):
        for name, body in BODIES.items():
            best[name] = max(best[name], asyncio.run(rate(body)))
        best[BARE] = max(best[BARE], asyncio.run(bare_rate()))
    runtime.dispose()
    return best


def http_rate(server: Server, body: dict[str, Any], clients: int, seconds: float) -> float:
    headers = {"authorization": f"Bearer {server.token}"}
    deadline = time.monotonic() + seconds

    def client() -> int:
        done = 0
        with httpx.Client(base_url=server.base_url, headers=headers, timeout=30) as http:
            while time.monotonic() < deadline:
                response = http.post("/graphql", json=body)
                assert response.json()["data"]["viewer"]["role"] == "PARTNER", response.text
                done += 1
        return done

    started = time.monotonic()
    with ThreadPoolExecutor(max_workers=clients) as pool:
        total = sum(pool.map(lambda _: client(), range(clients)))
    return total / (time.monotonic() - started)


def register(server: Server) -> None:
    answer = httpx.post(
        f"{server.base_url}/graphql",
        json={
            "query": "mutation($d: [String!]!) { registerDocuments(documents: $d) { ids } }",
            "variables": {"d": [ORDINARY]},
        },
        headers={"authorization": f"Bearer {server.token}"},
    ).json()
    assert answer["data"]["registerDocuments"]["ids"] == [DOCUMENT_ID], answer


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--clients", type=int, default=8)
    parser.add_argument("--seconds", type=float, default=4.0)
    parser.add_argument("--rounds", type=int, default=3)
    arguments = parser.parse_args()
    print(f"# {platform.node()} python {platform.python_version()}, {os.cpu_count()} cores")
    with tempfile.TemporaryDirectory() as scratch:
        rates = in_process_rates(Path(scratch), arguments.rounds + 2)
        print(f"(a) in process, best of {arguments.rounds + 2} x 4,000 executions")
        for name, rate in rates.items():
            print(f"  {name:20s} {rate:8.0f} /s")
        print(f"  ratio documentId / text: {rates['documentId'] / rates['text']:.2f}")
        with serve("after", HERE, Path(scratch) / "server") as server:
            register(server)
            best = dict.fromkeys(BODIES, 0.0)
            for _ in range(arguments.rounds):
                for name, body in BODIES.items():
                    best[name] = max(best[name], http_rate(server, body, arguments.clients, arguments.seconds))
        print(
            f"(b) HTTP, one uvicorn worker, {arguments.clients} clients,"
            f" best of {arguments.rounds} x {arguments.seconds} s"
        )
        for name, rate in best.items():
            print(f"  {name:10s} {rate:8.0f} req/s")
        print(f"  ratio documentId / text: {best['documentId'] / best['text']:.2f}")


if __name__ == "__main__":
    main()
