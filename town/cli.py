"""`accessgw town …`: run the town platform and manage its register from the shell.

Hooked into `accessgw` by gateway/cli.py (`main.add_command(town)`). Module-level imports are click only:
`accessgw` on a building's gateway loads nothing of the town until a town command runs. The gateway CLI's
helpers are reached through function-level imports (no import cycle, no copies).
"""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import date
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

if TYPE_CHECKING:
    from sqlalchemy.orm import Session

    from config.town import TownConfig

DEFAULT_CONFIG = "/etc/accessgw/town.yaml"


def _fail(message: str) -> None:
    from gateway.cli import fail

    fail(message)


def _date(ctx: click.Context, param: click.Parameter, value: str | None) -> date | None:
    from gateway.cli import parse_date

    return parse_date(ctx, param, value)


def _card(ctx: click.Context, param: click.Parameter, value: str) -> int:
    from gateway.cli import parse_card_number

    return parse_card_number(ctx, param, value)


def _host_port(ctx: click.Context, param: click.Parameter, value: str | None) -> tuple[str, int] | None:
    from gateway.cli import parse_host_port

    return parse_host_port(ctx, param, value)


config_option = click.option(
    "--config",
    "config_path",
    default=lambda: os.environ.get("ACCESSGW_TOWN_CONFIG", DEFAULT_CONFIG),
    show_default=f"$ACCESSGW_TOWN_CONFIG or {DEFAULT_CONFIG}",
    help="Town platform configuration file (YAML).",
)


def read_config(path: str) -> TownConfig:
    from config.loader import ConfigError, load_town_config

    try:
        return load_town_config(path)
    except ConfigError as exc:
        click.echo(str(exc), err=True)
        sys.exit(2)


def cli_actor() -> str:
    return f"cli:{os.environ.get('SUDO_USER') or os.environ.get('USER') or 'town'}"[:64]


@contextmanager
def register_session(config_path: str) -> Iterator[Session]:
    """One transaction on the town's store; a RegisterError (or a user error) is one line and exit 1.

    A running `accessgw town run` picks the change up at its next poll (roster.resend_s) and pushes it."""
    from gateway.api.users import UserError
    from town.register import RegisterError
    from town.store.db import open_town_store

    engine, sessions = open_town_store(read_config(config_path))
    try:
        with sessions.begin() as session:
            yield session
    except (RegisterError, UserError) as exc:
        _fail(str(exc))
    finally:
        engine.dispose()


@click.group("town")
def town() -> None:
    """The town platform: register, watch list, fleet; pushes each building's roster (DESIGN §6.3)."""


@town.command("run")
@config_option
@click.option("-v", "--verbose", is_flag=True)
def run(config_path: str, verbose: bool) -> None:
    """Run the platform: ingest from the broker, push rosters, serve the API (until SIGTERM)."""
    from gateway.cli import setup_logging
    from town.service import TownService

    cfg = read_config(config_path)
    if cfg.api.tls_cert_file is not None:  # no doors here to keep running: a town without its API says why, stops
        from gateway.api.tls import ApiTlsError, server_context

        try:
            server_context(cfg.api)
        except ApiTlsError as exc:
            _fail(str(exc))
    setup_logging(verbose)
    TownService(cfg).run()


@town.command("demo")
@click.option("--data-dir", type=click.Path(file_okay=False, path_type=Path), default=Path("var/town-demo"),
              show_default=True, help="Where the town, the buildings, the broker and the logs keep data.")  # fmt: skip
@click.option("--broker", default=None, metavar="HOST:PORT", callback=_host_port,
              help="Use this running broker (plain MQTT, anonymous) instead of starting mosquitto.")  # fmt: skip
@click.option("--town-port", type=click.IntRange(1, 65535), default=8090, show_default=True,
              help="The town's page and API on 127.0.0.1.")  # fmt: skip
@click.option("--base-port", type=click.IntRange(1, 65534), default=8081, show_default=True,
              help="demo-a's page and API on 127.0.0.1; demo-b's is the next port.")  # fmt: skip
def demo(data_dir: Path, broker: tuple[str, int] | None, town_port: int, base_port: int) -> None:
    """A town with two simulated buildings (demo-a, demo-b) on this machine, on SQLite, until Ctrl-C.

    Starts mosquitto (unless --broker), the town and the two buildings as child processes, enrols a demo
    tenant with a card per building at the town, swipes each card once, and prints the pages' addresses
    and admin tokens. Ctrl-C or SIGTERM stops them all (exit 0)."""
    from town.demo import TownDemo

    sys.exit(TownDemo(data_dir, broker=broker, town_port=town_port, base_port=base_port).run())


@town.command("key")
@config_option
def key(config_path: str) -> None:
    """Print the platform's public key (made at the first use): a gateway's `sync.platform_public_key`."""
    from town.keys import key_path, load_or_create_key, public_key_b64

    cfg = read_config(config_path)
    try:
        signing = load_or_create_key(cfg.data_dir)
    except (OSError, ValueError) as exc:
        _fail(str(exc))
        return
    click.echo(f"platform public key ({key_path(cfg.data_dir)}); put it in each gateway's sync.platform_public_key:")
    click.echo(public_key_b64(signing))


@town.group("user")
def user() -> None:
    """The town's API users and tokens."""


