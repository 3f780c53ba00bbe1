"""``audience audit search`` as an operator runs it: a table of the person's entries, paged with
``--after``, and never the identifier typed, neither in the output nor in any refusal."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest
from sqlalchemy import select

from privacy.consent import ConsentPurpose
from privacy.identifiers import IdentifierKind
from server.consent.requests import RawIdentifier
from server.runtime import build_runtime
from server.settings import Settings
from server.storage.tables import AuditEntryRow
from tests.profiles.consent_steps import record_purpose
from tests.support.cli import run_audience

EMAIL = "cli.searched@example.org"
OTHER = "cli.other@example.org"


class Installation:
    def __init__(self, directory: Path, database_url: str) -> None:
        self.directory = directory
        self.env = {"AUDIENCE_DATA_DIR": str(directory / "data"), "AUDIENCE_DATABASE_URL": database_url}
        self.settings = Settings(data_dir=directory / "data", database_url=database_url)

    def audience(self, *args: str) -> subprocess.CompletedProcess[str]:
        return run_audience(*args, directory=self.directory, env=self.env)

    def grant(self, email: str, purpose: ConsentPurpose) -> str:
        """Records consent as the GraphQL mutation does; returns the audit target it wrote."""
        runtime = build_runtime(self.settings)
        try:
            record_purpose(runtime, RawIdentifier(IdentifierKind.EMAIL, email), purpose, policy_version="2026-10")
            with runtime.sessions() as session:
                return str(session.scalars(select(AuditEntryRow.target).order_by(AuditEntryRow.seq.desc())).first())
        finally:
            runtime.dispose()

    def audit_rows(self) -> list[AuditEntryRow]:
        runtime = build_runtime(self.settings)
        try:
            with runtime.sessions() as session:
                return list(session.scalars(select(AuditEntryRow).order_by(AuditEntryRow.seq)))
        finally:
            runtime.dispose()


@pytest.fixture
def installation(tmp_path: Path, database_url: str) -> Installation:
    installed = Installation(tmp_path, database_url)
    assert installed.audience("init").returncode == 0
    return installed


def test_search_by_email_prints_the_persons_entries_a_page_at_a_time(installation: Installation) -> None:
    mine = installation.grant(EMAIL, ConsentPurpose.ANALYTICS)
    theirs = installation.grant(OTHER, ConsentPurpose.ANALYTICS)
    installation.grant(EMAIL, ConsentPurpose.PROFILING)

    everything = installation.audience("audit", "search", "--email", f" {EMAIL.upper()}")
    assert everything.returncode == 0, everything.stderr
    assert everything.stdout.count(mine) == 2
    assert theirs not in everything.stdout
    assert "more entries follow" not in everything.stdout

    first = installation.audience("audit", "search", "--email", EMAIL, "--action", "consent.grant", "--limit", "1")
    assert first.stdout.count(mine) == 1
    assert "purpose=analytics" in first.stdout
    hint = first.stdout.strip().splitlines()[-1]
    assert hint.startswith("more entries follow: run again with --after ")
    after = hint.rsplit(" ", 1)[1]
    second = installation.audience("audit", "search", "--email", EMAIL, "--after", after)
    assert "purpose=profiling" in second.stdout
    assert "purpose=analytics" not in second.stdout

    none = installation.audience("audit", "search", "--email", EMAIL, "--since", "2999-01-01")
    assert mine not in none.stdout
    for result in (everything, first, second, none):
        assert "cli.searched" not in result.stdout + result.stderr
    searches = [row for row in installation.audit_rows() if row.action == "audit.search"]
    assert len(searches) == 4
    assert all("cli.searched" not in repr(row.details) for row in searches)


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (("--email", "cli.searched.at.example.org"), "error: --email: "),
        (("--phone", "call cli.searched"), "error: --phone: "),
        (("--since", "2026-05-02", "--until", "2026-05-01"), "error: since must not be later than until"),
        (("cli.searched@example.org",), "unrecognized arguments (see --help)"),
        (("--email", EMAIL, "--limit", "cli.searched"), "--limit: must be a whole number"),
        (("--since", "cli.searched"), "--since: must be an ISO 8601 date or time"),
    ],
)
def test_refusals_are_one_line_without_what_was_typed(
    installation: Installation, args: tuple[str, ...], expected: str
) -> None:
    result = installation.audience("audit", "search", *args)
    assert result.returncode == 2
    assert expected in result.stderr
    assert "cli.searched" not in result.stdout + result.stderr


@pytest.mark.parametrize(
    "argv",
    [
        ["cli.searched@example.org"],  # invalid choice of command
        ["audit", "search", "--emial=cli.searched@example.org"],  # unrecognized
        ["audit", "search", "--a=cli.searched"],  # ambiguous: --action or --after
    ],
)
def test_argument_slips_are_worded_without_the_value(argv: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    from server.cli.main import main

    with pytest.raises(SystemExit) as exited:
        main(argv)
    assert exited.value.code == 2
    printed = capsys.readouterr()
    assert "error:" in printed.err
    assert "cli.searched" not in printed.out + printed.err
