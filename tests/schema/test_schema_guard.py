"""Access is denied by default: every field declares a permission, proven by walking the schema."""

from __future__ import annotations

from pathlib import Path

import pytest
import strawberry

import schema as schema_package
from schema import UnguardedFieldError, assert_every_field_guarded, build_schema, field_permissions
from schema.export import SDL_PATH, export_sdl
from schema.permissions import any_role
from server.auth.principal import Role
from server.settings import Settings
from tests.support.live_server import LiveServer

INTROSPECT_FIELDS = """
{ __schema { types { name kind fields(includeDeprecated: true) { name } } } }
"""


def test_import_schema_resolves_inside_this_repository() -> None:
    """`schema` is also an unrelated PyPI package; ours must be the one imported."""
    repository = Path(__file__).resolve().parents[2]
    assert Path(schema_package.__file__).resolve().parent == repository / "schema"


def test_every_field_reachable_by_introspection_declares_a_permission(live_server: LiveServer) -> None:
    token = live_server.issue_key(Role.ADMIN)
    response = live_server.graphql(INTROSPECT_FIELDS, token=token)
    types = response.json()["data"]["__schema"]["types"]
    served = {
        (t["name"], f["name"])
        for t in types
        if t["kind"] == "OBJECT" and not t["name"].startswith("__")
        for f in t["fields"] or []
    }
    declared = {(type_name, field): roles for type_name, field, roles in field_permissions(build_schema(Settings()))}
    assert served, "introspection returned no fields"
    missing = sorted(pair for pair in served if declared.get(pair) is None)
    assert missing == []


@strawberry.type
class Leaky:
    secret: str = "x"


@strawberry.type
class LeakyQuery:
    leaky: Leaky = strawberry.field(default_factory=Leaky, extensions=any_role())


def test_a_schema_with_an_unguarded_field_is_refused() -> None:
    with pytest.raises(UnguardedFieldError, match=r"Leaky\.secret"):
        assert_every_field_guarded(strawberry.Schema(query=LeakyQuery))


def test_checked_in_sdl_is_current() -> None:
    assert SDL_PATH.read_text(encoding="utf-8") == export_sdl(), (
        "schema/schema.graphql is stale: run `python -m schema.export > schema/schema.graphql`"
    )