@user.command("add")
@config_option
@click.option("--name", required=True)
@click.option("--role", required=True, type=click.Choice(["admin", "police", "auditor", "operator"]))
def user_add(config_path: str, name: str, role: str) -> None:
    """Create a town API user; the token is printed once, alone on the last line."""
    from gateway.api.users import create_user

    with register_session(config_path) as s:
        token = create_user(s, name, role, cli_actor())
    click.echo(f"town user {name} ({role}) created; keep this token, it is not shown again:")
    click.echo(token)


@user.command("revoke")
@config_option
@click.option("--name", required=True)
def user_revoke(config_path: str, name: str) -> None:
    """Revoke a town user's token at once."""
    from gateway.api.users import revoke_user

    with register_session(config_path) as s:
        revoke_user(s, name, cli_actor())
    click.echo(f"town user {name} revoked")


@user.command("rotate")
@config_option
@click.option("--name", required=True)
def user_rotate(config_path: str, name: str) -> None:
    """Give a town user a new token (the old one is refused at once); printed once, alone on the last line."""
    from gateway.api.users import rotate_token

    with register_session(config_path) as s:
        token = rotate_token(s, name, cli_actor())
    click.echo(f"town user {name}: new token; the old one no longer works. Keep this one, it is not shown again:")
    click.echo(token)


@town.group("tenant")
def tenant() -> None:
    """Tenants in the town's register (pushed to their building)."""


@tenant.command("add")
@config_option
@click.option("--gateway", "gateway_id", required=True, help="The building's gateway id.")
@click.option("--id", "tenant_id", required=True)
@click.option("--name", required=True)
@click.option("--permit", required=True, help="Residence permit number.")
@click.option("--valid-to", required=True, callback=_date, help="Last valid day, YYYY-MM-DD (inclusive).")
@click.option("--valid-from", default=None, callback=_date, help="First valid day, YYYY-MM-DD.")
@click.option("--room", default=None)
def tenant_add(config_path: str, gateway_id: str, tenant_id: str, name: str, permit: str, valid_to: date,
               valid_from: date | None, room: str | None) -> None:  # fmt: skip
    """Enrol a tenant at a building."""
    from town.register import add_tenant

    with register_session(config_path) as s:
        add_tenant(s, cli_actor(), gateway_id=gateway_id, id=tenant_id, name=name, permit=permit, valid_to=valid_to,
                   valid_from=valid_from, room=room, route="cli town tenant add")  # fmt: skip
    click.echo(f"tenant {tenant_id} added at {gateway_id}")


@tenant.command("update")
@config_option
@click.option("--id", "tenant_id", required=True)
@click.option("--gateway", "gateway_id", default=None, help="Move the tenant to this building.")
@click.option("--name", default=None)
@click.option("--permit", default=None)
@click.option("--valid-to", default=None, callback=_date)
@click.option("--valid-from", default=None, callback=_date)
@click.option("--room", default=None)
def tenant_update(config_path: str, tenant_id: str, **fields: Any) -> None:
    """Change a tenant's record (only the options given)."""
    from town.register import update_tenant

    changes = {k: v for k, v in fields.items() if v is not None}
    if not changes:
        _fail("nothing to change: give at least one of --gateway, --name, --permit, --valid-to, --valid-from, --room")
    with register_session(config_path) as s:
        update_tenant(s, cli_actor(), tenant_id, route="cli town tenant update", **changes)
    click.echo(f"tenant {tenant_id} updated ({', '.join(sorted(changes))})")


def _status_command(name: str, status: str, doc: str) -> None:
    @tenant.command(name, help=doc)
    @config_option
    @click.option("--id", "tenant_id", required=True)
    @click.option("--reason", default=None, help="Why (audited).")
    def command(config_path: str, tenant_id: str, reason: str | None) -> None:
        from town.register import set_status

        with register_session(config_path) as s:
            set_status(s, cli_actor(), tenant_id, status, reason=reason, route=f"cli town tenant {name}")
        click.echo(f"tenant {tenant_id} {status}")


_status_command("revoke", "revoked", "Revoke a tenant: refused at every door of their building.")
_status_command("suspend", "suspended", "Suspend a tenant.")
_status_command("activate", "active", "Make a tenant active again.")


@tenant.command("delete")
@config_option
@click.option("--id", "tenant_id", required=True)
@click.option("--reason", default=None, help="Why (audited).")
def tenant_delete(config_path: str, tenant_id: str, reason: str | None) -> None:
    """Delete a tenant, their cards and face templates (here and at their building)."""
    from town.register import delete_tenant

    with register_session(config_path) as s:
        delete_tenant(s, cli_actor(), tenant_id, reason=reason, route="cli town tenant delete")
    click.echo(f"tenant {tenant_id} deleted")


@town.group("card")
def card() -> None:
    """Cards in the town's register (a number belongs to one tenant town-wide)."""


@card.command("add")
@config_option
@click.option("--tenant", "tenant_id", required=True)
@click.option("--number", required=True, callback=_card, help="Card number (up to 32 bits).")
def card_add(config_path: str, tenant_id: str, number: int) -> None:
    """Bind a card to a tenant."""
    from town.register import add_card

    with register_session(config_path) as s:
        add_card(s, cli_actor(), tenant_id, number, route="cli town card add")
    click.echo(f"card {number} bound to {tenant_id}")


@card.command("remove")
@config_option
@click.option("--number", required=True, callback=_card)
def card_remove(config_path: str, number: int) -> None:
    """Unbind a card."""
    from town.register import remove_card

    with register_session(config_path) as s:
        owner = remove_card(s, cli_actor(), number, route="cli town card remove")
    click.echo(f"card {number} removed from {owner}")
