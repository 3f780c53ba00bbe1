"""Validation cost: time to refuse fragment fan-outs by their levels, /healthz meanwhile, and ordinary req/s.

Target (issue 12, item 4): a fan-out of 30 levels is refused in well under a second while
``/healthz`` keeps answering, and the ordinary path is not slower. Every figure is taken from a
real ``audience serve`` (SQLite, one worker) with a partner key:

    (a) ordinary requests per second: ``query Viewer { viewer { role keyId } }`` from
        ``--clients`` connections for ``--seconds``, in ``--rounds`` rounds (best round kept);
        and in process (``schema.execute``, no HTTP, so a busy machine blurs it less), beside
        the same schema with Strawberry's ``ParserCache``, ``ValidationCache`` and limiters
    (b) seconds to answer each attack shape at each level (a fan-out: each fragment spreads the
        previous one twice), and the slowest /healthz answer while it was being checked; a shape
        stops at its first answer slower than ``--give-up`` seconds (the next level doubles it)
    (c) the same for two wide documents aimed at graphql-core's overlap rule

    python bench/validation.py [--before DIR] [--levels 10,15,20,25,30] [--clients 8] [--seconds 4]

``--before DIR`` runs a second server from the code in DIR (e.g. ``git archive <commit> | tar -x
-C DIR``) beside this one, and the rounds of (a) alternate between the two, so both sides see
the same background load on a shared machine.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import platform
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx
import strawberry
from serving import base_environment, free_port, server  # bench/, beside this script
from strawberry.extensions import (
    AddValidationRules,
    MaxAliasesLimiter,
    MaxTokensLimiter,
    ParserCache,
    QueryDepthLimiter,
    SchemaExtension,
    ValidationCache,
)

from privacy.keyring import generate_keyring
from privacy.purposes import Purpose
from schema import Mutation, Query, build_schema
from schema.context import Context
from schema.limits import IntrospectionPolicy
from schema.observe import OperationObserver
from server.auth import api_keys
from server.auth.principal import SYSTEM_ACTOR, Principal, Role
from server.observability.metrics import Metrics
from server.partners import service as partners
from server.runtime import build_runtime
from server.settings import Settings
from server.storage import migrate
from server.storage.engine import build_engine

ORDINARY = "query Viewer { viewer { role keyId } }"
HERE = Path(__file__).resolve().parent.parent


def fan_out(levels: int, *, leaf: str, step: str) -> str:
    fragments = [f"fragment F0 on Query {{ {leaf} }}"]
    fragments += [f"fragment F{i} on Query {{ {step.format(p=f'F{i - 1}')} }}" for i in range(1, levels + 1)]
    return f"query {{ ...F{levels} }} " + " ".join(fragments)


SHAPES: dict[str, Callable[[int], str]] = {
    "spread twice": lambda n: fan_out(n, leaf="viewer { role }", step="...{p} ...{p}"),
    "aliases": lambda n: fan_out(n, leaf="a: viewer { role }", step="...{p} b: viewer {{ role }} ...{p}"),
    "inline fragments": lambda n: fan_out(n, leaf="viewer { role }", step="... on Query {{ ...{p} }} ... {{ ...{p} }}"),
}
WIDE = {
    "1,200 x 'details { key }' at one level": "{ auditLog { " + " ".join(["details { key }"] * 1200) + " } }",
    "200 fragments of 'details { key }' at one level": "{ auditLog { "
    + " ".join(f"...D{i}" for i in range(200))
    + " } } "
    + " ".join(f"fragment D{i} on AuditEntry {{ details {{ key }} }}" for i in range(200)),
}


@dataclass
class Server:
    label: str
    base_url: str
    token: str


@contextmanager
def serve(label: str, code: Path, directory: Path) -> Iterator[Server]:
    """An ``audience serve`` running ``code`` on its own SQLite file, and a partner key for it."""
    directory.mkdir(parents=True)
    url = f"sqlite:///{directory / 'bench.db'}"
    engine = build_engine(url)
    migrate.upgrade(engine)
    engine.dispose()
    keyring = generate_keyring()
    runtime = build_runtime(Settings(data_dir=directory, database_url=url), keyring=keyring)
    with runtime.unit_of_work(SYSTEM_ACTOR) as unit:
        partner = partners.create_partner(unit.session, name="bench", purposes=(Purpose.ANALYTICS,), now=unit.clock())
        token = api_keys.create_key(
            unit.session, role=Role.PARTNER, label="bench", partner_id=partner.id, now=unit.clock()
        ).token
    runtime.dispose()
    port = free_port()
    environment = base_environment(url, directory, keyring, port) | {"PYTHONPATH": str(code)}
    command = [sys.executable, "-m", "server.cli.main", "serve"]
    base_url = f"http://127.0.0.1:{port}"
    with server(command, environment, f"{base_url}/healthz", cwd=code):
        yield Server(label, base_url, token)


def ordinary_rate(server: Server, clients: int, seconds: float) -> float:
    """Requests per second of the ordinary query from ``clients`` keep-alive connections."""
    headers = {"authorization": f"Bearer {server.token}"}
    deadline = time.monotonic() + seconds

    def client() -> int:
        done = 0
        with httpx.Client(base_url=server.base_url, headers=headers, timeout=30) as http:
            while time.monotonic() < deadline:
                response = http.post("/graphql", json={"query": ORDINARY})
                assert response.json()["data"]["viewer"]["role"] == "PARTNER"
                done += 1
        return done

    started = time.monotonic()
    with ThreadPoolExecutor(max_workers=clients) as pool:
        total = sum(pool.map(lambda _: client(), range(clients)))
    return total / (time.monotonic() - started)


def strawberry_schema(settings: Settings) -> strawberry.Schema:
    """Our types with Strawberry's caches and limiters, as configured before issue 12."""
    rules = [
        *QueryDepthLimiter(max_depth=settings.max_query_depth).validation_rules,
        *MaxAliasesLimiter(max_alias_count=settings.max_aliases).validation_rules,
    ]
    metrics = Metrics()
    extensions: list[Callable[[], SchemaExtension]] = [
        lambda: OperationObserver(metrics=metrics),
        lambda: ParserCache(maxsize=settings.parser_cache_size),
        lambda: IntrospectionPolicy(open_to_all=False),
        lambda: ValidationCache(maxsize=settings.validation_cache_size),
        lambda: MaxTokensLimiter(max_token_count=settings.max_tokens),
        lambda: AddValidationRules(rules),
    ]
    reference = build_schema(settings)
    return strawberry.Schema(query=Query, mutation=Mutation, extensions=extensions, config=reference.config)


