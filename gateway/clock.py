"""The gateway's time zone: permit dates, schedules and local displays use it (DESIGN §5)."""

from __future__ import annotations

from datetime import UTC, datetime, tzinfo
from zoneinfo import ZoneInfo

from config.models import GatewayConfig


def local_zone(cfg: GatewayConfig) -> tzinfo:
    """`timezone` from the config, else the system's."""
    if cfg.timezone:
        return ZoneInfo(cfg.timezone)
    zone = datetime.now().astimezone().tzinfo
    return zone if zone is not None else UTC
