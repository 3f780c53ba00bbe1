"""A question an aggregate answers, named so that the same question always has the same digest.

The digest keys the sticky noise and the ledger of releases: two phrasings of one question (the
same segments in another order, a threshold written 0.50 or 0.5) must be one question, or asking
it again in another form would draw fresh noise for free. Callers therefore put only canonical
values in ``params``: sorted ids, snapped thresholds, enum values.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Any

import orjson

__all__ = ["Question"]


@dataclass(frozen=True, slots=True)
class Question:
    kind: str
    """What is counted: ``segment_size``, ``overlap``, ``distribution``, ``reach``, ``mix``, ``preview``..."""
    params: tuple[tuple[str, Any], ...]

    @classmethod
    def of(cls, kind: str, **params: Any) -> Question:
        return cls(kind, tuple(sorted(params.items())))

    def digest(self) -> bytes:
        return hashlib.sha256(orjson.dumps([self.kind, dict(self.params)], option=orjson.OPT_SORT_KEYS)).digest()
