"""ONVIF camera discovery: device information and the stream / snapshot URIs of one media profile.

`resolve_stream(cfg)` turns a `CameraConfig` into `CameraEndpoints`: for an ONVIF camera it asks the
device (GetDeviceInformation, GetCapabilities, GetProfiles, GetStreamUri, GetSnapshotUri) through
onvif-zeep; for a plain `rtsp_url` camera it returns that URL. Every failure is a `CameraError` whose
message starts with "ONVIF: " and says what to check.

onvif-zeep is imported lazily (`import onvif` calls `logging.basicConfig` on the root logger; the
side effect is undone here). Its `ONVIFCamera` class is not used: it pops the proxy variables from
`os.environ` and, on cameras with an events service, opens a PullPoint subscription on every
construction. The two services needed are built directly instead, with a requests session that
ignores proxy settings and a zeep transport whose timeouts bound every call.
"""

from __future__ import annotations

import functools
import importlib.metadata
import logging
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlsplit, urlunsplit

from config.models import CameraConfig

log = logging.getLogger(__name__)

DEFAULT_TIMEOUT_S = 5.0  # per ONVIF HTTP request (connect, and each read)
_WSDL_FILES = ("devicemgmt.wsdl", "media.wsdl")


class CameraError(RuntimeError):
    """A camera could not be resolved or opened; the message is meant for an installer."""


@dataclass(frozen=True, slots=True)
class CameraEndpoints:
    """Where a camera's frames come from, and what the camera says it is."""

    stream_uri: str = field(repr=False)  # may carry credentials: never log it, use redact_url()
    snapshot_uri: str | None = None
    manufacturer: str | None = None
    model: str | None = None
    firmware: str | None = None
    serial: str | None = None
    profile_token: str | None = None

    @property
    def stream_uri_redacted(self) -> str:
        return redact_url(self.stream_uri)


# --- URLs --------------------------------------------------------------------------------------


