"""What the analytics probes ask over HTTP: every aggregate as a document, a segment made and evaluated,
and the released figures of an answer in a form an attacker computes with."""

from __future__ import annotations

import itertools
import secrets
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Any, Final

from privacy.keyring import load_keyring_file
from server.auth.principal import Role
from server.runtime import Runtime, build_runtime
from tests.partners.visitors import Person, send
from tests.segments.marketing import Cohort, K, call, created, eventually, page_view, unique
from tests.support.live_server import LiveServer

FIGURE: Final = "value suppressed low high"
AGGREGATE: Final = (
    f"aggregate {{ method noiseScale releasesLeft total {{ {FIGURE} }} cells {{ key count {{ {FIGURE} }} }} }} "
    "errors { field code message }"
)
SIZE: Final = f"query($s: String!, $x: Boolean! = false) {{ a: segmentSize(segment: $s, exact: $x) {{ {AGGREGATE} }} }}"
TREND: Final = (
    "query($s: String!, $days: Int!, $x: Boolean! = false) "
    f"{{ a: segmentSizeTrend(segment: $s, days: $days, exact: $x) {{ {AGGREGATE} }} }}"
)
OVERLAP: Final = (
    "query($ss: [String!]!, $m: OverlapMethod!, $x: Boolean! = false) "
    f"{{ a: segmentOverlap(segments: $ss, method: $m, exact: $x) {{ {AGGREGATE} }} }}"
)
DISTRIBUTION: Final = (
    "query($f: String!, $s: String, $x: Boolean! = false) "
    f"{{ a: featureDistribution(feature: $f, segment: $s, exact: $x) {{ {AGGREGATE} }} }}"
)
REACH: Final = (
    "query($t: [String!]!, $min: Float!, $s: String, $x: Boolean! = false) "
    f"{{ a: interestReach(topics: $t, minScore: $min, segment: $s, exact: $x) {{ {AGGREGATE} }} }}"
)
MIX: Final = (
    "query($d: MixDimension!, $by: MixBy!, $s: String, $x: Boolean! = false) "
    f"{{ a: profileMix(dimension: $d, by: $by, segment: $s, exact: $x) {{ {AGGREGATE} }} }}"
)
MEMBER_COUNT: Final = "query($n: String!) { segment(name: $n) { memberCount { value suppressed noiseScale } } }"
ATTRIBUTES: Final = """
mutation($batch: AttributeBatchInput!) { upsertAttributes(batch: $batch) { accepted rejected { index code } } }"""
NOBODY: Final = 'events("page_view") >= 1 within 7 days and events("page_view") = 0 within 7 days'
"""A rule no one can match: a segment of nobody, without spending a day of ``fresh_day``."""
MIX_DIMENSIONS: Final = ("LIFECYCLE", "VALUE_TIER")
MIX_BY: Final = ("REGION", "AGE_BAND")


_far_days = itertools.count(150)


def far_day() -> date:
    """A day long past (150 days and more, inside the 400-day retention) of its own. The probes use
    these rather than ``tests.segments.marketing.fresh_day``: each of those is further in the past
    than the last, and other tests on the shared server need their cohorts recent enough for
    their interest scores; the probes, which ask for many days, would push them back."""
    return datetime.now(UTC).date() - timedelta(days=next(_far_days))


def far_cohort(server: LiveServer, size: int, *, topics: list[str] | None = None) -> Cohort:
    """``tests.segments.marketing.cohort`` on a ``far_day``."""
    day = far_day()
    people = [Person(f"c.{secrets.token_hex(6)}@example.org") for _ in range(size)]
    send(server, server.issue_key(Role.ADMIN), [page_view(person.email, day, topics=topics) for person in people])
    return Cohort(day, people)


def ask(server: LiveServer, token: str, document: str, **variables: Any) -> dict[str, Any]:
    """The payload (``{aggregate errors}``) of one aggregate question."""
    return dict(call(server, token, document, **variables)["a"])


def released(server: LiveServer, token: str, document: str, **variables: Any) -> dict[str, Any]:
    """The aggregate of an answer that must not be refused."""
    payload = ask(server, token, document, **variables)
    assert payload["errors"] == [], payload
    return dict(payload["aggregate"])


def cells(aggregate: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {cell["key"]: cell["count"] for cell in aggregate["cells"]}


def figures(aggregate: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """Every figure of an answer by name, the total as ``__total__``."""
    return {"__total__": aggregate["total"], **cells(aggregate)}


def pattern(aggregate: dict[str, Any]) -> dict[str, str | None]:
    """Which figures are hidden and why: decided on the true values, with no noise to blur it."""
    return {name: figure["suppressed"] for name, figure in figures(aggregate).items()}


def midpoint(figure: dict[str, Any]) -> float:
    """What the bounds of an estimate centre on."""
    return (float(figure["low"]) + float(figure["high"])) / 2


def segment(server: LiveServer, rule_text: str, prefix: str = "probe") -> str:
    """A saved segment of ``rule_text``, once the worker has evaluated it."""
    marketer = server.issue_key(Role.MARKETER)
    name = unique(prefix)
    created(server, marketer, name, ruleText=rule_text)
    query = "query($name: String!) { segment(name: $name) { health { status } } }"
    status = eventually(
        lambda: call(server, marketer, query, name=name)["segment"]["health"]["status"],
        lambda status: status == "ready",
    )
    assert status == "ready", status
    return name


def declare(server: LiveServer, records: list[dict[str, Any]]) -> None:
    """Attributes (region, birth year) of people already known, as an admin's batch."""
    body = call(server, server.issue_key(Role.ADMIN), ATTRIBUTES, batch={"records": records})
    assert body["upsertAttributes"]["rejected"] == [], body
    assert body["upsertAttributes"]["accepted"] == len(records), body


@dataclass(frozen=True, slots=True)
class Questions:
    """Every aggregate an analyst may ask about one segment, as (label, document, variables)."""

    segment: str
    other: str
    """A second segment, for overlaps."""
    topics: tuple[str, ...]

    def all(self, *, trend_days: tuple[int, ...] = (1, 7)) -> list[tuple[str, str, dict[str, Any]]]:
        from server.segments.catalogue import FEATURES

        s = self.segment
        asked: list[tuple[str, str, dict[str, Any]]] = [("size", SIZE, {"s": s})]
        asked += [(f"trend {days}", TREND, {"s": s, "days": days}) for days in trend_days]
        asked += [
            (f"overlap {method}", OVERLAP, {"ss": [s, self.other], "m": method}) for method in ("EXACT", "ESTIMATE")
        ]
        asked += [(f"distribution {feature}", DISTRIBUTION, {"f": feature, "s": s}) for feature in sorted(FEATURES)]
        asked += [("reach", REACH, {"t": list(self.topics), "min": 0.05, "s": s})]
        asked += [
            (f"mix {dimension} {by}", MIX, {"d": dimension, "by": by, "s": s})
            for dimension in MIX_DIMENSIONS
            for by in MIX_BY
        ]
        return asked


@contextmanager
def publisher(server: LiveServer) -> Iterator[Runtime]:
    """A runtime over the server's database with the server's own settings (k = 10), as
    ``audience bi publish`` builds one (``LiveServer.runtime`` keeps the default k)."""
    settings = server.runtime.settings.model_copy(update={"anonymity_threshold": K})
    runtime = build_runtime(settings, keyring=load_keyring_file(settings.data_dir / "keyring.json"))
    try:
        yield runtime
    finally:
        runtime.dispose()
