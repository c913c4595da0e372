"""`accessgw`: run the gateway, check an installation, manage the roster."""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import logging
import os
import signal
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, date, datetime
from pathlib import Path

import click
from sqlalchemy.orm import Session

from config.loader import ConfigError, load_config
from config.models import GatewayConfig
from gateway import __version__
from gateway.store.db import open_store
from gateway.store.roster import NewTenant, RosterError, add_card, add_tenant, remove_card, set_status
from town.cli import town as town_group

DEFAULT_CONFIG = "/etc/accessgw/gateway.yaml"


def fail(message: str) -> None:
    click.echo(f"error: {message}", err=True)
    sys.exit(1)


def setup_logging(verbose: bool = False) -> None:
    logging.basicConfig(
        level=logging.DEBUG if verbose else logging.INFO,
        format="%(asctime)s %(levelname)-7s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    # pymodbus logs every failed request with hex dumps; our drivers report outages once.
    for noisy in ("pymodbus", "asyncio", "alembic"):
        logging.getLogger(noisy).setLevel(logging.CRITICAL if not verbose else logging.INFO)


def read_config(path: str) -> GatewayConfig:
    try:
        return load_config(path)
    except ConfigError as exc:
        click.echo(str(exc), err=True)
        sys.exit(2)


config_option = click.option(
    "--config",
    "config_path",
    default=lambda: os.environ.get("ACCESSGW_CONFIG", DEFAULT_CONFIG),
    show_default=f"$ACCESSGW_CONFIG or {DEFAULT_CONFIG}",
    help="Gateway configuration file (YAML).",
)


@contextmanager
def store_session(cfg: GatewayConfig, *user_errors: type[Exception]) -> Iterator[Session]:
    """One transaction on the configured store; `user_errors` become a one-line error and exit 1."""
    engine, sessions = open_store(cfg.data_dir)
    try:
        with sessions.begin() as session:
            session.info["gateway_id"] = cfg.gateway_id  # for roster_up
            yield session
    except user_errors as exc:
        fail(str(exc))
    finally:
        engine.dispose()


def roster_session(config_path: str) -> contextlib.AbstractContextManager[Session]:
    """A roster transaction; a RosterError becomes a one-line error and exit 1."""
    return store_session(read_config(config_path), RosterError)


def cli_user() -> str:
    return os.environ.get("SUDO_USER") or os.environ.get("USER") or "cli"


def roster_up(session: Session, tenant_id: str, change: str, by: str | None = None) -> None:
    """A change made here leaves for the town with the transaction (DESIGN §6.1 "Up")."""
    from gateway.store.roster_events import queue_roster_change

    queue_roster_change(session, session.info["gateway_id"], tenant_id, change, by or f"cli:{cli_user()}")


def parse_date(_ctx: click.Context, _param: click.Parameter, value: str | None) -> date | None:
    if value is None:
        return None
    try:
        return date.fromisoformat(value)
    except ValueError as exc:
        raise click.BadParameter(f"{value!r} is not a date YYYY-MM-DD") from exc


def parse_card_number(_ctx: click.Context, _param: click.Parameter, value: str) -> int:
    try:
        number = int(value, 0)
    except ValueError as exc:
        raise click.BadParameter(f"{value!r} is not a card number") from exc
    if not 0 <= number <= 0xFFFFFFFF:
        raise click.BadParameter(f"{number} does not fit in 32 bits")
    return number


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="accessgw")
def main() -> None:
    """Rental-building access & video gateway."""
    # Databases, snapshots and token files hold personal data: owner-only, whatever the caller's umask.
    os.umask(0o077)


def parse_host_port(_ctx: click.Context, _param: click.Parameter, value: str | None) -> tuple[str, int] | None:
    """HOST:PORT (a bare PORT means 127.0.0.1) as (host, port)."""
    if value is None:
        return None
    host, sep, port = value.rpartition(":")
    if not port.isdigit() or not 1 <= int(port) <= 65535:
        raise click.BadParameter(f"{value!r} is not HOST:PORT")
    return (host.strip("[]") if sep and host else "127.0.0.1"), int(port)


SIMULATE_ONLY = ("data_dir", "gateway_id", "api_port", "broker", "platform_key", "demo_tenant")


