"""Fixtures shared by the gateway's end-to-end tests of the town link."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from nacl.signing import SigningKey

from sync.signing import new_key_pair
from testing.peers import Mosquitto
from tests.gateway.rig import Rig


@pytest.fixture
def keys() -> tuple[SigningKey, str]:
    """The platform's signing key and the public key a gateway's config takes."""
    return new_key_pair()


@pytest.fixture
def signed_rig(tmp_path: Path, mosquitto: Mosquitto, keys: tuple[SigningKey, str]) -> Iterator[Rig]:
    """A card gateway that trusts `keys` (not started)."""
    r = Rig(tmp_path, mosquitto, pulse_ms=200)
    r.config["sync"] = {"platform_public_key": keys[1], "max_skew_s": 300}
    try:
        yield r
    finally:
        r.close()
