"""The config loader: the example loads, and every kind of mistake names its file, line and key."""

from __future__ import annotations

import re
import typing
from datetime import time
from pathlib import Path

import pytest
import yaml
from pydantic import BaseModel

from config.loader import ConfigError, load_config
from config.models import GatewayConfig

EXAMPLE = Path(__file__).resolve().parents[2] / "config" / "gateway.example.yaml"
EXAMPLE_ENV = {"MQTT_PASSWORD": "mqtt-secret", "CAM_PASSWORD": "cam-secret", "GARAGE_READER_SCBK": "0f" * 16}

# A small valid config; the line numbers in the tests below refer to it.
BASE = """\
gateway_id: gw-1
readers:
  - id: r1
    protocol: wiegand-text
    port: /dev/ttyUSB0
io_modules:
  - id: io1
    port: /dev/ttyUSB1
doors:
  - id: d1
    reader: r1
    lock:
      io: io1
      coil: 0
      pulse_ms: 3000
"""


def write(tmp_path: Path, text: str, name: str = "gw.yaml") -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def edited(old: str, new: str) -> str:
    assert old in BASE, old
    return BASE.replace(old, new, 1)


def problems_of(path: Path, environ: dict[str, str] | None = None) -> list[str]:
    with pytest.raises(ConfigError) as caught:
        load_config(path, environ={} if environ is None else environ)
    assert str(caught.value) == "\n".join(caught.value.problems)
    return caught.value.problems


# --- the example -------------------------------------------------------------------------------


def test_example_loads_with_secrets_from_env():
    cfg = load_config(EXAMPLE, environ=EXAMPLE_ENV)
    assert cfg.gateway_id == "xt-0001"
    assert cfg.timezone == "Asia/Shanghai"
    assert (cfg.mqtt.host, cfg.mqtt.port, cfg.mqtt.base_topic) == ("127.0.0.1", 1883, "accessgw")
    assert cfg.mqtt.password is not None and cfg.mqtt.password.get_secret_value() == "mqtt-secret"
    onvif = cfg.cameras[0].onvif
    assert onvif is not None and onvif.password is not None and onvif.password.get_secret_value() == "cam-secret"
    assert cfg.cameras[1].rtsp_url is not None
    assert {r.protocol for r in cfg.readers} == {"wiegand-text", "rdm6300", "osdp"}
    osdp = next(r for r in cfg.readers if r.protocol == "osdp")
    assert (osdp.baudrate, osdp.address, osdp.scbk_bytes) == (115200, 0, b"\x0f" * 16)
    card_door = next(d for d in cfg.doors if d.mode == "card")
    assert card_door.contact and card_door.exit_button and card_door.fire_alarm
    assert card_door.schedule[0].start == time(6, 0) and card_door.schedule[0].end == time(23, 0)
    assert cfg.data_dir == EXAMPLE.parent / "var"


def test_example_without_secrets_names_both_lines():
    # The lines where the example uses the secrets (they move as keys are added above them).
    mqtt, scbk, cam = (next(n for n, line in enumerate(EXAMPLE.read_text().splitlines(), 1) if f"${{{name}}}" in line)
                       for name in ("MQTT_PASSWORD", "GARAGE_READER_SCBK", "CAM_PASSWORD"))  # fmt: skip
    assert problems_of(EXAMPLE) == [
        f"{EXAMPLE}:{mqtt}: mqtt.password: ${{MQTT_PASSWORD}} is not set in the environment nor in "
        "$CREDENTIALS_DIRECTORY",
        f"{EXAMPLE}:{scbk}: readers[4].scbk: ${{GARAGE_READER_SCBK}} is not set in the environment nor in "
        "$CREDENTIALS_DIRECTORY",
        f"{EXAMPLE}:{cam}: cameras[0].onvif.password: ${{CAM_PASSWORD}} is not set in the environment nor in "
        "$CREDENTIALS_DIRECTORY",
    ]


def _nested_model(annotation: object) -> type[BaseModel] | None:
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    for arg in typing.get_args(annotation):
        found = _nested_model(arg)
        if found is not None:
            return found
    return None


def _undocumented(model: type[BaseModel], values: list[dict], where: str) -> list[str]:
    """Keys of `model` (recursively) that appear in none of `values`."""
    missing: list[str] = []
    for name, field in model.model_fields.items():
        key = field.alias or name
        present = [value[key] for value in values if key in value]
        if not present:
            missing.append(where + key)
            continue
        nested = _nested_model(field.annotation)
        if nested is not None:
            items = [item for value in present for item in (value if isinstance(value, list) else [value])]
            missing += _undocumented(nested, [item for item in items if isinstance(item, dict)], f"{where}{key}.")
    return missing


