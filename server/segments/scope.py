"""The subjects one evaluation speaks for: a range of ids (a batch partition) or a list (real time).

Every read and write of an evaluation is limited to its scope, so a subject outside it is left
as it stands, and a subject inside it that is no longer evaluated (withdrawn, restricted,
merged away) is found by its stored rows and leaves.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Final

from sqlalchemy import TextClause, bindparam, text

from server.profiles.partitions import Partition

__all__ = ["MAX_LISTED", "Scope"]

MAX_LISTED: Final = 5_000
"""The most subjects a listed scope holds (one ``IN`` list on either backend)."""


@dataclass(frozen=True, slots=True)
class Scope:
    partition: Partition | None = None
    subject_ids: tuple[int, ...] = ()

    @classmethod
    def of_partition(cls, partition: Partition) -> Scope:
        return cls(partition=partition)

    @classmethod
    def listing(cls, subject_ids: Sequence[int]) -> Scope:
        ids = tuple(sorted(set(subject_ids)))
        if len(ids) > MAX_LISTED:
            raise ValueError(f"a listed scope holds at most {MAX_LISTED} subjects")
        return cls(subject_ids=ids)

    def condition(self, column: str) -> str:
        """SQL on ``column`` (a constant of the caller) with the ``:scope_*`` parameters of ``query``."""
        if self.partition is not None:
            return f"{column} BETWEEN :scope_low AND :scope_high"
        return f"{column} IN :scope_ids"

    def query(self, sql: str, **params: Any) -> tuple[TextClause, dict[str, Any]]:
        """``sql`` (which uses ``condition``) as a statement with its parameters."""
        statement = text(sql)
        if self.partition is not None:
            return statement, {**params, "scope_low": self.partition.low, "scope_high": self.partition.high}
        return statement.bindparams(bindparam("scope_ids", expanding=True)), {
            **params,
            "scope_ids": list(self.subject_ids),
        }
