"""Liveness (the process answers) and readiness (database reachable, migrations at head)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from sqlalchemy import text
from sqlalchemy.exc import SQLAlchemyError
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse

from server.runtime import Runtime
from server.storage import migrate


async def healthz(_request: Request) -> JSONResponse:
    return JSONResponse({"status": "ok"})


def readiness_endpoint(runtime: Runtime) -> Callable[[Request], Awaitable[JSONResponse]]:
    def check() -> tuple[bool, str]:
        try:
            with runtime.engine.connect() as connection:
                connection.execute(text("SELECT 1"))
            if not migrate.is_at_head(runtime.engine):
                return False, "migrations are not at head; run `audience migrate`"
        except SQLAlchemyError:
            return False, "database unreachable"
        return True, "ready"

    async def readyz(_request: Request) -> JSONResponse:
        ready, detail = await run_in_threadpool(check)
        return JSONResponse(
            {"status": "ok" if ready else "unavailable", "detail": detail}, status_code=200 if ready else 503
        )

    return readyz
