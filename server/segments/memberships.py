"""Writing what an evaluation found: segment stays, and what each grant's partner is told.

Only differences are written, in bulk. Stays: a subject found in a segment without an open stay
enters (a new row), an open stay whose subject is no longer found ends (``exited_at``).

Partners: a grant's partner may know a member only while that member consents to the grant's
purpose and to sharing with that partner and is under no restriction (``privacy.consent.may_use``
plus ``server.storage.restrictions``, in SQL over ``consent_state``), and only for a purpose the
partner declared. ``grant_audience`` is the set the partner was last told; the difference from
the set it may know now is appended to ``grant_changes`` (exits first, then enters, each in
subject-id order, under the change log's lock) and ``grant_audience`` follows. An enter carries
the subject's pseudonym for that partner (``encode_many``); an exit repeats its enter's, so an
exit needs no key.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Final

import polars as pl
from sqlalchemy import bindparam, delete, func, select, text, update
from sqlalchemy.orm import Session

from privacy.consent import ConsentPurpose
from privacy.partner_pseudonyms import PartnerPseudonymCodec
from server.consent.service import declared_purposes
from server.profiles.partitions import Partition
from server.segments.exits import CHUNK, ENTER, EXIT
from server.segments.scope import Scope
from server.segments.store import ActiveGrant, active_grants
from server.storage.bulk import bulk_delete, bulk_insert
from server.storage.locks import serialize_change_log_writes
from server.storage.restrictions import unrestricted
from server.storage.stale_sketches import drop_segment_sketches
from server.storage.tables import GrantAudienceRow, GrantChangeRow, SegmentMembershipRow

__all__ = [
    "MEMBER_SCHEMA",
    "close_grant",
    "open_grant",
    "stored_members",
    "update_audiences",
    "write_stays",
]

MEMBER_SCHEMA: Final = pl.Schema({"segment_id": pl.Int64(), "subject_id": pl.Int64()})


def stored_members(session: Session, scope: Scope, segment_ids: Sequence[int]) -> pl.DataFrame:
    """The open stays of ``scope``'s subjects in ``segment_ids`` (``MEMBER_SCHEMA``)."""
    if not segment_ids:
        return MEMBER_SCHEMA.to_frame()
    statement, params = scope.query(
        "SELECT segment_id, subject_id FROM segment_memberships "
        f"WHERE exited_at IS NULL AND segment_id IN :segments AND {scope.condition('subject_id')}",
        segments=list(segment_ids),
    )
    statement = statement.bindparams(bindparam("segments", expanding=True))
    return pl.DataFrame(list(session.execute(statement, params)), schema=MEMBER_SCHEMA, orient="row")


def write_stays(session: Session, stored: pl.DataFrame, found: pl.DataFrame, *, now: datetime) -> dict[int, int]:
    """Make the open stays ``stored`` (as read for the scope) equal to ``found``; both
    ``MEMBER_SCHEMA`` over the same segments. Returns each segment's change in members.

    The stored sketch of every segment someone enters or leaves is deleted here, in the same
    transaction: a sketch holds hashes of its members, and one that outlived an exit would go on
    counting the person who left (``server.storage.stale_sketches``)."""
    keys = ["segment_id", "subject_id"]
    entering = found.join(stored, on=keys, how="anti").sort(keys)
    leaving = stored.join(found, on=keys, how="anti").sort(keys)
    drop_segment_sketches(session, pl.concat([entering["segment_id"], leaving["segment_id"]]).unique().to_list())
    bulk_insert(
        session,
        SegmentMembershipRow,
        entering.with_columns(entered_at=pl.lit(now, dtype=pl.Datetime("us", "UTC"))),
        ignore_conflicts=False,
    )
    stays = SegmentMembershipRow.__table__.c
    for (segment_id,), group in leaving.group_by(["segment_id"], maintain_order=True):
        ids = group["subject_id"].to_list()
        for start in range(0, len(ids), CHUNK):
            session.execute(
                update(SegmentMembershipRow)
                .where(
                    stays.segment_id == segment_id,
                    stays.exited_at.is_(None),
                    stays.subject_id.in_(ids[start : start + CHUNK]),
                )
                .values(exited_at=now)
            )
    deltas = (
        pl.concat(
            [
                entering.select("segment_id", delta=pl.lit(1, dtype=pl.Int64)),
                leaving.select("segment_id", delta=pl.lit(-1, dtype=pl.Int64)),
            ]
        )
        .group_by("segment_id")
        .agg(pl.col("delta").sum())
    )
    return {int(row[0]): int(row[1]) for row in deltas.iter_rows()}


def _visible(column: str) -> str:
    """SQL: the subject in ``column`` may be known to the grant's partner (``:purpose``, ``:partner``)."""
    return (
        f"EXISTS (SELECT 1 FROM consent_state c WHERE c.subject_id = {column} AND c.purpose = :purpose "
        "AND c.partner_id = 0 AND c.granted) "
        f"AND EXISTS (SELECT 1 FROM consent_state c WHERE c.subject_id = {column} AND c.purpose = :sharing "
        f"AND c.partner_id = :partner AND c.granted) AND {unrestricted(column)}"
    )


