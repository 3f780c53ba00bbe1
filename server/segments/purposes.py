"""Which data a rule uses, and which purposes of a grant allow it.

A segment granted to a partner hands that partner the result of processing personal data, so the
grant's purpose must allow every kind of data the rule reads — its own and, through
``in_segment``, every segment it depends on. Interest scores are profiling in the GDPR's sense
(Art. 4(4): predicting a person's preferences), so a purpose that promises statistics only
(``analytics``) may not carry them; behaviour, declared bands and identity counts may serve any
purpose a person consents to. ``docs/segments.md`` gives the table; IAB TCF v2.2 purposes 3-4
(personalised ads profile and selection) and 5-6 (content) are where interests belong.
"""

from __future__ import annotations

import enum
from collections.abc import Iterable, Mapping
from typing import Final

from privacy.purposes import Purpose
from server.segments.catalogue import FEATURES
from server.segments.rules import (
    Between,
    Compare,
    EventWindow,
    Exists,
    InSegment,
    InterestScore,
    OneOf,
    RandomBucket,
    Rule,
    walk,
)

__all__ = ["ALLOWED", "DataUse", "data_used", "forbidden_uses"]


class DataUse(enum.StrEnum):
    BEHAVIOUR = "behaviour"
    """Counts, recency, revenue, channels, lifecycle, value tier: what a person did."""
    INTERESTS = "interests"
    """Decayed interest scores: a prediction of what a person likes."""
    DECLARED_BANDS = "declared_bands"
    """Age band and region, as the person declared them."""
    IDENTITY = "identity"
    """How many devices and identifiers are linked."""


_DECLARED: Final = frozenset({"age_band", "region"})
_IDENTITY: Final = frozenset({"device_count", "identifier_count"})

ALLOWED: Final[Mapping[Purpose, frozenset[DataUse]]] = {
    Purpose.ANALYTICS: frozenset({DataUse.BEHAVIOUR, DataUse.DECLARED_BANDS, DataUse.IDENTITY}),
    Purpose.PERSONALIZATION: frozenset(DataUse),
    Purpose.ADVERTISING: frozenset(DataUse),
    Purpose.PROFILING: frozenset(DataUse),
}


def _feature_use(name: str) -> DataUse:
    if name in _DECLARED:
        return DataUse.DECLARED_BANDS
    if name in _IDENTITY:
        return DataUse.IDENTITY
    return DataUse.BEHAVIOUR


def data_used(rule: Rule, dependencies: Mapping[str, Rule]) -> frozenset[DataUse]:
    """Every kind of data ``rule`` reads, through the segments it names (``dependencies``: every
    segment's rule by name; the graph is a DAG, checked when segments are saved)."""
    used: set[DataUse] = set()
    seen: set[str] = set()
    pending: list[Rule] = [rule]
    while pending:
        for node in walk(pending.pop()):
            if isinstance(node, Compare | Between | OneOf | Exists) and node.feature in FEATURES:
                used.add(_feature_use(node.feature))
            elif isinstance(node, EventWindow):
                used.add(DataUse.BEHAVIOUR)
            elif isinstance(node, InterestScore):
                used.add(DataUse.INTERESTS)
            elif isinstance(node, InSegment) and node.segment not in seen and node.segment in dependencies:
                seen.add(node.segment)
                pending.append(dependencies[node.segment])
            elif isinstance(node, RandomBucket):
                pass  # drawn from a random id: no data about the person
    return frozenset(used)


def forbidden_uses(purpose: Purpose, uses: Iterable[DataUse]) -> tuple[DataUse, ...]:
    """The uses ``purpose`` does not allow, in a stable order (empty: the grant may go ahead)."""
    return tuple(sorted(set(uses) - ALLOWED[purpose]))
