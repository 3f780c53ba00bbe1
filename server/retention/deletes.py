"""One set-based delete, or in a dry run the count of what it would delete: both from one condition."""

from __future__ import annotations

from typing import Any

from sqlalchemy import delete, func, select
from sqlalchemy.orm import Session

__all__ = ["affected", "count_rows", "remove_rows"]


def count_rows(session: Session, table: Any, where: Any) -> int:
    return int(session.scalar(select(func.count()).select_from(table).where(where)) or 0)


def remove_rows(session: Session, table: Any, where: Any, *, dry_run: bool) -> int:
    """Rows of ``table`` matching ``where``: deleted (one statement), or only counted when ``dry_run``."""
    if dry_run:
        return count_rows(session, table, where)
    return affected(session.execute(delete(table).where(where)))


def affected(result: Any) -> int:
    """Rows a ``DELETE`` or ``UPDATE`` touched (a ``CursorResult``'s ``rowcount``)."""
    return int(getattr(result, "rowcount", 0) or 0)
