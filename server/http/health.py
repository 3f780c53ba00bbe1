"""Liveness (the process answers) and readiness (database reachable and writable, migrations at head).

Readiness makes a committed write that changes nothing, so a full disk or a read-only database
reads as not ready, and answers within ``readiness_timeout_seconds`` whatever the database does:
a probe that hangs is as bad as one that lies.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

from sqlalchemy.exc import SQLAlchemyError
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse

from server.auth.principal import SYSTEM_ACTOR
from server.runtime import Runtime
from server.storage import migrate
from server.storage.availability import WaitExpired


async def healthz(_request: Request) -> JSONResponse:
    return JSONResponse({"status": "ok"})


def readiness_endpoint(runtime: Runtime) -> Callable[[Request], Awaitable[JSONResponse]]:
    timeout_s = runtime.settings.readiness_timeout_seconds

    def check() -> tuple[bool, str]:
        try:
            if not migrate.is_at_head(runtime.engine):
                return False, "migrations are not at head; run `audience migrate`"
            with runtime.unit_of_work(SYSTEM_ACTOR) as unit:
                migrate.probe_write(unit.session)
        except (SQLAlchemyError, WaitExpired):
            return False, "database unreachable or not accepting writes"
        return True, "ready"

    async def readyz(_request: Request) -> JSONResponse:
        try:
            ready, detail = await asyncio.wait_for(run_in_threadpool(check), timeout=timeout_s)
        except TimeoutError:
            ready, detail = False, f"database did not answer within {timeout_s:g} s"
        return JSONResponse(
            {"status": "ok" if ready else "unavailable", "detail": detail}, status_code=200 if ready else 503
        )

    return readyz
