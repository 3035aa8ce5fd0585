"""Bearer tokens: HS256 JWTs naming a workspace and a user, as Supabase's are signed.

Claims: ``sub`` (the user id), ``workspace_id``, ``role`` (``authenticated``), ``iat`` and
``exp``. The secret is shared by whoever issues tokens and the server that checks them
(``HARNESS_JWT_SECRET``); only HS256 is accepted, so a token signed with ``none`` or
another algorithm is refused.
"""

from __future__ import annotations

import secrets
import time
from dataclasses import dataclass
from uuid import UUID

import jwt

from harness import env

ALGORITHM = "HS256"
ROLE = "authenticated"
DEFAULT_TTL_S = 3600


class TokenError(Exception):
    """The token is missing, malformed, badly signed, expired, or names no user."""


@dataclass(frozen=True)
class Principal:
    """Who a valid token speaks for."""

    workspace_id: UUID
    user_id: UUID


def new_secret() -> str:
    """A random secret for a development server (printed so tokens can be issued)."""
    return secrets.token_urlsafe(48)


def check_secret(secret: str) -> str:
    """The secret, or ValueError when it is too short to sign HS256 safely."""
    return env.secret(secret)


def issue(
    secret: str, workspace_id: UUID | str, user_id: UUID | str, ttl_s: int = DEFAULT_TTL_S
) -> str:
    """A signed token for this workspace and user, valid ``ttl_s`` seconds."""
    now = int(time.time())
    claims = {
        "sub": str(UUID(str(user_id))),
        "workspace_id": str(UUID(str(workspace_id))),
        "role": ROLE,
        "iat": now,
        "exp": now + ttl_s,
    }
    return jwt.encode(claims, secret, algorithm=ALGORITHM)


def verify(secret: str, token: str) -> Principal:
    """The principal a token names; TokenError with the reason when it is not valid."""
    try:
        claims = jwt.decode(
            token,
            secret,
            algorithms=[ALGORITHM],
            options={"require": ["exp", "sub", "workspace_id"]},
        )
    except jwt.ExpiredSignatureError as exc:
        raise TokenError("the token has expired") from exc
    except jwt.InvalidTokenError as exc:
        raise TokenError(f"the token is not valid: {exc}") from exc
    try:
        return Principal(UUID(str(claims["workspace_id"])), UUID(str(claims["sub"])))
    except ValueError as exc:
        raise TokenError("the token's sub and workspace_id must be UUIDs") from exc


def bearer(header: str | None) -> str:
    """The token of an ``Authorization: Bearer ...`` header; TokenError otherwise."""
    if not header:
        raise TokenError("no Authorization header")
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise TokenError("the Authorization header is not 'Bearer <token>'")
    return token.strip()


__all__ = ["Principal", "TokenError", "bearer", "check_secret", "issue", "new_secret", "verify"]
