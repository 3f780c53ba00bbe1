"""Theta sketches of sets of subjects, and the cells of a Venn diagram of two to four of them.

Why sketches: an overlap of segments of a million members each, counted exactly, reads two million
ids and joins them; a compact theta sketch (Apache DataSketches) keeps at most about 2^lg_k hashes
per set, so a union, an intersection or a difference of stored sketches answers in milliseconds,
with an error bar (relative standard error about 1/sqrt(2^lg_k): 1.6 % at lg_k 12).

Threat model. What a sketch holds is the 64-bit hashes (seeded MurmurHash3, a public function)
of the smallest hashed subject ids of the set: *all* of them while the set has fewer than about
2^lg_k members, a sample above that. A subject id is a random number of our own, not an
identifier, but the hash of a given subject id can be computed by anyone holding the id, so a
sketch answers "is subject 123 in this segment" for its retained hashes. It is therefore data
about people, treated like the membership rows it is built from:

- it is never shown: only the figures computed from it leave, and they leave through the
  release pipeline (k floor, noise, budget), like exact counts;
- the stored copy is derived data that must not outlive a change of its set: whoever changes a
  segment's countable members deletes its sketch in the same transaction (erasure included), and
  the next reader rebuilds it from the members as they are then (``server.analytics.sketches``);
- its bounds are about the sketch's sampling only; the noise added at release is on top of them.

What it does not protect against: nothing here hides a member from someone who may read the
stored bytes; that is what the deletion rules and the database's own access control are for.
"""

from __future__ import annotations

import collections
import itertools
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import Final, Protocol, cast

import datasketches  # type: ignore[import-untyped]

__all__ = [
    "BOUND_STDS",
    "DEFAULT_LG_K",
    "MAX_SETS",
    "MIN_SETS",
    "Estimate",
    "Sketch",
    "VennEstimate",
    "build",
    "deserialize",
    "hashes_of",
    "serialize",
    "venn",
]

DEFAULT_LG_K: Final = 12
"""4,096 retained hashes at most: about 1.6 % relative standard error, about 32 KiB a sketch."""
BOUND_STDS: Final = 2
"""Bounds at two standard deviations (about 95 %), as DataSketches computes them."""
MIN_SETS: Final = 2
MAX_SETS: Final = 4
"""Four sets make fifteen cells; more would split the population past any useful k."""


class Sketch(Protocol):
    """What this module uses of DataSketches' ``compact_theta_sketch`` (the package has no stubs)."""

    def get_estimate(self) -> float: ...
    def get_lower_bound(self, num_std_devs: int) -> float: ...
    def get_upper_bound(self, num_std_devs: int) -> float: ...
    def serialize(self) -> bytes: ...
    def __iter__(self) -> Iterator[int]: ...


@dataclass(frozen=True, slots=True)
class Estimate:
    """A count as a sketch estimates it, with its bounds (exact when the sketch is not sampling)."""

    value: float
    low: float
    high: float


@dataclass(frozen=True, slots=True)
class VennEstimate:
    cells: dict[tuple[int, ...], Estimate]
    """For every non-empty subset of the inputs (their positions, ascending): those in all of them
    and in none of the others."""
    union: Estimate


def build(subject_ids: Iterable[int], *, lg_k: int = DEFAULT_LG_K) -> Sketch:
    """A compact sketch of ``subject_ids`` (Python ints: the same id must hash the same everywhere,
    and an int is hashed as a 64-bit integer whatever column type it came from).

    The library takes one item per call; ``deque(map(...), maxlen=0)`` drives the loop in C, so a
    million ids take a few tens of milliseconds."""
    sketch = datasketches.update_theta_sketch(lg_k)
    collections.deque(map(sketch.update, subject_ids), maxlen=0)
    return cast(Sketch, sketch.compact())


def serialize(sketch: Sketch) -> bytes:
    return bytes(sketch.serialize())


def deserialize(data: bytes) -> Sketch:
    return cast(Sketch, datasketches.compact_theta_sketch.deserialize(data))


def hashes_of(sketch: Sketch) -> frozenset[int]:
    """The hashes a sketch retains: what a test compares to prove someone is not in it."""
    return frozenset(sketch)


def _estimate(sketch: Sketch) -> Estimate:
    return Estimate(sketch.get_estimate(), sketch.get_lower_bound(BOUND_STDS), sketch.get_upper_bound(BOUND_STDS))


def _intersection(sketches: Sequence[Sketch]) -> Sketch:
    if len(sketches) == 1:
        return sketches[0]
    intersection = datasketches.theta_intersection()
    for sketch in sketches:
        intersection.update(sketch)
    return cast(Sketch, intersection.get_result())


def _union(sketches: Sequence[Sketch], lg_k: int) -> Sketch:
    union = datasketches.theta_union(lg_k)
    for sketch in sketches:
        union.update(sketch)
    return cast(Sketch, union.get_result())


def venn(sketches: Sequence[Sketch], *, lg_k: int = DEFAULT_LG_K) -> VennEstimate:
    """Every cell of the Venn diagram of ``sketches`` (2 to 4), and their union.

    A cell is ``intersection(S) minus union(others)``: one theta intersection, one union and one A-not-B, so each
    cell's bounds are the library's own for the set expression, not a sum of other cells' errors.
    """
    if not MIN_SETS <= len(sketches) <= MAX_SETS:
        raise ValueError(f"a Venn diagram of {MIN_SETS} to {MAX_SETS} sets")
    positions = range(len(sketches))
    a_not_b = datasketches.theta_a_not_b()
    cells: dict[tuple[int, ...], Estimate] = {}
    for size in range(1, len(sketches) + 1):
        for chosen in itertools.combinations(positions, size):
            inside = _intersection([sketches[i] for i in chosen])
            others = [sketches[i] for i in positions if i not in chosen]
            cell = cast(Sketch, a_not_b.compute(inside, _union(others, lg_k))) if others else inside
            cells[chosen] = _estimate(cell)
    return VennEstimate(cells, _estimate(_union(sketches, lg_k)))
