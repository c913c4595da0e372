"""Failed sign-ins are counted per client; behind a trusted proxy the client is the one it names."""

from __future__ import annotations

import pytest

from tests.api.conftest import Api

pytestmark = pytest.mark.slow  # every test runs the daemon (the api fixture)

T = "/api/v1"


def statuses(api: Api, forwarded_for: str, n: int) -> list[int]:
    with api.client(token="wrong") as c:
        return [c.get(f"{T}/tenants", headers={"X-Forwarded-For": forwarded_for}).status_code for _ in range(n)]


@pytest.mark.parametrize("api", [{"failed_auth_limit": 3, "trusted_proxies": ["127.0.0.1"]}], indirect=True)
def test_behind_a_trusted_proxy_each_forwarded_client_is_limited_alone(api: Api) -> None:
    assert statuses(api, "198.51.100.7", 4) == [401, 401, 401, 429]
    assert statuses(api, "198.51.100.8", 1) == [401]  # another user behind the same proxy
    with api.client("admin") as c:  # a valid token is never refused, whatever its address did
        assert c.get(f"{T}/tenants", headers={"X-Forwarded-For": "198.51.100.7"}).status_code == 200


@pytest.mark.parametrize("api", [{"failed_auth_limit": 3}], indirect=True)
def test_without_trusted_proxies_forwarded_for_is_ignored(api: Api) -> None:
    # A client cannot dodge the limit by making up X-Forwarded-For: the peer's address counts.
    assert statuses(api, "198.51.100.7", 3) == [401, 401, 401]
    assert statuses(api, "198.51.100.8", 1) == [429]
