"""`audience bi` as an operator runs it: real processes, a real PostgreSQL role for the BI tool.

The role test is an attacker's: logged in as the BI role, read every base table (refused), look
for a column that could hold a subject id (none), and for a shown count below k (none)."""

from __future__ import annotations

import re
import secrets
from collections.abc import Iterator
from pathlib import Path

import polars as pl
import psycopg
import pytest
from psycopg import errors, sql
from sqlalchemy import create_engine, inspect, text
from sqlalchemy.engine import make_url

from server.runtime import Runtime, build_runtime
from server.settings import Settings
from server.storage.bi_schema import BI_SCHEMA, BI_VIEWS, published_rows
from tests.analytics.bi_population import EVERYONE, K, populate
from tests.ingest.batches import fixed_clock
from tests.support.cli import run_audience


@pytest.fixture
def cli_env(tmp_path: Path, database_url: str) -> dict[str, str]:
    env = {
        "AUDIENCE_DATABASE_URL": database_url,
        "AUDIENCE_DATA_DIR": str(tmp_path / "data"),
        "AUDIENCE_ANONYMITY_THRESHOLD": str(K),
    }
    assert run_audience("init", directory=tmp_path, env=env).returncode == 0
    return env


@pytest.fixture
def populated(cli_env: dict[str, str], tmp_path: Path, database_url: str) -> Iterator[Runtime]:
    """The CLI's database with the small population; the runtime reads the keyring ``init`` wrote."""
    settings = Settings(data_dir=tmp_path / "data", database_url=database_url, anonymity_threshold=K)
    runtime = fixed_clock(build_runtime(settings))
    try:
        populate(runtime)
        yield runtime
    finally:
        runtime.dispose()


def _published(runtime: Runtime) -> pl.DataFrame:
    with runtime.sessions() as session:
        return published_rows(session)


def test_export_publishes_first_and_writes_the_views_as_parquet(
    populated: Runtime, cli_env: dict[str, str], tmp_path: Path
) -> None:
    out = tmp_path / "bi"
    done = run_audience("bi", "export", str(out), directory=tmp_path, env=cli_env)
    assert done.returncode == 0, done.stderr
    published = _published(populated)
    assert published.height > 0, "nothing was published: export published first"
    assert sorted(p.name for p in out.iterdir()) == sorted(f"{view.name}.parquet" for view in BI_VIEWS)
    for view in BI_VIEWS:
        written = pl.read_parquet(out / f"{view.name}.parquet")
        assert written.equals(view.frame(published)), view.name
    everything = pl.read_parquet(out / "aggregates.parquet").rename({"label": "subject_label"})
    assert everything.equals(published.sort("subject_label", "dimension", "cell", nulls_last=False))
    shown = everything.filter(pl.col("value").is_not_null())["value"].to_list()
    assert shown
    assert min(shown) >= K + 15, "published counts are noisy: shown from the noisy threshold (k + 3 scales) up"
    assert not any("subject_id" in column for column in everything.columns)

    published_again = run_audience("bi", "publish", directory=tmp_path, env=cli_env)
    assert published_again.returncode == 0, published_again.stderr
    assert "aggregates published" in published_again.stdout
    again = run_audience("bi", "export", str(out), directory=tmp_path, env=cli_env)
    assert again.returncode == 0, again.stderr
    assert sorted(p.name for p in out.iterdir()) == sorted(f"{view.name}.parquet" for view in BI_VIEWS), "no temp"


@pytest.mark.parametrize("backend", ["sqlite"])
def test_grant_on_sqlite_is_refused_with_what_to_do_instead(cli_env: dict[str, str], tmp_path: Path) -> None:
    refused = run_audience("bi", "grant", "metabase", directory=tmp_path, env=cli_env)
    assert refused.returncode == 2
    assert "PostgreSQL" in refused.stderr
    assert "audience bi export" in refused.stderr
    assert "Traceback" not in refused.stderr


def _role_name() -> str:
    return f"bi_test_{secrets.token_hex(4)}"


def _connect_as(database_url: str, role: str, password: str) -> psycopg.Connection[tuple[object, ...]]:
    url = make_url(database_url)
    return psycopg.connect(
        host="127.0.0.1", port=url.port or 5432, dbname=url.database, user=role, password=password, autocommit=True
    )


def _drop_role(database_url: str, role: str) -> None:
    """Whatever the test left: the role is cluster-wide, the database is not."""
    engine = create_engine(database_url, isolation_level="AUTOCOMMIT")
    try:
        with engine.connect() as connection:
            if connection.execute(text("SELECT 1 FROM pg_roles WHERE rolname = :r"), {"r": role}).first():
                connection.exec_driver_sql(f'DROP OWNED BY "{role}"')  # a test name: [a-z0-9_] only
                connection.exec_driver_sql(f'DROP ROLE "{role}"')
    finally:
        engine.dispose()


