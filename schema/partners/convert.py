"""Service answers to GraphQL types, and refused reads to empty connections with their error."""

from __future__ import annotations

from schema.errors import DomainError
from schema.pagination import EMPTY_PAGE, PageInfo
from schema.partners.types import (
    ChangeKind,
    GrantedSegment,
    SegmentChange,
    SegmentChangeConnection,
    SegmentChangeEdge,
    SegmentMemberConnection,
    SegmentMemberEdge,
    Visitor,
    VisitorInterest,
)
from server.partners import feed, lookup, members
from server.partners.grants import PartnerReadError


def to_visitor(answer: lookup.VisitorAnswer) -> Visitor:
    return Visitor(
        as_of=answer.as_of,
        segments=[GrantedSegment(name=s.name, purpose=s.purpose) for s in answer.segments],
        interests=[VisitorInterest(topic=i.topic, name=i.name, score=i.score) for i in answer.interests],
    )


def to_member_connection(page: members.MemberPage, *, after: str | None) -> SegmentMemberConnection:
    edges = [SegmentMemberEdge(cursor=m.cursor, node=m.pseudonym) for m in page.members]
    return SegmentMemberConnection(
        edges=edges,
        page_info=PageInfo(
            has_next_page=page.has_next_page,
            has_previous_page=after is not None,
            start_cursor=edges[0].cursor if edges else None,
            end_cursor=edges[-1].cursor if edges else None,
        ),
        errors=[],
    )


def to_change(entry: feed.ChangeEntry) -> SegmentChange:
    return SegmentChange(
        cursor=entry.cursor,
        kind=ChangeKind(entry.kind),
        pseudonym=entry.pseudonym,
        segment=entry.segment,
        purpose=entry.purpose,
        at=entry.at,
    )


def to_change_connection(page: feed.ChangePage, *, after: str | None) -> SegmentChangeConnection:
    edges = [SegmentChangeEdge(cursor=e.cursor, node=to_change(e)) for e in page.entries]
    return SegmentChangeConnection(
        edges=edges,
        page_info=PageInfo(
            has_next_page=page.has_next_page,
            has_previous_page=after is not None,
            start_cursor=edges[0].cursor if edges else None,
            end_cursor=page.end_cursor,
        ),
        errors=[],
    )


def refused_error(error: PartnerReadError) -> DomainError:
    return DomainError(field=error.field, code=error.code, message=error.message)


def refused_members(error: PartnerReadError) -> SegmentMemberConnection:
    return SegmentMemberConnection(edges=[], page_info=EMPTY_PAGE, errors=[refused_error(error)])


def refused_changes(error: PartnerReadError) -> SegmentChangeConnection:
    return SegmentChangeConnection(edges=[], page_info=EMPTY_PAGE, errors=[refused_error(error)])
