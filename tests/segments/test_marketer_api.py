"""The marketer's segments over HTTP with real keys: define (text or structured), refused with every
problem and where it is, evaluated at once, previewed with k-suppressed counts, granted for a
purpose the data allows, revoked, deleted when nothing depends on it."""

from __future__ import annotations

from typing import Any

from privacy.purposes import Purpose
from server.auth.principal import Role
from server.profiles.features import LifecycleStage
from tests.partners.visitors import PartnerApp, all_members, changes_page, partner_app, sent_by, subject_of
from tests.segments.marketing import (
    DELETE,
    GRANTED,
    PREVIEW,
    REVOKE,
    SHOWN,
    UPDATE,
    K,
    call,
    cohort,
    create,
    created,
    exact_size,
    grant,
    granted_id,
    noisy,
    partner_name,
    unique,
)
from tests.support.live_server import LiveServer

LIFECYCLE_STAGES = [stage.value for stage in LifecycleStage]


def _problems(payload: dict[str, Any]) -> list[tuple[Any, ...]]:
    return [(p["code"], p["line"], p["column"], p["field"]) for p in payload["problems"]]


def test_a_segment_from_text_or_input_is_evaluated_at_once_and_small_counts_are_hidden(
    marketing_server: LiveServer,
) -> None:
    marketer = marketing_server.issue_key(Role.MARKETER)
    shown, small = cohort(marketing_server, SHOWN), cohort(marketing_server, K - 3)

    by_text = created(marketing_server, marketer, unique("shown"), ruleText=shown.rule_text)
    by_input = created(marketing_server, marketer, unique("small"), rule=small.rule_input())

    assert by_text["health"]["status"] == "ready"
    assert by_text["health"]["stale"] is False
    assert noisy(by_text["memberCount"]), by_text
    assert exact_size(marketing_server, by_text["name"]) == SHOWN
    assert by_input["health"]["status"] == "ready"
    assert by_input["memberCount"] == {"value": None, "suppressed": "below_k", "noiseScale": None}
    assert by_input["ruleText"] == small.rule_text, "the structured rule is stored as its canonical text"


def test_a_bad_rule_is_refused_with_each_problem_where_it_was_written(marketing_server: LiveServer) -> None:
    marketer = marketing_server.issue_key(Role.MARKETER)

    unparsable = create(marketing_server, marketer, unique("bad"), ruleText="purchases_90d >=\n  and")
    assert [e["code"] for e in unparsable["errors"]] == ["INVALID_RULE"]
    assert unparsable["segment"] is None
    assert [(p["code"], p["line"]) for p in unparsable["problems"]] == [("SYNTAX", 2)]

    text = 'purchases_90d >= 1 and\n  shoe_size > 3 and interest("no-such-topic") >= 0.5'
    refused = create(marketing_server, marketer, unique("bad"), ruleText=text)
    assert [e["code"] for e in refused["errors"]] == ["INVALID_RULE"]
    assert _problems(refused) == [("UNKNOWN_FEATURE", 2, 3, None), ("UNKNOWN_TOPIC", 2, 21, None)]

    structured = {
        "and": [
            {"compare": {"feature": "purchases_90d", "op": "GE", "value": {"text": "two"}}},
            {"interest": {"topic": "healthy-living/weight-loss", "minimum": 0.5}},
        ]
    }
    refused = create(marketing_server, marketer, unique("bad"), rule=structured)
    assert _problems(refused) == [
        ("WRONG_TYPE", None, None, "rule.and.0.compare"),
        ("SENSITIVE_TOPIC", None, None, "rule.and.1.interest"),
    ]
    assert "weight" not in str(refused["problems"][0]["message"])

    both = create(marketing_server, marketer, unique("bad"), ruleText="purchases_90d >= 1", rule=structured)
    assert [e["code"] for e in both["errors"]] == ["ONE_RULE"]


