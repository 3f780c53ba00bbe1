"""What BI tools read over SQL: the ``audience_bi`` schema of views over ``bi_aggregates``, and the
database roles allowed to read it (PostgreSQL only).

Threat model: a BI tool holds a database login; whoever holds it (the tool, its admins, a leaked
dashboard credential) must get no more than an analyst gets over GraphQL. So the login is a role
that can read the views of ``audience_bi`` and nothing else:

- the views select released figures from ``bi_aggregates`` (``server.analytics.publish``): no
  subject id, no member list, no value below k exists there to be selected;
- a view runs with its owner's rights (PostgreSQL's default, ``security_invoker`` off): the views
  are created by the server's own role, which owns ``bi_aggregates``, so the BI role needs no
  right on any table; it gets ``USAGE`` on ``audience_bi`` and ``SELECT`` on its views only;
- PostgreSQL grants ``PUBLIC`` (hence every role) ``USAGE`` on schema ``public`` (``CREATE`` was
  removed in 15), ``CONNECT`` and ``TEMP`` on the database and nothing on tables: the BI role can
  see table *names* in the catalogue and their planner estimates (``pg_class.reltuples``: rough
  row counts of whole tables), but reading any row of a base table is refused;
- the role is ``NOINHERIT`` and a member of nothing, and marked by a comment so that ``revoke``
  never drops a role it did not create (the server's own login, say).

What it does not protect against: an operator who grants the role more by hand; a PostgreSQL
superuser. Names are checked against ``ROLE_NAME`` and always quoted as identifiers; the password
is sent only as a SCRAM-SHA-256 verifier computed on the client, so it never appears in statement
logs.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any, Final

import polars as pl
from psycopg import sql
from sqlalchemy import Connection, select
from sqlalchemy.orm import Session

from server.storage.tables import BiAggregateRow

__all__ = [
    "BI_SCHEMA",
    "BI_VIEWS",
    "PUBLISHED_SCHEMA",
    "ROLE_NAME",
    "SEGMENT_BREAKDOWN",
    "SEGMENT_SIZE",
    "BiView",
    "RoleRefused",
    "create_reader",
    "create_views",
    "drop_reader",
    "published_rows",
]

BI_SCHEMA: Final = "audience_bi"
ROLE_NAME: Final = re.compile(r"[a-z_][a-z0-9_]{0,62}")
"""Lower case, so a BI tool's user can type the name unquoted; ``pg_`` names are PostgreSQL's."""
ROLE_MARK: Final = "audience bi reader: created by `audience bi grant`"

SEGMENT_SIZE: Final = "segment_size"
SEGMENT_BREAKDOWN: Final = "segment_breakdown"

PUBLISHED_SCHEMA: Final = pl.Schema(
    {
        "aggregate": pl.String(),
        "subject_label": pl.String(),
        "dimension": pl.String(),
        "cell": pl.String(),
        "value": pl.Int64(),
        "suppressed": pl.String(),
        "low": pl.Int64(),
        "high": pl.Int64(),
        "method": pl.String(),
        "noise_scale": pl.Float64(),
        "as_of": pl.Datetime("us", "UTC"),
    }
)
_FIGURE: Final = (
    ("members", "value"),
    ("suppressed", "suppressed"),
    ("low", "low"),
    ("high", "high"),
    ("method", "method"),
    ("noise_scale", "noise_scale"),
    ("as_of", "as_of"),
)


@dataclass(frozen=True, slots=True)
class BiView:
    """One view of ``audience_bi`` (and one Parquet file of the export): the published rows of one
    aggregate (every row when ``aggregate`` is None), its columns renamed for a BI tool."""

    name: str
    aggregate: str | None
    columns: tuple[tuple[str, str], ...]
    """(view column, ``bi_aggregates`` column)."""
    description: str

    def frame(self, published: pl.DataFrame) -> pl.DataFrame:
        """This view's rows from ``published_rows``: what the view shows, computed in Polars."""
        rows = published if self.aggregate is None else published.filter(pl.col("aggregate") == self.aggregate)
        return rows.sort("subject_label", "dimension", "cell", nulls_last=False).select(
            pl.col(source).alias(name) for name, source in self.columns
        )


BI_VIEWS: Final = (
    BiView(
        "segment_sizes",
        SEGMENT_SIZE,
        (("segment", "subject_label"), *_FIGURE),
        "Countable members of each segment, as released to analysts.",
    ),
    BiView(
        "segment_breakdowns",
        SEGMENT_BREAKDOWN,
        (("segment", "subject_label"), ("dimension", "dimension"), ("cell", "cell"), *_FIGURE),
        "Each segment's countable members by lifecycle, value tier, age band and region.",
    ),
    BiView(
        "aggregates",
        None,
        tuple(("label" if name == "subject_label" else name, name) for name in PUBLISHED_SCHEMA.names()),
        "Every published aggregate, in the published table's own shape.",
    ),
)


class RoleRefused(Exception):
    """The role cannot be granted or revoked as asked; the message says why and names no secret."""


def published_rows(session: Session) -> pl.DataFrame:
    """Every published row (``PUBLISHED_SCHEMA``): a few per segment, read whole."""
    columns = [getattr(BiAggregateRow, name) for name in PUBLISHED_SCHEMA.names()]
    rows = session.execute(select(*columns).order_by(BiAggregateRow.id)).all()
    return pl.DataFrame([tuple(row) for row in rows], schema=PUBLISHED_SCHEMA, orient="row")


