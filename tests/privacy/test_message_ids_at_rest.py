"""A sender writes personal data into its messageIds (an email, a phone number); an attacker with a
copy of the database, not the keyring, greps for them. Kept only as keyed hashes, stored and
refused records alike, they are found nowhere."""

from __future__ import annotations

from server.runtime import Runtime
from tests.ingest.batches import event, fixed_clock, ingest
from tests.privacy.test_at_rest import found_in, pg_dump_bytes, sqlite_bytes

STORED_IDS = ["ana.lima@example.org", "+4930123456789"]
REFUSED_IDS = ["bart.okonkwo@mail.example.com", "+33123456789"]


def test_message_ids_are_not_kept_in_clear(runtime: Runtime, backend: str) -> None:
    clocked = fixed_clock(runtime)
    result = ingest(
        clocked,
        [event(message_id=m, anonymous_id=f"dev-{n}") for n, m in enumerate(STORED_IDS)]
        + [event(message_id=m, anonymous_id=f"dev-x{n}", consent_purposes=[]) for n, m in enumerate(REFUSED_IDS)],
    )
    assert (result.accepted, len(result.rejected)) == (len(STORED_IDS), len(REFUSED_IDS))

    haystack = sqlite_bytes(runtime) if backend == "sqlite" else pg_dump_bytes(runtime)

    assert found_in(haystack, set(STORED_IDS + REFUSED_IDS)) == set()
