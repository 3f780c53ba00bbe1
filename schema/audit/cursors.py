"""Opaque cursors of the audit connection: a sequence number, nothing of the search.

A cursor only says where a page starts; the filters are sent again with every page and applied
afresh, so a cursor taken from one search cannot carry another search's entries into it.
"""

from __future__ import annotations

import base64
import binascii
import re

from server.audit.search import AuditSearchError

_PREFIX = "audit:"
_SEQ = re.compile(r"[0-9]{1,18}")


def cursor_of(seq: int) -> str:
    return base64.urlsafe_b64encode(f"{_PREFIX}{seq}".encode()).decode("ascii")


def seq_of(cursor: str | None, *, field: str) -> int | None:
    """The position a cursor names; ``INVALID_CURSOR`` (without the cursor's text) for any other string."""
    if cursor is None:
        return None
    try:
        text = base64.urlsafe_b64decode(cursor.encode("ascii")).decode("ascii")
    except (UnicodeError, binascii.Error, ValueError):
        text = ""
    digits = text[len(_PREFIX) :]
    if not (text.startswith(_PREFIX) and _SEQ.fullmatch(digits) and cursor_of(int(digits)) == cursor):
        raise AuditSearchError("INVALID_CURSOR", f"{field} is not a cursor this connection returned", field=field)
    return int(digits)
