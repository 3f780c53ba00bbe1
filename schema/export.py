"""Print the SDL: ``python -m schema.export > schema/schema.graphql`` (a test keeps it current)."""

from __future__ import annotations

import sys
from pathlib import Path

from schema import build_schema
from server.settings import Settings

SDL_PATH = Path(__file__).with_name("schema.graphql")


def export_sdl() -> str:
    return build_schema(Settings()).as_str() + "\n"


if __name__ == "__main__":
    sys.stdout.write(export_sdl())
