"""Segment evaluation end to end on SQLite and PostgreSQL: stays, statuses, the sweep, merges and
splits, and what partners are told when consent or a restriction changes."""

from __future__ import annotations

import dataclasses
import itertools
from collections import defaultdict
from datetime import timedelta

from sqlalchemy import update

from privacy.consent import ConsentPurpose
from privacy.identifiers import IdentifierKind
from privacy.purposes import Purpose
from server.auth.principal import SYSTEM_ACTOR
from server.identity.split import recent_merges, split_merge
from server.restriction.service import lift, restrict
from server.runtime import Runtime
from server.segments.drain import drain_marks
from server.segments.evaluate import Selection, evaluate_population
from server.segments.health import segment_health
from server.segments.preview import count_matching
from server.segments.rules import All, Compare, CompareOp, EventWindow, InSegment, LastDays, Not
from server.segments.store import mark_started
from server.storage.tables import SegmentRow
from server.taxonomy.taxonomy import taxonomy_for
from tests.ingest.batches import NOW, event, fixed_clock, ingest, subject_of
from tests.segments.segment_steps import (
    add_grant,
    add_partner,
    add_segment,
    audience,
    changes,
    consent,
    members,
    segment,
)

SHARING_PURPOSES = ["analytics", "profiling", "advertising"]
BUYER = EventWindow("purchase", LastDays(30), at_least=1)


def buy(runtime: Runtime, email: str, *, days_ago: float = 0.01, **fields: object) -> None:
    ingest(
        runtime,
        [
            event(
                email=email,
                event="purchase",
                amount=10.0,
                currency="EUR",
                timestamp=NOW - timedelta(days=days_ago),
                consent_purposes=SHARING_PURPOSES,
                **fields,
            )
        ],
    )
    drain_marks(runtime)


def who(runtime: Runtime, email: str) -> int:
    subject = subject_of(runtime, IdentifierKind.EMAIL, email)
    assert subject is not None
    return subject


def test_a_segment_of_segments_follows_its_dependency_in_real_time(runtime: Runtime) -> None:
    runtime = fixed_clock(runtime)
    buyers = add_segment(runtime, "buyers", BUYER)
    big = add_segment(runtime, "big-buyers", All((InSegment("buyers"), Compare("purchases_30d", CompareOp.GE, 2))))
    not_buyers = add_segment(runtime, "not-buyers", Not(InSegment("buyers")))
    evaluate_population(runtime)
    ingest(runtime, [event(email="b@example.org", consent_purposes=SHARING_PURPOSES)])
    drain_marks(runtime)
    bea = who(runtime, "b@example.org")
    assert (members(runtime, buyers), members(runtime, big), members(runtime, not_buyers)) == (set(), set(), {bea})
    buy(runtime, "b@example.org")
    buy(runtime, "b@example.org")
    assert (members(runtime, buyers), members(runtime, big), members(runtime, not_buyers)) == ({bea}, {bea}, set())
    assert [segment(runtime, s).member_count for s in (buyers, big, not_buyers)] == [1, 1, 0]


def test_a_failing_segment_keeps_its_members_and_the_others_still_update(runtime: Runtime) -> None:
    runtime = fixed_clock(runtime)
    buyers = add_segment(runtime, "buyers", BUYER)
    evaluate_population(runtime)
    buy(runtime, "c@example.org")
    carl = who(runtime, "c@example.org")
    with runtime.unit_of_work(SYSTEM_ACTOR) as unit:  # a rule stored by a version that wrote another form
        unit.session.execute(update(SegmentRow).where(SegmentRow.id == buyers).values(rule={"v": 99}))
    reader = add_segment(runtime, "buyers-reader", InSegment("buyers"))
    active = add_segment(runtime, "anyone", Compare("events_lifetime", CompareOp.GE, 1))
    run = evaluate_population(runtime)
    assert run.failed == {buyers: "RULE_INVALID"}
    failed = segment(runtime, buyers)
    assert (failed.status, failed.stale, failed.last_error_code) == ("failed", True, "RULE_INVALID")
    assert failed.member_count == 1
    assert members(runtime, buyers) == {carl}
    assert (segment(runtime, reader).status, segment(runtime, reader).stale) == ("ready", True)
    assert members(runtime, reader) == {carl}  # read through the last good members
    buy(runtime, "d@example.org")
    assert members(runtime, active) == {carl, who(runtime, "d@example.org")}
    assert members(runtime, buyers) == {carl}


