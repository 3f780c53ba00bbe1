"""Whether a query selects a field, looking through fragments: for work that must not happen, or
cost, unless its answer was asked for (a marketer's member counts spend from the key's budget)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from strawberry.types import Info
from strawberry.types.nodes import Selection

__all__ = ["selects"]


def selects(info: Info[Any, Any], *path: str) -> bool:
    """Whether the field being resolved selects ``path`` below it (e.g. ``"segment", "memberCount"``)."""
    return any(_selects(field.selections, path) for field in info.selected_fields)


def _selects(selections: Sequence[Selection], path: Sequence[str]) -> bool:
    if not path:
        return True
    for selection in selections:
        name = getattr(selection, "name", None)
        nested = getattr(selection, "selections", [])
        if type(selection).__name__ == "SelectedField":
            if name == path[0] and _selects(nested, path[1:]):
                return True
        elif _selects(nested, path):  # a fragment spread or an inline fragment: same level
            return True
    return False
