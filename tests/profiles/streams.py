"""Event streams for the profile tests: people with and without ``profiling`` consent, purchases,
topics at several depths, devices that a later login merges into their person, times out of order.

Seeded, so a failure replays; batches are sent in turn, so the real-time path folds each one.
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from server.runtime import Runtime
from tests.ingest.batches import NOW, event, fixed_clock, ingest

TOPICS = (
    "sports",
    "sports/cycling",
    "sports/basketball",
    "travel",
    "automotive/auto-type/electric-vehicles",
    "technology-and-computing",
)
TYPES = ("page_view", "page_view", "click", "search", "add_to_cart", "purchase", "email_open", "signup")
CHANNELS = ("web", "app", "email")


@dataclass(frozen=True, slots=True)
class Person:
    email: str
    purposes: tuple[str, ...]

    @property
    def profiled(self) -> bool:
        return "profiling" in self.purposes


def people(count: int) -> list[Person]:
    """Every fourth person grants analytics only: their events are stored, they get no profile."""
    return [
        Person(f"person-{n}@example.org", ("analytics",) if n % 4 == 3 else ("analytics", "profiling"))
        for n in range(count)
    ]


def stream(everyone: Sequence[Person], *, seed: int, events_per_person: int = 12) -> list[list[dict[str, Any]]]:
    """Batches of events; a person's first events may come from a device seen alone, which a later
    event carrying both the device and the email merges into them."""
    rng = random.Random(seed)
    records: list[dict[str, Any]] = []
    for n, person in enumerate(everyone):
        device = f"device-{seed}-{n}"
        for k in range(events_per_person):
            kind = rng.choice(TYPES)
            identity: dict[str, Any] = {"email": person.email}
            if n % 3 == 0 and k < 2:
                identity = {"anonymous_id": device}  # alone: a subject of its own, until ...
            elif n % 3 == 0 and k == events_per_person - 1:
                identity = {"email": person.email, "anonymous_id": device}  # ... this merges it
            records.append(
                event(
                    **identity,
                    event=kind,
                    channel=rng.choice(CHANNELS),
                    timestamp=NOW - timedelta(minutes=rng.randrange(1, 60 * 24 * 90)),
                    topics=rng.sample(TOPICS, rng.randrange(0, 3)) or None,
                    amount=round(rng.uniform(5, 300), 2) if kind == "purchase" else None,
                    currency="EUR" if kind == "purchase" else None,
                    consent_purposes=list(person.purposes),
                )
            )
    # Devices first within each person (so the merge comes after them), otherwise shuffled.
    alone = [r for r in records if "email" not in r]
    rest = [r for r in records if "email" in r]
    rng.shuffle(rest)
    ordered = alone + rest
    size = max(1, len(ordered) // 5)
    return [ordered[i : i + size] for i in range(0, len(ordered), size)]


def send(runtime: Runtime, batches: Sequence[Sequence[dict[str, Any]]]) -> None:
    clocked = fixed_clock(runtime, NOW)
    for batch in batches:
        result = ingest(clocked, batch)
        assert result.rejected == [], result.rejected
