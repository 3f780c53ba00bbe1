"""Visitor lookup: the time of a known visitor beside an unknown one, in process, same run.

The lookup promises that an unknown, a non-consenting and a visible visitor cannot be told apart
(``server.partners.lookup``): same answer shape, and the same statements run for all of them. This
script measures what is left: the median and p90 time of ``lookup.visitor`` (the service call, no
HTTP, no GraphQL) for

    visible    a visitor in two granted segments, consenting, with a dozen interest accumulators
    refusing   the same kind of visitor without sharing consent (answered as unknown)
    unknown    an identifier nobody sent

and prints the ratio of each median to the unknown one. The timing is not asserted in the tests
(no timed assertions there); this is where it is looked at. Subjects are written directly (past
ingestion) into a fresh migrated SQLite file, or a PostgreSQL database given by ``--postgres``.

    python bench/partner_lookup_timing.py                 # SQLite, 20,000 lookups each
    python bench/partner_lookup_timing.py --postgres postgresql+psycopg://postgres@127.0.0.1/bench_partner
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from datetime import timedelta
from pathlib import Path

import polars as pl
from pydantic import SecretStr

from privacy.consent import ConsentEntry, ConsentKey, ConsentPurpose, LegalBasis
from privacy.identifiers import IdentifierKind, normalize
from privacy.keyring import dumps_keyring, generate_keyring
from privacy.purposes import Purpose
from server.auth.principal import SYSTEM_ACTOR
from server.consent.service import record_many
from server.frames.profiles import DAILY_SCHEMA, INTEREST_SCHEMA, SUMMARY_SCHEMA
from server.partners import lookup
from server.partners.grants import PartnerScope
from server.partners.interests import interest_index
from server.partners.service import create_partner
from server.profiles.features import as_of_day
from server.profiles.state import ProfileState
from server.profiles.store import write_state
from server.runtime import Runtime, build_runtime
from server.settings import Settings
from server.storage import migrate
from server.storage.engine import build_engine
from server.storage.tables import SegmentGrantRow, SegmentMembershipRow, SegmentRow
from server.subjects.service import create_subject
from server.taxonomy.taxonomy import taxonomy_for

TOPICS = ["travel", "automotive/auto-type/electric-vehicles", "healthy-living/fitness-and-exercise/running-and-jogging"]


def _people(runtime: Runtime) -> tuple[PartnerScope, dict[str, str]]:
    with runtime.unit_of_work(SYSTEM_ACTOR) as unit:
        now = unit.clock()
        partner = create_partner(unit.session, name="bench-partner", purposes=[Purpose.PERSONALIZATION], now=now)
        ids = {}
        for who in ("visible", "refusing"):
            identifier = normalize(IdentifierKind.PARTNER_USER_ID, f"u-{who}", partner_id=partner.id)
            ids[who] = create_subject(unit.session, identifiers=[identifier], kit=unit.kit, now=now)
        grants = [(ConsentPurpose(p.value), 0) for p in Purpose] + [(ConsentPurpose.SHARING, partner.id)]
        entries = [
            (subject, ConsentEntry(ConsentKey(purpose, scope), True, LegalBasis.CONSENT, "bench", "v1", now))
            for subject in ids.values()
            for purpose, scope in grants
            if not (subject == ids["refusing"] and purpose is ConsentPurpose.SHARING)
        ]
        record_many(unit.session, entries)
        day = as_of_day(now)
        write_state(
            unit.session,
            ProfileState(
                daily=pl.DataFrame(
                    [(s, day - d, "page_view", "web", 3, 0.0) for s in ids.values() for d in range(30)],
                    schema=DAILY_SCHEMA,
                    orient="row",
                ),
                summary=pl.DataFrame(
                    [(s, now, now, None, None) for s in ids.values()], schema=SUMMARY_SCHEMA, orient="row"
                ),
                interests=pl.DataFrame(
                    [(s, t, 3.0 + i, now - timedelta(days=i)) for s in ids.values() for i, t in enumerate(TOPICS * 4)],
                    schema=INTEREST_SCHEMA,
                    orient="row",
                ).unique(["subject_id", "topic"]),
            ),
        )
        for name in ("bench-a", "bench-b"):
            segment = SegmentRow(
                name=name,
                rule={},
                rule_text="true",
                depends_on=[],
                time_dependent=False,
                status="ready",
                created_at=now,
                updated_at=now,
            )
            unit.session.add(segment)
            unit.session.flush()
            unit.session.add(
                SegmentGrantRow(segment_id=segment.id, partner_id=partner.id, purpose="personalization", granted_at=now)
            )
            unit.session.add_all(
                SegmentMembershipRow(segment_id=segment.id, subject_id=s, entered_at=now) for s in ids.values()
            )
    scope = PartnerScope(partner.id, frozenset({Purpose.PERSONALIZATION}))
    return scope, {"visible": "u-visible", "refusing": "u-refusing", "unknown": "u-nobody"}


def measure(runtime: Runtime, rounds: int) -> None:
    scope, values = _people(runtime)
    index = interest_index(runtime.profiles, taxonomy_for(runtime.settings.taxonomy_extra))
    times: dict[str, list[float]] = {who: [] for who in values}
    with runtime.sessions() as session:
        answers = {}
        for _ in range(rounds):
            for who, value in values.items():  # interleaved, so drift hits all three alike
                start = time.perf_counter()
                answers[who] = lookup.visitor(
                    session,
                    runtime.kit,
                    partner=scope,
                    kind=IdentifierKind.PARTNER_USER_ID,
                    value=value,
                    top_k=5,
                    index=index,
                    now=runtime.clock(),
                )
                times[who].append(time.perf_counter() - start)
    assert answers["visible"].segments
    assert answers["visible"].interests
    assert answers["refusing"].segments == answers["unknown"].segments == ()
    base = statistics.median(times["unknown"])
    print(f"{runtime.engine.dialect.name}: {rounds} lookups each")
    for who, taken in times.items():
        median, p90 = statistics.median(taken), statistics.quantiles(taken, n=10)[-1]
        print(
            f"  {who:9} median {median * 1e6:7.1f} us  p90 {p90 * 1e6:7.1f} us  ratio to unknown {median / base:5.2f}"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=20_000)
    parser.add_argument("--postgres", help="an empty PostgreSQL database URL to migrate and use")
    options = parser.parse_args()
    keyring = generate_keyring()
    with tempfile.TemporaryDirectory() as directory:
        url = options.postgres or f"sqlite:///{directory}/bench.db"
        engine = build_engine(url)
        migrate.upgrade(engine)
        engine.dispose()
        settings = Settings(data_dir=Path(directory), database_url=url, keyring=SecretStr(dumps_keyring(keyring)))
        runtime = build_runtime(settings, keyring=keyring)
        try:
            measure(runtime, options.rounds)
        finally:
            runtime.dispose()


if __name__ == "__main__":
    main()
