"""Rate limits counted in PostgreSQL (migration 0009), so that every worker of every
server process shares one count per user.

A fixed window per user and bucket (``purchase``, ``credits``): the first ``limit``
requests of a minute go ahead, the rest are refused with the seconds until the window
ends. A request with an idempotency key is counted the first time its key is seen; its
retries and replays are not counted again (a refused one leaves its key uncounted).
"""

from __future__ import annotations

from dataclasses import dataclass
from uuid import UUID

from psycopg_pool import ConnectionPool

from harness import db
from harness.drivers.serve.contract import WINDOW_S
from harness.errors import UsageError

MODULE = "serve"


@dataclass(frozen=True)
class Limits:
    """Requests per user per window, by bucket; 0 turns a bucket's limit off."""

    purchase: int
    credits: int

    def of(self, bucket: str) -> int:
        return int(getattr(self, bucket))

    @property
    def any(self) -> bool:
        return bool(self.purchase or self.credits)


class Limiter:
    """Counts requests on the pool's database."""

    def __init__(self, pool: ConnectionPool, limits: Limits, window_s: int = WINDOW_S) -> None:
        self.pool = pool
        self.limits = limits
        self.window_s = window_s

    def require_schema(self) -> None:
        """UsageError when limits are on and migration 0009 is not installed."""
        if not self.limits.any:
            return
        with self.pool.connection() as conn:
            if not db.scalar(conn, db.query(MODULE, "rate_limits_present")):
                raise UsageError(
                    "rate limits need migration 0009_http_rate_limits (http_rate_limit_hit) "
                    "in the database; migrate it, or turn the limits off with "
                    "--rate-limit-purchase 0 --rate-limit-credits 0"
                )

    def hit(
        self,
        user_id: UUID,
        bucket: str,
        workspace_id: UUID | None = None,
        key: str | None = None,
    ) -> int:
        """Count one request; 0 when it may go ahead, else the Retry-After in seconds."""
        limit = self.limits.of(bucket)
        if not limit:
            return 0
        with self.pool.connection() as conn:
            return int(
                db.scalar(
                    conn,
                    db.query(MODULE, "rate_limit_hit"),
                    {
                        "user_id": user_id,
                        "bucket": bucket,
                        "limit": limit,
                        "window": self.window_s,
                        "workspace_id": workspace_id,
                        "key": key,
                    },
                )
            )


__all__ = ["Limiter", "Limits"]
