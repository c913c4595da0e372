"""The page's sign-in: the token traded for an HttpOnly cookie, changes with it need the CSRF header."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import httpx

from tests.api.conftest import Api

CSRF = {"X-Accessgw-Csrf": "1"}


@contextmanager
def signed_in(api: Api, role: str) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=api.base, timeout=10) as c:
        r = c.post("/api/v1/session", json={"token": api.tokens[role]})
        assert r.status_code == 200, r.text
        assert r.json()["role"] == role
        yield c


def test_a_token_becomes_an_http_only_strict_cookie_for_the_api_only(api: Api) -> None:
    with httpx.Client(base_url=api.base, timeout=10) as c:
        r = c.post("/api/v1/session", json={"token": api.tokens["police"]})
        assert r.status_code == 200, r.text
        cookie = r.headers["set-cookie"].lower()
        for part in ("accessgw_session=", "httponly", "samesite=strict", "path=/api/", "max-age="):
            assert part in cookie, cookie
        assert c.get("/api/v1/me").json()["name"] == "police-1"  # no Authorization header: the cookie
        assert c.get("/api/v1/entries").status_code == 200


def test_a_wrong_token_sets_nothing_and_counts_as_a_failure(api: Api) -> None:
    with httpx.Client(base_url=api.base, timeout=10) as c:
        r = c.post("/api/v1/session", json={"token": "not-a-token"})
        assert r.status_code == 401 and r.json()["error"]["code"] == "unauthenticated"
        assert "set-cookie" not in r.headers
        assert c.get("/api/v1/me").status_code == 401
        big = c.post("/api/v1/session", content=b'{"token": "' + b"x" * 5000 + b'"}',
                     headers={"Content-Type": "application/json"})  # fmt: skip
        assert big.status_code == 413


def test_changes_with_the_cookie_need_the_csrf_header(api: Api) -> None:
    with signed_in(api, "admin") as c:
        r = c.post("/api/v1/users", json={"name": "clerk", "role": "auditor"})
        assert r.status_code == 403 and r.json()["error"]["code"] == "csrf", r.text
        tenant = {"id": "t-s", "name": "张三", "permit_number": "P-S", "valid_to": "2030-01-01"}
        assert c.post("/api/v1/tenants", json=tenant).status_code == 403  # refused at the edge, body unread
        assert c.post("/api/v1/users", json={"name": "clerk", "role": "auditor"}, headers=CSRF).status_code == 201
        assert c.post("/api/v1/tenants", json=tenant, headers=CSRF).status_code == 201
        assert c.delete("/api/v1/tenants/t-s", headers=CSRF).status_code == 204
        # A bearer token needs no CSRF header: scripts are not a browser.
        r = httpx.post(f"{api.base}/api/v1/users", json={"name": "clerk2", "role": "auditor"},
                       headers={"Authorization": f"Bearer {api.tokens['admin']}"})  # fmt: skip
        assert r.status_code == 201


def test_sign_out_clears_the_cookie_and_rotation_ends_the_session(api: Api) -> None:
    with signed_in(api, "auditor") as c:
        assert c.get("/api/v1/audit").status_code == 200
        r = c.delete("/api/v1/session")
        assert r.status_code == 204 and "max-age=0" in r.headers["set-cookie"].lower()
        assert c.get("/api/v1/audit").status_code == 401
    with signed_in(api, "operator") as c:
        with api.client("admin") as admin:
            assert admin.post("/api/v1/users/operator-1/rotate").status_code == 200
        assert c.get("/api/v1/me").status_code == 401
