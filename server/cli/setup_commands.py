"""init, migrate, serve and demo."""

from __future__ import annotations

import argparse
import os
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, cast

import uvicorn
from pydantic import SecretStr
from rich.console import Console
from rich.progress import BarColumn, Progress, TaskProgressColumn, TextColumn
from sqlalchemy import select

from privacy.keyring import KeyringError, generate_keyring, write_keyring_file
from privacy.message_keys import MessageKeys
from privacy.private_files import make_private_directory
from server.auth import api_keys
from server.auth.principal import SYSTEM_ACTOR, Role
from server.cli.build_commands import build_with_progress, summary_line
from server.cli.errors import CliError
from server.cli.import_commands import summary_table
from server.cli.progress import rows_progress
from server.demo import FORMATS, Format, generate_to_directory
from server.demo import load as demo_load
from server.demo.segments import create_demo_segments
from server.ingest.files import EventChunk
from server.ingest.service import IngestResult
from server.keys.binding import check_keyring_before_migrating, refuse_new_keyring_for_populated_database
from server.observability.logs import configure_logging
from server.runtime import Runtime, build_runtime, keyring_origin, load_keyring
from server.settings import Settings, load_settings
from server.storage import migrate
from server.storage.engine import build_engine
from server.storage.failures import creating_storage
from server.storage.tables import ApiKeyRow

DEMO_DATA_DIR = ".audience/demo"
DEMO_PEOPLE = 20_000
DEMO_SEED = 7


def register(commands: Any) -> None:
    init = commands.add_parser("init", help="create the data directory, keyring, database and first admin key")
    init.set_defaults(handler=run_init)

    migrate_parser = commands.add_parser("migrate", help="upgrade the database schema to the latest revision")
    migrate_parser.add_argument("--revision", default="head", help="target revision (default: head)")
    migrate_parser.set_defaults(handler=run_migrate)

    serve = commands.add_parser("serve", help="serve GraphQL, /healthz, /readyz and /metrics")
    serve.add_argument("--host", help="bind address (default: AUDIENCE_HOST or 127.0.0.1)")
    serve.add_argument("--port", type=int, help="port (default: AUDIENCE_PORT or 8000)")
    serve.set_defaults(handler=run_serve)

    demo = commands.add_parser("demo", help="start the server on SQLite with demo data and GraphiQL")
    demo.add_argument("--port", type=int, default=None, help="port (default: 8000)")
    demo.add_argument("--no-serve", action="store_true", help="prepare the demo database and exit")
    demo.add_argument(
        "--people",
        type=int,
        default=DEMO_PEOPLE,
        help=f"people to generate into an empty demo database (default {DEMO_PEOPLE:,})",
    )
    demo.add_argument("--seed", type=int, default=DEMO_SEED, help=f"generator seed (default {DEMO_SEED})")
    demo.set_defaults(handler=run_demo)
    demo_actions = demo.add_subparsers(dest="demo_command", metavar="ACTION")
    generate = demo_actions.add_parser(
        "generate", help="write a fictitious population to files (CSV, NDJSON, Parquet) for `audience import`"
    )
    generate.add_argument("--out", type=Path, required=True, help="directory to write into (created if missing)")
    generate.add_argument("--people", type=int, default=DEMO_PEOPLE, help=f"people (default {DEMO_PEOPLE:,})")
    generate.add_argument("--seed", type=int, default=DEMO_SEED, help=f"generator seed (default {DEMO_SEED})")
    generate.add_argument("--days", type=int, default=180, help="days of history, ending now (default 180)")
    generate.add_argument(
        "--formats", default=",".join(FORMATS), help=f"comma-separated, from {', '.join(FORMATS)} (default: all)"
    )
    generate.set_defaults(handler=run_demo_generate)


def run_init(_arguments: argparse.Namespace, console: Console) -> int:
    settings = load_settings()
    initialize(settings, console)
    return 0


def initialize(settings: Settings, console: Console, *, show_token: bool = True) -> str | None:
    """Idempotent: creates only what is missing. Returns a new admin token if one was created."""
    with creating_storage():
        make_private_directory(settings.data_dir)
    if settings.keyring is None and not settings.effective_keyring_path.exists():
        _refuse_to_rekey(settings)
        write_keyring_file(settings.effective_keyring_path, generate_keyring())
        console.print(f"created keyring {settings.effective_keyring_path} (mode 0600) - back it up; see docs/keys.md")
    _upgrade(settings, console, "head")
    runtime = build_runtime(settings)  # after the upgrade: it checks the keyring against the database
    try:
        with runtime.unit_of_work(SYSTEM_ACTOR) as unit:
            has_admin = unit.session.scalar(select(ApiKeyRow.id).where(ApiKeyRow.role == Role.ADMIN.value).limit(1))
            if has_admin is not None:
                console.print("an admin key exists already; create more with `audience keys create --role admin`")
                return None
            issued = api_keys.create_key(unit.session, role=Role.ADMIN, label="first admin", now=unit.clock())
            unit.audit("api_key.create", target=f"api_key:{issued.key_id}", details={"role": "admin"})
        if show_token:
            console.print("first admin key (shown once, store it now):")
            console.print(issued.token, soft_wrap=True)
        return issued.token
    finally:
        runtime.dispose()