def _base_tables(database_url: str) -> list[str]:
    engine = create_engine(database_url)
    try:
        return inspect(engine).get_table_names()
    finally:
        engine.dispose()


@pytest.mark.parametrize("backend", ["postgresql"])
def test_the_bi_role_reads_the_views_and_nothing_else(
    populated: Runtime, cli_env: dict[str, str], tmp_path: Path, database_url: str
) -> None:
    role = _role_name()
    password_file = tmp_path / "password"
    password = secrets.token_urlsafe(24)
    password_file.write_text(password + "\n")
    assert run_audience("bi", "publish", directory=tmp_path, env=cli_env).returncode == 0
    try:
        granted = run_audience(
            "bi", "grant", role, "--password-file", str(password_file), directory=tmp_path, env=cli_env
        )
        assert granted.returncode == 0, granted.stderr
        assert password not in granted.stdout + granted.stderr

        tables = _base_tables(database_url)
        assert {"subjects", "events", "segment_memberships", "consent_state", "bi_aggregates"} <= set(tables)
        with _connect_as(database_url, role, password) as bi:
            for table in tables:
                with pytest.raises(errors.InsufficientPrivilege):
                    bi.execute(sql.SQL("SELECT * FROM public.{} LIMIT 1").format(sql.Identifier(table)))
            with pytest.raises(errors.InsufficientPrivilege):
                bi.execute(sql.SQL("CREATE TABLE {}.mine (n int)").format(sql.Identifier(BI_SCHEMA)))

            readable = bi.execute(
                "SELECT table_schema, table_name, column_name FROM information_schema.columns "
                "WHERE table_schema NOT IN ('pg_catalog', 'information_schema')"
            ).fetchall()
            assert {schema for schema, _, _ in readable} == {BI_SCHEMA}, "no other relation is visible to it"
            assert {name for _, name, _ in readable} == {view.name for view in BI_VIEWS}
            assert not [c for _, _, c in readable if re.search(r"subject|^id$|member_id|pseudonym", str(c))]

            sizes = {row[0]: row[1] for row in bi.execute("SELECT segment, members FROM segment_sizes")}  # search_path
            assert sizes[EVERYONE] is not None
            for view in BI_VIEWS:
                cursor = bi.execute(
                    sql.SQL("SELECT * FROM {}.{}").format(sql.Identifier(BI_SCHEMA), sql.Identifier(view.name))
                )
                names = [column.name for column in cursor.description or []]
                frame = pl.DataFrame(cursor.fetchall(), schema=names, orient="row")
                for column in ("members", "value"):
                    if column in frame.columns:
                        shown = frame[column].drop_nulls().to_list()
                        assert all(value >= K + 15 for value in shown), (view.name, column)

        revoked = run_audience("bi", "revoke", role, directory=tmp_path, env=cli_env)
        assert revoked.returncode == 0, revoked.stderr
        with pytest.raises(psycopg.OperationalError):
            _connect_as(database_url, role, password).close()
    finally:
        _drop_role(database_url, role)


@pytest.mark.parametrize("backend", ["postgresql"])
def test_grant_prints_a_generated_password_once_and_never_takes_over_a_role(
    cli_env: dict[str, str], tmp_path: Path, database_url: str
) -> None:
    role = _role_name()
    try:
        granted = run_audience("bi", "grant", role, directory=tmp_path, env=cli_env)
        assert granted.returncode == 0, granted.stderr
        password = granted.stdout.strip().splitlines()[-1]
        with _connect_as(database_url, role, password) as bi:
            assert bi.execute("SELECT count(*) FROM segment_sizes").fetchone() == (0,)
        engine = create_engine(database_url)
        with engine.connect() as admin:
            stored = admin.execute(text("SELECT rolpassword FROM pg_authid WHERE rolname = :r"), {"r": role}).scalar()
        engine.dispose()
        assert str(stored).startswith("SCRAM-SHA-256$"), "only the verifier reaches the server"

        twice = run_audience("bi", "grant", role, directory=tmp_path, env=cli_env)
        assert twice.returncode == 2
        assert "exists already" in twice.stderr
        for foreign in ("postgres", "not_a_role_here"):
            kept = run_audience("bi", "revoke", foreign, directory=tmp_path, env=cli_env)
            assert kept.returncode == 2, foreign
        bad = run_audience("bi", "grant", 'x"; DROP TABLE subjects; --', directory=tmp_path, env=cli_env)
        assert bad.returncode == 2
        assert "role name" in bad.stderr
        assert "subjects" in _base_tables(database_url)
    finally:
        _drop_role(database_url, role)
