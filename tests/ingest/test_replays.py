"""Replays as senders and operators make them: a GraphQL batch sent again, a file imported again
(the demo's included) after the people's consent changed. Whatever was judged once is a
duplicate: the events, the consent ledger, the states, the subjects and the identities stay
exactly as they were."""

from __future__ import annotations

import secrets
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import polars as pl
import pytest
from pydantic import SecretStr

from privacy.consent import ConsentPurpose, LegalBasis
from privacy.identifiers import IdentifierKind
from privacy.keyring import KeyPurpose, Keyring, dumps_keyring
from server.auth.principal import SYSTEM_ACTOR, Role
from server.consent import requests
from server.demo import Format, generate_population, load, write_population
from server.runtime import Runtime, build_runtime
from server.settings import Settings
from server.taxonomy import load_taxonomy
from tests.conftest import fresh_database_url
from tests.http.test_ingest_api import INGEST, event
from tests.support.cli import run_audience
from tests.support.live_server import LiveServer
from tests.support.state import differences, snapshot

RECORD_CONSENT = """
mutation($input: RecordConsentInput!) { recordConsent(input: $input) { recorded errors { code } } }"""


def by_email(email: str, *, hours_ago: float, purposes: list[str] | None = None) -> dict[str, Any]:
    """An event naming a person by email; ``purposes`` None: no consent statement at all."""
    context: dict[str, Any] = {"traits": {"email": email}}
    if purposes is not None:
        context["consent"] = {"purposes": purposes}
    return event(
        anonymousId=None, context=context, timestamp=(datetime.now(UTC) - timedelta(hours=hours_ago)).isoformat()
    )


def change_consent(server: LiveServer, email: str, *, granted: bool) -> None:
    compliance = server.issue_key(Role.COMPLIANCE)
    variables = {
        "input": {
            "identifier": {"kind": "EMAIL", "value": email},
            "purpose": "ANALYTICS",
            "granted": granted,
            "source": "cmp:web",
            "policyVersion": "2026-10",
        }
    }
    assert server.graphql(RECORD_CONSENT, token=compliance, variables=variables).json()["data"]["recordConsent"][
        "recorded"
    ]


def test_a_graphql_batch_replayed_after_consent_changed_changes_nothing(live_server: LiveServer) -> None:
    admin = live_server.issue_key(Role.ADMIN)
    tag = secrets.token_hex(4)
    withdrawing, granting, stranger = (f"{name}.{tag}@example.org" for name in ("withdrawing", "granting", "stranger"))
    earlier = {"events": [by_email(withdrawing, hours_ago=5, purposes=["analytics"])]}
    assert live_server.graphql(INGEST, token=admin, variables={"batch": earlier}).json()["data"]["ingestEvents"][
        "accepted"
    ]
    batch = {
        "source": "web",
        "events": [
            by_email(withdrawing, hours_ago=3, purposes=[]),  # a withdrawal: refused, recorded
            by_email(withdrawing, hours_ago=2),  # no statement, after the withdrawal: refused
            by_email(granting, hours_ago=3, purposes=["analytics"]),  # a grant: stored, recorded
            by_email(stranger, hours_ago=3),  # no statement about someone we do not hold: refused
        ],
    }
    first = live_server.graphql(INGEST, token=admin, variables={"batch": batch}).json()["data"]["ingestEvents"]
    assert (first["accepted"], [r["code"] for r in first["rejected"]]) == (1, ["NO_CONSENT"] * 3)

    # Later, each person says the opposite of what the batch said or found.
    change_consent(live_server, withdrawing, granted=True)
    change_consent(live_server, granting, granted=False)
    change_consent(live_server, stranger, granted=True)
    before = snapshot(live_server.runtime)

    again = live_server.graphql(INGEST, token=admin, variables={"batch": batch}).json()["data"]["ingestEvents"]

    assert differences(before, snapshot(live_server.runtime)) == {}
    assert (again["received"], again["accepted"], again["duplicates"], again["rejected"]) == (4, 0, 4, [])
    assert again["newSubjects"] == 0


# --- files, through the CLI -------------------------------------------------------------------