def _exits(session: Session, grant: ActiveGrant, scope: Scope, *, declared: bool) -> pl.DataFrame:
    """(grant_id, subject_id, pseudonym) of the partner's audience in scope it may no longer know."""
    gone = (
        "TRUE"
        if not declared
        else (
            "NOT (EXISTS (SELECT 1 FROM segment_memberships m WHERE m.segment_id = :segment "
            f"AND m.subject_id = a.subject_id AND m.exited_at IS NULL) AND {_visible('a.subject_id')})"
        )
    )
    statement, params = scope.query(
        "SELECT a.grant_id, a.subject_id, e.pseudonym FROM grant_audience a JOIN grant_changes e "
        f"ON e.seq = a.entered_seq WHERE a.grant_id = :grant AND {scope.condition('a.subject_id')} AND {gone} "
        "ORDER BY a.subject_id",
        **_grant_params(grant),
    )
    return pl.DataFrame(
        list(session.execute(statement, params)),
        schema={"grant_id": pl.Int64(), "subject_id": pl.Int64(), "pseudonym": pl.String()},
        orient="row",
    )


def _enters(session: Session, grant: ActiveGrant, scope: Scope) -> list[int]:
    """Members in scope the partner may know and was not told of, in subject-id order."""
    statement, params = scope.query(
        "SELECT m.subject_id FROM segment_memberships m WHERE m.segment_id = :segment AND m.exited_at IS NULL "
        f"AND {scope.condition('m.subject_id')} AND {_visible('m.subject_id')} AND NOT EXISTS "
        "(SELECT 1 FROM grant_audience a WHERE a.grant_id = :grant AND a.subject_id = m.subject_id) "
        "ORDER BY m.subject_id",
        **_grant_params(grant),
    )
    return [int(row[0]) for row in session.execute(statement, params)]


def _grant_params(grant: ActiveGrant) -> dict[str, object]:
    return {
        "grant": grant.id,
        "segment": grant.segment_id,
        "purpose": grant.purpose,
        "partner": grant.partner_id,
        "sharing": ConsentPurpose.SHARING.value,
    }


def _tell(session: Session, grant: ActiveGrant, scope: Scope, codec: PartnerPseudonymCodec, *, now: datetime) -> int:
    declared = grant.purpose in declared_purposes(session, grant.partner_id)
    at = pl.lit(now, dtype=pl.Datetime("us", "UTC"))
    leaving = _exits(session, grant, scope, declared=declared)
    if leaving.height:
        bulk_insert(session, GrantChangeRow, leaving.with_columns(kind=pl.lit(EXIT), at=at), ignore_conflicts=False)
        bulk_delete(session, GrantAudienceRow, leaving.select("grant_id", "subject_id"))
    entering = _enters(session, grant, scope) if declared else []
    if entering:
        before = session.scalar(select(func.coalesce(func.max(GrantChangeRow.seq), 0)))
        told = pl.DataFrame(
            {
                "grant_id": [grant.id] * len(entering),
                "subject_id": entering,
                "pseudonym": codec.encode_many(grant.partner_id, entering),
            },
            schema={"grant_id": pl.Int64(), "subject_id": pl.Int64(), "pseudonym": pl.String()},
        )
        bulk_insert(session, GrantChangeRow, told.with_columns(kind=pl.lit(ENTER), at=at), ignore_conflicts=False)
        session.execute(
            text(
                "INSERT INTO grant_audience (grant_id, subject_id, entered_seq) SELECT grant_id, subject_id, seq "
                "FROM grant_changes WHERE seq > :before AND grant_id = :grant AND kind = :kind"
            ),
            {"before": before, "grant": grant.id, "kind": ENTER},
        )
    return leaving.height + len(entering)


def update_audiences(
    session: Session,
    scope: Scope,
    codec: PartnerPseudonymCodec,
    *,
    now: datetime,
    grants: Sequence[ActiveGrant] | None = None,
) -> int:
    """Bring every active grant's audience in ``scope`` up to date; returns the changes written."""
    grants = active_grants(session) if grants is None else grants
    if not grants:
        return 0
    serialize_change_log_writes(session)
    return sum(_tell(session, grant, scope, codec, now=now) for grant in grants)


def open_grant(session: Session, grant_id: int, codec: PartnerPseudonymCodec, *, now: datetime) -> int:
    """A grant just created: its partner is told of every current member it may know (enters).
    Returns the enters written; 0 for a grant that is not active."""
    grants = active_grants(session, grant_id=grant_id)
    if not grants:
        return 0
    serialize_change_log_writes(session)
    return _tell(session, grants[0], Scope.of_partition(Partition.whole()), codec, now=now)


def close_grant(session: Session, grant_id: int) -> int:
    """A revoked grant keeps no audience (reads already stop at ``revoked_at``); returns the rows removed."""
    removed = session.execute(
        delete(GrantAudienceRow).where(GrantAudienceRow.grant_id == grant_id).returning(GrantAudienceRow.subject_id)
    )
    return len(removed.all())