def test_names_are_unique_and_well_formed_and_in_segment_stays_a_dag(marketing_server: LiveServer) -> None:
    marketer = marketing_server.issue_key(Role.MARKETER)
    a, b = unique("a"), unique("b")
    created(marketing_server, marketer, a, ruleText="purchases_90d >= 1")
    created(marketing_server, marketer, b, ruleText=f'in_segment("{a}") and events_30d >= 1')

    duplicate = create(marketing_server, marketer, a, ruleText="purchases_90d >= 2")
    assert [e["code"] for e in duplicate["errors"]] == ["DUPLICATE_NAME"]
    for name in ("A", "x", "has space", "é-accent", "a" * 65):
        assert [e["code"] for e in create(marketing_server, marketer, name, ruleText="events_30d >= 1")["errors"]] == [
            "INVALID_NAME"
        ], name
    unknown = create(marketing_server, marketer, unique("c"), ruleText='in_segment("never-made")')
    assert [p["code"] for p in unknown["problems"]] == ["UNKNOWN_SEGMENT"]

    cycle = call(marketing_server, marketer, UPDATE, name=a, ruleText=f'not in_segment("{b}")')["updateSegment"]
    assert [e["code"] for e in cycle["errors"]] == ["INVALID_RULE"]
    assert [(p["code"], p["line"], p["column"]) for p in cycle["problems"]] == [("CYCLE", 1, 5)]
    assert f"{a} -> {b} -> {a}" in cycle["problems"][0]["message"]

    changed = call(marketing_server, marketer, UPDATE, name=a, ruleText="purchases_90d >= 3")["updateSegment"]
    assert changed["errors"] == []
    assert changed["segment"]["version"] == 2
    assert changed["segment"]["health"]["status"] == "ready"


ATTRIBUTES = """
mutation($batch: AttributeBatchInput!) { upsertAttributes(batch: $batch) { accepted rejected { code } } }"""


def _declare_regions(server: LiveServer, regions: dict[str, str]) -> None:
    records = [{"email": email, "region": region} for email, region in regions.items()]
    answer = call(server, server.issue_key(Role.ADMIN), ATTRIBUTES, batch={"records": records})["upsertAttributes"]
    assert answer == {"accepted": len(records), "rejected": []}


def _cells(preview: dict[str, Any], feature: str) -> dict[str, tuple[int | None, str | None]]:
    [breakdown] = [b for b in preview["breakdowns"] if b["feature"] == feature]
    return {c["value"]: (c["count"]["value"], c["count"]["suppressed"]) for c in breakdown["cells"]}


def test_a_preview_counts_but_never_reveals_a_small_group(marketing_server: LiveServer) -> None:
    marketer = marketing_server.issue_key(Role.MARKETER)
    group = cohort(marketing_server, 193)
    regions = ["FR"] * 120 + ["DE"] * 3  # FR far past the noisy threshold (25); 70 declare none
    _declare_regions(marketing_server, {p.email: r for p, r in zip(group.people, regions, strict=False)})

    answer = call(marketing_server, marketer, PREVIEW, ruleText=group.rule_text)["previewSegment"]
    assert answer["errors"] == []
    preview = answer["preview"]
    assert noisy(preview["size"]), preview
    assert {b["feature"] for b in preview["breakdowns"]} == {"lifecycle", "value_tier", "age_band", "region"}
    # DE (3) is below k: its name is never shown, its people are in "other". "(none)" (70), the
    # smallest shown cell, goes with the hidden ones, or the size minus FR would tell how few they
    # hold; decided on noisy values, it stays shown only when the noisy size minus the shown cells
    # leaves at least the threshold (k + 15) hidden, about one time in 25, which is then untrue.
    by_region = _cells(preview, "region")
    regions_shown = {value: suppressed for value, (_, suppressed) in by_region.items()}
    nobody_declared = regions_shown.pop("(none)")
    assert regions_shown == {"FR": None, "other": "below_k"}
    assert nobody_declared == "below_k" or (
        preview["size"]["value"] - (by_region["FR"][0] or 0) - (by_region["(none)"][0] or 0) >= K + 15
    ), preview
    stages = [c["value"] for b in preview["breakdowns"] if b["feature"] == "lifecycle" for c in b["cells"]]
    assert stages == [*LIFECYCLE_STAGES, "(none)"], "every stage is a cell, whoever is in it"
    for breakdown in preview["breakdowns"]:
        assert all(noisy(c["count"]) for c in breakdown["cells"] if c["count"]["value"] is not None), breakdown
    assert "@" not in str(preview), "counts only, never a member"

    small = cohort(marketing_server, 3)
    tiny = call(marketing_server, marketer, PREVIEW, rule=small.rule_input())["previewSegment"]["preview"]
    assert tiny["size"] == {"value": None, "suppressed": "below_k", "noiseScale": None}
    assert all(c["count"]["value"] is None for b in tiny["breakdowns"] for c in b["cells"])

    refused = call(marketing_server, marketer, PREVIEW, ruleText="shoe_size > 3")["previewSegment"]
    assert refused["preview"] is None
    assert [e["code"] for e in refused["errors"]] == ["INVALID_RULE"]
    assert [(p["code"], p["line"], p["column"]) for p in refused["problems"]] == [("UNKNOWN_FEATURE", 1, 1)]


