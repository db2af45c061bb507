"""Secrets: station tokens, IT passwords (argon2), web sessions, CSRF and login throttling."""

from __future__ import annotations

import hashlib
import hmac
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta
from functools import cache

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError
from sqlalchemy import Connection, bindparam, case, delete, select
from sqlalchemy.orm import Session

from kiosk.models import utcnow
from kiosk.server.db import upsert
from kiosk.server.tables import LoginFailure, Station, User, WebSession

TOKEN_PREFIX = "sbk_"  # noqa: S105 (a prefix, not a secret)
# Memory-hard, with argon2-cffi's RFC 9106 "low memory" profile (64 MiB, 3 passes).
_hasher = PasswordHasher()


@cache
def _dummy_hash() -> str:
    # Verified against when the user does not exist, so that both paths cost the same.
    return _hasher.hash("not a password: timing equaliser")


# Built once: this runs on every API request.
_TOKEN_LOOKUP = select(Station.id, Station.revoked_at).where(Station.token_hash == bindparam("h"))
_TOKENS_LOOKUP = select(Station.id, Station.revoked_at, Station.token_hash).where(
    Station.token_hash.in_(bindparam("hashes", expanding=True))
)


def new_token() -> str:
    """Return a fresh station token (shown once, stored only hashed)."""
    return TOKEN_PREFIX + secrets.token_urlsafe(32)


def token_hash(token: str) -> str:
    """Hash a high-entropy secret; SHA-256 suffices (no dictionary to guess from)."""
    return hashlib.sha256(token.encode("utf-8", "surrogatepass")).hexdigest()


def station_for_token(connection: Connection, token: str) -> str | None:
    """Return the id of the station a token belongs to, or None when unknown or revoked."""
    if not token.startswith(TOKEN_PREFIX) or len(token) > 200:
        return None
    row = connection.execute(_TOKEN_LOOKUP, {"h": token_hash(token)}).first()
    if row is None or row.revoked_at is not None:
        return None
    return str(row.id)


def stations_for_tokens(connection: Connection, tokens: set[str]) -> dict[str, str]:
    """Return the station of each token that has a live one (one query for a whole batch)."""
    wanted = {token_hash(t): t for t in tokens if t.startswith(TOKEN_PREFIX) and len(t) <= 200}
    if not wanted:
        return {}
    rows = connection.execute(_TOKENS_LOOKUP, {"hashes": list(wanted)}).all()
    return {wanted[row.token_hash]: str(row.id) for row in rows if row.revoked_at is None}


def hash_password(password: str) -> str:
    """Hash an IT password with argon2id."""
    return _hasher.hash(password)


def verify_password(user: User | None, password: str) -> bool:
    """Check a password; constant work whether or not the user exists."""
    stored = user.password_hash if user is not None and not user.disabled else _dummy_hash()
    try:
        ok = _hasher.verify(stored, password)
    except (VerifyMismatchError, VerificationError, InvalidHashError):
        return False
    return ok and user is not None and not user.disabled


@dataclass(frozen=True)
class Login:
    """A web session as seen by a request."""

    user_id: int
    username: str
    full_name: str
    csrf: str


def open_session(session: Session, user: User, hours: float) -> str:
    """Create a web session for *user*; return the cookie value."""
    token = secrets.token_urlsafe(32)
    now = utcnow()
    session.add(
        WebSession(
            token_hash=token_hash(token),
            user_id=user.id,
            csrf=secrets.token_urlsafe(32),
            created_at=now,
            expires_at=now + timedelta(hours=hours),
        )
    )
    return token


def find_session(session: Session, cookie: str | None) -> Login | None:
    """Return the live web session of a cookie, or None."""
    if not cookie or len(cookie) > 100:
        return None
    row = session.execute(
        select(WebSession, User)
        .join(User, User.id == WebSession.user_id)
        .where(WebSession.token_hash == token_hash(cookie))
    ).first()
    if row is None:
        return None
    web, user = row
    if web.expires_at <= utcnow() or user.disabled:
        return None
    return Login(user.id, user.username, user.full_name, web.csrf)


def close_session(session: Session, cookie: str) -> None:
    """Forget a web session (logout)."""
    session.execute(delete(WebSession).where(WebSession.token_hash == token_hash(cookie)))


def csrf_ok(expected: str, given: str | None) -> bool:
    """Compare a CSRF token in constant time."""
    return bool(given) and hmac.compare_digest(expected.encode(), (given or "").encode())


def throttled(session: Session, keys: list[str], limit: int, window: float) -> bool:
    """Tell whether any key (user name, address) failed *limit* times within *window* seconds."""
    since = utcnow() - timedelta(seconds=window)
    rows = session.scalars(select(LoginFailure).where(LoginFailure.key.in_(keys))).all()
    return any(r.failures >= limit and r.first_at > since for r in rows)


def record_failure(session: Session, keys: list[str], window: float) -> None:
    """Count one failed login against each key (a window restarts once it is over)."""
    now = utcnow()
    expired = LoginFailure.first_at <= now - timedelta(seconds=window)
    for key in keys:
        # One statement, so that two server processes counting at once both count.
        stmt = upsert(session, LoginFailure).values(key=key, failures=1, first_at=now)
        session.execute(
            stmt.on_conflict_do_update(
                index_elements=["key"],
                set_={
                    "failures": case((expired, 1), else_=LoginFailure.failures + 1),
                    "first_at": case((expired, now), else_=LoginFailure.first_at),
                },
            )
        )


def clear_failures(session: Session, keys: list[str]) -> None:
    """Forget the failures of a user after a successful login (not those of the address)."""
    session.execute(delete(LoginFailure).where(LoginFailure.key.in_(keys)))


def purge_expired(session: Session, now: datetime, window: float) -> None:
    """Delete expired sessions and old failure counters."""
    session.execute(delete(WebSession).where(WebSession.expires_at <= now))
    session.execute(
        delete(LoginFailure).where(LoginFailure.first_at <= now - timedelta(seconds=window))
    )
