"""A marketer and a partner probe segments, grants and partner reads where the other tests do not walk.

Every probe runs over HTTP against a real server (k at its floor, a segment worker that polls
often; ``tests.segments.conftest``) with real keys; people are made by real ingestion.
"""

from __future__ import annotations

from functools import partial
from typing import Any

from privacy.purposes import Purpose
from server.auth.principal import Role
from server.segments.dsl import MAX_TEXT_LENGTH
from tests.partners.visitors import (
    all_members,
    changes_page,
    known_person,
    lookup,
    partner_app,
    record_consent,
    send,
    sent_by,
)
from tests.segments.conftest import marketing_server
from tests.segments.marketing import (
    CREATE,
    PREVIEW,
    SHOWN,
    UPDATE,
    Cohort,
    call,
    cohort,
    created,
    eventually,
    fresh_day,
    granted_id,
    page_view,
    partner_name,
    unique,
)
from tests.support.live_server import LiveServer

__all__ = ["marketing_server"]  # the fixture, shared with tests/segments


def _update(server: LiveServer, token: str, name: str, rule_text: str) -> dict[str, Any]:
    return dict(call(server, token, UPDATE, name=name, ruleText=rule_text)["updateSegment"])


def test_a_granted_segment_cannot_be_changed_to_read_data_its_grant_purpose_forbids(
    marketing_server: LiveServer,
) -> None:
    """A grant for ``analytics`` was checked against the rule it was given; changing the rule (or
    the rule of a segment it reads) afterwards to read interests must not slip them past the check."""
    server = marketing_server
    marketer = server.issue_key(Role.MARKETER)
    partner = partner_name(server, partner_app(server, Purpose.ANALYTICS).id)
    direct = created(server, marketer, unique("direct"), ruleText="purchases_90d >= 1")["name"]
    read = created(server, marketer, unique("read"), ruleText="purchases_90d >= 2")["name"]
    through = created(server, marketer, unique("through"), ruleText=f'in_segment("{read}")')["name"]
    for segment in (direct, through):
        granted_id(server, marketer, segment, partner, "ANALYTICS")

    for changed in (direct, read):
        refused = _update(server, marketer, changed, 'interest("sports") >= 0.2')
        assert [e["code"] for e in refused["errors"]] == ["PURPOSE_FORBIDS_DATA"], refused
        assert refused["segment"] is None
        kept = call(server, marketer, "query($n: String!) { segment(name: $n) { ruleText version } }", n=changed)
        assert kept["segment"]["version"] == 1, "nothing is saved when a grant would be broken"

    # A change that reads nothing new stays allowed, and an ungranted segment changes freely.
    assert _update(server, marketer, direct, "purchases_90d >= 3")["errors"] == []
    free = created(server, marketer, unique("free"), ruleText="purchases_90d >= 1")["name"]
    assert _update(server, marketer, free, 'interest("sports") >= 0.2')["errors"] == []


def _wide_rule(parts: int) -> dict[str, Any]:
    compare = {"compare": {"feature": "purchases_90d", "op": "GE", "value": {"integer": 1}}}
    return {"or": [compare] * parts}


