"""Ready-made segments from the marketing literature, as rules over our own features.

- Lifecycle (the customer-lifecycle segmentation of CRM texts): *active* users (an event in the
  last 30 days), *potential* customers (active, never purchased: prospects to convert) and
  *churned* users (the ``churned`` lifecycle stage: nothing for ``churn_days``).
- Value (RFM's monetary tiers): *high*, *normal* and *low* value, by the value tier the last
  build's quantiles give (``server.profiles.tiers``).
- Interest: one segment per top-level topic of the taxonomy that is not sensitive (a score of at
  least ``INTEREST_FLOOR`` on it, its descendants counted).
- Region: one segment per region code asked for (the declared region).

Names are slugs; a template is a starting point that the marketer may change like any segment.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Final

from server.profiles.features import LifecycleStage
from server.profiles.tiers import ValueTier
from server.segments.rules import All, Compare, CompareOp, InterestScore, Rule
from server.taxonomy.taxonomy import Taxonomy

__all__ = ["INTEREST_FLOOR", "Template", "templates"]

INTEREST_FLOOR: Final = 0.5


@dataclass(frozen=True, slots=True)
class Template:
    name: str
    description: str
    rule: Rule
    family: str


def _lifecycle() -> list[Template]:
    active = Compare("events_30d", CompareOp.GE, 1)
    return [
        Template("active-users", "An event in the last 30 days.", active, "lifecycle"),
        Template(
            "potential-customers",
            "Active in the last 30 days and never purchased.",
            All((active, Compare("purchases_lifetime", CompareOp.EQ, 0))),
            "lifecycle",
        ),
        Template(
            "churned-users",
            "In the churned lifecycle stage: no event for the configured churn period.",
            Compare("lifecycle", CompareOp.EQ, LifecycleStage.CHURNED.value),
            "lifecycle",
        ),
    ]


def _value() -> list[Template]:
    return [
        Template(f"{tier.value}-value", f"In the {tier.value} value tier of the last build.", rule, "value")
        for tier in ValueTier
        for rule in [Compare("value_tier", CompareOp.EQ, tier.value)]
    ]


def _interests(taxonomy: Taxonomy) -> list[Template]:
    top = taxonomy.frame.filter(taxonomy.frame["parent"].is_null() & ~taxonomy.frame["sensitive"])
    return [
        Template(
            f"interest-{topic}",
            f"Interested in {name} (score at least {INTEREST_FLOOR}).",
            InterestScore(topic, INTEREST_FLOOR),
            "interest",
        )
        for topic, name in top.select("id", "name").iter_rows()
        if "/" not in topic
    ]


def _regions(regions: Iterable[str]) -> list[Template]:
    return [
        Template(f"region-{code.lower()}", f"Declared region {code}.", Compare("region", CompareOp.EQ, code), "region")
        for code in sorted(set(regions))
    ]


def templates(taxonomy: Taxonomy, *, regions: Iterable[str] = ()) -> list[Template]:
    """Every template, lifecycle first; interest templates follow the taxonomy in force."""
    return [*_lifecycle(), *_value(), *_interests(taxonomy), *_regions(regions)]