def test_example_shows_and_comments_every_key():
    text = EXAMPLE.read_text(encoding="utf-8")
    assert _undocumented(GatewayConfig, [yaml.safe_load(text)], "") == []
    uncommented = []
    for model in _all_models(GatewayConfig):
        for name, field in model.model_fields.items():
            key = re.escape(field.alias or name)
            if not re.search(rf"^\s*(?:- )?{key}:.*#|#\s*{key}:", text, re.MULTILINE):
                uncommented.append(f"{model.__name__}.{name}")
    assert uncommented == []


def _all_models(model: type[BaseModel]) -> list[type[BaseModel]]:
    found = [model]
    for field in model.model_fields.values():
        nested = _nested_model(field.annotation)
        if nested is not None and nested not in found:
            found += [m for m in _all_models(nested) if m not in found]
    return found


def test_base_config_is_valid(tmp_path):
    cfg = load_config(write(tmp_path, BASE), environ={})
    assert cfg.doors[0].lock.pulse_ms == 3000


# --- validation errors -------------------------------------------------------------------------


def test_unknown_key_points_at_the_key(tmp_path):
    path = write(tmp_path, edited("pulse_ms: 3000", "pulse_msx: 3000"))
    assert problems_of(path) == [f"{path}:15: doors[0].lock.pulse_msx: unknown key 'pulse_msx'"]


def test_wrong_type(tmp_path):
    path = write(tmp_path, edited("pulse_ms: 3000", "pulse_ms: soon"))
    [problem] = problems_of(path)
    assert problem.startswith(f"{path}:15: doors[0].lock.pulse_ms: Input should be a valid integer")


def test_missing_required_key_points_at_parent_mapping(tmp_path):
    path = write(tmp_path, edited("      coil: 0\n", ""))
    assert problems_of(path) == [f"{path}:12: doors[0].lock.coil: missing required key 'coil'"]


def test_missing_top_level_key_points_at_top_mapping(tmp_path):
    path = write(tmp_path, "# comment\nmqtt:\n  port: 1883\n")
    assert problems_of(path) == [f"{path}:2: gateway_id: missing required key 'gateway_id'"]


def test_bad_enum_value(tmp_path):
    path = write(tmp_path, edited("protocol: wiegand-text", "protocol: wiegand-99"))
    assert problems_of(path) == [f"{path}:4: readers[0].protocol: Input should be 'wiegand-text', 'rdm6300' or 'osdp'"]


def test_bad_timezone(tmp_path):
    path = write(tmp_path, edited("gateway_id: gw-1\n", "gateway_id: gw-1\ntimezone: Mars/Olympus\n"))
    assert problems_of(path) == [f"{path}:2: timezone: unknown time zone 'Mars/Olympus'"]


def test_model_validator_error_points_at_the_item(tmp_path):
    text = BASE + "    schedule:\n      - days: [mon]\n        from: '18:00'\n        to: '08:00'\n"
    path = write(tmp_path, text)
    assert problems_of(path) == [
        f"{path}:17: doors[0].schedule[0]: 'to' must be later than 'from' (split windows that cross midnight)"
    ]


def test_every_problem_is_listed_in_file_order(tmp_path):
    text = edited("pulse_ms: 3000", "pulse_ms: soon").replace("      coil: 0\n", "").replace("port: /dev/ttyUSB1", "")
    path = write(tmp_path, "colour: red\n" + text)
    problems = problems_of(path)
    assert problems[:3] == [
        f"{path}:1: colour: unknown key 'colour'",
        f"{path}:8: io_modules[0].port: missing required key 'port'",
        f"{path}:13: doors[0].lock.coil: missing required key 'coil'",
    ]
    assert problems[3].startswith(f"{path}:15: doors[0].lock.pulse_ms: Input should be a valid integer")
    assert len(problems) == 4


def test_base_60_numbers_stay_times(tmp_path):
    # YAML 1.1 reads a bare 18:30 as 1110; the loader keeps it as the time it is.
    path = write(tmp_path, BASE + "    schedule:\n      - {days: [sat], from: 08:00, to: 18:30}\n")
    window = load_config(path, environ={}).doors[0].schedule[0]
    assert (window.start, window.end) == (time(8, 0), time(18, 30))


# --- reference errors (check_references) -------------------------------------------------------


def test_duplicate_reader_id(tmp_path):
    path = write(
        tmp_path, edited("io_modules:\n", "  - id: r1\n    protocol: rdm6300\n    port: /dev/ttyS1\nio_modules:\n")
    )
    assert problems_of(path) == [f"{path}:6: readers[1].id: duplicate readers id 'r1'"]


