"""The API over HTTPS without a reverse proxy (`api.tls_cert_file`, `api.tls_key_file`), and
`accessgw user rotate` / `accessgw town user rotate`.

Certificates are made by the test with the openssl CLI (testing.tls.TownCa); the gateway is a real
`accessgw run` (with a card reader and pymodbus relay board on socat ptys where the doors matter), the
town a real TownService on SQLite, the clients httpx and ssl."""

from __future__ import annotations

import json
import os
import shutil
import socket
import sqlite3
import ssl
import warnings
from dataclasses import dataclass
from datetime import date
from pathlib import Path

import httpx
import pytest
import yaml
from click.testing import CliRunner
from pydantic import ValidationError
from sqlalchemy import text

from config.loader import ConfigError, load_config
from config.models import ApiConfig
from config.town import TownConfig, TownMqttConfig
from gateway.api.tls import check_line
from gateway.cli import main
from gateway.store.db import open_store
from gateway.store.roster import NewTenant, add_card, add_tenant
from testing.gateway import DoorPeers, GatewayProcess, gateway_config
from testing.peers import free_port, port_answers, wait_until
from testing.tls import TownCa

T = "/api/v1"
CARD = 305419896


@dataclass(frozen=True)
class Pki:
    ca: Path
    crt: Path
    key: Path
    expired_crt: Path
    expired_key: Path


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    ca = TownCa(tmp_path_factory.mktemp("pki"), "Building CA")
    crt, key = ca.issue("127.0.0.1", server_names=["127.0.0.1", "localhost"])
    expired_crt, expired_key = ca.issue("127.0.0.1", server_names=["127.0.0.1"], expired=True)
    return Pki(ca.crt, crt, key, expired_crt, expired_key)


def tls_api(pki: Pki, key: str | Path | None = None) -> dict[str, str]:
    return {"tls_cert_file": str(pki.crt), "tls_key_file": str(key or pki.key)}


def cli(*args: str) -> tuple[int, str]:
    """`accessgw …` in this process (click's runner), as the installer `installer`: exit code, output."""
    umask = os.umask(0o022)  # `accessgw` sets 077 for itself: not for the rest of this test session
    try:
        result = CliRunner().invoke(main, list(args), env={"SUDO_USER": None, "USER": "installer"})
    finally:
        os.umask(umask)
    return result.exit_code, result.output


def handshake(port: int, ca: Path, *, highest: ssl.TLSVersion, legacy: bool = False) -> str:
    """A TLS handshake with the API offering versions up to `highest`; the version agreed."""
    context = ssl.create_default_context(cafile=str(ca))
    with warnings.catch_warnings():  # TLS 1.0/1.1 are deprecated: that is the point
        warnings.simplefilter("ignore", DeprecationWarning)
        context.maximum_version = highest
        if legacy:  # let this client offer TLS 1.0/1.1 at all (OpenSSL 3 refuses them by default)
            context.minimum_version = ssl.TLSVersion.TLSv1
            context.set_ciphers("DEFAULT:@SECLEVEL=0")
    with socket.create_connection(("127.0.0.1", port), timeout=5) as raw:
        with context.wrap_socket(raw, server_hostname="127.0.0.1") as tls:
            return str(tls.version())


def test_the_config_takes_paths_both_or_neither(tmp_path: Path, pki: Pki) -> None:
    creds = tmp_path / "credentials"
    creds.mkdir()
    shutil.copy(pki.key, creds / "api_tls_key")
    path = tmp_path / "gw.yaml"
    api = {"tls_cert_file": "certs/api.crt", "tls_key_file": "${CREDENTIALS_DIRECTORY}/api_tls_key"}
    path.write_text(yaml.safe_dump({"gateway_id": "gw-1", "api": api}))
    cfg = load_config(path, environ={"CREDENTIALS_DIRECTORY": str(creds)})
    assert cfg.api.tls_key_file == creds / "api_tls_key"
    assert cfg.api.tls_cert_file == tmp_path / "certs" / "api.crt"  # relative to the config file
    assert cfg.api.scheme == "https" and ApiConfig().scheme == "http"

    with pytest.raises(ValidationError, match="tls_cert_file is set but tls_key_file is not"):
        ApiConfig(tls_cert_file=pki.crt)
    with pytest.raises(ValidationError, match="tls_key_file is set but tls_cert_file is not"):
        ApiConfig(tls_key_file=pki.key)
    # `${NAME}` alone puts the credential's content in: a PEM is refused, naming the key.
    path.write_text(yaml.safe_dump({"gateway_id": "gw-1", "api": {"tls_cert_file": str(pki.crt),
                                                                   "tls_key_file": "${api_tls_key}"}}))  # fmt: skip
    with pytest.raises(ConfigError, match=r"api\.tls_key_file: .*give the path of the PEM file, not its content"):
        load_config(path, environ={"CREDENTIALS_DIRECTORY": str(creds)})


