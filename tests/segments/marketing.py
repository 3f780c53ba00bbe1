"""What the marketer and end-to-end tests do over HTTP: define, preview and grant segments with a
marketer key, and build cohorts of real people through ingestion.

Every test on the shared server builds its own cohort: people whose page views all fall on one
day of their own (``Cohort.day``), so ``events("page_view") >= 1 from D to D`` selects exactly
them however many people other tests added.
"""

from __future__ import annotations

import itertools
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from datetime import time as clock_time
from typing import Any, Final, TypeVar

from server.auth.principal import Role
from tests.partners.visitors import EVERY_PURPOSE, RUNNING, Person, send
from tests.support.live_server import LiveServer

K: Final = 10
"""The anonymity floor the marketing server runs with (the lowest the settings allow)."""
SHOWN: Final = K + 60
"""A population noise all but never hides: a noisy count shows from k plus 3 noise scales (25 at
scale 5); 70 is 9 scales above that, hidden about once in 16,000 questions."""
DEADLINE_S: Final = 60.0
"""A bound for a hang, not a measure of speed: the segment worker may be busy with a publish or a
sweep, on a machine the whole suite loads; ``eventually`` returns as soon as the probe holds."""

SEGMENT_FIELDS = """
  name ruleText version dependsOn timeDependent template
  memberCount { value suppressed noiseScale }
  health { status stale lastErrorCode lastEvaluatedAt }
"""
PROBLEMS = "problems { code message line column path field }"
CREATE = f"""
mutation($name: String!, $ruleText: String, $rule: RuleInput) {{
  createSegment(name: $name, ruleText: $ruleText, rule: $rule) {{
    segment {{ {SEGMENT_FIELDS} }} errors {{ field code message }} {PROBLEMS}
  }}
}}"""
UPDATE = f"""
mutation($name: String!, $ruleText: String, $rule: RuleInput) {{
  updateSegment(name: $name, ruleText: $ruleText, rule: $rule) {{
    segment {{ {SEGMENT_FIELDS} }} errors {{ field code message }} {PROBLEMS}
  }}
}}"""
DELETE = "mutation($name: String!) { deleteSegment(name: $name) { deleted errors { code message } } }"
PREVIEW = f"""
mutation($ruleText: String, $rule: RuleInput) {{
  previewSegment(ruleText: $ruleText, rule: $rule) {{
    preview {{
      size {{ value suppressed noiseScale }}
      breakdowns {{ feature cells {{ value count {{ value suppressed noiseScale }} }} }}
      asOf
    }}
    errors {{ code message }} {PROBLEMS}
  }}
}}"""
GRANT = """
mutation($segment: String!, $partner: String!, $purpose: Purpose!) {
  grantSegment(segment: $segment, partner: $partner, purpose: $purpose) {
    grant { id segment partner purpose revokedAt } errors { code message }
  }
}"""
REVOKE = "mutation($id: Int!) { revokeGrant(id: $id) { grant { id revokedAt } errors { code message } } }"
SEGMENT = f"query($name: String!) {{ segment(name: $name) {{ {SEGMENT_FIELDS} }} }}"
GRANTED = "{ grantedSegments { name purpose } }"

_days = itertools.count(3)
T = TypeVar("T")


def unique(prefix: str) -> str:
    return f"{prefix}-{secrets.token_hex(4)}"


@dataclass
class Cohort:
    """People who each viewed a page once on ``day`` (and never on another), consenting to every purpose."""

    day: date
    people: list[Person]

    @property
    def rule_text(self) -> str:
        return f'events("page_view") >= 1 from {self.day.isoformat()} to {self.day.isoformat()}'

    def rule_input(self) -> dict[str, Any]:
        day = self.day.isoformat()
        return {"events": {"type": "page_view", "atLeast": 1, "window": {"dates": {"from": day, "to": day}}}}


def page_view(email: str, day: date, *, topics: list[str] | None = None, **fields: Any) -> dict[str, Any]:
    record: dict[str, Any] = {
        "messageId": f"m-{secrets.token_hex(8)}",
        "type": "page_view",
        "channel": "web",
        "timestamp": datetime.combine(day, clock_time(12), tzinfo=UTC).isoformat(),
        "properties": {"topics": topics if topics is not None else [RUNNING]},
        "context": {"traits": {"email": email}, "consent": {"purposes": EVERY_PURPOSE}},
    }
    record.update(fields)
    return record


def fresh_day() -> date:
    """A past day no other cohort of this run uses."""
    return datetime.now(UTC).date() - timedelta(days=next(_days))


def cohort(server: LiveServer, size: int, *, topics: list[str] | None = None) -> Cohort:
    """``size`` new people on a day of their own, sent in one batch by an admin."""
    day = fresh_day()
    people = [Person(f"c.{secrets.token_hex(6)}@example.org") for _ in range(size)]
    send(server, server.issue_key(Role.ADMIN), [page_view(person.email, day, topics=topics) for person in people])
    return Cohort(day, people)


def call(server: LiveServer, token: str, document: str, **variables: Any) -> dict[str, Any]:
    """The ``data`` of a GraphQL answer that has no top-level errors."""
    body = server.graphql(document, token=token, variables=variables).json()
    assert "errors" not in body, body
    return dict(body["data"])


def create(server: LiveServer, token: str, name: str, **rule: Any) -> dict[str, Any]:
    return dict(call(server, token, CREATE, name=name, **rule)["createSegment"])


def created(server: LiveServer, token: str, name: str, **rule: Any) -> dict[str, Any]:
    payload = create(server, token, name, **rule)
    assert (payload["errors"], payload["problems"]) == ([], []), payload
    return dict(payload["segment"])


def grant(server: LiveServer, token: str, segment: str, partner: str, purpose: str) -> dict[str, Any]:
    return dict(call(server, token, GRANT, segment=segment, partner=partner, purpose=purpose)["grantSegment"])


def granted_id(server: LiveServer, token: str, segment: str, partner: str, purpose: str) -> int:
    payload = grant(server, token, segment, partner, purpose)
    assert payload["errors"] == [], payload
    return int(payload["grant"]["id"])


def partner_name(server: LiveServer, partner_id: int) -> str:
    from sqlalchemy import select

    from server.storage.tables import PartnerRow

    with server.runtime.sessions() as session:
        name = session.scalar(select(PartnerRow.name).where(PartnerRow.id == partner_id))
    assert name is not None
    return name


EXACT_SIZE = (
    "query($s: String!) { segmentSize(segment: $s, exact: true) { aggregate { total { value } } errors { code } } }"
)


def exact_size(server: LiveServer, segment: str) -> int | None:
    """The segment's countable members as an admin's exact answer (k floor, no noise)."""
    payload = call(server, server.issue_key(Role.ADMIN), EXACT_SIZE, s=segment)["segmentSize"]
    assert payload["errors"] == [], payload
    value = payload["aggregate"]["total"]["value"]
    return None if value is None else int(value)


def noisy(count: dict[str, Any]) -> bool:
    """A count shown with noise, at or above the floor: what a marketer sees for a shown value."""
    return count["suppressed"] is None and count["value"] >= K and count["noiseScale"] > 0


def eventually(probe: Callable[[], T], until: Callable[[T], bool], *, deadline_s: float = DEADLINE_S) -> T:
    """Probe until ``until`` holds or a generous deadline passes; the last value either way."""
    stop = time.monotonic() + deadline_s
    while True:
        value = probe()
        if until(value) or time.monotonic() > stop:
            return value
        time.sleep(0.1)
