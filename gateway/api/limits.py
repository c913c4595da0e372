"""How many exports and searches run at once in this API process (config api.max_*).

A request beyond the limit waits a little for a slot, then gets 429 `busy`
with Retry-After. Slots are threading semaphores, not anyio ones: sync routes
run in the threadpool, and an export's slot is released by its stream, on
whatever thread Starlette finishes (or abandons) it.
"""

from __future__ import annotations

import threading
import weakref
from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager
from typing import Literal

from fastapi import Request

from gateway.api.errors import ApiError

WAIT_S = 5.0  # how long a request waits for a slot before 429
RETRY_AFTER_S = 5

Kind = Literal["export", "search"]


class Slots:
    """At most `size` holders at once; `take` waits up to `wait_s` (default WAIT_S) for one."""

    def __init__(self, size: int, what: str, wait_s: float | None = None) -> None:
        self.what, self.wait_s = what, wait_s
        self._sem = threading.BoundedSemaphore(size)

    def take(self) -> None:
        if not self._sem.acquire(timeout=WAIT_S if self.wait_s is None else self.wait_s):
            raise ApiError(429, "busy", f"too many {self.what} running at once; try again shortly",
                           headers={"Retry-After": str(RETRY_AFTER_S)})  # fmt: skip

    def release(self) -> None:
        self._sem.release()

    @contextmanager
    def held(self) -> Iterator[None]:
        self.take()
        try:
            yield
        finally:
            self.release()


# One pair of Slots per app (per API process), made from its config on first use.
_by_app: weakref.WeakKeyDictionary[object, dict[Kind, Slots]] = weakref.WeakKeyDictionary()
_lock = threading.Lock()


def slots(request: Request, kind: Kind) -> Slots:
    with _lock:
        pair = _by_app.get(request.app)
        if pair is None:
            api = request.app.state.ctx.cfg.api
            pair = {"export": Slots(api.max_exports, "exports"), "search": Slots(api.max_searches, "searches")}
            _by_app[request.app] = pair
        return pair[kind]


def searching(request: Request) -> AbstractContextManager[None]:
    """`with searching(request): …` around a search's queries."""
    return slots(request, "search").held()
