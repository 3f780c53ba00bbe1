"""The two baselines of the visitor lookup bench (``bench/serve.py``), as uvicorn factories.

Both answer the visitor lookup from the same tables by the same service call as the product
(``server.partners.lookup.visitor``: the same statements, on a worker thread with a session of
its own), for the partner named by ``AUDIENCE_BENCH_PARTNER_ID``, and nothing else:

    starlette_app    POST /lookup {"kind", "value", "k"} -> the answer as JSON: no API key, no
                     GraphQL (the ceiling: HTTP and the lookup's database work)
    strawberry_app   POST /graphql, a one-field Strawberry schema with graphql-core's parser and
                     validation caches (Strawberry's ``ParserCache`` and ``ValidationCache``), no
                     API key, none of our extensions

    uvicorn lookup_baselines:starlette_app --factory --workers 2    # from bench/, env as for serve
"""

from __future__ import annotations

import os
from typing import Any

import orjson
import strawberry
from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route
from strawberry.asgi import GraphQL
from strawberry.extensions import ParserCache, ValidationCache
from strawberry.types import Info

from privacy.identifiers import IdentifierKind
from privacy.purposes import Purpose
from server.partners import lookup
from server.partners.grants import PartnerScope
from server.partners.interests import InterestIndex, interest_index
from server.runtime import Runtime, build_runtime
from server.settings import load_settings
from server.taxonomy.taxonomy import taxonomy_for

PARTNER_ID_VARIABLE = "AUDIENCE_BENCH_PARTNER_ID"


class Lookups:
    """The product's lookup for the bench partner, on a worker thread, as the resolver calls it."""

    def __init__(self) -> None:
        self.runtime: Runtime = build_runtime(load_settings())
        self.scope = PartnerScope(int(os.environ[PARTNER_ID_VARIABLE]), frozenset(Purpose))
        self.index: InterestIndex = interest_index(
            self.runtime.profiles, taxonomy_for(self.runtime.settings.taxonomy_extra)
        )

    async def visitor(self, kind: str, value: str, top_k: int) -> lookup.VisitorAnswer:
        def read() -> lookup.VisitorAnswer:
            with self.runtime.sessions() as session:
                return lookup.visitor(
                    session,
                    self.runtime.kit,
                    partner=self.scope,
                    kind=IdentifierKind(kind),
                    value=value,
                    top_k=top_k,
                    index=self.index,
                    now=self.runtime.clock(),
                )

        return await run_in_threadpool(read)


async def healthz(_request: Request) -> Response:
    return Response(b'{"status":"ok"}', media_type="application/json")


def starlette_app() -> Starlette:
    lookups = Lookups()

    async def answer(request: Request) -> Response:
        asked = orjson.loads(await request.body())
        found = await lookups.visitor(asked["kind"], asked["value"], int(asked.get("k", 5)))
        body = {
            "asOf": found.as_of.isoformat(),
            "segments": [{"name": s.name, "purpose": s.purpose.value.upper()} for s in found.segments],
            "interests": [{"topic": i.topic, "name": i.name, "score": i.score} for i in found.interests],
        }
        return Response(orjson.dumps(body), media_type="application/json")

    return Starlette(routes=[Route("/healthz", healthz), Route("/lookup", answer, methods=["POST"])])


@strawberry.type
class BareSegment:
    name: str
    purpose: str


@strawberry.type
class BareInterest:
    topic: str
    name: str
    score: float


@strawberry.type
class BareVisitor:
    as_of: str
    segments: list[BareSegment]
    interests: list[BareInterest]


@strawberry.input
class BareIdentifier:
    kind: str
    value: str


@strawberry.type
class BareQuery:
    @strawberry.field
    async def visitor(self, info: Info[Any, None], identifier: BareIdentifier, top_interests: int = 5) -> BareVisitor:
        found = await info.context["lookups"].visitor(identifier.kind, identifier.value, top_interests)
        return BareVisitor(
            as_of=found.as_of.isoformat(),
            segments=[BareSegment(name=s.name, purpose=s.purpose.value.upper()) for s in found.segments],
            interests=[BareInterest(topic=i.topic, name=i.name, score=i.score) for i in found.interests],
        )


class BareView(GraphQL[dict[str, Any], None]):
    def __init__(self, lookups: Lookups, **options: Any) -> None:
        super().__init__(**options)
        self.lookups = lookups

    async def get_context(self, request: Any, response: Any) -> dict[str, Any]:
        return {"lookups": self.lookups}


def strawberry_app() -> Starlette:
    schema = strawberry.Schema(
        query=BareQuery, extensions=[lambda: ParserCache(maxsize=1024), lambda: ValidationCache(maxsize=1024)]
    )
    view = BareView(Lookups(), schema=schema, graphql_ide=None)
    return Starlette(routes=[Route("/healthz", healthz), Route("/graphql", view, methods=["POST"])])
