"""API users and their tokens: created, rotated and revoked; only hashes are stored."""

from __future__ import annotations

import hashlib
import os
import secrets
from datetime import UTC, datetime
from pathlib import Path

from sqlalchemy import select
from sqlalchemy.orm import Session

from gateway.store.audit import audit
from gateway.store.models import ApiUser

ROLES = ("admin", "police", "auditor", "operator")
INITIAL_ADMIN = "admin"
INITIAL_TOKEN_FILE = "initial-admin-token"


class UserError(ValueError):
    """A user change that cannot be made; the message is for the caller."""


def new_token() -> str:
    return "agw_" + secrets.token_urlsafe(32)


def token_hash(token: str) -> str:
    # Tokens are 256-bit random strings: a plain SHA-256 is enough (no dictionary to fear).
    return hashlib.sha256(token.encode()).hexdigest()


def find_active_user(session: Session, token: str) -> ApiUser | None:
    user = session.scalar(select(ApiUser).where(ApiUser.token_hash == token_hash(token)))
    return user if user is not None and user.revoked_at is None else None


def create_user(session: Session, name: str, role: str, actor: str) -> str:
    """Create a user; returns the token, shown once and never stored."""
    if role not in ROLES:
        raise UserError(f"role must be one of {', '.join(ROLES)}")
    if not name or len(name) > 64 or not name.replace("-", "").replace("_", "").replace(".", "").isalnum():
        raise UserError("name: 1-64 letters, digits, '-', '_' or '.'")
    if session.get(ApiUser, name) is not None:
        raise UserError(f"user {name!r} already exists")
    token = new_token()
    session.add(ApiUser(name=name, role=role, token_hash=token_hash(token)))
    audit(session, actor, "user.create", {"name": name, "role": role})
    session.flush()
    return token


def revoke_user(session: Session, name: str, actor: str) -> None:
    user = session.get(ApiUser, name)
    if user is None or user.revoked_at is not None:
        raise UserError(f"no active user {name!r}")
    user.revoked_at = datetime.now(UTC)
    audit(session, actor, "user.revoke", {"name": name})


def rotate_token(session: Session, name: str, actor: str) -> str:
    user = session.get(ApiUser, name)
    if user is None or user.revoked_at is not None:
        raise UserError(f"no active user {name!r}")
    token = new_token()
    user.token_hash = token_hash(token)
    user.rotated_at = datetime.now(UTC)
    audit(session, actor, "user.rotate", {"name": name})
    return token


def ensure_initial_admin(session: Session, data_dir: Path) -> str | None:
    """On first start (no active admin): create one and write its token to a 0600 file.

    Returns the token when one was created, so the caller prints it once.
    """
    admins = session.scalars(select(ApiUser).where(ApiUser.role == "admin", ApiUser.revoked_at.is_(None))).all()
    if admins:
        return None
    name = INITIAL_ADMIN
    while session.get(ApiUser, name) is not None:  # a revoked "admin" keeps its name
        name = f"{INITIAL_ADMIN}-{secrets.token_hex(2)}"
    token = create_user(session, name, "admin", "system")
    path = Path(data_dir) / INITIAL_TOKEN_FILE
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600), "w") as f:
        f.write(token + "\n")
    path.chmod(0o600)  # an older file may have had wider rights
    return token