def in_process_rates(rounds: int, count: int = 2000) -> dict[str, float]:
    """Executions per second of the ordinary query, ours beside Strawberry's, rounds alternating."""
    settings = Settings()
    schemas = {"ours": build_schema(settings), "Strawberry's": strawberry_schema(settings)}
    principal = Principal(key_id="bench", role=Role.PARTNER, partner_id=1)
    context = Context(runtime=None, principal=principal, request_id="bench")  # type: ignore[arg-type]

    async def rate(schema: strawberry.Schema) -> float:
        started = time.perf_counter()
        for _ in range(count):
            result = await schema.execute(ORDINARY, context_value=context)
            assert not result.errors
        return count / (time.perf_counter() - started)

    best = dict.fromkeys(schemas, 0.0)
    for _ in range(rounds):
        for name, schema in schemas.items():
            best[name] = max(best[name], asyncio.run(rate(schema)))
    return best


def refusal(server: Server, query: str) -> tuple[float, float, str]:
    """(seconds to answer, slowest /healthz meanwhile, codes) for one document."""
    headers = {"authorization": f"Bearer {server.token}"}
    health: list[float] = []
    with ThreadPoolExecutor(max_workers=1) as pool:
        started = time.monotonic()
        future = pool.submit(
            httpx.post, f"{server.base_url}/graphql", json={"query": query}, headers=headers, timeout=600
        )
        while True:
            polled = time.monotonic()
            httpx.get(f"{server.base_url}/healthz", timeout=600)
            health.append(time.monotonic() - polled)
            if future.done():
                break
            time.sleep(0.02)
        response = future.result()
        seconds = time.monotonic() - started
    errors = response.json().get("errors") or []
    codes = ",".join(sorted({str(e.get("extensions", {}).get("code")) for e in errors})) or "answered"
    return seconds, max(health), codes


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--before", type=Path, help="a checkout of the code to compare with")
    parser.add_argument("--levels", default="10,15,18,20,22,25,30")
    parser.add_argument("--clients", type=int, default=8)
    parser.add_argument("--seconds", type=float, default=4.0)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--give-up", type=float, default=3.0)
    arguments = parser.parse_args()
    levels = [int(level) for level in arguments.levels.split(",")]
    print(f"# {platform.node()} python {platform.python_version()}, {os.cpu_count()} cores")
    codes = [("after", HERE)] + ([("before", arguments.before.resolve())] if arguments.before else [])
    with tempfile.TemporaryDirectory() as scratch, ExitStack() as stack:
        servers = [stack.enter_context(serve(label, code, Path(scratch) / label)) for label, code in codes]
        best = {server.label: 0.0 for server in servers}
        for _ in range(arguments.rounds):
            for server in servers:
                best[server.label] = max(
                    best[server.label], ordinary_rate(server, arguments.clients, arguments.seconds)
                )
        print(f"\n(a) ordinary query, {arguments.clients} clients, best of {arguments.rounds} x {arguments.seconds} s")
        for label, rate in best.items():
            print(f"  {label:7s} {rate:8.0f} req/s")
        print(f"  in process, best of {arguments.rounds + 4} x 2,000 executions:")
        for name, rate in in_process_rates(arguments.rounds + 4).items():
            print(f"    {name:13s} {rate:8.0f} /s")
        print("\n(b) fan-outs: seconds to answer / slowest /healthz meanwhile / codes")
        for name, make in SHAPES.items():
            for server in servers:
                for level in levels:
                    seconds, health, answer = refusal(server, make(level))
                    print(
                        f"  {server.label:7s} {name:17s} {level:3d} levels {len(make(level)):5d} B  "
                        f"{seconds:7.3f} s  /healthz {health:7.3f} s  {answer}",
                        flush=True,
                    )
                    if seconds > arguments.give_up:
                        break
        print("\n(c) wide documents: seconds to answer / slowest /healthz meanwhile / codes")
        for name, query in WIDE.items():
            for server in servers:
                seconds, health, answer = refusal(server, query)
                print(f"  {server.label:7s} {name:48s} {seconds:7.3f} s  /healthz {health:7.3f} s  {answer}")


if __name__ == "__main__":
    main()
