"""The application factory: the only place that wires ``schema`` to the web server."""

from __future__ import annotations

import asyncio
import hmac
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route, WebSocketRoute

from schema import build_schema
from server.gc_tuning import tune_for_throughput
from server.http.graphql_endpoint import GraphQLEndpoint, build_view
from server.http.health import healthz, readiness_endpoint
from server.http.request_context import RequestContextMiddleware
from server.jobs.request_resumption import resume_interrupted_requests
from server.jobs.segment_worker import SegmentWorker
from server.observability.metrics import Metrics
from server.retention.schedule import ScheduledPurge
from server.runtime import Runtime, build_runtime
from server.settings import Settings, load_settings


def create_app(settings: Settings, *, runtime: Runtime | None = None) -> Starlette:
    """Build the ASGI app; the runtime (engine, keyring) is created here unless a test supplies one."""
    runtime = runtime or build_runtime(settings)
    metrics = Metrics()
    schema = build_schema(settings, metrics=metrics)
    endpoint = GraphQLEndpoint(runtime, build_view(runtime, schema))

    expected = settings.metrics_token.get_secret_value().encode() if settings.metrics_token else None

    async def metrics_endpoint(request: Request) -> Response:
        if expected is not None:
            given = request.headers.get("authorization", "").removeprefix("Bearer ").encode()
            if not hmac.compare_digest(given, expected):
                return Response("authentication required", status_code=401, headers={"www-authenticate": "Bearer"})
        return Response(generate_latest(metrics.registry), media_type=CONTENT_TYPE_LATEST)

    @asynccontextmanager
    async def lifespan(_app: Starlette) -> AsyncIterator[None]:
        await run_in_threadpool(resume_interrupted_requests, runtime)
        interval = settings.retention_interval_seconds
        purges = ScheduledPurge(runtime, interval_s=interval).start() if interval > 0 else None
        segments = SegmentWorker(
            runtime,
            poll_s=settings.segment_poll_seconds,
            sweep_s=settings.segment_sweep_seconds,
            publish_s=settings.bi_publish_seconds,
        ).start()
        yield
        await asyncio.to_thread(segments.stop)  # waits for a unit of work in progress, off the event loop
        if purges is not None:
            await asyncio.to_thread(purges.stop)  # waits for a partition in progress, off the event loop
        runtime.dispose()

    app = Starlette(
        routes=[
            Route("/healthz", healthz, methods=["GET"]),
            Route("/readyz", readiness_endpoint(runtime), methods=["GET"]),
            Route("/metrics", metrics_endpoint, methods=["GET"]),
            Route("/graphql", endpoint, methods=["GET", "POST"]),
            WebSocketRoute("/graphql", endpoint),
        ],
        middleware=[Middleware(RequestContextMiddleware, metrics=metrics, max_body_bytes=settings.max_body_bytes)],
        lifespan=lifespan,
    )
    app.state.runtime = runtime
    app.state.schema = schema
    return app


def create_app_from_environment() -> Starlette:
    """For uvicorn's factory mode, so each worker process builds its own engine and schema."""
    app = create_app(load_settings())
    tune_for_throughput()
    return app
