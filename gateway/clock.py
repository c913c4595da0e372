"""The gateway's time zone: permit dates, schedules and local displays use it (DESIGN §5)."""

from __future__ import annotations

import os
from datetime import UTC, datetime, tzinfo
from pathlib import Path
from zoneinfo import ZoneInfo

from config.models import GatewayConfig


def local_zone(cfg: GatewayConfig) -> tzinfo:
    """`timezone` from the config, else the system's."""
    if cfg.timezone:
        return ZoneInfo(cfg.timezone)
    zone = datetime.now().astimezone().tzinfo
    return zone if zone is not None else UTC


def zone_name(cfg: GatewayConfig) -> str:
    """The IANA name of the gateway's zone (for people and exports): `timezone`, else the system's
    (TZ, /etc/timezone, the /etc/localtime link), else its abbreviation."""
    if cfg.timezone:
        return cfg.timezone
    candidates = [os.environ.get("TZ", "").lstrip(":")]
    try:
        candidates.append(Path("/etc/timezone").read_text(encoding="utf-8").strip())
    except OSError:
        pass
    link = os.path.realpath("/etc/localtime")
    if "zoneinfo/" in link:
        candidates.append(link.split("zoneinfo/", 1)[1])
    for name in candidates:
        if name and _is_zone(name):
            return name
    return datetime.now().astimezone().tzname() or "UTC"


def named_zone(cfg: GatewayConfig) -> tuple[str, tzinfo]:
    """(name, zone) as exports show times: the named zone when it is an IANA one (daylight saving right
    all year), else local_zone's."""
    name = zone_name(cfg)
    return name, (ZoneInfo(name) if _is_zone(name) else local_zone(cfg))


def _is_zone(name: str) -> bool:
    try:
        ZoneInfo(name)
    except (KeyError, ValueError, OSError):  # not found (a KeyError), a malformed key, an unreadable file
        return False
    return True
