"""Where a node sits in a rule: its path from the root, and where it was written in the text.

A path is the tuple of child indices from the root, in the order ``rules.children`` gives them
(``()`` is the root, ``(1, 0)`` the first part of the root's second part). Validation names a
problem by path; the parser maps paths to text positions, so a problem found in an AST that came
from text can still point at a line and a column.

Everything here walks with an explicit stack: an AST built by hand or read from JSON may be
deeper than Python's recursion limit, and finding that out must not raise ``RecursionError``.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import NamedTuple

from server.segments.rules import MAX_DEPTH, Rule, children

__all__ = ["Locations", "NodePath", "Position", "first_too_deep", "nodes", "with_paths"]

NodePath = tuple[int, ...]


class Position(NamedTuple):
    """1-based, as editors count; a column counts characters, not bytes."""

    line: int
    column: int


Locations = Mapping[NodePath, Position]


def with_paths(rule: Rule) -> Iterator[tuple[NodePath, Rule]]:
    """Every node with its path, parents before children, children in order."""
    stack: list[tuple[NodePath, Rule]] = [((), rule)]
    while stack:
        path, node = stack.pop()
        yield path, node
        stack.extend(((*path, index), child) for index, child in reversed(tuple(enumerate(children(node)))))


def nodes(rule: Rule) -> Iterator[Rule]:
    """Every node, parents before children, without building paths (linear in the tree's size)."""
    stack: list[Rule] = [rule]
    while stack:
        node = stack.pop()
        yield node
        stack.extend(reversed(children(node)))


def first_too_deep(rule: Rule) -> NodePath | None:
    """The path of the first node deeper than ``MAX_DEPTH`` (a leaf alone is depth 1), if any.

    Stops there: a chain a million nodes deep is refused after ``MAX_DEPTH`` steps down it."""
    return next((path for path, _ in with_paths(rule) if len(path) >= MAX_DEPTH), None)