@main.command()
@config_option
@click.option("--simulate", is_flag=True, help="Embedded default: simulated reader and relay board on ptys.")
@click.option("--data-dir", type=click.Path(path_type=Path), default=None, help="With --simulate: where data lives.")
@click.option("--gateway-id", default="sim-0001", show_default=True, help="With --simulate: this gateway's id.")
@click.option("--api-port", type=click.IntRange(1, 65535), default=8080, show_default=True,
              help="With --simulate: the web page and API port (on 127.0.0.1).")  # fmt: skip
@click.option("--broker", default="127.0.0.1:1883", show_default=True, callback=parse_host_port,
              help="With --simulate: the MQTT broker, HOST:PORT.")  # fmt: skip
@click.option("--platform-key", default=None,
              help="With --simulate: the town platform's public key (`accessgw town key`); default: the "
              "simulation's own (var/sim/platform.key), which `accessgw simulate roster` signs with.")  # fmt: skip
@click.option("--demo-tenant/--no-demo-tenant", default=True, show_default=True,
              help="With --simulate: enrol demo-001 (card 12345678) here and swipe it 2 s after start.")  # fmt: skip
@click.option("-v", "--verbose", is_flag=True)
@click.pass_context
def run(ctx: click.Context, config_path: str, simulate: bool, data_dir: Path | None, gateway_id: str, api_port: int,
        broker: tuple[str, int], platform_key: str | None, demo_tenant: bool, verbose: bool) -> None:  # fmt: skip
    """Run the gateway until SIGTERM or Ctrl-C."""
    if not simulate:
        given = [f"--{name.replace('_', '-')}" for name in SIMULATE_ONLY
                 if ctx.get_parameter_source(name) is not click.core.ParameterSource.DEFAULT]  # fmt: skip
        if given:
            fail(f"{', '.join(given)}: only with --simulate")
    setup_logging(verbose)
    from gateway.priorities import door_first

    door_first()  # before any thread starts: they inherit it
    from gateway.app import Gateway

    hardware = None
    if simulate:
        from pydantic import ValidationError

        from gateway.simulation import DEMO_CARD, SimulatedHardware, seed_demo_roster, simulation_config, write_config

        try:
            cfg = simulation_config(data_dir or Path("var"), gateway_id, api_port=api_port, broker=broker,
                                    platform_public_key=platform_key)  # fmt: skip
        except ValidationError as exc:
            fail("; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in exc.errors()))
        logging.getLogger("accessgw").info("simulation config written to %s", write_config(cfg))
        if demo_tenant:
            seed_demo_roster(cfg)
        hardware = SimulatedHardware(cfg)
        hardware.start()
    else:
        cfg = read_config(config_path)
    gateway = Gateway(cfg)

    def first_swipe() -> None:
        if demo_tenant and hardware is not None and hardware.reader is not None:
            logging.getLogger("accessgw").info("simulation: swiping demo card %s in 2 s", DEMO_CARD)
            asyncio.get_running_loop().call_later(2.0, hardware.reader.swipe, DEMO_CARD, 34)

    async def main_loop() -> None:
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, gateway.stop)
        await gateway.run(ready=first_swipe)

    try:
        asyncio.run(main_loop())
    finally:
        if hardware is not None:
            hardware.stop()


@main.command()
@config_option
def check(config_path: str) -> None:
    """Say, one line each, whether every reader, I/O module and the broker answers."""
    from gateway.check import run_checks

    cfg = read_config(config_path)
    ok = True
    for line, passed in run_checks(cfg):
        ok &= passed
        click.echo(("ok    " if passed else "FAIL  ") + line)
    sys.exit(0 if ok else 1)


@main.group()
def db() -> None:
    """Database schema."""


@db.command("upgrade")
@config_option
def db_upgrade(config_path: str) -> None:
    """Apply Alembic migrations (also done at every start)."""
    cfg = read_config(config_path)
    engine, _ = open_store(cfg.data_dir)
    engine.dispose()
    click.echo(f"database at {cfg.data_dir} is up to date")


@main.group()
def tenant() -> None:
    """Tenants of the building."""


@tenant.command("add")
@config_option
@click.option("--id", "tenant_id", required=True)
@click.option("--name", required=True)
@click.option("--permit", required=True, help="Residence permit number.")
@click.option("--valid-to", required=True, callback=parse_date, help="Last valid day, YYYY-MM-DD (inclusive).")
@click.option("--valid-from", default=None, callback=parse_date, help="First valid day, YYYY-MM-DD.")
@click.option("--room", default=None)
def tenant_add(
    config_path: str, tenant_id: str, name: str, permit: str, valid_to: date, valid_from: date | None, room: str | None
) -> None:
    """Enrol a tenant."""
    with roster_session(config_path) as s:
        add_tenant(s, NewTenant(tenant_id, name, permit, valid_to, valid_from, room))
        roster_up(s, tenant_id, "tenant.create")
    click.echo(f"tenant {tenant_id} added (permit {permit}, valid to {valid_to})")