@pytest.fixture
def target(request: pytest.FixtureRequest, backend: str, tmp_path: Path, keyring: Keyring) -> Iterator[Runtime]:
    """A fresh database with the demo's partners, and a runtime on it (the CLI gets the same settings)."""
    urls = fresh_database_url(request, backend, tmp_path)
    settings = Settings(data_dir=tmp_path, database_url=next(urls), keyring=SecretStr(dumps_keyring(keyring)))
    runtime = build_runtime(settings, keyring=keyring)
    load.ensure_partners(runtime)
    try:
        yield runtime
    finally:
        runtime.dispose()
        urls.close()


def audience_import(
    runtime: Runtime, path: Path, *arguments: str, keyring: Keyring | None = None, declared: str = ""
) -> str:
    """As an operator runs it; ``keyring``: another one than the runtime's (a rotated copy)."""
    secret = runtime.settings.keyring
    assert secret is not None
    env = {
        "AUDIENCE_DATA_DIR": str(runtime.settings.data_dir),
        "AUDIENCE_DATABASE_URL": runtime.settings.effective_database_url,
        "AUDIENCE_KEYRING": secret.get_secret_value() if keyring is None else dumps_keyring(keyring),
        "AUDIENCE_LABEL_VOCABULARY": declared,
    }
    result = run_audience("import", str(path), *arguments, directory=path.parent, env=env, timeout=300)
    assert result.returncode == 0, result.stderr
    return result.stdout


def flip_consent(runtime: Runtime, devices: pl.Series) -> None:
    """Each device's person now says the opposite of what it last said about analytics: the latest word."""
    with runtime.unit_of_work(SYSTEM_ACTOR) as unit:
        for device in devices:
            identifier = requests.RawIdentifier(IdentifierKind.DEVICE_ID, device)
            seen = requests.consent_of(unit, identifier=identifier).states
            analytics = {k.purpose: s.granted for k, s in seen.items()}.get(ConsentPurpose.ANALYTICS, False)
            requests.record_consent(
                unit,
                identifier=identifier,
                purpose=ConsentPurpose.ANALYTICS,
                partner_id=None,
                granted=not analytics,
                legal_basis=LegalBasis.CONSENT,
                source="cmp:web",
                policy_version="2026-10",
            )


@pytest.mark.parametrize("extension", ["parquet", "csv"])
def test_the_demo_file_imported_again_after_consent_changed_changes_nothing(
    target: Runtime, tmp_path: Path, extension: Format
) -> None:
    population = generate_population(people=300, seed=5, end=datetime.now(UTC), taxonomy=load_taxonomy())
    write_population(population, tmp_path / "demo", formats=[extension])
    path = tmp_path / "demo" / f"events.{extension}"
    audience_import(target, path, "--chunk-size", "2000")
    load.load_consent_changes(target, population)  # the demo's banner: grants and withdrawals
    flip_consent(target, population.events["anonymous_id"].drop_nulls().unique().sort().head(40))
    before = snapshot(target)

    audience_import(target, path, "--chunk-size", "2000")

    assert differences(before, snapshot(target)) == {}


def test_a_file_imported_again_after_a_key_rotation_or_a_declared_source_changes_nothing(
    target: Runtime, tmp_path: Path, keyring: Keyring
) -> None:
    """The source is stored hashed under the current identifier key, or in clear once declared:
    a re-import after a rotation, or after the operator declared the source, must still find what
    the same source sent before (it stored every record a second time and judged refused ones again)."""
    population = generate_population(people=200, seed=11, end=datetime.now(UTC), taxonomy=load_taxonomy())
    write_population(population, tmp_path / "demo", formats=["csv"])
    path = tmp_path / "demo" / "events.csv"
    audience_import(target, path, "--source", "crm-export")
    flip_consent(target, population.events["anonymous_id"].drop_nulls().unique().sort().head(30))
    before = snapshot(target)

    rotated = keyring.with_new_version(KeyPurpose.IDENTIFIER_HMAC)
    audience_import(target, path, "--source", "crm-export", keyring=rotated)
    assert differences(before, snapshot(target)) == {}, "a rotation made records sent before new again"

    audience_import(target, path, "--source", "crm-export", keyring=rotated, declared="crm-export")
    assert differences(before, snapshot(target)) == {}, "declaring the source made records sent before new again"