def test_check_line_names_the_file_and_the_trouble(tmp_path: Path, pki: Pki) -> None:
    line, ok = check_line(ApiConfig(port=8443, **tls_api(pki)))
    assert ok and line.startswith("api https on 127.0.0.1:8443: certificate for 127.0.0.1, localhost, valid until ")
    assert line.endswith("key matches")
    cases = [
        (tls_api(pki, tmp_path / "nothing.key"), f"cannot read api.tls_key_file {tmp_path}/nothing.key: No such file"),
        ({"tls_cert_file": str(pki.key), "tls_key_file": str(pki.key)}, "holds no PEM certificate"),
        (tls_api(pki, pki.crt), "unusable with api.tls_cert_file: no readable PEM private key in it"),
        (tls_api(pki, pki.expired_key), "unusable with api.tls_cert_file: KEY_VALUES_MISMATCH"),
        ({"tls_cert_file": str(pki.expired_crt), "tls_key_file": str(pki.expired_key)}, "expired on 2020-01-31"),
    ]
    for settings, expected in cases:
        line, ok = check_line(ApiConfig(**settings))
        assert not ok and expected in line, line


@pytest.mark.slow  # one gateway start, a swipe, the API's start (~5 s)
def test_https_with_the_key_as_a_credential(tmp_path: Path, pki: Pki, monkeypatch: pytest.MonkeyPatch) -> None:
    """As an installer meets it: the key's credential forgotten (check says so, the doors work, one log
    line), then given (the API serves HTTPS within seconds, no restart); then what HTTPS must be."""
    creds = tmp_path / "credentials"  # systemd's LoadCredential= directory, here without the key yet
    creds.mkdir()
    monkeypatch.setenv("CREDENTIALS_DIRECTORY", str(creds))
    peers = DoorPeers(tmp_path / "ports")
    api = tls_api(pki, "${CREDENTIALS_DIRECTORY}/api_tls_key")
    gw = GatewayProcess(tmp_path, gateway_config(tmp_path / "data", free_port(), api=api, **peers.sections(300)),
                        api_ca=pki.ca)  # fmt: skip
    missing = f"TLS setup: cannot read api.tls_key_file {creds}/api_tls_key: No such file or directory"
    try:
        code, output = cli("check", "--config", str(gw.write_config()))
        assert code == 1 and f"FAIL  api https on 127.0.0.1:{gw.api_port}: {missing}" in output.splitlines(), output

        engine, sessions = open_store(gw.data_dir)
        with sessions.begin() as s:
            add_tenant(s, NewTenant("T1", "Wang Fang", "P-1", date(2099, 1, 1)))
            add_card(s, "T1", CARD)
        engine.dispose()
        gw.spawn()
        wait_until(lambda: "running:" in gw.log() and "API not started" in gw.log(), 30, 0.05, "the gateway's lines")
        said = f"API not started: {missing}; it starts once they are usable (looked at every second)"
        assert said in gw.log()
        assert not port_answers(gw.api_port)

        peers.wait_polled()
        assert peers.card is not None
        peers.card.swipe(CARD, 34)  # the doors decide and open without their API
        wait_until(lambda: (0, True) in [(coil, on) for _, coil, on in peers.board.write_history()], 10, 0.02,
                   "the lock's relay pulsed")  # fmt: skip

        shutil.copy(pki.key, creds / "api_tls_key")  # the credential given: the next look serves, no restart
        wait_until(gw.api_answers, 15, 0.1, "the API over HTTPS after the key came")
        assert gw.log().count("API not started") == 1 and "Traceback" not in gw.log()  # said once, not each second
        assert f"on https://127.0.0.1:{gw.api_port}/api/v1" in gw.log()

        admin = gw.admin_token()
        assert_https_only(gw, pki)
        assert_the_cookie_is_secure(gw, admin)
        assert_cli_rotate(gw, admin)
    finally:
        gw.stop()
        peers.close()


def assert_https_only(gw: GatewayProcess, pki: Pki) -> None:
    """Plain HTTP on the port gets no answer; HTTPS needs the building's CA; TLS 1.2 and up only."""
    with pytest.raises(httpx.HTTPError):
        httpx.get(f"http://127.0.0.1:{gw.api_port}{T}/health", timeout=5)
    with pytest.raises(httpx.ConnectError, match="CERTIFICATE_VERIFY_FAILED"):
        httpx.get(f"{gw.base}{T}/health", timeout=5)
    assert handshake(gw.api_port, pki.ca, highest=ssl.TLSVersion.TLSv1_2) == "TLSv1.2"
    assert handshake(gw.api_port, pki.ca, highest=ssl.TLSVersion.TLSv1_2, legacy=True) == "TLSv1.2"
    with pytest.raises((ssl.SSLError, ConnectionError)) as refused:  # the server ends a TLS 1.1 handshake
        handshake(gw.api_port, pki.ca, highest=ssl.TLSVersion.TLSv1_1, legacy=True)
    assert "NO_PROTOCOLS_AVAILABLE" not in str(refused.value)  # this client did offer TLS 1.1