def test_the_sweep_re_evaluates_a_rule_that_changes_with_time_alone(runtime: Runtime) -> None:
    now = [NOW]
    runtime = dataclasses.replace(runtime, clock=lambda: now[0])
    recent = add_segment(runtime, "recent-buyers", BUYER)
    steady = add_segment(runtime, "adults", Compare("identifier_count", CompareOp.GE, 1))
    evaluate_population(runtime)
    buy(runtime, "e@example.org", days_ago=25)
    eve = who(runtime, "e@example.org")
    assert members(runtime, recent) == {eve}
    now[0] = NOW + timedelta(days=10)  # nothing happens, but the purchase falls out of the window
    assert members(runtime, recent) == {eve}
    run = evaluate_population(runtime, selection=Selection.TIME_DEPENDENT)
    assert run.segments == 1
    assert members(runtime, recent) == set()
    assert segment(runtime, recent).last_evaluated_at == now[0]
    assert segment(runtime, steady).last_evaluated_at == NOW
    with runtime.sessions() as session:
        health = {h.segment_id: h for h in segment_health(session, now=now[0] + timedelta(minutes=1))}
    assert health[recent].lag == timedelta(minutes=1)
    assert not health[recent].stuck


def test_an_evaluation_that_never_finished_shows_as_stuck(runtime: Runtime) -> None:
    runtime = fixed_clock(runtime)
    buyers = add_segment(runtime, "buyers", BUYER)
    with runtime.unit_of_work(SYSTEM_ACTOR) as unit:
        mark_started(unit.session, [buyers], now=NOW)
    with runtime.sessions() as session:
        health = {h.segment_id: h for h in segment_health(session, now=NOW + timedelta(hours=2))}
    assert health[buyers].stuck
    assert health[buyers].status == "pending"


def test_consent_withdrawal_and_restriction_are_exits_in_the_partners_feed(runtime: Runtime) -> None:
    runtime = fixed_clock(runtime)
    buyers = add_segment(runtime, "buyers", BUYER)
    evaluate_population(runtime)
    partner = add_partner(runtime, "acme")
    buy(runtime, "f@example.org")
    fay = who(runtime, "f@example.org")
    grant = add_grant(runtime, buyers, partner)
    assert audience(runtime, grant) == set()  # no sharing with this partner yet
    consent(runtime, "f@example.org", ConsentPurpose.SHARING, partner_id=partner)
    drain_marks(runtime)
    assert audience(runtime, grant) == {fay}
    consent(runtime, "f@example.org", ConsentPurpose.ADVERTISING, granted=False)
    drain_marks(runtime)
    assert audience(runtime, grant) == set()
    assert members(runtime, buyers) == {fay}  # the marketer's segment is purpose-free
    consent(runtime, "f@example.org", ConsentPurpose.ADVERTISING)
    drain_marks(runtime)
    assert audience(runtime, grant) == {fay}
    with runtime.unit_of_work(SYSTEM_ACTOR) as unit:
        restrict(unit, [fay], request_id=None)
    drain_marks(runtime)
    assert (audience(runtime, grant), members(runtime, buyers)) == (set(), set())
    with runtime.unit_of_work(SYSTEM_ACTOR) as unit:
        lift(unit, [fay], request_id=None)
    drain_marks(runtime)
    assert (audience(runtime, grant), members(runtime, buyers)) == ({fay}, {fay})
    told = changes(runtime, grant)
    assert [kind for _seq, _g, _s, kind, _p in told] == ["enter", "exit", "enter", "exit", "enter"]
    assert len({pseudonym for *_rest, pseudonym in told}) == 1  # one pseudonym for this partner, always
    assert str(fay) not in told[0][4]


def test_profiling_withdrawn_ends_every_stay(runtime: Runtime) -> None:
    runtime = fixed_clock(runtime)
    buyers = add_segment(runtime, "buyers", BUYER)
    evaluate_population(runtime)
    buy(runtime, "g@example.org")
    consent(runtime, "g@example.org", ConsentPurpose.PROFILING, granted=False)
    drain_marks(runtime)
    assert members(runtime, buyers) == set()
    assert segment(runtime, buyers).member_count == 0


