"""Requests from the town platform (`…/request/{cmd}`, DESIGN §6): the handler table behind the router."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from sqlalchemy.orm import Session, sessionmaker

from gateway.door_path import DoorPath
from gateway.doors import DoorState
from gateway.inputs import check_text
from gateway.store.audit import audit
from sync.commands import CommandError, CommandRouter


class PlatformRequests:
    def __init__(
        self,
        router: CommandRouter,
        doors: dict[str, DoorState],
        door_path: DoorPath,
        sessions: sessionmaker[Session],
        state: Callable[[], dict[str, Any]],
        publish_state: Callable[[], None],
    ) -> None:
        self.doors, self.door_path, self.sessions = doors, door_path, sessions
        self.state, self.publish_state = state, publish_state
        router.register("state", self.state_request)
        router.register("door/open", self.door_open)

    async def state_request(self, request: dict[str, Any]) -> dict[str, Any]:
        self.publish_state()
        return {"state": self.state()}

    async def door_open(self, request: dict[str, Any]) -> dict[str, Any]:
        """A signed open (checked by the router's guard), audited under the platform user who asked."""
        user = request.get("user")
        try:
            if not isinstance(user, str) or not 1 <= len(user) <= 64:
                raise ValueError("door/open needs `user`: the platform user who asked (1-64 characters)")
            check_text(user, "user")
        except ValueError as exc:
            raise CommandError("malformed", str(exc)) from None
        door = self.doors.get(str(request.get("door")))
        if door is None:
            raise CommandError("unknown_door", f"no door {str(request.get('door'))[:64]!r}")
        with self.sessions.begin() as s:  # every remote open is audited (DESIGN §8)
            audit(s, f"platform:{user}", "door.open", {"door": door.cfg.id, "transaction": request.get("transaction")},
                  route="mqtt request/door/open")  # fmt: skip
        self.door_path.open(door.cfg, "remote", details={"user": user})
        return {"door": door.cfg.id}