def _status_command(name: str, status: str, doc: str) -> None:
    @tenant.command(name, help=doc)
    @config_option
    @click.option("--id", "tenant_id", required=True)
    def command(config_path: str, tenant_id: str) -> None:
        with roster_session(config_path) as s:
            set_status(s, tenant_id, status)
            roster_up(s, tenant_id, f"tenant.{name}")
        click.echo(f"tenant {tenant_id} is now {status}")


@tenant.command("watch")
@config_option
@click.option("--id", "tenant_id", required=True)
@click.option("--clear", is_flag=True, help="Take the tenant off the watch list.")
@click.option(
    "--by",
    "actor",
    default=cli_user,
    show_default="$SUDO_USER or $USER",
    help="Who asks (written to the audit log).",
)
def tenant_watch(config_path: str, tenant_id: str, clear: bool, actor: str) -> None:
    """Set or clear the police watch-list flag (audited; never shown to the tenant)."""
    from gateway.store.audit import audit
    from gateway.store.roster import set_watchlist

    with roster_session(config_path) as s:
        set_watchlist(s, tenant_id, not clear)
        audit(s, f"cli:{actor}", "watchlist.clear" if clear else "watchlist.set", {"tenant_id": tenant_id})
        roster_up(s, tenant_id, "watchlist.clear" if clear else "watchlist.set", f"cli:{actor}")
    click.echo(f"tenant {tenant_id} {'removed from' if clear else 'put on'} the watch list")


_status_command("suspend", "suspended", "Suspend a tenant: their cards are refused until reactivated.")
_status_command("revoke", "revoked", "Revoke a tenant for good.")
_status_command("activate", "active", "Reactivate a suspended tenant.")


@main.group()
def card() -> None:
    """Residence-permit cards."""


@card.command("add")
@config_option
@click.option("--tenant", "tenant_id", required=True)
@click.option("--number", required=True, callback=parse_card_number, help="Card number (up to 32 bits).")
def card_add(config_path: str, tenant_id: str, number: int) -> None:
    """Bind a card to a tenant."""
    with roster_session(config_path) as s:
        add_card(s, tenant_id, number)
        roster_up(s, tenant_id, "card.bind")
    click.echo(f"card {number} bound to tenant {tenant_id}")


@card.command("remove")
@config_option
@click.option("--number", required=True, callback=parse_card_number)
def card_remove(config_path: str, number: int) -> None:
    """Unbind a card."""
    with roster_session(config_path) as s:
        roster_up(s, remove_card(s, number), "card.unbind")
    click.echo(f"card {number} removed")


def parse_since(_ctx: click.Context, _param: click.Parameter, value: str | None) -> datetime | None:
    if value is None:
        return None
    try:
        ts = datetime.fromisoformat(value)
    except ValueError as exc:
        raise click.BadParameter(f"{value!r} is not a date or date-time (ISO 8601)") from exc
    return ts if ts.tzinfo else ts.astimezone()  # naive = the machine's local time


@main.group()
def face() -> None:
    """Face templates of tenants (templates only: photos are never stored)."""


@face.command("add")
@config_option
@click.option("--tenant", "tenant_id", required=True)
@click.argument("photos", nargs=-1, required=True, type=click.Path(dir_okay=False, path_type=Path))
def face_add(config_path: str, tenant_id: str, photos: tuple[Path, ...]) -> None:
    """Enrol 1-5 photos of a tenant: every photo must pass, or nothing is stored."""
    from gateway.enrolment import EnrolmentError, assess_photos, enrol_faces

    cfg = read_config(config_path)
    try:
        results = assess_photos([(str(p), _read_photo(p)) for p in photos], cfg.recognition)
    except EnrolmentError as exc:
        fail(str(exc))
    for r in results:
        click.echo(f"{'ok  ' if r.verdict.ok else 'FAIL'}  {r.name}: {r.verdict.reason} - {r.verdict.detail}")
    if not all(r.verdict.ok for r in results):
        fail("nothing stored: every photo must pass")
    with store_session(cfg, RosterError) as s:
        stored = enrol_faces(s, tenant_id, results, "cli")
        roster_up(s, tenant_id, "face.enrol")
    click.echo(f"{stored} face template(s) stored for tenant {tenant_id}")


