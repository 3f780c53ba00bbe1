"""A keyring that does not belong to the database is refused, by `serve` and by every command.

The operator's mistakes, as they happen: `audience init` run again over a populated data
directory after the keyring went missing (which the old missing-keyring error invited), or
AUDIENCE_KEYRING_PATH / AUDIENCE_KEYRING naming another installation's keyring. Accepted, the
server would store the same people again under new pseudonyms and sign the audit log with a key
that later reads as tampering. Refused, each command says so in one line, exits non-zero, shows
no key material and writes nothing. A KEK rotation, the routine change, must not lock anyone out.
"""

from __future__ import annotations

import base64
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
from sqlalchemy import func, select

from privacy.keyring import (
    KeyPurpose,
    Keyring,
    dumps_keyring,
    generate_keyring,
    load_keyring_file,
    loads_keyring,
    write_keyring_file,
)
from server.auth.principal import SYSTEM_ACTOR
from server.runtime import build_runtime
from server.settings import Settings
from server.storage import migrate
from server.storage.engine import build_engine
from server.storage.tables import AuditEntryRow, IdentityRow, SubjectRow
from server.subjects.service import create_subject, write_pii
from tests.conftest import fresh_database_url
from tests.support.cli import run_audience
from tests.support.databases import BACKENDS
from tests.support.live_server import start_server

EVENTS_CSV = (
    "message_id,event,channel,timestamp,email,consent_purposes\n"
    "m-1,page_view,web,2026-01-05T10:00:00+00:00,ana@example.org,analytics\n"
    "m-2,page_view,web,2026-01-05T10:01:00+00:00,ben@example.org,analytics\n"
)
# The same two people, new message ids: under another keyring they would be stored as two new people.
MORE_EVENTS_CSV = EVENTS_CSV.replace("m-1,", "m-3,").replace("m-2,", "m-4,")
MISMATCH = "does not belong to this database"


@dataclass
class Installation:
    directory: Path
    database_url: str
    admin_token: str

    @property
    def data_dir(self) -> Path:
        return self.directory / "data"

    @property
    def keyring_path(self) -> Path:
        return self.data_dir / "keyring.json"

    @property
    def events(self) -> Path:
        return self.directory / "events.csv"

    @property
    def more_events(self) -> Path:
        return self.directory / "more-events.csv"

    def audience(
        self, *args: str, env: dict[str, str] | None = None, timeout: float = 120
    ) -> subprocess.CompletedProcess[str]:
        base = {"AUDIENCE_DATA_DIR": str(self.data_dir), "AUDIENCE_DATABASE_URL": self.database_url}
        return run_audience(*args, directory=self.directory, env=base | (env or {}), timeout=timeout)

    def counts(self) -> tuple[int, int, int]:
        """Audit entries, subjects and identities: what a wrongly keyed command would add to."""
        engine = build_engine(self.database_url)
        try:
            with engine.connect() as connection:
                return tuple(  # type: ignore[return-value]
                    int(connection.scalar(select(func.count()).select_from(table)) or 0)
                    for table in (AuditEntryRow, SubjectRow, IdentityRow)
                )
        finally:
            engine.dispose()


def set_up(directory: Path, database_url: str) -> Installation:
    """`audience init` and an import of two people, as an operator sets one up."""
    made = Installation(directory=directory, database_url=database_url, admin_token="")
    init = made.audience("init")
    assert init.returncode == 0, init.stderr
    made.admin_token = next(line for line in init.stdout.splitlines() if line.startswith("aud_"))
    made.events.write_text(EVENTS_CSV)
    made.more_events.write_text(MORE_EVENTS_CSV)
    imported = made.audience("import", str(made.events))
    assert imported.returncode == 0, imported.stderr
    return made


@pytest.fixture
def installation(tmp_path: Path, database_url: str) -> Installation:
    """One of its own, for a test that changes the keyring or the schema."""
    return set_up(tmp_path, database_url)


@pytest.fixture(scope="module", params=BACKENDS)
def settled(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Installation]:
    """One per backend for the tests that are refused: each checks that nothing was written."""
    directory = tmp_path_factory.mktemp(f"settled-{request.param}")
    urls = fresh_database_url(request, str(request.param), directory)
    try:
        yield set_up(directory, next(urls))
    finally:
        urls.close()


@pytest.fixture
def foreign_keyring(tmp_path: Path) -> tuple[Path, Keyring]:
    """Another installation's keyring file, mode 0600 like any."""
    keyring = generate_keyring()
    path = tmp_path / "elsewhere" / "keyring.json"
    write_keyring_file(path, keyring)
    return path, keyring


