"""Every route × every role gives the status of DESIGN §8; audited reads leave rows."""

from __future__ import annotations

import pytest

from tests.api.conftest import ROLES, Api

pytestmark = pytest.mark.slow  # every test runs the daemon (the api fixture)

ANY = {"admin", "police", "auditor", "operator"}
PUBLIC = "public"
T = "/api/v1"
PHOTO = {"photos": ("p.jpg", b"not a photo", "image/jpeg")}

# (method, path, json body or files, roles allowed)
ROUTES: list[tuple[str, str, object, object]] = [
    ("GET", f"{T}/health", None, PUBLIC),
    ("GET", f"{T}/ready", None, PUBLIC),
    ("GET", f"{T}/me", None, ANY),
    ("POST", f"{T}/tenants", {"id": "m1", "name": "N", "permit_number": "PM1", "valid_to": "2030-01-01"}, {"admin"}),
    ("GET", f"{T}/tenants", None, {"admin", "police"}),
    ("GET", f"{T}/tenants/ghost", None, {"admin", "police"}),
    ("PATCH", f"{T}/tenants/ghost", {"room": "1"}, {"admin"}),
    ("POST", f"{T}/tenants/ghost/suspend", None, {"admin"}),
    ("POST", f"{T}/tenants/ghost/revoke", None, {"admin"}),
    ("POST", f"{T}/tenants/ghost/activate", None, {"admin"}),
    ("DELETE", f"{T}/tenants/ghost", None, {"admin"}),
    ("POST", f"{T}/tenants/ghost/cards", {"number": 5}, {"admin"}),
    ("DELETE", f"{T}/cards/5", None, {"admin"}),
    ("POST", f"{T}/tenants/ghost/faces", PHOTO, {"admin"}),
    ("DELETE", f"{T}/tenants/ghost/faces", None, {"admin"}),
    ("PUT", f"{T}/tenants/ghost/watchlist", None, {"police"}),
    ("DELETE", f"{T}/tenants/ghost/watchlist", None, {"police"}),
    ("GET", f"{T}/entries", None, {"admin", "police"}),
    ("GET", f"{T}/entries.csv", None, {"admin", "police"}),
    ("GET", f"{T}/entries.xlsx", None, {"admin", "police"}),
    ("GET", f"{T}/entries/per-hour?day=2026-11-23", None, {"admin", "police"}),
    ("GET", f"{T}/entries/01ARZ3NDEKTSV4RRFFQ69G5FAV/snapshot", None, {"admin", "police"}),
    ("GET", f"{T}/alerts", None, {"admin", "police", "operator"}),
    ("GET", f"{T}/alerts/01ARZ3NDEKTSV4RRFFQ69G5FAV/snapshot", None, {"admin", "police", "operator"}),
    ("POST", f"{T}/alerts/01ARZ3NDEKTSV4RRFFQ69G5FAV/ack", None, {"admin", "police", "operator"}),
    ("GET", f"{T}/doors", None, {"admin", "police", "operator"}),
    ("GET", f"{T}/doors/main", None, {"admin", "police", "operator"}),
    ("POST", f"{T}/doors/main/open", None, {"operator"}),
    ("POST", f"{T}/users", {"name": "bad name!", "role": "admin"}, {"admin"}),
    ("GET", f"{T}/users", None, {"admin"}),
    ("DELETE", f"{T}/users/ghost", None, {"admin"}),
    ("POST", f"{T}/users/ghost/rotate", None, {"admin"}),
    ("GET", f"{T}/audit", None, {"auditor"}),
    ("GET", f"{T}/audit.csv", None, {"auditor"}),
    ("GET", f"{T}/audit.xlsx", None, {"auditor"}),
    ("GET", "/metrics", None, {"admin", "auditor", "operator"}),
]


def call(client, method: str, path: str, body: object):
    if body is PHOTO:
        return client.request(method, path, files=body)
    return client.request(method, path, json=body) if body is not None else client.request(method, path)


def test_every_route_every_role(api: Api) -> None:
    failures = []
    for method, path, body, allowed in ROUTES:
        for role in (*ROLES, None):
            with api.client(role) as c:
                status = call(c, method, path, body).status_code
            if allowed == PUBLIC:
                ok = status == 200
            elif role is None:
                ok = status == 401
            elif role in allowed:  # type: ignore[operator]
                ok = status not in (401, 403) and status < 500
            else:
                ok = status == 403
            if not ok:
                failures.append(f"{method} {path} as {role or 'no token'}: {status}")
    assert not failures, "\n".join(failures)


def test_openapi_declares_every_route(api: Api) -> None:
    with api.client() as c:
        spec = c.get(f"{T}/openapi.json").json()
    paths = set(spec["paths"])
    for _, path, _, _ in ROUTES:
        bare = path.split("?")[0]
        if bare.startswith(T):
            template = bare.replace("ghost", "{tenant_id}").replace("/cards/5", "/cards/{number}")
            assert any(p.split("{")[0] == template.split("{")[0][: len(p.split("{")[0])] for p in paths), path


@pytest.mark.parametrize("token", ["", "nonsense", "agw_" + "x" * 43])
def test_bad_tokens_are_401_with_the_error_shape(api: Api, token: str) -> None:
    with api.client(token=token or None) as c:
        r = c.get(f"{T}/tenants")
    assert r.status_code == 401
    assert set(r.json()["error"]) >= {"code", "message"}


def test_failed_authentication_is_rate_limited_per_address(api: Api) -> None:
    with api.client(token="wrong-token") as c:
        statuses = [c.get(f"{T}/tenants").status_code for _ in range(12)]
    assert statuses[:10] == [401] * 10 and statuses[10:] == [429, 429]
    with api.client("admin") as c:  # the same address: only failures are limited, a valid token still works
        assert c.get(f"{T}/tenants").status_code == 200
    with api.client(token="wrong-token") as c:  # and the guesser stays blocked
        assert c.get(f"{T}/tenants").status_code == 429
    with api.client() as c:
        assert c.get(f"{T}/health").status_code == 200