def test_door_names_unknown_reader(tmp_path):
    path = write(tmp_path, edited("reader: r1", "reader: r9"))
    assert problems_of(path) == [f"{path}:11: doors[0].reader: door 'd1' names unknown reader 'r9'"]


def test_door_names_unknown_io_in_lock(tmp_path):
    path = write(tmp_path, edited("io: io1", "io: io9"))
    assert problems_of(path) == [f"{path}:13: doors[0].lock.io: door 'd1' lock names unknown io 'io9'"]


def test_card_door_without_reader_points_at_the_door(tmp_path):
    path = write(tmp_path, edited("    reader: r1\n", ""))
    assert problems_of(path) == [f"{path}:10: doors[0].reader: door 'd1' in mode card needs a reader"]


# --- YAML and file errors ----------------------------------------------------------------------


def test_duplicate_key(tmp_path):
    path = write(tmp_path, edited("    port: /dev/ttyUSB0\n", "    port: /dev/ttyUSB0\n    port: /dev/ttyUSB9\n"))
    assert problems_of(path) == [f"{path}:6: readers[0].port: duplicate key 'port' (first at line 5)"]


def test_duplicate_top_level_key(tmp_path):
    path = write(tmp_path, BASE + "gateway_id: gw-2\n")
    assert problems_of(path) == [f"{path}:16: gateway_id: duplicate key 'gateway_id' (first at line 1)"]


def test_yaml_syntax_error(tmp_path):
    path = write(tmp_path, edited("port: /dev/ttyUSB1", "port: /dev/ttyUSB1: x"))
    assert problems_of(path) == [f"{path}:8: YAML syntax error: mapping values are not allowed here"]


def test_yaml_syntax_error_with_context(tmp_path):
    path = write(tmp_path, "gateway_id: gw-1\nreaders: [a, b\nmqtt: {}\n")
    [problem] = problems_of(path)
    assert problem.startswith(f"{path}:3: YAML syntax error: expected ',' or ']'")
    assert problem.endswith("(while parsing a flow sequence at line 2)")


@pytest.mark.parametrize("text", ["", "\n# only a comment\n"])
def test_empty_file(tmp_path, text):
    path = write(tmp_path, text)
    assert problems_of(path) == [f"{path}: config file is empty; it needs at least 'gateway_id'"]


def test_top_level_not_a_mapping(tmp_path):
    path = write(tmp_path, "# gateways\n- gateway_id: gw-1\n")
    assert problems_of(path) == [f"{path}:2: the top level must be a mapping of keys, not a list"]


def test_missing_file(tmp_path):
    path = tmp_path / "nope.yaml"
    assert problems_of(path) == [f"{path}: config file not found"]