def _read_photo(path: Path) -> bytes:
    try:
        return path.read_bytes()
    except OSError:
        return b""  # an unreadable file gets the verdict of an empty, broken image


@face.command("import")
@config_option
@click.argument("folder", type=click.Path(file_okay=False, exists=True, path_type=Path))
def face_import(config_path: str, folder: Path) -> None:
    """Enrol in bulk: FOLDER/<tenant id>/*.jpg, up to 5 photos each, with a progress bar."""
    from tqdm import tqdm

    from gateway.enrolment import MAX_PHOTOS, assess_photos, enrol_faces

    cfg = read_config(config_path)
    engine, sessions = open_store(cfg.data_dir)
    enrolled, refused = 0, []
    suffixes = {".jpg", ".jpeg", ".png", ".bmp", ".webp"}
    folders = sorted(p for p in folder.iterdir() if p.is_dir())
    try:
        for sub in tqdm(folders, unit="tenant", desc="enrolling"):
            photos = sorted(p for p in sub.iterdir() if p.suffix.lower() in suffixes)[:MAX_PHOTOS]
            if not photos:
                refused.append((sub.name, "no photos"))
                continue
            results = assess_photos([(p.name, _read_photo(p)) for p in photos], cfg.recognition)
            failed = [f"{r.name}: {r.verdict.reason}" for r in results if not r.verdict.ok]
            if failed:
                refused.append((sub.name, "; ".join(failed)))
                continue
            try:
                with sessions.begin() as s:
                    s.info["gateway_id"] = cfg.gateway_id
                    enrol_faces(s, sub.name, results, "cli:import")
                    roster_up(s, sub.name, "face.enrol", "cli:import")
                enrolled += 1
            except RosterError as exc:
                refused.append((sub.name, str(exc)))
    finally:
        engine.dispose()
    for name, why in refused:
        click.echo(f"refused {name}: {why}")
    click.echo(f"{enrolled} tenant(s) enrolled, {len(refused)} refused, of {len(folders)}")
    sys.exit(0 if not refused else 1)


@main.command()
@config_option
@click.option("--since", default=None, callback=parse_since, help="ISO date or date-time.")
@click.option("--tenant", "tenant_id", default=None)
@click.option("--door", default=None)
@click.option("--limit", default=50, show_default=True, type=click.IntRange(1, 100000))
def entries(config_path: str, since: datetime | None, tenant_id: str | None, door: str | None, limit: int) -> None:
    """Show the newest entries of the local entry log."""
    from gateway.clock import local_zone
    from gateway.store.queries import EntryFilter, iter_entries

    cfg = read_config(config_path)
    zone = local_zone(cfg)
    with store_session(cfg, ValueError) as s:
        found = EntryFilter(since=since.astimezone(UTC) if since else None, tenant_id=tenant_id, door=door)
        rows = list(itertools.islice(iter_entries(s, found), limit))  # newest first
    for e in reversed(rows):
        card_text = f"{e['card_number']}/{e['card_bits']}" if e["card_number"] is not None else "-"
        when = datetime.fromisoformat(e["ts"]).astimezone(zone).isoformat(timespec="seconds")
        click.echo(
            f"{when}  seq={e['seq']:<6} {e['door']:<8} {e['method']:<12} {card_text:<16} "
            f"{e['tenant_id'] or '-':<12} {e['decision']:<7} {e['reason']}"
        )
    if not rows:
        click.echo("no entries", err=True)


@main.group()
def user() -> None:
    """API users and tokens."""


@user.command("add")
@config_option
@click.option("--name", required=True)
@click.option("--role", required=True, type=click.Choice(["admin", "police", "auditor", "operator"]))
def user_add(config_path: str, name: str, role: str) -> None:
    """Create an API user; the token is printed once, alone on the last line."""
    from gateway.api.users import UserError, create_user

    with store_session(read_config(config_path), UserError) as s:
        token = create_user(s, name, role, "cli")
    click.echo(f"user {name} ({role}) created; keep this token, it is not shown again:")
    click.echo(token)


@user.command("revoke")
@config_option
@click.option("--name", required=True)
def user_revoke(config_path: str, name: str) -> None:
    """Revoke a user's token at once."""
    from gateway.api.users import UserError, revoke_user

    with store_session(read_config(config_path), UserError) as s:
        revoke_user(s, name, "cli")
    click.echo(f"user {name} revoked")