def assert_the_cookie_is_secure(gw: GatewayProcess, admin: str) -> None:
    with gw.client() as page:  # the web page's sign-in
        signed_in = page.post(f"{T}/session", json={"token": admin})
        assert signed_in.status_code == 200, signed_in.text
        cookie = signed_in.headers["set-cookie"]
        assert "Secure" in cookie and "HttpOnly" in cookie and "samesite=strict" in cookie.lower()
        assert page.get(f"{T}/me").json()["name"] == "admin"  # and it is sent back over HTTPS


def assert_cli_rotate(gw: GatewayProcess, admin: str) -> None:
    """`accessgw user rotate`: a new token alone on the last line, the old one refused at once, audited."""
    with gw.client(admin) as c:
        old = c.post(f"{T}/users", json={"name": "officer-7", "role": "police"}).json()["token"]
    code, output = cli("user", "rotate", "--config", str(gw.config_path), "--name", "officer-7")
    assert code == 0, output
    new = output.strip().splitlines()[-1]
    assert new.startswith("agw_") and new != old
    with gw.client(old) as c:
        assert c.get(f"{T}/me").status_code == 401
    with gw.client(new) as c:
        assert c.get(f"{T}/me").json()["name"] == "officer-7"
    db = sqlite3.connect(gw.data_dir / "gateway.sqlite3")
    rows = db.execute("SELECT actor, details FROM audit_log WHERE action = 'user.rotate'").fetchall()
    db.close()
    assert [(actor, json.loads(details)) for actor, details in rows] == [("cli:installer", {"name": "officer-7"})]
    code, output = cli("user", "rotate", "--config", str(gw.config_path), "--name", "ghost")
    assert code == 1 and "error: no active user 'ghost'" in output


@pytest.mark.slow  # a town start on SQLite (~2 s)
def test_the_town_api_over_https_and_town_user_rotate(tmp_path: Path, pki: Pki) -> None:
    from town.service import TownService

    # No broker: the town's API and users do not need one (its link keeps trying in the background).
    cfg = TownConfig(data_dir=tmp_path / "town", instance="tls-test",
                     mqtt=TownMqttConfig(host="127.0.0.1", port=free_port(), reconnect_max_s=1),
                     api=ApiConfig(host="127.0.0.1", port=free_port(), **tls_api(pki)))  # fmt: skip
    config_path = tmp_path / "town.yaml"
    config_path.write_text(yaml.safe_dump(json.loads(cfg.model_dump_json())))

    broken = tmp_path / "broken.yaml"
    broken.write_text(yaml.safe_dump(json.loads(cfg.model_dump_json()) | {"api": tls_api(pki, tmp_path / "no.key")}))
    code, output = cli("town", "run", "--config", str(broken))
    assert code == 1 and f"error: TLS setup: cannot read api.tls_key_file {tmp_path}/no.key" in output

    service = TownService(cfg)
    service.start()
    try:
        verify = ssl.create_default_context(cafile=str(pki.ca))
        base = f"https://127.0.0.1:{cfg.api.port}"
        wait_until(lambda: port_answers(cfg.api.port), 10, 0.02, "the town's API port")
        old = service.initial_admin_token
        assert old is not None
        with httpx.Client(base_url=base, verify=verify, headers={"Authorization": f"Bearer {old}"}) as c:
            assert c.get(f"{T}/me").json()["name"] == "admin"
        with pytest.raises(httpx.HTTPError):
            httpx.get(f"http://127.0.0.1:{cfg.api.port}{T}/health", timeout=5)

        code, output = cli("town", "user", "rotate", "--config", str(config_path), "--name", "admin")
        assert code == 0, output
        new = output.strip().splitlines()[-1]
        for token, status in ((old, 401), (new, 200)):
            with httpx.Client(base_url=base, verify=verify, headers={"Authorization": f"Bearer {token}"}) as c:
                assert c.get(f"{T}/me").status_code == status
        with service.engine.connect() as conn:
            rows = conn.execute(text("SELECT actor FROM audit_log WHERE action = 'user.rotate'")).all()
        assert [actor for (actor,) in rows] == ["cli:installer"]
    finally:
        service.stop()