def test_path_given_as_str_is_reported_as_given(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    write(tmp_path, edited("reader: r1", "reader: r9"))
    with pytest.raises(ConfigError) as caught:
        load_config("gw.yaml", environ={})
    assert caught.value.problems[0].startswith("gw.yaml:11: doors[0].reader: ")


# --- secrets -----------------------------------------------------------------------------------

SECRET = """\
gateway_id: gw-1
mqtt:
  username: gw-1
  password: ${MQTT_PASSWORD}
"""


def test_missing_env_secret(tmp_path):
    path = write(tmp_path, SECRET)
    assert problems_of(path) == [
        f"{path}:4: mqtt.password: ${{MQTT_PASSWORD}} is not set in the environment nor in $CREDENTIALS_DIRECTORY"
    ]


def test_secret_from_env(tmp_path):
    cfg = load_config(write(tmp_path, SECRET), environ={"MQTT_PASSWORD": "s3cret"})
    assert cfg.mqtt.password is not None and cfg.mqtt.password.get_secret_value() == "s3cret"


def test_secret_from_credentials_directory(tmp_path):
    creds = tmp_path / "creds"
    creds.mkdir()
    (creds / "MQTT_PASSWORD").write_text("from-file\n\n", encoding="utf-8")
    cfg = load_config(write(tmp_path, SECRET), environ={"CREDENTIALS_DIRECTORY": str(creds)})
    # Only one trailing newline is removed: the rest is the secret.
    assert cfg.mqtt.password is not None and cfg.mqtt.password.get_secret_value() == "from-file\n"


def test_environment_wins_over_credentials_directory(tmp_path):
    creds = tmp_path / "creds"
    creds.mkdir()
    (creds / "MQTT_PASSWORD").write_text("from-file\n", encoding="utf-8")
    environ = {"CREDENTIALS_DIRECTORY": str(creds), "MQTT_PASSWORD": "from-env"}
    cfg = load_config(write(tmp_path, SECRET), environ=environ)
    assert cfg.mqtt.password is not None and cfg.mqtt.password.get_secret_value() == "from-env"


def test_credentials_directory_without_the_file(tmp_path):
    path = write(tmp_path, SECRET)
    [problem] = problems_of(path, {"CREDENTIALS_DIRECTORY": str(tmp_path)})
    assert problem.startswith(f"{path}:4: mqtt.password: ${{MQTT_PASSWORD}} is not set")


def test_dollar_escape_and_several_references(tmp_path):
    text = 'gateway_id: gw-1\nmqtt:\n  password: "p$${A}x-${A}-${B_2}"\n'
    cfg = load_config(write(tmp_path, text), environ={"A": "1", "B_2": "two"})
    assert cfg.mqtt.password is not None and cfg.mqtt.password.get_secret_value() == "p${A}x-1-two"


def test_substituted_value_is_validated(tmp_path):
    path = write(tmp_path, "gateway_id: gw-1\nmqtt:\n  port: ${MQTT_PORT}\n")
    assert load_config(path, environ={"MQTT_PORT": "8883"}).mqtt.port == 8883
    [problem] = problems_of(path, {"MQTT_PORT": "many"})
    assert problem.startswith(f"{path}:3: mqtt.port: Input should be a valid integer")


def test_malformed_reference(tmp_path):
    path = write(tmp_path, "gateway_id: gw-1\nmqtt:\n  password: ${1BAD}\n")
    [problem] = problems_of(path)
    assert problem.startswith(f"{path}:3: mqtt.password: '${{' must start a ${{NAME}} reference")


# --- paths -------------------------------------------------------------------------------------


def test_relative_data_dir_is_relative_to_the_config_file(tmp_path, monkeypatch):
    (tmp_path / "etc").mkdir()
    path = write(tmp_path / "etc", "gateway_id: gw-1\ndata_dir: data\n")
    monkeypatch.chdir(tmp_path)
    assert load_config(Path("etc/gw.yaml"), environ={}).data_dir == tmp_path / "etc" / "data"
    assert load_config(write(tmp_path, "gateway_id: gw-1\n"), environ={}).data_dir == tmp_path / "var"
    absolute = tmp_path / "elsewhere"
    path.write_text(f"gateway_id: gw-1\ndata_dir: {absolute}\n", encoding="utf-8")
    assert load_config(path, environ={}).data_dir == absolute


def test_merge_keys_work_and_errors_point_at_the_explicit_key(tmp_path):
    text = (
        "gateway_id: gw-1\n"
        "readers:\n"
        "  - &reader {id: r1, protocol: rdm6300, port: /dev/ttyS1, baudrate: 19200}\n"
        "  - <<: *reader\n"
        "    id: r2\n"
        "    repeat_suppress_ms: later\n"
        "    port: /dev/ttyS2\n"  # two serial readers never share a port (only OSDP readers, on one bus)
    )
    path = write(tmp_path, text)
    [problem] = problems_of(path)
    assert problem.startswith(f"{path}:6: readers[1].repeat_suppress_ms: Input should be a valid integer")
    path.write_text(text.replace("later", "500"), encoding="utf-8")
    second = load_config(path, environ={}).readers[1]
    assert (second.id, second.baudrate, second.repeat_suppress_ms) == ("r2", 19200, 500)


def test_unknown_tag(tmp_path):
    path = write(tmp_path, "gateway_id: gw-1\nmqtt:\n  host: !secret broker\n")
    assert problems_of(path) == [
        f"{path}:3: mqtt.host: cannot read value: could not determine a constructor for the tag '!secret'"
    ]


TOWN_EXAMPLE = EXAMPLE.with_name("town.example.yaml")


def test_the_town_example_loads_and_names_its_missing_secret(tmp_path: Path) -> None:
    from config.loader import load_town_config

    cfg = load_town_config(TOWN_EXAMPLE, environ={"town_db_password": "pw", "CREDENTIALS_DIRECTORY": str(tmp_path)})
    assert cfg.instance == "town-1" and cfg.mqtt.share_group == "platform" and cfg.api.port == 8090
    assert cfg.database_url is not None and ":pw@" in cfg.database_url.get_secret_value()
    assert cfg.mqtt.key_file == tmp_path / "mqtt_client_key" and cfg.recognition.landmarks == 68
    with pytest.raises(ConfigError) as err:
        load_town_config(TOWN_EXAMPLE, environ={"CREDENTIALS_DIRECTORY": str(tmp_path)})
    assert "database_url: ${town_db_password} is not set" in str(err.value)
