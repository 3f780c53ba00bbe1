"""The attacker edits the audit log of a running server with SQL; the compliance officer asks the
server (GraphQL ``verifyAuditLog``) and the operator asks the CLI (``audit verify``): both name the
first bad entry, and the server keeps auditing what it does afterwards."""

from __future__ import annotations

import secrets
from collections.abc import Iterator
from typing import Any

import pytest
from sqlalchemy import delete, insert, select, update

from privacy.keyring import Keyring
from server.auth.principal import SYSTEM_ACTOR, Role
from server.storage.tables import AuditEntryRow, AuditHeadRow
from tests.conftest import fresh_database_url
from tests.privacy.test_audit_tamper import Tamper, delete_a_middle_row, edit_key_version, forge_past_the_head, reorder
from tests.support.cli import run_audience
from tests.support.databases import BACKENDS
from tests.support.live_server import LiveServer, start_server

ENTRIES = 8
TAMPERS: dict[str, Tamper] = {
    "row past the head": forge_past_the_head,
    "key version edited": edit_key_version(7),
    "middle row deleted": delete_a_middle_row,
    "rows reordered": reorder,
}
VERIFY = "{ verifyAuditLog { intact firstBadSeq problem } }"


@pytest.fixture(scope="module", params=BACKENDS)
def server(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory, keyring: Keyring
) -> Iterator[LiveServer]:
    """A server of its own: the shared one's audit log must stay intact for other tests."""
    directory = tmp_path_factory.mktemp(f"tampered-{request.param}")
    urls = fresh_database_url(request, str(request.param), directory)
    started = start_server(directory=directory, database_url=next(urls), keyring=keyring)
    try:
        for index in range(ENTRIES):
            with started.runtime.unit_of_work(SYSTEM_ACTOR) as unit:
                unit.audit("partner.create", target=f"partner:{index}")
        yield started
    finally:
        started.stop()
        urls.close()


@pytest.fixture
def untouched_afterwards(server: LiveServer) -> Iterator[None]:
    """Each test tampers with the same chain: put every row and the head back as they were."""
    with server.runtime.sessions() as session:
        rows = [_columns(row) for row in session.scalars(select(AuditEntryRow).order_by(AuditEntryRow.seq))]
        head = _columns(session.get(AuditHeadRow, 1))
    yield
    with server.runtime.sessions.begin() as session:
        session.execute(delete(AuditEntryRow))
        session.execute(insert(AuditEntryRow), rows)
        session.execute(update(AuditHeadRow).where(AuditHeadRow.id == 1).values(**head))


def _columns(row: Any) -> dict[str, Any]:
    return {column.key: getattr(row, column.key) for column in row.__table__.columns}


def audit_verify_cli(server: LiveServer) -> tuple[int, str]:
    directory = server.log_path.parent
    result = run_audience(
        "audit",
        "verify",
        directory=directory,
        env={"AUDIENCE_DATA_DIR": str(directory), "AUDIENCE_DATABASE_URL": server.runtime.settings.database_url},
    )
    assert "Traceback" not in result.stderr, result.stderr
    return result.returncode, result.stdout + result.stderr


@pytest.mark.usefixtures("untouched_afterwards")
@pytest.mark.parametrize("tamper", TAMPERS.values(), ids=TAMPERS.keys())
def test_tampering_is_named_over_graphql_and_by_the_cli_and_auditing_goes_on(
    server: LiveServer, tamper: Tamper
) -> None:
    token = server.issue_key(Role.COMPLIANCE)
    with server.runtime.sessions.begin() as session:
        length = int(session.scalar(select(AuditHeadRow.seq)) or 0)
        bad = tamper(session, length)

    answer = server.graphql(VERIFY, token=token).json()
    assert "errors" not in answer, answer
    assert answer["data"]["verifyAuditLog"]["intact"] is False
    assert answer["data"]["verifyAuditLog"]["firstBadSeq"] == bad

    code, output = audit_verify_cli(server)
    assert code == 1, output
    assert f"BROKEN at entry {bad}:" in output

    partner = server.graphql(
        "mutation ($name: String!) { createPartner(name: $name, purposes: [ANALYTICS]) { errors { code } } }",
        variables={"name": f"after-tampering-{secrets.token_hex(4)}"},
        token=server.issue_key(Role.ADMIN),
    ).json()
    assert partner == {"data": {"createPartner": {"errors": []}}}, "an audited action must still succeed"
    with server.runtime.sessions() as session:
        actions = list(session.scalars(select(AuditEntryRow.action).where(AuditEntryRow.seq > length)))
    assert actions.count("audit.verify") == 2
    assert "partner.create" in actions
    assert server.graphql(VERIFY, token=token).json()["data"]["verifyAuditLog"]["firstBadSeq"] == bad
