"""What an RTSP camera answers, for installers: a DESCRIBE client (Basic or Digest auth) and
`diagnose_open_failure`, which says in installer's words why a stream does not open.

OpenCV only says that an open failed; this speaks just enough RTSP to tell a refused port, a wrong
password and a wrong path apart. Sockets only: no OpenCV needed to ask.
"""

from __future__ import annotations

import base64
import hashlib
import socket
from urllib.parse import unquote, urlsplit, urlunsplit

from drivers.onvif_camera import redact_url


def _digest_response(user: str, password: str, realm: str, nonce: str, method: str, uri: str) -> str:
    """RFC 2617 digest without qop (what RTSP cameras use)."""
    ha1 = hashlib.md5(f"{user}:{realm}:{password}".encode()).hexdigest()
    ha2 = hashlib.md5(f"{method}:{uri}".encode()).hexdigest()
    return hashlib.md5(f"{ha1}:{nonce}:{ha2}".encode()).hexdigest()


def _auth_params(challenge: str) -> dict[str, str]:
    params: dict[str, str] = {}
    for part in challenge.split(" ", 1)[-1].split(","):
        key, _, value = part.strip().partition("=")
        params[key.strip().lower()] = value.strip().strip('"')
    return params


def _rtsp_describe(url: str, timeout_s: float) -> tuple[int, str]:
    """Send DESCRIBE (answering a Basic or Digest challenge once): (status code, reason)."""
    parts = urlsplit(url)
    host, port = parts.hostname or "", parts.port or 554
    user, password = unquote(parts.username or ""), unquote(parts.password or "")
    bare = urlunsplit(parts._replace(netloc=parts.netloc.rpartition("@")[2]))
    with socket.create_connection((host, port), timeout=timeout_s) as sock:
        sock.settimeout(timeout_s)
        authorization = ""
        for cseq in (1, 2):
            request = f"DESCRIBE {bare} RTSP/1.0\r\nCSeq: {cseq}\r\nAccept: application/sdp\r\n{authorization}\r\n"
            sock.sendall(request.encode())
            head = b""
            while b"\r\n\r\n" not in head and len(head) < 65536:
                chunk = sock.recv(4096)
                if not chunk:
                    break
                head += chunk
            lines = head.split(b"\r\n\r\n", 1)[0].decode("latin-1").split("\r\n")
            status = lines[0].split(" ", 2)
            if len(status) < 2 or not status[0].startswith("RTSP/") or not status[1].isdigit():
                raise ValueError("not an RTSP server")
            code, reason = int(status[1]), status[2] if len(status) > 2 else ""
            challenges = [ln.split(":", 1)[1].strip() for ln in lines[1:] if ln.lower().startswith("www-authenticate:")]
            if code != 401 or not user or cseq == 2 or not challenges:
                return code, reason
            length = next((int(ln.split(":", 1)[1]) for ln in lines[1:] if ln.lower().startswith("content-length:")), 0)
            body = head.split(b"\r\n\r\n", 1)[1] if b"\r\n\r\n" in head else b""
            while len(body) < length:  # skip a 401 body so the next answer starts clean
                chunk = sock.recv(4096)
                if not chunk:
                    break
                body += chunk
            digest = next((c for c in challenges if c.lower().startswith("digest")), None)
            if digest is not None:
                p = _auth_params(digest)
                response = _digest_response(user, password, p.get("realm", ""), p.get("nonce", ""), "DESCRIBE", bare)
                authorization = (
                    f'Authorization: Digest username="{user}", realm="{p.get("realm", "")}", '
                    f'nonce="{p.get("nonce", "")}", uri="{bare}", response="{response}"\r\n'
                )
            else:
                token = base64.b64encode(f"{user}:{password}".encode()).decode()
                authorization = f"Authorization: Basic {token}\r\n"
    return code, reason


def diagnose_open_failure(url: str, timeout_s: float = 3.0) -> str:
    """Why an RTSP URL does not open, in installer's words (OpenCV only says that it did not).

    Never contains the password.
    """
    safe = redact_url(url)
    parts = urlsplit(url)
    if parts.scheme.lower() != "rtsp" or not parts.hostname:
        return f"RTSP: cannot open {safe}"
    where = f"{parts.hostname}:{parts.port or 554}"
    try:
        code, reason = _rtsp_describe(url, timeout_s)
    except ConnectionRefusedError:
        return f"RTSP: {where} refused the connection (camera off or rebooting, or wrong port)"
    except TimeoutError:
        return f"RTSP: {where} did not answer within {timeout_s:g} s"
    except OSError as exc:
        return f"RTSP: cannot connect to {where}: {exc.strerror or exc}"
    except ValueError:
        return f"RTSP: {where} does not speak RTSP"
    if code == 401:
        return f"RTSP: 401 Unauthorized at {safe} (wrong or missing username/password)"
    if code == 404:
        return f"RTSP: 404 Not Found: no stream at {safe} (wrong path)"
    if code == 200:
        return f"RTSP: {safe} answers but the stream could not be opened (unsupported codec?)"
    return f"RTSP: {code} {reason} at {safe}".rstrip()
