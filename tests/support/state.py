"""What a database holds about people, read whole, to compare before and after a replay or a crash.

``snapshot`` reads every row of the tables a replay could change, as stored: two snapshots of one
database are equal only if nothing was added, removed or changed. ``by_person`` reads the same
without subject ids (random per database), keyed by each person's identifier hashes, so two
databases loaded with the same keyring can be compared.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from typing import Any

from sqlalchemy import text

from server.runtime import Runtime
from server.storage.base import Base

PEOPLE_TABLES = ("subjects", "identities", "events", "consent_records", "consent_state")

Snapshot = dict[str, list[tuple[Any, ...]]]


def snapshot(runtime: Runtime) -> Snapshot:
    """Every row of every table in ``PEOPLE_TABLES``, sorted."""
    with runtime.engine.connect() as connection:
        return {
            table: sorted((tuple(row) for row in connection.execute(text(f"SELECT * FROM {table}"))), key=repr)
            for table in PEOPLE_TABLES
        }


def differences(before: Snapshot, after: Snapshot) -> dict[str, tuple[int, int]]:
    """Per table that changed: (rows gone, rows new)."""
    changed = {}
    for table in PEOPLE_TABLES:
        gone, new = Counter(before[table]) - Counter(after[table]), Counter(after[table]) - Counter(before[table])
        if gone or new:
            changed[table] = (sum(gone.values()), sum(new.values()))
    return changed


Person = frozenset[tuple[str, bytes]]


def by_person(runtime: Runtime) -> dict[Person, dict[str, Any]]:
    """Per active person (named by its identities' kinds and hashes): its events, ledger and states."""
    with runtime.engine.connect() as connection:
        identities: dict[int, set[tuple[str, bytes]]] = defaultdict(set)
        for subject, kind, pseudonym in connection.execute(text("SELECT subject_id, kind, pseudonym FROM identities")):
            identities[subject].add((kind, bytes(pseudonym)))
        held: dict[int, dict[str, Counter[tuple[Any, ...]]]] = defaultdict(lambda: defaultdict(Counter))
        queries = {
            "events": "SELECT subject_id, type, channel, occurred_at, topics, amount, currency, campaign, region"
            " FROM events",
            "ledger": "SELECT subject_id, purpose, partner_id, granted, legal_basis, source, policy_version,"
            " recorded_at FROM consent_records",
            "states": "SELECT subject_id, purpose, partner_id, granted, since FROM consent_state",
        }
        for name, query in queries.items():
            for subject, *values in connection.execute(text(query)):
                held[subject][name][tuple(values)] += 1
        active = [s for (s,) in connection.execute(text("SELECT id FROM subjects WHERE status = 'active'"))]
    return {frozenset(identities[s]): {name: dict(rows) for name, rows in held[s].items()} for s in active}


def every_table(runtime: Runtime) -> Snapshot:
    """Every row of every table the schema declares, sorted: what "changed nothing" is checked against."""
    with runtime.engine.connect() as connection:
        return {
            table: sorted((tuple(row) for row in connection.execute(text(f"SELECT * FROM {table}"))), key=repr)
            for table in Base.metadata.tables
        }