def key_material(*keyrings: Keyring) -> list[str]:
    return [
        base64.b64encode(secret).decode()
        for keyring in keyrings
        for versions in keyring.keys.values()
        for secret in versions.values()
    ]


def assert_one_clear_line(result: subprocess.CompletedProcess[str], expected: str, *keyrings: Keyring) -> None:
    assert result.returncode != 0, result.stdout
    assert "Traceback" not in result.stderr, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert expected in lines[0], lines[0]
    for secret in key_material(*keyrings):
        assert secret not in result.stdout + result.stderr


COMMANDS = {
    "serve": ["serve"],
    "import": ["import", "{more_events}"],
    "keys list": ["keys", "list"],
    "keys create": ["keys", "create", "--role", "analyst", "--label", "bi"],
    "keys status": ["keys", "status"],
    "keys rotate-kek": ["keys", "rotate-kek"],
    "keys retire-kek": ["keys", "retire-kek", "1"],
    "partners create": ["partners", "create", "acme", "--purpose", "analytics"],
    "partners list": ["partners", "list"],
    "audit verify": ["audit", "verify"],
    "identity merges": ["identity", "merges"],
    "build": ["build"],
    "init": ["init"],
}


@pytest.mark.parametrize("command", COMMANDS.values(), ids=COMMANDS.keys())
def test_another_installations_keyring_file_is_refused(
    settled: Installation, foreign_keyring: tuple[Path, Keyring], command: list[str]
) -> None:
    path, foreign = foreign_keyring
    own = load_keyring_file(settled.keyring_path)
    before, foreign_text = settled.counts(), path.read_text()
    if command == ["keys", "retire-kek", "1"]:  # a version to retire, so the command gets as far as the database
        write_keyring_file(path, foreign.with_new_version(KeyPurpose.KEK), replace=True)
        foreign_text = path.read_text()
    args = [arg.format(more_events=settled.more_events) for arg in command]

    result = settled.audience(*args, env={"AUDIENCE_KEYRING_PATH": str(path)}, timeout=60)

    assert_one_clear_line(result, MISMATCH, own, foreign)
    assert settled.counts() == before, "nothing may be written under the wrong keyring"
    assert path.read_text() == foreign_text, "the other installation's keyring is left alone"


def test_another_installations_keyring_in_the_environment_is_refused(
    settled: Installation, foreign_keyring: tuple[Path, Keyring]
) -> None:
    _path, foreign = foreign_keyring
    before = settled.counts()
    result = settled.audience("import", str(settled.more_events), env={"AUDIENCE_KEYRING": dumps_keyring(foreign)})
    assert_one_clear_line(result, MISMATCH, foreign, load_keyring_file(settled.keyring_path))
    assert "AUDIENCE_KEYRING" in result.stderr
    assert settled.counts() == before


def test_a_live_server_will_not_start_with_another_installations_keyring(
    settled: Installation, foreign_keyring: tuple[Path, Keyring], tmp_path: Path
) -> None:
    _path, foreign = foreign_keyring
    directory = tmp_path / "server"
    with pytest.raises(RuntimeError, match="server exited at start-up") as refused:
        start_server(directory=directory, database_url=settled.database_url, keyring=foreign)
    assert MISMATCH in str(refused.value)
    log = (directory / "server.log").read_text()
    assert "Traceback" not in log
    assert not any(secret in log for secret in key_material(foreign))


@pytest.mark.parametrize("keyring_goes", ["deleted", "elsewhere"])
def test_init_will_not_rekey_a_populated_database(settled: Installation, keyring_goes: str) -> None:
    """The keyring went missing; `init` must not mint a new one over the data it cannot read."""
    saved = settled.keyring_path.read_text()
    moved_aside = settled.keyring_path.with_name("keyring.saved")
    env: dict[str, str] = {}
    if keyring_goes == "deleted":
        settled.keyring_path.rename(moved_aside)
        new_path = settled.keyring_path
    else:
        new_path = settled.directory / "new" / "keyring.json"
        env = {"AUDIENCE_KEYRING_PATH": str(new_path)}
    before = settled.counts()
    try:
        result = settled.audience("init", env=env)

        assert_one_clear_line(result, "already holds data", loads_keyring(saved, origin="test"))
        assert "backup" in result.stderr
        assert not new_path.exists(), "no new keyring may be created for a populated database"
        assert settled.counts() == before
    finally:
        if moved_aside.exists():
            moved_aside.replace(settled.keyring_path)
    assert settled.audience("partners", "list").returncode == 0, "the restored keyring opens it again"


