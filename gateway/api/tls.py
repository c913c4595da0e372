"""The API's own HTTPS (`api.tls_cert_file`, `api.tls_key_file`), for buildings without a reverse proxy.

One TLS setup for the gateway's API process, the town's API, `accessgw check` and the door process's
look before it starts the API: TLS 1.2 or later, the certificate chain and its key read from files
(the key normally a systemd credential). A file that cannot be used is an ApiTlsError whose message
names the config key, the file and why, in one line. Imports the standard library only: the door
process uses it without loading uvicorn.
"""

from __future__ import annotations

import ssl
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from config.models import ApiConfig


class ApiTlsError(ValueError):
    """The API's certificate or key cannot be used; the message is one line for the installer."""


@dataclass(frozen=True)
class CertificateFacts:
    names: list[str]  # subjectAltName entries, else the common name
    not_before: datetime
    not_after: datetime


def server_context(api: ApiConfig) -> ssl.SSLContext:
    """The server side of the API's TLS: raises ApiTlsError when the files cannot be used."""
    cert, key = _files(api)
    certificate_facts(api)  # a readable file that holds no certificate gets its own message
    _readable(key, "tls_key_file")
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    try:
        context.load_cert_chain(str(cert), str(key))
    except (OSError, ValueError) as exc:  # ssl.SSLError is an OSError
        raise ApiTlsError(
            f"TLS setup: api.tls_key_file {key} unusable with api.tls_cert_file: {_reason(exc)}"
        ) from None
    return context


def certificate_facts(api: ApiConfig) -> CertificateFacts:
    """Who the (first) certificate of tls_cert_file is for and when it is valid."""
    cert, _ = _files(api)
    _readable(cert, "tls_cert_file")
    try:
        decoded = ssl._ssl._test_decode_cert(str(cert))  # type: ignore[attr-defined]  # the stdlib's only parser
    except (OSError, ValueError) as exc:
        raise ApiTlsError(f"TLS setup: api.tls_cert_file {cert} holds no PEM certificate: {_reason(exc)}") from None
    names = [value for _kind, value in decoded.get("subjectAltName", ())]
    if not names:
        names = [value for rdn in decoded.get("subject", ()) for key, value in rdn if key == "commonName"]
    return CertificateFacts(names, _when(decoded["notBefore"]), _when(decoded["notAfter"]))


def check_line(api: ApiConfig, now: datetime | None = None) -> tuple[str, bool]:
    """For `accessgw check`: one line on the API's certificate and key, and whether they will serve."""
    where = f"api https on {api.host}:{api.port}"
    try:
        server_context(api)
        facts = certificate_facts(api)
    except ApiTlsError as exc:
        return f"{where}: {exc}", False
    now = now or datetime.now(UTC)
    names = ", ".join(facts.names) or "no name"
    if facts.not_after < now:
        return f"{where}: certificate for {names} expired on {facts.not_after:%Y-%m-%d}: renew it, then restart", False
    if facts.not_before > now:
        return f"{where}: certificate for {names} is not valid before {facts.not_before:%Y-%m-%d %H:%M} UTC", False
    return f"{where}: certificate for {names}, valid until {facts.not_after:%Y-%m-%d}, key matches", True


def _files(api: ApiConfig) -> tuple[Path, Path]:
    if api.tls_cert_file is None or api.tls_key_file is None:
        raise ApiTlsError("api.tls_cert_file and api.tls_key_file are not set")
    return api.tls_cert_file, api.tls_key_file


def _readable(path: Path, key: str) -> None:
    try:
        with open(path, "rb"):
            pass
    except OSError as exc:
        raise ApiTlsError(f"TLS setup: cannot read api.{key} {path}: {exc.strerror or exc}") from None


def _when(text: str) -> datetime:
    return datetime.fromtimestamp(ssl.cert_time_to_seconds(text), UTC)


def _reason(exc: BaseException) -> str:
    reason, library = getattr(exc, "reason", None), getattr(exc, "library", None)  # unset by some ssl errors
    if reason:
        return f"{reason} ({library})" if library else str(reason)
    if isinstance(exc, ssl.SSLError) and exc.args:
        text = str(exc.args[-1])  # (number, text) or (text,)
        # OpenSSL's "PEM lib": the file holds no PEM key it can read (empty, a certificate, encrypted).
        return "no readable PEM private key in it" if "PEM lib" in text else text
    return str(exc)
