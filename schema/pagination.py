"""Relay's ``PageInfo``, shared by every connection.

Strawberry's own relay types declare their fields without a permission, so the schema guard
refuses them; this one is readable by any role because the connection field that returns it
carries the permission that matters.
"""

from __future__ import annotations

import strawberry

from schema.permissions import any_role


@strawberry.type(description="Where a page sits in its connection (Relay cursor connections).")
class PageInfo:
    has_next_page: bool = strawberry.field(extensions=any_role())
    has_previous_page: bool = strawberry.field(extensions=any_role())
    start_cursor: str | None = strawberry.field(extensions=any_role())
    end_cursor: str | None = strawberry.field(extensions=any_role())


EMPTY_PAGE = PageInfo(has_next_page=False, has_previous_page=False, start_cursor=None, end_cursor=None)