def test_the_missing_keyring_error_does_not_send_the_operator_to_init(settled: Installation) -> None:
    result = settled.audience("keys", "list", env={"AUDIENCE_KEYRING_PATH": str(settled.directory / "lost.json")})
    assert result.returncode == 2
    [line] = result.stderr.strip().splitlines()
    assert "does not exist" in line
    assert "backup" in line
    assert "run `audience init`)" not in line


def test_init_again_with_its_own_keyring_is_still_accepted(settled: Installation) -> None:
    again = settled.audience("init")
    assert again.returncode == 0, again.stderr
    assert "aud_" not in again.stdout


def test_kek_rotation_then_serve_is_accepted(installation: Installation, tmp_path: Path) -> None:
    for step in (["keys", "rotate-kek"], ["keys", "retire-kek", "1"], ["keys", "rotate-kek"]):
        result = installation.audience(*step)
        assert result.returncode == 0, result.stderr
    rotated = load_keyring_file(installation.keyring_path)
    assert rotated.versions(KeyPurpose.KEK) == [2, 3]
    server = start_server(directory=installation.data_dir, database_url=installation.database_url, keyring=rotated)
    try:
        answer = httpx.post(
            f"{server.base_url}/graphql",
            json={"query": "{ viewer { role } }"},
            headers={"authorization": f"Bearer {installation.admin_token}"},
            timeout=30,
        ).json()
        assert answer == {"data": {"viewer": {"role": "ADMIN"}}}
    finally:
        server.stop()
    assert installation.audience("audit", "verify").returncode == 0


@pytest.mark.parametrize("purpose", [KeyPurpose.IDENTIFIER_HMAC, KeyPurpose.AUDIT, KeyPurpose.PARTNER_PSEUDONYM_ROOT])
def test_a_new_version_of_another_key_is_accepted(settled: Installation, purpose: KeyPurpose, tmp_path: Path) -> None:
    """Rotated by hand (docs/keys.md): old versions stay, so the keyring is still this database's."""
    path = tmp_path / "rotated" / "keyring.json"
    write_keyring_file(path, load_keyring_file(settled.keyring_path).with_new_version(purpose))
    result = settled.audience("partners", "list", env={"AUDIENCE_KEYRING_PATH": str(path)})  # writes nothing
    assert result.returncode == 0, result.stderr


# --- databases from before the fingerprint ------------------------------------------------------


def forget_the_fingerprint(installation: Installation) -> None:
    """As a database created before migration 0008: back to 0006, then `audience migrate`."""
    engine = build_engine(installation.database_url)
    try:
        migrate.downgrade(engine, "0006")
    finally:
        engine.dispose()
    migrated = installation.audience("migrate")
    assert migrated.returncode == 0, migrated.stderr


def test_an_older_database_is_bound_to_the_keyring_that_opens_it(
    installation: Installation, foreign_keyring: tuple[Path, Keyring]
) -> None:
    path, foreign = foreign_keyring
    forget_the_fingerprint(installation)
    before = installation.counts()

    refused = installation.audience("partners", "list", env={"AUDIENCE_KEYRING_PATH": str(path)})
    assert_one_clear_line(refused, "does not open this database", foreign)
    assert installation.counts() == before

    assert installation.audience("partners", "list").returncode == 0, "its own keyring opens it and is recorded"
    again = installation.audience("partners", "list", env={"AUDIENCE_KEYRING_PATH": str(path)})
    assert_one_clear_line(again, MISMATCH, foreign)


def test_an_older_database_with_data_keys_checks_them_too(
    installation: Installation, database_url: str, tmp_path: Path
) -> None:
    """Same audit key, another KEK: the data keys it would wrap do not unwrap, so it is refused."""
    own = load_keyring_file(installation.keyring_path)
    runtime = build_runtime(Settings(data_dir=installation.data_dir, database_url=database_url), keyring=own)
    try:
        with runtime.unit_of_work(SYSTEM_ACTOR) as unit:
            subject = create_subject(unit.session, identifiers=[], kit=unit.kit, now=unit.clock())
            write_pii(unit.session, subject, {"name": "Ana Lima"}, unit.kit, unit.clock())
    finally:
        runtime.dispose()
    forget_the_fingerprint(installation)
    other_kek = Keyring(
        keys={**own.keys, KeyPurpose.KEK: generate_keyring().keys[KeyPurpose.KEK]}, current=dict(own.current)
    )
    path = tmp_path / "mixed" / "keyring.json"
    write_keyring_file(path, other_kek)
    refused = installation.audience("partners", "list", env={"AUDIENCE_KEYRING_PATH": str(path)})
    assert_one_clear_line(refused, "does not open this database", own, other_kek)