def test_a_structured_rule_is_bounded_as_its_text_is(marketing_server: LiveServer) -> None:
    """The text form stops at MAX_TEXT_LENGTH characters; the same rule sent as a RuleInput (only
    the request body bounds it) must stop there too, for a preview and for a saved segment."""
    server = marketing_server
    marketer = server.issue_key(Role.MARKETER)
    huge = _wide_rule(MAX_TEXT_LENGTH // 10)  # "purchases_90d >= 1 or " is 22 characters a part
    preview = call(server, marketer, PREVIEW, rule=huge)["previewSegment"]
    assert preview["preview"] is None
    assert [e["code"] for e in preview["errors"]] == ["INVALID_RULE"]
    assert [p["code"] for p in preview["problems"]] == ["TOO_LONG"]
    saved = call(server, marketer, CREATE, name=unique("huge"), rule=huge)["createSegment"]
    assert saved["segment"] is None
    assert [p["code"] for p in saved["problems"]] == ["TOO_LONG"]
    small = call(server, marketer, PREVIEW, rule=_wide_rule(3))["previewSegment"]
    assert small["errors"] == []


DIFFERENCING_TRIALS = 16
"""Days where one member of the cohort bought, and as many where nobody did."""


def _size(server: LiveServer, token: str, rule_text: str) -> int:
    preview = call(server, token, PREVIEW, ruleText=rule_text)["previewSegment"]
    assert preview["errors"] == [], preview
    value = preview["preview"]["size"]["value"]
    assert value is not None, "every population here is above k"
    return int(value)


def test_previews_differing_by_one_person_do_not_tell_whether_that_person_is_there(
    marketing_server: LiveServer,
) -> None:
    """The classic differencing attack, run 32 times. The marketer previews a cohort, then the cohort
    minus whoever bought on day d; on half the days one member bought, on the others nobody did. With
    exact sizes the difference is 1 or 0 and the attacker is right every time; released sizes (sticky
    noise of scale 5, every rule a question of its own) leave the best guess (the larger differences
    mean a buyer) near a coin toss. The bound is far from both: chance is 0.5, exact answers give 1.0,
    the noise lets through about 0.55."""
    server = marketing_server
    marketer = server.issue_key(Role.MARKETER)
    group = cohort(server, SHOWN + 30)
    bought = [fresh_day() for _ in range(DIFFERENCING_TRIALS)]
    nobody = [fresh_day() for _ in range(DIFFERENCING_TRIALS)]
    purchases = [
        page_view(person.email, day, type="purchase") for person, day in zip(group.people, bought, strict=False)
    ]
    send(server, server.issue_key(Role.ADMIN), purchases)

    everyone = _size(server, marketer, group.rule_text)
    differences = {
        day: everyone - _size(server, marketer, f'{group.rule_text} and events("purchase") = 0 from {day} to {day}')
        for day in bought + nobody
    }
    guessed = set(sorted(differences, key=lambda day: differences[day], reverse=True)[:DIFFERENCING_TRIALS])
    right = len(guessed & set(bought)) + len(set(nobody) - guessed)
    assert right / (2 * DIFFERENCING_TRIALS) < 0.85, differences


def test_asking_again_or_in_another_form_gets_the_same_answer_and_costs_nothing(marketing_server: LiveServer) -> None:
    """Averaging repeated answers is the other classic: a repeat, and the same rule written as
    structured input, must give the very same numbers, not a fresh draw."""
    server = marketing_server
    marketer = server.issue_key(Role.MARKETER)
    group = cohort(server, SHOWN)
    answers = [call(server, marketer, PREVIEW, ruleText=group.rule_text)["previewSegment"]["preview"] for _ in range(5)]
    answers.append(call(server, marketer, PREVIEW, rule=group.rule_input())["previewSegment"]["preview"])
    assert all(
        answer["size"] == answers[0]["size"] and answer["breakdowns"] == answers[0]["breakdowns"] for answer in answers
    )
    budget = call(server, marketer, "{ analyticsBudget { releasesSpent } }")
    assert budget == {"analyticsBudget": {"releasesSpent": 5}}, "one preview: its size and four breakdowns, once"


def test_sharing_withdrawn_from_one_partner_hides_the_person_from_that_partner_only(
    marketing_server: LiveServer,
) -> None:
    """At the next query for lookup and members (no evaluation between), then an exit in that
    partner's feed alone; the other partner goes on seeing the person."""
    server = marketing_server
    marketer = server.issue_key(Role.MARKETER)
    left, stays = partner_app(server, Purpose.PERSONALIZATION), partner_app(server, Purpose.PERSONALIZATION)
    person = sent_by(server, stays, sent_by(server, left, known_person(server)))
    day = Cohort(day=fresh_day(), people=[])
    segment = created(server, marketer, unique("shared"), ruleText=day.rule_text)["name"]
    for partner in (left, stays):
        granted_id(server, marketer, segment, partner_name(server, partner.id), "PERSONALIZATION")
    event = page_view(person.email, day.day, userId=person.user_ids[left.id])
    event["context"] = {"consent": {"purposes": ["personalization"]}}
    send(server, left.token, [event])
    for partner in (left, stays):
        entered = eventually(partial(changes_page, server, partner.token), lambda page: bool(page["edges"]))
        assert [e["node"]["kind"] for e in entered["edges"]] == ["ENTER"]
    told = changes_page(server, left.token)["pageInfo"]["endCursor"]

    record_consent(server, person, "SHARING", granted=False, partner_id=left.id)
    assert lookup(server, left, "PARTNER_USER_ID", person.user_ids[left.id])["segments"] == []
    assert all_members(server, left.token, segment) == []
    assert lookup(server, stays, "PARTNER_USER_ID", person.user_ids[stays.id])["segments"] != []
    assert len(all_members(server, stays.token, segment)) == 1
    exited = eventually(lambda: changes_page(server, left.token, after=told), lambda page: bool(page["edges"]))
    assert [e["node"]["kind"] for e in exited["edges"]] == ["EXIT"]
    assert [e["node"]["kind"] for e in changes_page(server, stays.token)["edges"]] == ["ENTER"]
