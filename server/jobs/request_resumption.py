"""At server start, finish the data-subject requests a crash or a kill left ``executing``.

An erasure interrupted halfway committed nothing of its work (it is one transaction), so the
person is still fully there; finishing it is what the request promised. A failure here (the
database away at start) is logged and left for ``audience requests resume`` or the next start:
it must not keep the server from serving.
"""

from __future__ import annotations

import logging

from server.auth.principal import SYSTEM_ACTOR
from server.requests.execution import resume
from server.runtime import Runtime
from server.storage.availability import is_unavailable

logger = logging.getLogger("audience.requests")


def resume_interrupted_requests(runtime: Runtime) -> int:
    """Returns how many were finished; never raises for a database that is away."""
    try:
        finished = resume(runtime, SYSTEM_ACTOR)
    except Exception as error:
        if not is_unavailable(error):
            raise
        logger.warning("interrupted requests not resumed: the database is unavailable; run `audience requests resume`")
        return 0
    if finished:
        logger.info("interrupted requests finished", extra={"requests": len(finished)})
    return len(finished)