def test_a_merge_ends_the_losers_stays_and_a_split_evaluates_both_sides(runtime: Runtime) -> None:
    runtime = fixed_clock(runtime)
    buyers = add_segment(runtime, "buyers", BUYER)
    evaluate_population(runtime)
    partner = add_partner(runtime, "acme")
    grant = add_grant(runtime, buyers, partner)
    for email in ("h@example.org", "i@example.org"):
        buy(runtime, email)
        consent(runtime, email, ConsentPurpose.SHARING, partner_id=partner)
    drain_marks(runtime)
    hal, ivy = who(runtime, "h@example.org"), who(runtime, "i@example.org")
    assert audience(runtime, grant) == {hal, ivy}
    # One device seen on both: the two are one person from now on.
    ingest(runtime, [event(email="h@example.org", anonymous_id="shared", consent_purposes=SHARING_PURPOSES)])
    ingest(runtime, [event(email="i@example.org", anonymous_id="shared", consent_purposes=SHARING_PURPOSES)])
    drain_marks(runtime)
    winner = who(runtime, "h@example.org")
    assert who(runtime, "i@example.org") == winner
    assert members(runtime, buyers) == {winner}
    assert audience(runtime, grant) == {winner}
    assert segment(runtime, buyers).member_count == 1
    with runtime.unit_of_work(SYSTEM_ACTOR) as unit:
        merge_id = recent_merges(unit.session)[0].id
        split_merge(unit, merge_id)
    drain_marks(runtime)
    sides = {who(runtime, "h@example.org"), who(runtime, "i@example.org")}
    assert len(sides) == 2
    (loser,) = sides - {winner}
    assert members(runtime, buyers) == {winner}  # the loser comes back without consent (opt-in)
    loser_email = "h@example.org" if who(runtime, "h@example.org") == loser else "i@example.org"
    consent(runtime, loser_email, ConsentPurpose.PROFILING)
    drain_marks(runtime)
    assert members(runtime, buyers) == sides
    assert segment(runtime, buyers).member_count == 2


def test_the_change_log_is_ordered_and_enters_and_exits_alternate(runtime: Runtime) -> None:
    runtime = fixed_clock(runtime)
    buyers = add_segment(runtime, "buyers", BUYER)
    evaluate_population(runtime)
    partner = add_partner(runtime, "acme")
    grant = add_grant(runtime, buyers, partner)
    emails = [f"j{n}@example.org" for n in range(4)]
    for step, email in itertools.product(range(3), emails):
        buy(runtime, email)
        consent(runtime, email, ConsentPurpose.SHARING, partner_id=partner, granted=step % 2 == 0)
        drain_marks(runtime)
    told = changes(runtime)
    seqs = [seq for seq, *_ in told]
    assert seqs == sorted(set(seqs))
    kinds: dict[tuple[int, int | None], list[str]] = defaultdict(list)
    for _seq, grant_id, subject_id, kind, _p in told:
        kinds[(grant_id, subject_id)].append(kind)
    assert len(kinds) == 4
    for sequence in kinds.values():
        assert sequence == ["enter", "exit", "enter"]
    assert audience(runtime, grant) == {who(runtime, email) for email in emails}


def test_opening_a_grant_tells_the_partner_of_current_members_only(runtime: Runtime) -> None:
    runtime = fixed_clock(runtime)
    buyers = add_segment(runtime, "buyers", BUYER)
    evaluate_population(runtime)
    partner = add_partner(runtime, "acme", (Purpose.ADVERTISING,))
    buy(runtime, "k@example.org")
    consent(runtime, "k@example.org", ConsentPurpose.SHARING, partner_id=partner)
    buy(runtime, "l@example.org")  # no sharing with the partner
    drain_marks(runtime)
    grant = add_grant(runtime, buyers, partner)
    assert audience(runtime, grant) == {who(runtime, "k@example.org")}
    analytics_only = add_partner(runtime, "counter", (Purpose.ANALYTICS,))
    consent(runtime, "k@example.org", ConsentPurpose.SHARING, partner_id=analytics_only)
    drain_marks(runtime)
    undeclared = add_grant(runtime, buyers, analytics_only, Purpose.ADVERTISING)
    assert audience(runtime, undeclared) == set()  # a purpose the partner never declared reaches no one


def test_a_preview_counts_what_an_evaluation_would_find_and_writes_nothing(runtime: Runtime) -> None:
    runtime = fixed_clock(runtime)
    buyers = add_segment(runtime, "buyers", BUYER)
    evaluate_population(runtime)
    for email in ("n@example.org", "o@example.org"):
        buy(runtime, email)
    ingest(runtime, [event(email="p@example.org", consent_purposes=SHARING_PURPOSES)])
    drain_marks(runtime)
    taxonomy = taxonomy_for(runtime.settings.taxonomy_extra)
    with runtime.sessions() as session:
        counted = [
            count_matching(session, rule, as_of=NOW, config=runtime.profiles, taxonomy=taxonomy)
            for rule in (BUYER, Not(InSegment("buyers")), InSegment("no-such-segment"))
        ]
    assert counted == [2, 1, 0]
    assert len(members(runtime, buyers)) == 2
