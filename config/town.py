"""The town platform's config (`town.yaml`): where it keeps its data, its database, its broker link
and its API. Same strictness and `${NAME}` secrets as the gateway's (config.loader)."""

from __future__ import annotations

from pathlib import Path

from pydantic import Field, SecretStr

from config.models import ApiConfig, MqttConfig, RecognitionConfig, Strict


class TownMqttConfig(MqttConfig):
    share_group: str = Field(
        "platform", pattern=r"^[A-Za-z0-9_-]{1,64}$",
        title="Shared-subscription group: the instances in one group split the gateways' events",
    )


class RosterPushConfig(Strict):
    resend_s: float = Field(5.0, gt=0, title="A patch not yet acknowledged by its gateway is sent again this often")
    chunk_bytes: int = Field(190_000, ge=10_000, le=200_000, title="Largest snapshot chunk (DESIGN §6.1: ≤ 200 KB)")
    chunk_interval_s: float = Field(0.05, ge=0, title="Pause between a snapshot's chunks, so a gateway keeps up")


class TownConfig(Strict):
    instance: str | None = Field(
        None, pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$",
        title="Names this instance's persistent MQTT session: stable, and unique per instance; default the host name",
    )
    data_dir: Path = Field(title="Signing key (made at first start, 0600), SQLite demo database, exports")
    database_url: SecretStr | None = Field(
        None, title="SQLAlchemy URL, e.g. postgresql+psycopg://town@db/town (may be a ${NAME}); unset: SQLite"
    )
    mqtt: TownMqttConfig = TownMqttConfig()
    api: ApiConfig = ApiConfig(port=8090)
    roster: RosterPushConfig = RosterPushConfig()
    timezone: str = Field("Asia/Shanghai", title="IANA zone of the town's pages and exports")
    # Photos enrolled at the town become templates with these settings: keep them the buildings' own.
    recognition: RecognitionConfig = RecognitionConfig()
