"""keys create|list|revoke and partners create|list."""

from __future__ import annotations

import argparse
from typing import Any

from rich.console import Console
from rich.table import Table

from privacy.purposes import Purpose
from server.auth import api_keys
from server.auth.api_keys import ApiKeyError
from server.auth.principal import SYSTEM_ACTOR, Role
from server.cli import key_rotation_commands
from server.cli.errors import CliError
from server.partners import service as partners
from server.partners.service import PartnerError
from server.runtime import build_runtime
from server.settings import load_settings


def register(commands: Any) -> None:
    keys = commands.add_parser("keys", help="create, list and revoke API keys").add_subparsers(
        dest="keys_command", required=True, metavar="ACTION"
    )
    key_rotation_commands.register(keys)
    create = keys.add_parser("create", help="issue a key; the token is printed once")
    create.add_argument("--role", required=True, choices=[role.value for role in Role])
    create.add_argument("--label", required=True, help="what the key is for (no personal data)")
    create.add_argument("--partner", help="partner name, required for --role partner")
    create.set_defaults(handler=run_keys_create)
    keys.add_parser("list", help="list keys (never their secrets)").set_defaults(handler=run_keys_list)
    revoke = keys.add_parser("revoke", help="revoke a key by its id")
    revoke.add_argument("key_id")
    revoke.set_defaults(handler=run_keys_revoke)

    partner_commands = commands.add_parser("partners", help="register and list partners").add_subparsers(
        dest="partners_command", required=True, metavar="ACTION"
    )
    partner_create = partner_commands.add_parser("create", help="register a partner")
    partner_create.add_argument("name", help="a slug: a-z, 0-9, '-' or '_'")
    partner_create.add_argument(
        "--purpose",
        action="append",
        required=True,
        choices=[p.value for p in Purpose],
        help="a purpose the partner may use data for; repeat for several",
    )
    partner_create.set_defaults(handler=run_partners_create)
    partner_commands.add_parser("list", help="list partners").set_defaults(handler=run_partners_list)


def run_keys_create(arguments: argparse.Namespace, console: Console) -> int:
    runtime = build_runtime(load_settings())
    try:
        with runtime.unit_of_work(SYSTEM_ACTOR) as unit:
            partner_id = None
            if arguments.partner:
                partner = partners.find_partner(unit.session, arguments.partner)
                if partner is None:
                    raise CliError("no partner has this name; see `audience partners list`")
                partner_id = partner.id
            try:
                issued = api_keys.create_key(
                    unit.session,
                    role=Role(arguments.role),
                    label=arguments.label,
                    partner_id=partner_id,
                    now=unit.clock(),
                )
            except ApiKeyError as error:
                raise CliError(error.message) from None
            unit.audit("api_key.create", target=f"api_key:{issued.key_id}", details={"role": issued.role.value})
    finally:
        runtime.dispose()
    console.print(f"key {issued.key_id} ({issued.role.value}); token, shown once:")
    console.print(issued.token, soft_wrap=True)
    return 0


def run_keys_list(_arguments: argparse.Namespace, console: Console) -> int:
    runtime = build_runtime(load_settings())
    try:
        with runtime.sessions() as session:
            keys = api_keys.list_keys(session)
    finally:
        runtime.dispose()
    table = Table("key id", "role", "partner", "label", "created", "revoked")
    for key in keys:
        table.add_row(
            key.key_id,
            key.role.value,
            str(key.partner_id or ""),
            key.label,
            key.created_at.isoformat(timespec="seconds"),
            key.revoked_at.isoformat(timespec="seconds") if key.revoked_at else "",
        )
    console.print(table)
    return 0


def run_keys_revoke(arguments: argparse.Namespace, console: Console) -> int:
    runtime = build_runtime(load_settings())
    try:
        with runtime.unit_of_work(SYSTEM_ACTOR) as unit:
            if not api_keys.revoke_key(unit.session, key_id=arguments.key_id, now=unit.clock()):
                raise CliError("no live key has this id")
            unit.audit("api_key.revoke", target=f"api_key:{arguments.key_id}")
    finally:
        runtime.dispose()
    console.print(f"revoked {arguments.key_id}")
    return 0


def run_partners_create(arguments: argparse.Namespace, console: Console) -> int:
    runtime = build_runtime(load_settings())
    try:
        with runtime.unit_of_work(SYSTEM_ACTOR) as unit:
            try:
                partner = partners.create_partner(
                    unit.session,
                    name=arguments.name,
                    purposes=[Purpose(p) for p in arguments.purpose],
                    now=unit.clock(),
                )
            except PartnerError as error:
                raise CliError(error.message) from None
            unit.audit(
                "partner.create", target=f"partner:{partner.id}", details={"purposes": ",".join(partner.purposes)}
            )
    finally:
        runtime.dispose()
    console.print(f"partner {partner.name} has id {partner.id}")
    return 0


def run_partners_list(_arguments: argparse.Namespace, console: Console) -> int:
    runtime = build_runtime(load_settings())
    try:
        with runtime.sessions() as session:
            found = partners.list_partners(session)
    finally:
        runtime.dispose()
    table = Table("id", "name", "purposes", "created")
    for partner in found:
        table.add_row(
            str(partner.id), partner.name, ", ".join(partner.purposes), partner.created_at.isoformat(timespec="seconds")
        )
    console.print(table)
    return 0
