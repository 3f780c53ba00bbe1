"""Defining, previewing and granting segments (marketers). Thin over ``server.segments``.

A rule comes either as the text DSL (``ruleText``) or as the structured ``RuleInput``; problems
come back with their position in the text (line, column) or their path in the input.
"""

from __future__ import annotations

from collections.abc import Callable

import strawberry
from starlette.concurrency import run_in_threadpool
from strawberry.types import Info

from privacy.purposes import Purpose
from schema.access.types import PurposeType
from schema.analytics.types import BUDGET_SPENT_ERROR
from schema.context import Context
from schema.errors import DomainError
from schema.segments.authoring import GivenRule, RuleRefused, problems_of, rule_of
from schema.segments.counts import shown_segments
from schema.segments.rule_input import RuleInput
from schema.segments.types import (
    MARKETER,
    DeletePayload,
    GrantPayload,
    PreviewPayload,
    SegmentPayload,
    to_grant,
    to_preview,
)
from schema.selections import selects
from server.analytics.marketing import ReleasedPreview, released_preview
from server.analytics.release import BudgetExhausted
from server.analytics.service import asker_of
from server.runtime import UnitOfWork
from server.segments import definitions, grants, preview
from server.segments.definitions import SegmentError, SegmentView
from server.segments.service import evaluate_after_change
from server.taxonomy.taxonomy import taxonomy_for


def _error(error: SegmentError) -> DomainError:
    return DomainError(field=None, code=error.code, message=error.message)


@strawberry.type
class SegmentMutations:
    @strawberry.mutation(
        extensions=MARKETER,
        description="Define a segment from `ruleText` (the DSL) or `rule` (structured): validated, saved, then "
        "evaluated at once. Refused with every problem in the rule and its position.",
    )
    async def create_segment(
        self,
        info: Info[Context, None],
        name: str,
        rule_text: str | None = None,
        rule: RuleInput | None = None,
        description: str | None = None,
    ) -> SegmentPayload:
        runtime = info.context.runtime
        taxonomy = taxonomy_for(runtime.settings.taxonomy_extra)
        try:
            given = rule_of(rule_text, rule)
        except RuleRefused as refused:
            return SegmentPayload(segment=None, errors=[refused.error], problems=refused.problems)

        def work() -> SegmentView:
            with runtime.unit_of_work(info.context.caller.actor) as unit:
                created = definitions.create_segment(
                    unit, name=name, rule=given.rule, taxonomy=taxonomy, description=description
                )
            return evaluate_after_change(runtime, info.context.caller.actor, created.name)

        return await _saved(info, work, given)

    @strawberry.mutation(
        extensions=MARKETER,
        description="Change a segment's rule (a new version, re-evaluated at once) or description.",
    )
    async def update_segment(
        self,
        info: Info[Context, None],
        name: str,
        rule_text: str | None = None,
        rule: RuleInput | None = None,
        description: str | None = None,
    ) -> SegmentPayload:
        runtime = info.context.runtime
        taxonomy = taxonomy_for(runtime.settings.taxonomy_extra)
        try:
            given = None if rule_text is None and rule is None else rule_of(rule_text, rule)
        except RuleRefused as refused:
            return SegmentPayload(segment=None, errors=[refused.error], problems=refused.problems)

        def work() -> SegmentView:
            with runtime.unit_of_work(info.context.caller.actor) as unit:
                definitions.update_segment(
                    unit,
                    name,
                    taxonomy=taxonomy,
                    rule=None if given is None else given.rule,
                    description=description,
                )
            return evaluate_after_change(runtime, info.context.caller.actor, name)

        return await _saved(info, work, given)

    @strawberry.mutation(
        extensions=MARKETER,
        description="Delete a segment; refused while another segment depends on it or a partner holds a grant.",
    )
    async def delete_segment(self, info: Info[Context, None], name: str) -> DeletePayload:
        try:
            await info.context.run(lambda unit: definitions.delete_segment(unit, name))
        except SegmentError as error:
            return DeletePayload(deleted=False, errors=[_error(error)])
        return DeletePayload(deleted=True, errors=[])

    @strawberry.mutation(
        extensions=MARKETER,
        description="What a rule would select now: its size and breakdowns, each suppressed below k; never members.",
    )
    async def preview_segment(
        self, info: Info[Context, None], rule_text: str | None = None, rule: RuleInput | None = None
    ) -> PreviewPayload:
        runtime = info.context.runtime
        taxonomy = taxonomy_for(runtime.settings.taxonomy_extra)
        try:
            given = rule_of(rule_text, rule)
        except RuleRefused as refused:
            return PreviewPayload(preview=None, errors=[refused.error], problems=refused.problems)
        asker, settings = asker_of(info.context.caller), runtime.settings

        def work(unit: UnitOfWork) -> ReleasedPreview:
            counted = preview.preview_rule(unit, given.rule, taxonomy=taxonomy)
            return released_preview(unit.session, asker, given.rule, counted, settings=settings, noise=unit.kit.noise)

        try:
            answer = await info.context.run(work)
        except SegmentError as error:
            return PreviewPayload(preview=None, errors=[_error(error)], problems=problems_of(error, given))
        except BudgetExhausted:
            return PreviewPayload(preview=None, errors=[BUDGET_SPENT_ERROR], problems=[])
        return PreviewPayload(preview=to_preview(answer), errors=[], problems=[])

    @strawberry.mutation(
        extensions=MARKETER,
        description="Grant a segment to a partner for one purpose; refused, with the reason, when the partner is not "
        "declared for it or the purpose does not allow the data the segment uses.",
    )
    async def grant_segment(
        self,
        info: Info[Context, None],
        segment: str,
        partner: str,
        purpose: PurposeType,  # type: ignore[valid-type]
    ) -> GrantPayload:
        try:
            view = await info.context.run(
                lambda unit: grants.grant_segment(unit, segment=segment, partner=partner, purpose=Purpose(purpose))
            )
        except SegmentError as error:
            return GrantPayload(grant=None, errors=[_error(error)])
        return GrantPayload(grant=to_grant(view), errors=[])

    @strawberry.mutation(extensions=MARKETER, description="Revoke a grant: every read by the partner stops at once.")
    async def revoke_grant(self, info: Info[Context, None], id: int) -> GrantPayload:
        try:
            view = await info.context.run(lambda unit: grants.revoke_grant(unit, id))
        except SegmentError as error:
            return GrantPayload(grant=None, errors=[_error(error)])
        return GrantPayload(grant=to_grant(view), errors=[])


async def _saved(info: Info[Context, None], work: Callable[[], SegmentView], given: GivenRule | None) -> SegmentPayload:
    try:
        view = await run_in_threadpool(work)
    except SegmentError as error:
        return SegmentPayload(segment=None, errors=[_error(error)], problems=problems_of(error, given))
    counted = selects(info, "segment", "memberCount")
    return SegmentPayload(
        segment=(await shown_segments(info.context, [view], counted=counted))[0], errors=[], problems=[]
    )