def _driver(connection: Connection) -> Any:
    """The psycopg connection under ``connection``, in its transaction: for ``psycopg.sql`` quoting."""
    return connection.connection.driver_connection


def _view_sql(view: BiView, table_schema: str) -> sql.Composed:
    columns = sql.SQL(", ").join(
        sql.SQL("{} AS {}").format(sql.Identifier(source), sql.Identifier(name)) for name, source in view.columns
    )
    where = (
        sql.SQL("") if view.aggregate is None else sql.SQL(" WHERE aggregate = {}").format(sql.Literal(view.aggregate))
    )
    return sql.SQL("CREATE OR REPLACE VIEW {}.{} AS SELECT {} FROM {}.{}{}").format(
        sql.Identifier(BI_SCHEMA),
        sql.Identifier(view.name),
        columns,
        sql.Identifier(table_schema),
        sql.Identifier(BiAggregateRow.__tablename__),
        where,
    )


def create_views(connection: Connection) -> None:
    """(Re)create ``audience_bi`` and its views, owned by this connection's role (which owns the table)."""
    driver = _driver(connection)
    with driver.cursor() as cursor:
        table_schema = cursor.execute("SELECT current_schema()").fetchone()[0]
        cursor.execute(sql.SQL("CREATE SCHEMA IF NOT EXISTS {}").format(sql.Identifier(BI_SCHEMA)))
        for view in BI_VIEWS:
            cursor.execute(_view_sql(view, table_schema))
            cursor.execute(
                sql.SQL("COMMENT ON VIEW {}.{} IS {}").format(
                    sql.Identifier(BI_SCHEMA), sql.Identifier(view.name), sql.Literal(view.description)
                )
            )


def _checked(name: str) -> str:
    if not ROLE_NAME.fullmatch(name) or name.startswith("pg_"):
        raise RoleRefused(
            "a role name is 1-63 characters of lower-case letters, digits and _, starting with a letter or _, "
            "and not pg_"
        )
    return name


def _role_state(cursor: Any, name: str) -> tuple[bool, bool]:
    """(the role exists, it carries the mark of a BI reader)."""
    row = cursor.execute(
        "SELECT shobj_description(oid, 'pg_authid') FROM pg_roles WHERE rolname = %s", (name,)
    ).fetchone()
    return row is not None, row is not None and row[0] == ROLE_MARK


def create_reader(connection: Connection, name: str, password: str) -> None:
    """Create login role ``name`` that may read the views of ``audience_bi`` and nothing else.
    Raises ``RoleRefused`` for a bad name or a role that exists already (it is never taken over)."""
    role = sql.Identifier(_checked(name))
    schema = sql.Identifier(BI_SCHEMA)
    driver = _driver(connection)
    with driver.cursor() as cursor:
        exists, _ = _role_state(cursor, name)
        if exists:
            raise RoleRefused("a role of that name exists already: choose another name (or revoke it first)")
        create_views(connection)
        verifier = driver.pgconn.encrypt_password(password.encode(), name.encode(), b"scram-sha-256").decode()
        database = cursor.execute("SELECT current_database()").fetchone()[0]
        statements = (
            sql.SQL("CREATE ROLE {} LOGIN NOINHERIT NOSUPERUSER NOCREATEDB NOCREATEROLE NOREPLICATION PASSWORD {}"),
            sql.SQL("COMMENT ON ROLE {} IS {}"),
            sql.SQL("ALTER ROLE {} IN DATABASE {} SET search_path = {}"),
            sql.SQL("GRANT CONNECT ON DATABASE {} TO {}"),
            sql.SQL("GRANT USAGE ON SCHEMA {} TO {}"),
        )
        cursor.execute(statements[0].format(role, sql.Literal(verifier)))
        cursor.execute(statements[1].format(role, sql.Literal(ROLE_MARK)))
        cursor.execute(statements[2].format(role, sql.Identifier(database), schema))
        cursor.execute(statements[3].format(sql.Identifier(database), role))
        cursor.execute(statements[4].format(schema, role))
        for view in BI_VIEWS:
            cursor.execute(sql.SQL("GRANT SELECT ON {}.{} TO {}").format(schema, sql.Identifier(view.name), role))


def drop_reader(connection: Connection, name: str) -> None:
    """Drop a role made by ``create_reader``, with everything it was granted in this database.
    Raises ``RoleRefused`` for a role that does not exist or was not made by ``create_reader``."""
    role = sql.Identifier(_checked(name))
    driver = _driver(connection)
    with driver.cursor() as cursor:
        exists, marked = _role_state(cursor, name)
        if not exists:
            raise RoleRefused("no role of that name exists")
        if not marked:
            raise RoleRefused("that role was not created by `audience bi grant`; it is left as it is")
        database = cursor.execute("SELECT current_database()").fetchone()[0]
        schema_exists = cursor.execute("SELECT 1 FROM pg_namespace WHERE nspname = %s", (BI_SCHEMA,)).fetchone()
        if schema_exists is not None:
            cursor.execute(
                sql.SQL("REVOKE ALL ON ALL TABLES IN SCHEMA {} FROM {}").format(sql.Identifier(BI_SCHEMA), role)
            )
            cursor.execute(sql.SQL("REVOKE ALL ON SCHEMA {} FROM {}").format(sql.Identifier(BI_SCHEMA), role))
        cursor.execute(sql.SQL("REVOKE ALL ON DATABASE {} FROM {}").format(sql.Identifier(database), role))
        cursor.execute(sql.SQL("DROP ROLE {}").format(role))
