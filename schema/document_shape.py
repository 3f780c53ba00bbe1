"""The depth, aliases, root fields and repeated fields of a document, in time linear in its text.

A fragment can spread another one twice, so a document of a few hundred bytes can stand for
2**30 selections; a check that inlines fragments walks all of them (Strawberry's depth and alias
limiters did: 20 levels took over 5 s on the event loop). Here each fragment is measured once,
after the fragments it spreads, and a spread adds the measure of its fragment: the numbers are
those of the inlined document, the work is that of the written one. A spread of an unknown
fragment, or one that closes a cycle (graphql-core refuses both anyway), counts as empty.

Repeats are the most times one response name is selected at one level, inline fragments
flattened into it as graphql-core's overlap rule does (which compares every pair of them), in
any definition, used or not: that rule checks every selection set of the document.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass

from graphql import (
    DocumentNode,
    FieldNode,
    FragmentDefinitionNode,
    FragmentSpreadNode,
    InlineFragmentNode,
    OperationDefinitionNode,
    SelectionSetNode,
)

__all__ = ["DocumentShape", "OperationShape", "measure_document"]


@dataclass(frozen=True)
class Measure:
    """What one selection set (or fragment) contributes once inlined."""

    depth: int = 0  # nested fields with selections below it, introspection fields not counted
    aliases: int = 0
    root_fields: int = 0  # fields at its own level, inline fragments and spreads flattened
    repeats: int = 0  # at any one level in it, spreads not flattened

    def __add__(self, other: Measure) -> Measure:
        return Measure(
            depth=max(self.depth, other.depth),
            aliases=self.aliases + other.aliases,
            root_fields=self.root_fields + other.root_fields,
            repeats=max(self.repeats, other.repeats),
        )


EMPTY = Measure()


@dataclass(frozen=True)
class OperationShape:
    node: OperationDefinitionNode
    depth: int
    root_fields: int


@dataclass(frozen=True)
class DocumentShape:
    operations: tuple[OperationShape, ...]
    aliases: int  # over every operation, as Strawberry's alias limiter counted them
    repeats: int  # over every definition


def measure_document(document: DocumentNode) -> DocumentShape:
    fragments = {d.name.value: d for d in document.definitions if isinstance(d, FragmentDefinitionNode)}
    measured: dict[str, Measure] = {}
    for name in _dependencies_first(fragments):
        measured[name] = _measure(fragments[name].selection_set, measured)
    operations = tuple(
        (definition, _measure(definition.selection_set, measured))
        for definition in document.definitions
        if isinstance(definition, OperationDefinitionNode)
    )
    return DocumentShape(
        operations=tuple(OperationShape(node, m.depth, m.root_fields) for node, m in operations),
        aliases=sum(m.aliases for _, m in operations),
        repeats=max((m.repeats for m in [*measured.values(), *(m for _, m in operations)]), default=0),
    )


def _measure(selection_set: SelectionSetNode, measured: dict[str, Measure]) -> Measure:
    """One level, reading spread fragments from ``measured`` (missing ones count as empty)."""
    names: Counter[str] = Counter()
    level = _measure_level(selection_set, measured, names)
    return level + Measure(repeats=max(names.values(), default=0))


def _measure_level(selection_set: SelectionSetNode, measured: dict[str, Measure], names: Counter[str]) -> Measure:
    total = EMPTY
    for selection in selection_set.selections:
        if isinstance(selection, FieldNode):
            names[(selection.alias or selection.name).value] += 1
            below = EMPTY
            if selection.selection_set is not None:
                inner = _measure(selection.selection_set, measured)
                introspection = selection.name.value.startswith("__")
                below = Measure(
                    depth=0 if introspection else 1 + inner.depth, aliases=inner.aliases, repeats=inner.repeats
                )
            counted = 0 if selection.name.value == "__typename" else 1
            total += below + Measure(aliases=1 if selection.alias else 0, root_fields=counted)
        elif isinstance(selection, InlineFragmentNode):
            total += _measure_level(selection.selection_set, measured, names)
        elif isinstance(selection, FragmentSpreadNode):
            total += measured.get(selection.name.value, EMPTY)
    return total


def _dependencies_first(fragments: dict[str, FragmentDefinitionNode]) -> list[str]:
    """Fragment names, each after every fragment it spreads; without recursion, cycles cut."""
    spreads = {name: _spread_names(fragment.selection_set) for name, fragment in fragments.items()}
    order: list[str] = []
    state: dict[str, bool] = {}  # False: on the current path, True: placed in ``order``
    for root in fragments:
        if root in state:
            continue
        state[root] = False
        stack = [(root, iter(spreads[root]))]
        while stack:
            name, pending = stack[-1]
            child = next((s for s in pending if s in spreads and s not in state), None)
            if child is None:
                stack.pop()
                state[name] = True
                order.append(name)
            else:
                state[child] = False
                stack.append((child, iter(spreads[child])))
    return order


def _spread_names(selection_set: SelectionSetNode) -> list[str]:
    names: list[str] = []
    pending = [selection_set]
    while pending:
        for selection in pending.pop().selections:
            if isinstance(selection, FragmentSpreadNode):
                names.append(selection.name.value)
            elif isinstance(selection, FieldNode | InlineFragmentNode) and selection.selection_set is not None:
                pending.append(selection.selection_set)
    return names
