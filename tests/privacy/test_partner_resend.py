"""A partner resends what it sent, as a retrying client does, to compare the answers: whether we
hold the person, with or without consent, or have erased them, must not show in any field, on the
first send or on any resend."""

from __future__ import annotations

import secrets
from collections.abc import Callable
from typing import Any

from privacy.identifiers import IdentifierKind, normalize
from server.auth.principal import SYSTEM_ACTOR, Role
from server.suppression.service import suppress
from tests.http.test_ingest_api import INGEST, event
from tests.privacy.test_partner_isolation import known_person, with_email
from tests.support.live_server import LiveServer

# Every field a partner may read, and the answer's errors: the whole answer is compared.
PARTNER_INGEST = """
mutation($batch: EventBatchInput!) {
  ingestEvents(batch: $batch) {
    received accepted duplicates droppedTopics droppedLabels droppedFields junkIdentifiers
    rejected { index code message }
    errors { field code message }
  }
}"""


def people(server: LiveServer) -> dict[str, str]:
    """One email per thing we may hold about a person."""
    admin = server.issue_key(Role.ADMIN)
    withdrawn = known_person(server, ["analytics"])
    server.graphql(INGEST, token=admin, variables={"batch": {"events": [with_email(withdrawn, [])]}})
    erased = f"erased.{secrets.token_hex(4)}@example.org"
    with server.runtime.unit_of_work(SYSTEM_ACTOR) as unit:
        suppress(unit.session, normalize(IdentifierKind.EMAIL, erased), unit.kit, unit.clock())
    return {
        "unknown": f"stranger.{secrets.token_hex(4)}@example.org",
        "known, consenting": known_person(server, ["analytics"]),
        "known, not consenting": withdrawn,
        "suppressed": erased,
    }


BATCHES: dict[str, Callable[[str], list[dict[str, Any]]]] = {
    # The partner attests consent: stored for a person we do not hold, refused for one we erased.
    "with the partner's statement": lambda email: [with_email(email, ["analytics"])],
    # No statement: judged on what we hold, which the partner must not learn.
    "without a statement": lambda email: [event(anonymousId=None, context={"traits": {"email": email}})],
    "both, and a record of the wrong type": lambda email: [
        with_email(email, ["analytics"]),
        event(anonymousId=None, context={"traits": {"email": email}}),
        event(type="teleport"),
    ],
}


def answers_per_person(server: LiveServer, batch: Callable[[str], list[dict[str, Any]]]) -> dict[str, list[Any]]:
    """Per person: the answers to a first send and to two resends of the same batch."""
    partner = server.issue_key(Role.PARTNER)
    answers: dict[str, list[Any]] = {}
    for name, email in people(server).items():
        events = batch(email)
        answers[name] = [
            server.graphql(PARTNER_INGEST, token=partner, variables={"batch": {"events": events}}).json()
            for _send in range(3)
        ]
    return answers


def test_a_partners_first_send_and_resends_answer_the_same_whatever_we_hold(live_server: LiveServer) -> None:
    for description, batch in BATCHES.items():
        answers = answers_per_person(live_server, batch)
        reference = answers["unknown"]
        for name, sent in answers.items():
            assert sent == reference, f"{description}: {name} is told apart from an unknown person"
        first, *resends = reference
        received = first["data"]["ingestEvents"]["received"]
        assert first["data"]["ingestEvents"]["duplicates"] == 0, description
        for resend in resends:
            assert resend["data"]["ingestEvents"]["duplicates"] == received - len(
                resend["data"]["ingestEvents"]["rejected"]
            ), f"{description}: a resend of a judged record is a duplicate"
