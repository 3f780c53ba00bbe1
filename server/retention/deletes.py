"""Set-based deletes and updates, with the rows each touched."""

from __future__ import annotations

from typing import Any

from sqlalchemy import delete
from sqlalchemy.orm import Session

__all__ = ["affected", "remove_rows"]


def remove_rows(session: Session, table: Any, where: Any) -> int:
    """Rows of ``table`` matching ``where``, deleted in one statement; how many."""
    return affected(session.execute(delete(table).where(where)))


def affected(result: Any) -> int:
    """Rows a ``DELETE`` or ``UPDATE`` touched (a ``CursorResult``'s ``rowcount``)."""
    return int(getattr(result, "rowcount", 0) or 0)