def _partner(server: LiveServer, *purposes: Purpose) -> tuple[PartnerApp, str]:
    app = partner_app(server, *purposes)
    return app, partner_name(server, app.id)


def test_a_grant_needs_a_declared_purpose_that_allows_the_data(marketing_server: LiveServer) -> None:
    marketer = marketing_server.issue_key(Role.MARKETER)
    _, analytics_only = _partner(marketing_server, Purpose.ANALYTICS)
    _, advertiser = _partner(marketing_server, Purpose.ADVERTISING, Purpose.ANALYTICS)
    interested = created(marketing_server, marketer, unique("runners"), ruleText='interest("sports") >= 0.2')["name"]
    through = created(marketing_server, marketer, unique("via"), ruleText=f'in_segment("{interested}")')["name"]
    behaviour = created(marketing_server, marketer, unique("buyers"), ruleText="purchases_90d >= 1")["name"]

    def codes(segment: str, partner: str, purpose: str) -> list[str]:
        return [e["code"] for e in grant(marketing_server, marketer, segment, partner, purpose)["errors"]]

    assert codes(behaviour, analytics_only, "ADVERTISING") == ["PURPOSE_NOT_DECLARED"]
    assert codes(interested, advertiser, "ANALYTICS") == ["PURPOSE_FORBIDS_DATA"]
    assert codes(through, advertiser, "ANALYTICS") == ["PURPOSE_FORBIDS_DATA"]
    assert codes(behaviour, advertiser, "ANALYTICS") == []
    assert codes(behaviour, advertiser, "ANALYTICS") == ["ALREADY_GRANTED"]
    assert codes(interested, advertiser, "ADVERTISING") == []
    assert codes("no-such-segment", advertiser, "ADVERTISING") == ["NOT_FOUND"]
    assert codes(behaviour, "no-such-partner", "ADVERTISING") == ["UNKNOWN_PARTNER"]


def test_a_grant_opens_members_and_changes_and_a_revocation_closes_them_at_once(marketing_server: LiveServer) -> None:
    marketer = marketing_server.issue_key(Role.MARKETER)
    partner, name = _partner(marketing_server, Purpose.PERSONALIZATION)
    group = cohort(marketing_server, K + 1)
    for person in group.people[:4]:  # the partner sent these itself: their statement shares with it
        sent_by(marketing_server, partner, person)
    subjects = [subject_of(marketing_server, partner, person) for person in group.people[:4]]
    segment = created(marketing_server, marketer, unique("day"), ruleText=group.rule_text)["name"]

    grant_id = granted_id(marketing_server, marketer, segment, name, "PERSONALIZATION")

    codec = marketing_server.runtime.kit.partner_pseudonyms
    expected = sorted(codec.encode(partner.id, subject) for subject in subjects)
    assert call(marketing_server, partner.token, GRANTED)["grantedSegments"] == [
        {"name": segment, "purpose": "PERSONALIZATION"}
    ]
    assert sorted(all_members(marketing_server, partner.token, segment, first=3)) == expected
    feed = changes_page(marketing_server, partner.token)
    assert sorted(e["node"]["pseudonym"] for e in feed["edges"]) == expected
    assert {(e["node"]["kind"], e["node"]["segment"]) for e in feed["edges"]} == {("ENTER", segment)}

    revoked = call(marketing_server, marketer, REVOKE, id=grant_id)["revokeGrant"]
    assert revoked["errors"] == []
    assert revoked["grant"]["revokedAt"] is not None
    assert call(marketing_server, partner.token, GRANTED)["grantedSegments"] == []
    members = marketing_server.graphql(
        "query($s: String!) { segmentMembers(segment: $s) { edges { node } errors { code } } }",
        token=partner.token,
        variables={"s": segment},
    ).json()["data"]["segmentMembers"]
    assert members == {"edges": [], "errors": [{"code": "SEGMENT_NOT_FOUND"}]}
    assert changes_page(marketing_server, partner.token)["edges"] == []
    again = call(marketing_server, marketer, REVOKE, id=grant_id)["revokeGrant"]
    assert [e["code"] for e in again["errors"]] == ["NOT_FOUND"]


