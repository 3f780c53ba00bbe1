"""Imports point one way (docs/design.md): privacy is a leaf; identity reads batches through the
frame contracts, never through ingestion; only the app factory and its HTTP layer reach the schema.

Parsed from the source, not imported, so a wrong arrow fails here even if nothing runs it.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


def imported_modules(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module)
    return found


def wrong_arrows(package: str, forbidden: tuple[str, ...], *, allowed_files: frozenset[str] = frozenset()) -> list[str]:
    arrows = []
    for path in sorted((ROOT / package).rglob("*.py")):
        relative = path.relative_to(ROOT).as_posix()
        if relative in allowed_files:
            continue
        for module in sorted(imported_modules(path)):
            if any(module == f or module.startswith(f"{f}.") for f in forbidden):
                arrows.append(f"{relative} -> {module}")
    return arrows


@pytest.mark.parametrize(
    ("package", "forbidden"),
    [
        ("privacy", ("server", "schema", "strawberry", "starlette", "graphql")),
        ("server/frames", ("server.ingest", "server.identity", "server.consent", "schema")),
        ("server/identity", ("server.ingest", "schema")),
        ("server/profiles", ("server.ingest", "schema")),
        ("server/segments", ("server.ingest", "schema")),
        # Storage declares (the subject-table registry among it); the operations live above it.
        ("server/storage", ("server.identity", "server.profiles", "server.ingest", "server.consent", "schema")),
    ],
)
def test_a_lower_layer_imports_nothing_above_it(package: str, forbidden: tuple[str, ...]) -> None:
    assert wrong_arrows(package, forbidden) == []


def test_only_the_app_factory_and_its_http_layer_import_the_schema() -> None:
    factory_files = frozenset(
        path.relative_to(ROOT).as_posix() for path in (ROOT / "server" / "http").rglob("*.py")
    ) | {"server/app.py"}
    assert wrong_arrows("server", ("schema",), allowed_files=factory_files) == []


def test_the_checker_sees_a_wrong_arrow(tmp_path: Path) -> None:
    """The parse is what the tests above stand on: it must find ``from server.x import y``."""
    probe = tmp_path / "probe.py"
    probe.write_text("from server.ingest.validate import REJECT\nimport schema.errors\n", encoding="utf-8")
    assert imported_modules(probe) == {"server.ingest.validate", "schema.errors"}
