"""The platform's Ed25519 signing key (DESIGN §6.1): `{data_dir}/platform.key`, made at the first start.

The file holds the 32-byte seed as base64 on one line, mode 0600, in a data_dir of mode 0700. Every gateway
of the town holds the public half in its config (`sync.platform_public_key`): `accessgw town key` prints it.
"""

from __future__ import annotations

import base64
import binascii
import os
from pathlib import Path

from nacl.signing import SigningKey

KEY_FILE = "platform.key"


class KeyFileError(ValueError):
    """The key file exists but cannot be used (the message says why); never replaced silently."""


def key_path(data_dir: Path) -> Path:
    return Path(data_dir) / KEY_FILE


def load_or_create_key(data_dir: Path) -> SigningKey:
    """The platform's key: loaded, or made (0600, data_dir 0700) when there is none yet.

    A key file that exists but does not hold a key is an error, not a reason to make a new one: every
    gateway of the town trusts the old one."""
    data_dir = Path(data_dir)
    data_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
    path = key_path(data_dir)
    if path.exists():
        return load_key(path)
    key = SigningKey.generate()
    text = base64.b64encode(bytes(key)).decode("ascii") + "\n"
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:  # another process made it meanwhile: theirs is the town's key
        return load_key(path)
    with os.fdopen(fd, "w") as f:
        f.write(text)
        f.flush()
        os.fsync(f.fileno())
    return key


def load_key(path: Path) -> SigningKey:
    try:
        raw = base64.b64decode(path.read_text(encoding="ascii").strip(), validate=True)
    except (OSError, UnicodeDecodeError, binascii.Error, ValueError) as exc:
        raise KeyFileError(f"{path}: not a platform key ({exc})") from None
    if len(raw) != 32:
        raise KeyFileError(f"{path}: a platform key is 32 bytes (base64), this is {len(raw)}")
    return SigningKey(raw)


def public_key_b64(key: SigningKey) -> str:
    """What a gateway's config takes as `sync.platform_public_key`."""
    return base64.b64encode(bytes(key.verify_key)).decode("ascii")
