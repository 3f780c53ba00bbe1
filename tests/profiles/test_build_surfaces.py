"""The build as operators start it: ``audience build`` in a process of its own, and the admin
mutation over HTTP on a real server, whose run an analyst follows to its end."""

from __future__ import annotations

import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from privacy.keyring import Keyring
from server.auth.principal import SYSTEM_ACTOR, Role
from server.profiles.build_runs import BuildErrorCode, abandon_stale, begin_run, build_run, fail_run
from server.runtime import Runtime, build_runtime
from server.settings import Settings
from tests.profiles.states import assert_same_state, remove_all_state, rows, stored_state
from tests.profiles.streams import people, send, stream
from tests.support.cli import run_audience
from tests.support.live_server import LiveServer, serving

POLL_LIMIT_S = 120.0  # a bound on waiting for a background build, not a measured time


def plant_running_run(runtime: Runtime) -> int:
    """A run recorded as running, heartbeat now: another process's build in progress."""
    with runtime.unit_of_work(SYSTEM_ACTOR) as unit:
        abandon_stale(unit.session, now=datetime.now(UTC))
        return begin_run(unit.session, now=datetime.now(UTC), partitions=2, settings={}).id


def end_run(runtime: Runtime, run_id: int) -> None:
    with runtime.unit_of_work(SYSTEM_ACTOR) as unit:
        fail_run(unit.session, run_id, now=datetime.now(UTC), code=BuildErrorCode.INTERRUPTED, message="test")


def test_audience_build_rebuilds_every_profile_and_says_how_it_went(tmp_path: Path, database_url: str) -> None:
    env = {"AUDIENCE_DATA_DIR": str(tmp_path / "data"), "AUDIENCE_DATABASE_URL": database_url}
    assert run_audience("init", directory=tmp_path, env=env).returncode == 0
    runtime = build_runtime(Settings(data_dir=tmp_path / "data", database_url=database_url))
    try:
        send(runtime, stream(people(12), seed=5))
        real_time = stored_state(runtime)
        remove_all_state(runtime)

        built = run_audience("build", "--partitions", "3", directory=tmp_path, env=env)

        assert built.returncode == 0, built.stderr
        summary = built.stdout.strip().splitlines()[-1]
        assert summary.startswith(
            f"build 1 succeeded: 3 of 3 partitions, 108 events read, 9 profiles, {rows(real_time)}"
        )
        assert "value tiers: high from " in summary
        assert_same_state(stored_state(runtime), real_time)

        running = plant_running_run(runtime)
        refused = run_audience("build", directory=tmp_path, env=env)
        assert refused.returncode == 2
        [line] = refused.stderr.strip().splitlines()
        assert line.startswith(f"error: a profile build is already running (run {running}, 0 of 2 partitions")
        with runtime.sessions() as session:
            assert build_run(session, running + 1) is None, "the refused build recorded nothing"
    finally:
        runtime.dispose()


def test_an_admin_starts_a_build_over_http_and_an_analyst_follows_it_to_success(
    tmp_path: Path, database_url: str, keyring: Keyring
) -> None:
    with serving(directory=tmp_path / "server", database_url=database_url, keyring=keyring) as server:
        send(server.runtime, stream(people(12), seed=7))
        real_time = stored_state(server.runtime)
        remove_all_state(server.runtime)
        admin, analyst, marketer = (server.issue_key(role) for role in (Role.ADMIN, Role.ANALYST, Role.MARKETER))

        started = server.graphql(
            "mutation { startProfileBuild(partitions: 3) { build { id status partitions } errors { code } } }",
            token=admin,
        ).json()["data"]["startProfileBuild"]

        assert started["errors"] == []
        build = started["build"]
        assert build["partitions"] == 3
        assert build["status"] in {"RUNNING", "SUCCEEDED"}
        seen = follow(server, admin, build["id"])
        assert seen[-1]["status"] == "SUCCEEDED", seen[-1]
        assert [s["partitionsDone"] for s in seen] == sorted(s["partitionsDone"] for s in seen), "progress only grows"
        assert (seen[-1]["partitionsDone"], seen[-1]["eventsRead"]) == (3, 108)
        assert seen[-1]["subjects"] == {"value": 9, "suppressed": None}, "exact for admins"
        assert seen[-1]["cutPoints"]["buyers"] > 0
        # For an analyst the profiles written are a count of people like any other: 9 is below k.
        # The cut points are buyers' revenues: admins only.
        told = server.graphql(FOLLOW_ANALYST, token=analyst, variables={"id": build["id"]}).json()["data"]
        assert told["profileBuild"]["subjects"] == {"value": None, "suppressed": "below_k"}
        cut = server.graphql(FOLLOW, token=analyst, variables={"id": build["id"]}).json()
        assert {error["extensions"]["code"] for error in cut["errors"]} == {"FORBIDDEN"}
        assert_same_state(stored_state(server.runtime), real_time)
        history = server.graphql("{ profileBuilds(first: 5) { id status } }", token=analyst).json()["data"]
        assert history == {"profileBuilds": [{"id": build["id"], "status": "SUCCEEDED"}]}
        forbidden = server.graphql("{ profileBuilds { id } }", token=marketer).json()
        assert forbidden["errors"][0]["extensions"]["code"] == "FORBIDDEN"

        running = plant_running_run(server.runtime)
        again = server.graphql(
            "mutation { startProfileBuild { build { id } errors { field code message } } }", token=admin
        ).json()["data"]["startProfileBuild"]
        assert again["build"] is None
        assert [e["code"] for e in again["errors"]] == ["BUILD_RUNNING"]
        assert f"run {running}" in again["errors"][0]["message"]
        end_run(server.runtime, running)
        wrong = server.graphql(
            "mutation { startProfileBuild(partitions: 0) { build { id } errors { field code } } }", token=admin
        ).json()["data"]["startProfileBuild"]
        assert wrong == {"build": None, "errors": [{"field": "partitions", "code": "INVALID_PARTITIONS"}]}


FOLLOW = (
    "query($id: Int!) { profileBuild(id: $id) { status partitionsDone eventsRead subjects { value suppressed } "
    "cutPoints { buyers } } }"
)
FOLLOW_ANALYST = "query($id: Int!) { profileBuild(id: $id) { status subjects { value suppressed } } }"


def follow(server: LiveServer, token: str, run_id: int) -> list[dict[str, Any]]:
    """Every state the run was seen in, polling until it ends (or the bound passes)."""
    seen: list[dict[str, Any]] = []
    deadline = time.monotonic() + POLL_LIMIT_S
    while time.monotonic() < deadline:
        found = server.graphql(FOLLOW, token=token, variables={"id": run_id}).json()["data"]["profileBuild"]
        seen.append(found)
        if found["status"] != "RUNNING":
            break
        time.sleep(0.05)
    return seen