def redact_url(url: str) -> str:
    """The URL with its password replaced by '***' (for logs, errors and status)."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return "<unparseable URL>"
    if parts.password is None:
        return url
    userinfo, _, hostport = parts.netloc.rpartition("@")
    user = userinfo.split(":", 1)[0]
    return urlunsplit(parts._replace(netloc=f"{user}:***@{hostport}"))


def with_credentials(url: str, username: str | None, password: str | None) -> str:
    """Insert URL-quoted credentials into an rtsp(s) URL that has none; otherwise return it unchanged."""
    if not username:
        return url
    parts = urlsplit(url)
    if parts.scheme.lower() not in ("rtsp", "rtsps") or "@" in parts.netloc:
        return url
    userinfo = quote(username, safe="")
    if password:
        userinfo += ":" + quote(password, safe="")
    return urlunsplit(parts._replace(netloc=f"{userinfo}@{parts.netloc}"))


# --- onvif-zeep, imported lazily -----------------------------------------------------------------

_import_lock = threading.Lock()


def _import_onvif() -> Any:
    """Import onvif-zeep without letting it configure the root logger."""
    with _import_lock:
        root = logging.getLogger()
        handlers, level = list(root.handlers), root.level
        try:
            import onvif  # lazy on purpose: import-time side effects
        finally:
            for handler in root.handlers[:]:
                if handler not in handlers:
                    root.removeHandler(handler)
            root.setLevel(level)
        return onvif


@functools.cache
def wsdl_dir() -> Path:
    """The folder holding onvif-zeep's WSDL files.

    onvif-zeep installs them as a top-level `wsdl/` folder in site-packages, next to the `onvif`
    package; its own default path is derived from `__file__` and may be wrong for other layouts.
    The installed distribution's file list is the authority; the default is only a fallback.
    """
    candidates: list[Path] = []
    try:
        for f in importlib.metadata.files("onvif-zeep") or []:
            if f.name == "devicemgmt.wsdl":
                candidates.append(Path(str(f.locate())).resolve().parent)
    except importlib.metadata.PackageNotFoundError:
        pass
    onvif = _import_onvif()
    candidates.append(Path(onvif.__file__).resolve().parent.parent / "wsdl")
    candidates.append(Path("/etc/onvif/wsdl"))
    for folder in candidates:
        if all((folder / name).is_file() for name in _WSDL_FILES):
            return folder
    raise CameraError(
        f"ONVIF: WSDL files not found (looked in {', '.join(map(str, candidates))}); reinstall onvif-zeep"
    )


def _service(name: str, xaddr: str, username: str, password: str, timeout_s: float) -> Any:
    onvif = _import_onvif()
    import requests  # a dependency of zeep, only needed with it
    from onvif.definition import SERVICES
    from zeep.transports import Transport

    definition = SERVICES[name]
    session = requests.Session()
    session.trust_env = False  # a camera on the building LAN is never reached through an HTTP proxy
    transport = Transport(session=session, timeout=timeout_s, operation_timeout=timeout_s)
    return onvif.ONVIFService(
        xaddr,
        username,
        password,
        str(wsdl_dir() / definition["wsdl"]),
        True,  # WS-Security UsernameToken with password digest
        no_cache=True,  # the WSDLs are local files; no sqlite cache in $HOME
        binding_name=f"{{{definition['ns']}}}{definition['binding']}",
        transport=transport,
    )


# --- errors ------------------------------------------------------------------------------------


def _causes(exc: BaseException) -> list[BaseException]:
    """The exception and everything it wraps (onvif-zeep re-raises inside `except`, so via __context__)."""
    chain: list[BaseException] = []
    current: BaseException | None = exc
    while current is not None and current not in chain:
        chain.append(current)
        current = current.__cause__ or current.__context__
    return chain


def _explain(exc: BaseException, where: str, step: str, timeout_s: float) -> CameraError:
    import requests
    from zeep.exceptions import Fault, TransportError

    for cause in _causes(exc):
        if isinstance(cause, Fault):
            text = str(cause.message or "").strip()
            subcodes = " ".join(str(s) for s in (cause.subcodes or []))
            if "not authorized" in text.lower() or "NotAuthorized" in subcodes:
                return CameraError(
                    f"ONVIF: {text or 'Sender not authorized'} at {where} "
                    "(wrong username or password, or the camera's clock is far from the gateway's)"
                )
            return CameraError(f"ONVIF: {step} failed at {where}: {text or 'SOAP fault'}")
        if isinstance(cause, TransportError):
            if cause.status_code in (401, 403):
                return CameraError(f"ONVIF: Sender not authorized at {where} (HTTP {cause.status_code})")
            return CameraError(f"ONVIF: {step} failed at {where}: HTTP {cause.status_code}")
        if isinstance(cause, requests.exceptions.Timeout):
            return CameraError(f"ONVIF: {where} unreachable: no answer within {timeout_s:g} s")
        if isinstance(cause, requests.exceptions.ConnectionError):
            reason = "connection refused" if "refused" in str(cause).lower() else "cannot connect"
            return CameraError(f"ONVIF: {where} unreachable: {reason}")
    return CameraError(f"ONVIF: {step} failed at {where}: {exc}")


# --- resolve -----------------------------------------------------------------------------------


def _text(value: object) -> str | None:
    return None if value is None else str(value).strip() or None


def resolve_stream(cfg: CameraConfig, *, timeout_s: float = DEFAULT_TIMEOUT_S) -> CameraEndpoints:
    """Where to read `cfg`'s frames from: its `rtsp_url`, or what the ONVIF device says.

    For ONVIF: device information, the media profile at index `cfg.onvif.profile`, its RTP-unicast
    RTSP stream URI (with the configured credentials inserted, URL-quoted, when the URI has none)
    and its snapshot URI (None when the camera has none). Each request is bounded by `timeout_s`.
    Raises CameraError.
    """
    if cfg.onvif is None:
        assert cfg.rtsp_url is not None  # the model guarantees exactly one source
        return CameraEndpoints(stream_uri=cfg.rtsp_url)

    on = cfg.onvif
    where = f"{on.host}:{on.port}"
    username = on.username or ""
    password = on.password.get_secret_value() if on.password is not None else ""
    host = on.host if on.host.startswith(("http://", "https://")) else f"http://{on.host}"
    step = "connect"
    try:
        step = "GetDeviceInformation"
        device = _service("devicemgmt", f"{host}:{on.port}/onvif/device_service", username, password, timeout_s)
        info = device.GetDeviceInformation()
        step = "GetCapabilities"
        caps = device.GetCapabilities({"Category": "Media"})
        media_xaddr = _text(getattr(getattr(caps, "Media", None), "XAddr", None))
        if media_xaddr is None:
            raise CameraError(f"ONVIF: {where} has no media service")
        step = "GetProfiles"
        media = _service("media", media_xaddr, username, password, timeout_s)
        profiles = list(media.GetProfiles() or [])
        if not 0 <= on.profile < len(profiles):
            names = ", ".join(f"{i}: {p.token} ({p.Name})" for i, p in enumerate(profiles)) or "none"
            raise CameraError(
                f"ONVIF: profile index {on.profile} is out of range: {where} has {len(profiles)} profile(s) [{names}]"
            )
        token = str(profiles[on.profile].token)
        step = "GetStreamUri"
        reply = media.GetStreamUri(
            {"ProfileToken": token, "StreamSetup": {"Stream": "RTP-Unicast", "Transport": {"Protocol": "RTSP"}}}
        )
        stream_uri = _text(getattr(reply, "Uri", None))
        if stream_uri is None:
            raise CameraError(f"ONVIF: {where} returned no stream URI for profile {on.profile} ({token})")
        snapshot_uri: str | None = None
        try:
            step = "GetSnapshotUri"
            snapshot_uri = _text(getattr(media.GetSnapshotUri({"ProfileToken": token}), "Uri", None))
        except Exception as exc:  # optional in ONVIF Profile S: a camera without snapshots is still a camera
            log.info("camera %s: no snapshot URI: %s", cfg.id, _explain(exc, where, step, timeout_s))
    except CameraError:
        raise
    except Exception as exc:
        raise _explain(exc, where, step, timeout_s) from exc

    return CameraEndpoints(
        stream_uri=with_credentials(stream_uri, on.username, password or None),
        snapshot_uri=snapshot_uri,
        manufacturer=_text(getattr(info, "Manufacturer", None)),
        model=_text(getattr(info, "Model", None)),
        firmware=_text(getattr(info, "FirmwareVersion", None)),
        serial=_text(getattr(info, "SerialNumber", None)),
        profile_token=token,
    )