@user.command("rotate")
@config_option
@click.option("--name", required=True)
def user_rotate(config_path: str, name: str) -> None:
    """Give a user a new token (the old one is refused at once); printed once, alone on the last line."""
    from gateway.api.users import UserError, rotate_token

    with store_session(read_config(config_path), UserError) as s:
        token = rotate_token(s, name, f"cli:{cli_user()}")
    click.echo(f"user {name}: new token; the old one no longer works. Keep this one, it is not shown again:")
    click.echo(token)


@main.group()
def simulate() -> None:
    """Drive the simulated hardware of `accessgw run --simulate`."""


@simulate.command("swipe")
@click.option("--number", required=True, callback=parse_card_number)
@click.option("--bits", type=click.Choice(["26", "34"]), default="34", show_default=True)
@click.option("--data-dir", type=click.Path(path_type=Path), default=Path("var"), show_default=True)
def simulate_swipe(number: int, bits: str, data_dir: Path) -> None:
    """Present a card to the simulated reader of a running `--simulate` gateway."""
    from drivers.simulators import SimulatedCardReader
    from gateway.simulation import reader_port

    port = reader_port(data_dir)
    if not port.exists():
        fail(f"no simulated reader at {port}: is `accessgw run --simulate` running here?")
    SimulatedCardReader(str(port), "wiegand-text").swipe(number, int(bits))
    click.echo(f"swiped card {number} as Wiegand {bits}")


@simulate.command("roster")
@click.option("--data-dir", type=click.Path(path_type=Path), default=Path("var"), show_default=True)
@click.option("--timeout", type=float, default=10.0, show_default=True, help="Seconds to wait for it to apply.")
def simulate_roster(data_dir: Path, timeout: float) -> None:
    """As the town platform: sign and publish a demo roster patch to a running `--simulate` gateway.

    The patch enrols a demo tenant with card 87654321 (`accessgw simulate swipe --number 87654321`)."""
    import threading
    import time

    from gateway.simulation import PLATFORM_KEY, ROSTER_CARD, demo_patch, platform_key, sim_dir
    from gateway.store.roster_sync import current_version
    from sync.mqtt_client import LinkCallbacks, MqttLink
    from sync.topics import Topics

    config_path, key_path = sim_dir(data_dir) / "gateway.yaml", sim_dir(data_dir) / PLATFORM_KEY
    if not config_path.exists() or not key_path.exists():
        fail(f"no {config_path} or {key_path}: is `accessgw run --simulate` running here?")
    cfg = read_config(str(config_path))
    engine, _ = open_store(cfg.data_dir)
    try:
        with engine.connect() as conn:
            version = current_version(conn)
        now = datetime.now(UTC)
        message = demo_patch(platform_key(data_dir), version, now.isoformat().replace("+00:00", "Z"),
                             f"sim-{now.strftime('%Y%m%dT%H%M%S.%f')}")  # fmt: skip
        acked = threading.Event()
        platform = Topics(cfg.mqtt.base_topic, "sim-platform")
        link = MqttLink(cfg.mqtt.model_copy(update={"client_id": f"accessgw-sim-platform-{os.getpid()}"}), platform,
                        LinkCallbacks(on_ack=lambda mid: acked.set()))  # fmt: skip
        link.start()
        try:
            deadline = time.monotonic() + timeout
            while not link.connected and time.monotonic() < deadline:
                time.sleep(0.05)
            if not link.connected:
                fail(f"broker {cfg.mqtt.host}:{cfg.mqtt.port} not reachable")
            topic = Topics(cfg.mqtt.base_topic, cfg.gateway_id).under("request/roster/patch")
            link.publish(topic, json.dumps(message, ensure_ascii=False), qos=1)
            acked.wait(max(0.1, deadline - time.monotonic()))
            link.publish(platform.availability, b"", qos=1, retain=True)  # leave no retained trace of this client
        finally:
            link.stop(publish_offline=False)
        click.echo(f"published roster patch {version} -> {version + 1} on {topic}")
        while time.monotonic() < deadline:
            with engine.connect() as conn:
                if current_version(conn) >= version + 1:
                    click.echo(f"applied: roster version {version + 1}; "
                               f"try `accessgw simulate swipe --number {ROSTER_CARD}`")  # fmt: skip
                    return
            time.sleep(0.1)
        fail(f"not applied within {timeout:.0f} s (see the gateway's log)")
    finally:
        engine.dispose()


main.add_command(town_group)  # `accessgw town …`: the town platform (DESIGN §6.3)

if __name__ == "__main__":
    main()
