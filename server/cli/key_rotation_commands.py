"""keys rotate-kek | retire-kek | status: the key-encryption key's life cycle."""

from __future__ import annotations

import argparse
import dataclasses
from typing import Any

from rich.console import Console
from rich.table import Table

from privacy.keyring import KeyPurpose
from server.auth.principal import SYSTEM_ACTOR
from server.cli.errors import CliError
from server.cli.progress import counted_progress
from server.keys.rotation import (
    REWRAP_BATCH,
    RewrapBatch,
    add_kek_version,
    count_outdated,
    deks_per_kek_version,
    retire_kek_version,
    rewrap_outdated,
)
from server.privacy_kit import build_kit
from server.runtime import build_runtime, keyring_origin, load_keyring
from server.settings import load_settings

KEK = KeyPurpose.KEK
ENVIRONMENT_KEYRING = (
    "the keyring comes from AUDIENCE_KEYRING, which this command cannot change: save it to a file with mode 0600, "
    "run the command again with AUDIENCE_KEYRING unset and AUDIENCE_KEYRING_PATH naming that file, "
    "then put the file's new contents into AUDIENCE_KEYRING"
)


def register(keys: Any) -> None:
    rotate = keys.add_parser(
        "rotate-kek",
        help="add a KEK version and re-wrap every data key under it; run again to finish an interrupted rotation",
    )
    rotate.add_argument(
        "--batch-size", type=_positive, default=REWRAP_BATCH, help=f"data keys per transaction (default {REWRAP_BATCH})"
    )
    rotate.add_argument(
        "--force-new-version",
        action="store_true",
        help="add another version even though data keys are still under older ones (e.g. the current KEK leaked)",
    )
    rotate.set_defaults(handler=run_rotate_kek)
    retire = keys.add_parser("retire-kek", help="remove a KEK version no data key is wrapped under any more")
    retire.add_argument("version", type=_positive)
    retire.set_defaults(handler=run_retire_kek)
    keys.add_parser("status", help="key versions in the keyring and data keys per KEK version").set_defaults(
        handler=run_keys_status
    )


def _positive(raw: str) -> int:
    if not raw.isdigit() or int(raw) < 1:
        raise argparse.ArgumentTypeError("must be a positive whole number")
    return int(raw)


@dataclasses.dataclass
class _Tally:
    rewrapped: int = 0
    unreadable: int = 0

    def add(self, batch: RewrapBatch) -> None:
        self.rewrapped += batch.rewrapped
        self.unreadable += batch.unreadable