def _refuse_to_rekey(settings: Settings) -> None:
    engine = build_engine(settings.effective_database_url)
    try:
        refuse_new_keyring_for_populated_database(engine, str(settings.effective_keyring_path))
    finally:
        engine.dispose()


def run_migrate(arguments: argparse.Namespace, console: Console) -> int:
    _upgrade(load_settings(), console, arguments.revision)
    return 0


def _upgrade(settings: Settings, console: Console, revision: str) -> None:
    """Runs before the runtime: the runtime's keyring check needs the latest schema.

    The keyring is optional: only a revision that rewrites stored values under it (0007 hashes
    message ids) needs it, and such a rewrite happens only once the keyring is shown to open the
    database, so a wrong keyring can never hash what the right one will later look up.
    """
    message_keys: MessageKeys | None = None
    unloadable: KeyringError | None = None
    try:
        keyring = load_keyring(settings)
    except KeyringError as error:
        unloadable = error
    else:
        message_keys = MessageKeys(keyring)
    engine = build_engine(settings.effective_database_url)
    try:
        if message_keys is not None:
            check_keyring_before_migrating(engine, keyring, origin=keyring_origin(settings))
        with console.status(f"migrating to {revision}"):
            migrate.upgrade(engine, revision, message_keys=message_keys)
        console.print(f"database at revision {migrate.current_revision(engine)}")
    except migrate.KeyringNeeded as needed:
        raise CliError(str(unloadable or needed)) from None  # why the keyring is missing, when we know
    finally:
        engine.dispose()


def run_serve(arguments: argparse.Namespace, console: Console) -> int:
    overrides = {k: v for k, v in {"host": arguments.host, "port": arguments.port}.items() if v is not None}
    settings = load_settings(**overrides)
    serve(settings, console)
    return 0


def serve(settings: Settings, console: Console) -> None:
    """Check everything that would fail later (keyring, database, migrations) before binding."""
    runtime = build_runtime(settings)
    try:
        if not migrate.is_at_head(runtime.engine):
            raise CliError("the database is not at the latest migration; run `audience migrate` (or `audience init`)")
    finally:
        runtime.dispose()
    # Workers rebuild settings from the environment; secrets are left where they came from
    # (a SecretStr would be written out masked).
    secrets = {name for name, value in settings if isinstance(value, SecretStr)}
    for name, value in settings.model_dump(exclude_none=True, exclude=secrets).items():
        os.environ[f"AUDIENCE_{name.upper()}"] = str(value)
    configure_logging(settings.log_level)
    console.print(f"serving on http://{settings.host}:{settings.port}/graphql (Ctrl+C to stop)")
    uvicorn.run(
        "server.app:create_app_from_environment",
        factory=True,
        host=settings.host,
        port=settings.port,
        workers=settings.workers,
        log_config=None,
        access_log=False,
    )


def run_demo(arguments: argparse.Namespace, console: Console) -> int:
    if arguments.people < 1:
        raise CliError("--people must be at least 1")
    os.environ.setdefault("AUDIENCE_DATA_DIR", DEMO_DATA_DIR)
    os.environ["AUDIENCE_DEMO"] = "true"
    overrides: dict[str, object] = {} if arguments.port is None else {"port": arguments.port}
    settings = load_settings(**overrides)
    if settings.keyring is None and settings.effective_keyring_path.exists() is False:
        console.print("preparing the demo data directory")
    try:
        token = initialize(settings, console, show_token=False)
    except KeyringError as error:
        raise CliError(str(error)) from None
    if token is None:
        token = _demo_admin_token(settings)
    runtime = build_runtime(settings)
    try:
        if demo_load.has_events(runtime):
            demo_load.ensure_partners(runtime)
            console.print("the demo database has events already; delete the demo directory to start afresh")
            _load_demo_segments(runtime, console)  # a demo database made before segments existed gets them
        else:
            _load_demo_population(runtime, console, people=arguments.people, seed=arguments.seed)
        keys = [
            ("admin", token),
            *((key.label.removeprefix("demo "), key.token) for key in demo_load.issue_demo_keys(runtime)),
        ]
    finally:
        runtime.dispose()
    console.print("demo keys for this run (shown once; each is a bearer token):")
    for name, secret in keys:
        console.print(f"  {name:<14} {secret}", soft_wrap=True)
    console.print(
        f"try: curl -s http://{settings.host}:{settings.port}/graphql -H 'authorization: Bearer {token}' "
        "-H 'content-type: application/json' -d '{\"query\":\"{ viewer { role } }\"}'",
        soft_wrap=True,
    )
    if not arguments.no_serve:
        serve(settings, console)
    return 0


