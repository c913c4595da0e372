"""Ed25519 signatures on requests from the town platform (DESIGN §6.1), with PyNaCl.

`sig` = base64 of the signature over the canonical JSON of the message without `sig`:
keys sorted, no spaces, UTF-8 (ensure_ascii=False).
"""

from __future__ import annotations

import base64
import binascii
import json
from typing import Any

from nacl.exceptions import BadSignatureError
from nacl.signing import SigningKey, VerifyKey

KEY_BYTES = 32


def canonical(message: dict[str, Any]) -> bytes:
    unsigned = {k: v for k, v in message.items() if k != "sig"}
    return json.dumps(unsigned, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode("utf-8")


def public_key(b64: str) -> VerifyKey:
    """The platform's key from config: base64 of 32 bytes; ValueError with a clear message otherwise."""
    try:
        raw = base64.b64decode(b64, validate=True)
    except (binascii.Error, ValueError):
        raise ValueError("platform_public_key is not base64") from None
    if len(raw) != KEY_BYTES:
        raise ValueError(f"platform_public_key must be {KEY_BYTES} bytes, not {len(raw)}")
    return VerifyKey(raw)


def sign(message: dict[str, Any], key: SigningKey) -> dict[str, Any]:
    """`message` with its `sig` (for the platform, `accessgw simulate`, tests)."""
    signature = key.sign(canonical(message)).signature
    return {**message, "sig": base64.b64encode(signature).decode("ascii")}


def verify(message: dict[str, Any], key: VerifyKey) -> bool:
    sig = message.get("sig")
    if not isinstance(sig, str) or len(sig) > 200:
        return False
    try:
        key.verify(canonical(message), base64.b64decode(sig, validate=True))
    except (BadSignatureError, binascii.Error, ValueError):
        return False
    return True


def new_key_pair() -> tuple[SigningKey, str]:
    """A signing key and the base64 public key a gateway's config takes."""
    key = SigningKey.generate()
    return key, base64.b64encode(bytes(key.verify_key)).decode("ascii")
