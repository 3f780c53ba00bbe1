"""What a rule may name: the profile features, their kinds and, for bands, their values.

Derived from ``FEATURE_SCHEMA`` (the one definition of every feature), so a feature added to
profiles is usable in rules the day it exists; only the closed vocabularies of text features are
listed here. ``subject_id`` is not a feature: a rule never names a person.
"""

from __future__ import annotations

import enum
import re
from dataclasses import dataclass
from typing import Final

import polars as pl

from server.frames.vocabulary import CHANNEL_ORDER, EVENT_TYPE_ORDER
from server.profiles.features import FEATURE_SCHEMA, LifecycleStage
from server.profiles.tiers import ValueTier

__all__ = [
    "AGE_BANDS",
    "CHANNELS",
    "EVENT_TYPES",
    "FEATURES",
    "Feature",
    "FeatureKind",
    "value_allowed",
]

AGE_BANDS: Final = ("<18", "18-24", "25-34", "35-44", "45-54", "55-64", "65+")
"""As ingestion bands a declared birth year (``server.ingest.catalogue.age_band``; a test keeps them equal)."""
EVENT_TYPES: Final = EVENT_TYPE_ORDER
CHANNELS: Final = CHANNEL_ORDER
_REGION: Final = re.compile(r"[A-Z]{2}(?:-?[A-Z0-9]{1,3})?")


class FeatureKind(enum.StrEnum):
    INTEGER = "integer"
    NUMBER = "number"
    TEXT = "text"
    FLAG = "flag"


@dataclass(frozen=True, slots=True)
class Feature:
    name: str
    kind: FeatureKind
    values: tuple[str, ...] | None = None
    """The closed vocabulary of a text feature, when it has one (``region`` has a shape instead)."""
    time_dependent: bool = True
    """Whether its value can change with time alone (a window, a recency); a sweep re-evaluates those."""


def _kind(dtype: pl.DataType) -> FeatureKind:
    if dtype == pl.Boolean():
        return FeatureKind.FLAG
    if dtype.is_integer():
        return FeatureKind.INTEGER
    if dtype.is_float():
        return FeatureKind.NUMBER
    return FeatureKind.TEXT


_VOCABULARIES: Final[dict[str, tuple[str, ...]]] = {
    "lifecycle": tuple(stage.value for stage in LifecycleStage),
    "value_tier": tuple(tier.value for tier in ValueTier),
    "age_band": AGE_BANDS,
}
# Declared or counted, never aged: these change only with new data. The value tier is not among
# them: a build's new cut points move people between tiers with no event of theirs, so the sweep
# must re-evaluate the rules that read it.
_STEADY: Final = frozenset({"device_count", "identifier_count", "age_band", "region"})

FEATURES: Final[dict[str, Feature]] = {
    name: Feature(name, _kind(dtype), _VOCABULARIES.get(name), name not in _STEADY)
    for name, dtype in FEATURE_SCHEMA.items()
    if name != "subject_id"
}


def value_allowed(feature: Feature, value: object) -> bool:
    """Whether ``value`` is of the feature's kind (and in its vocabulary); a bool is not a number."""
    match feature.kind:
        case FeatureKind.FLAG:
            return isinstance(value, bool)
        case FeatureKind.INTEGER:
            return isinstance(value, int) and not isinstance(value, bool)
        case FeatureKind.NUMBER:
            return isinstance(value, int | float) and not isinstance(value, bool)
        case FeatureKind.TEXT:
            if not isinstance(value, str):
                return False
            if feature.values is not None:
                return value in feature.values
            if feature.name == "region":
                return _REGION.fullmatch(value) is not None
            return True