def test_a_segment_is_deleted_only_when_nothing_depends_on_it_and_no_grant_is_active(
    marketing_server: LiveServer,
) -> None:
    marketer = marketing_server.issue_key(Role.MARKETER)
    _, name = _partner(marketing_server, Purpose.ADVERTISING)
    base = created(marketing_server, marketer, unique("base"), ruleText="purchases_90d >= 1")["name"]
    readers = sorted(
        created(marketing_server, marketer, unique(f"reader{i}"), ruleText=f'in_segment("{base}")')["name"]
        for i in range(2)
    )

    def delete(segment: str) -> dict[str, Any]:
        return dict(call(marketing_server, marketer, DELETE, name=segment)["deleteSegment"])

    depended = delete(base)
    assert depended["deleted"] is False
    assert [e["code"] for e in depended["errors"]] == ["DEPENDED_ON"]
    assert all(reader in depended["errors"][0]["message"] for reader in readers)
    grant_id = granted_id(marketing_server, marketer, readers[0], name, "ADVERTISING")
    held = delete(readers[0])
    assert [e["code"] for e in held["errors"]] == ["GRANTED"]
    assert name in held["errors"][0]["message"]

    call(marketing_server, marketer, REVOKE, id=grant_id)
    assert delete(readers[0]) == {"deleted": True, "errors": []}
    assert delete(readers[1]) == {"deleted": True, "errors": []}
    assert delete(base) == {"deleted": True, "errors": []}
    assert [e["code"] for e in delete(base)["errors"]] == ["NOT_FOUND"]


def test_a_segment_stored_in_a_form_this_version_cannot_read_breaks_nothing_else(
    marketing_server: LiveServer,
) -> None:
    from tests.partners import seed

    marketer = marketing_server.issue_key(Role.MARKETER)
    _, unreadable = seed.segment(marketing_server.runtime)
    _, name = _partner(marketing_server, Purpose.ADVERTISING)
    reader = created(marketing_server, marketer, unique("reads"), ruleText=f'in_segment("{unreadable}")')["name"]

    listed = call(marketing_server, marketer, "{ segments { name } }")["segments"]
    assert {unreadable, reader} <= {s["name"] for s in listed}
    for segment in (unreadable, reader):  # the purpose check cannot see what it reads: refused
        assert [e["code"] for e in grant(marketing_server, marketer, segment, name, "ADVERTISING")["errors"]] == [
            "RULE_UNREADABLE"
        ]
    depended = call(marketing_server, marketer, DELETE, name=unreadable)["deleteSegment"]
    assert [e["code"] for e in depended["errors"]] == ["DEPENDED_ON"]


def test_listing_segments_spends_the_budget_only_for_the_member_counts_asked_for(marketing_server: LiveServer) -> None:
    """A member count is a release and costs the key; a listing that does not select one costs
    nothing, through a fragment or not."""
    server = marketing_server
    marketer = server.issue_key(Role.MARKETER)
    created(server, marketer, unique("listed"), ruleText=cohort(server, K + 1).rule_text)
    spent = "{ analyticsBudget { releasesSpent } }"
    before = call(server, marketer, spent)["analyticsBudget"]["releasesSpent"]  # the creation's count
    call(server, marketer, "{ segments { name health { status } } }")
    assert call(server, marketer, spent)["analyticsBudget"]["releasesSpent"] == before
    listed = call(
        server, marketer, "{ segments { name ...Counted } } fragment Counted on Segment { memberCount { value } }"
    )
    assert call(server, marketer, spent)["analyticsBudget"]["releasesSpent"] == len(listed["segments"]), (
        "the created segment's count is asked again over unchanged data: a repeat, free"
    )