def run_rotate_kek(arguments: argparse.Namespace, console: Console) -> int:
    """Resumes by default: if data keys remain under older versions, finish those before adding one."""
    settings = load_settings()
    runtime = build_runtime(settings, keyring=load_keyring(settings))
    tally, completed = _Tally(), False
    added: int | None = None
    try:
        current = runtime.keyring.current[KEK]
        with runtime.sessions() as session:
            outdated = count_outdated(session, current)
        if outdated and not arguments.force_new_version:
            console.print(f"resuming: {outdated} data keys are not yet under the current KEK version {current}")
        else:
            if settings.keyring is not None:
                raise CliError(ENVIRONMENT_KEYRING)
            rotated = add_kek_version(settings.effective_keyring_path)
            runtime = dataclasses.replace(runtime, keyring=rotated, kit=build_kit(rotated, settings))
            added = current = rotated.current[KEK]
            console.print(
                f"added KEK version {added} to {settings.effective_keyring_path}: back the keyring up now, and "
                "restart running servers so they can read re-wrapped data keys"
            )
            with runtime.sessions() as session:
                outdated = count_outdated(session, current)
        with counted_progress("re-wrapping data keys", console) as progress:
            task = progress.add_task("rewrap", total=outdated)

            def advance(batch: RewrapBatch) -> None:
                tally.add(batch)
                progress.advance(task, batch.scanned)

            rewrap_outdated(runtime, SYSTEM_ACTOR, batch_size=arguments.batch_size, on_batch=advance)
        with runtime.sessions() as session:
            remaining = count_outdated(session, current)
        completed = remaining == 0
    finally:
        try:
            if added is not None or tally.rewrapped or tally.unreadable:
                with runtime.unit_of_work(SYSTEM_ACTOR) as unit:
                    unit.audit(
                        "kek.rotate",
                        details={
                            "added_version": added,
                            "current_version": runtime.keyring.current[KEK],
                            "rewrapped": tally.rewrapped,
                            "unreadable": tally.unreadable,
                            "completed": completed,
                        },
                    )
        finally:
            runtime.dispose()
    console.print(f"re-wrapped {tally.rewrapped} data keys under KEK version {current}")
    if tally.unreadable:
        console.print(
            f"{tally.unreadable} data keys did not unwrap (altered, or under a KEK version missing from the keyring) "
            "and stay under their old version; `audience keys status` shows which versions they hold"
        )
        return 1
    if not completed:
        console.print(
            f"{remaining} data keys were added under an older KEK version meanwhile (a server not restarted yet?); "
            "restart the servers and run `audience keys rotate-kek` again"
        )
        return 1
    older = [v for v in runtime.keyring.versions(KEK) if v != current]
    if older:
        console.print(
            f"no data key needs KEK version(s) {', '.join(map(str, older))} now: "
            "retire them with `audience keys retire-kek VERSION` (see docs/keys.md)"
        )
    return 0


def run_retire_kek(arguments: argparse.Namespace, console: Console) -> int:
    settings = load_settings()
    if settings.keyring is not None:
        raise CliError(ENVIRONMENT_KEYRING)
    keyring = load_keyring(settings)
    version: int = arguments.version
    if version not in keyring.versions(KEK):
        raise CliError(f"the keyring has no KEK version {version}; see `audience keys status`")
    if version == keyring.current[KEK]:
        raise CliError(f"KEK version {version} is the current one; run `audience keys rotate-kek` first")
    runtime = build_runtime(settings, keyring=keyring)
    try:
        with runtime.unit_of_work(SYSTEM_ACTOR) as unit:
            in_use = deks_per_kek_version(unit.session).get(version, 0)
            if in_use:
                raise CliError(
                    f"{in_use} data keys are still wrapped under KEK version {version}; "
                    "run `audience keys rotate-kek` to re-wrap them first"
                )
            unit.audit("kek.retire", details={"version": version})
            retire_kek_version(settings.effective_keyring_path, version)
    finally:
        runtime.dispose()
    console.print(
        f"retired KEK version {version} from {settings.effective_keyring_path}; "
        "destroy keyring backups holding it on your database backup retention schedule"
    )
    return 0


def run_keys_status(_arguments: argparse.Namespace, console: Console) -> int:
    settings = load_settings()
    runtime = build_runtime(settings)
    try:
        with runtime.sessions() as session:
            per_version = deks_per_kek_version(session)
    finally:
        runtime.dispose()
    keyring = runtime.keyring
    console.print(f"keyring: {keyring_origin(settings)}")
    keys = Table("key", "versions", "current")
    for purpose in KeyPurpose:
        keys.add_row(purpose.value, ", ".join(map(str, keyring.versions(purpose))), str(keyring.current[purpose]))
    console.print(keys)
    kek = Table("KEK version", "data keys", "state")
    current = keyring.current[KEK]
    for version in sorted(set(keyring.versions(KEK)) | set(per_version)):
        if version not in keyring.versions(KEK):
            state = "MISSING from the keyring: these data keys cannot be unwrapped"
        elif version == current:
            state = "current"
        elif per_version.get(version, 0):
            state = "in use: run `audience keys rotate-kek`"
        else:
            state = "unused: may be retired"
        kek.add_row(str(version), str(per_version.get(version, 0)), state)
    console.print(kek)
    return 0