def _load_demo_population(runtime: Runtime, console: Console, *, people: int, seed: int) -> None:
    """Generated in memory and ingested through ``ingest_events``, then the banner's consent changes:
    nothing in clear reaches the disk."""
    with Progress(TextColumn("{task.description}"), BarColumn(), TaskProgressColumn(), console=console) as progress:
        generating = progress.add_task(f"generating {people:,} people in memory", total=1.0)

        def generated(_stage: str, fraction: float) -> None:
            progress.update(generating, completed=fraction)

        population = demo_load.generate(runtime, people=people, seed=seed, on_progress=generated)
    with rows_progress(console) as progress:
        ingesting = progress.add_task("ingesting", total=population.events.height, rows=0, rate=0.0)

        def chunk_done(chunk: EventChunk, _result: IngestResult) -> None:
            elapsed = progress.tasks[ingesting].elapsed or 0.0
            rate = chunk.done / elapsed if elapsed > 0 else 0.0
            progress.update(ingesting, completed=chunk.done, rows=chunk.done, rate=rate)

        totals = demo_load.load_population(runtime, population, on_chunk=chunk_done)
    console.print(summary_table(totals, title=f"demo population ({people:,} people, source {demo_load.DEMO_SOURCE})"))
    banner = demo_load.load_consent_changes(runtime, population)
    console.print(
        f"consent changes: {banner.received:,} from the banner ({banner.withdrawals:,} withdrawals), "
        f"{banner.recorded:,} ledger entries for {banner.subjects:,} subjects, {banner.unknown:,} naming no one known"
    )
    declared = demo_load.load_attributes(runtime, population)
    console.print(
        f"declared attributes: {declared.accepted:,} of {declared.received:,} people "
        f"({declared.fields_encrypted:,} PII fields encrypted, birth years kept as age bands)"
    )
    # Ingestion kept every profile current; a build adds what needs the whole population (the
    # value-tier cut points) and the first data-quality report.
    built = build_with_progress(runtime, console, partitions=None)
    console.print(f"profiles: {summary_line(built)}")
    _load_demo_segments(runtime, console)


def _load_demo_segments(runtime: Runtime, console: Console) -> None:
    """The templates, evaluated and granted to the demo partners; what exists already stays."""
    made = create_demo_segments(runtime)
    console.print(
        f"segments: {made.created:,} created from the templates, {made.grants:,} granted to the demo partners, "
        f"evaluated in {made.evaluation_ms:,} ms"
    )


def run_demo_generate(arguments: argparse.Namespace, console: Console) -> int:
    formats = [name.strip() for name in arguments.formats.split(",") if name.strip()]
    unknown = sorted(set(formats) - set(FORMATS))
    if unknown or not formats:
        raise CliError(f"--formats takes a comma-separated list from {', '.join(FORMATS)}")
    if arguments.people < 1 or arguments.days < 1:
        raise CliError("--people and --days must be at least 1")
    with Progress(TextColumn("{task.description}"), BarColumn(), TaskProgressColumn(), console=console) as progress:
        task = progress.add_task("generating", total=1.0)
        paths = generate_to_directory(
            arguments.out,
            people=arguments.people,
            days=arguments.days,
            seed=arguments.seed,
            end=datetime.now(UTC),
            formats=[cast(Format, name) for name in formats],
            progress=lambda stage, fraction: progress.update(task, description=stage, completed=fraction),
        )
    for path in paths:
        console.print(f"wrote {path}")
    console.print(
        "these files hold fictitious personal data (made-up names, emails, phones): treat them like real "
        "personal data, and delete them when done"
    )
    return 0


def _demo_admin_token(settings: Settings) -> str:
    """The demo prints a fresh admin key at each start so the tour always has one to paste."""
    runtime = build_runtime(settings)
    try:
        with runtime.unit_of_work(SYSTEM_ACTOR) as unit:
            issued = api_keys.create_key(unit.session, role=Role.ADMIN, label="demo admin", now=unit.clock())
            unit.audit("api_key.create", target=f"api_key:{issued.key_id}", details={"role": "admin"})
        return issued.token
    finally:
        runtime.dispose()
