"""Accelo-style rate limiting: N requests an hour per deployment, announced in X-RateLimit-* headers."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

from hookline import errors

WINDOW_SECONDS = 3600


@dataclass(frozen=True, slots=True)
class Quota:
    """Where a deployment stands in the current window."""

    limit: int
    remaining: int
    reset_at: int

    def headers(self) -> dict[str, str]:
        """The X-RateLimit-Limit/-Remaining/-Reset headers."""
        return {
            "X-RateLimit-Limit": str(self.limit),
            "X-RateLimit-Remaining": str(self.remaining),
            "X-RateLimit-Reset": str(self.reset_at),
        }


class RateLimiter:
    """Fixed hourly windows per deployment, counted in this process (each API process counts its own)."""

    def __init__(self, per_hour: int, clock: Callable[[], float] = time.time) -> None:
        self.per_hour = per_hour
        self._clock = clock
        self._windows: dict[int, tuple[int, int]] = {}

    def hit(self, deployment_id: int) -> Quota:
        """Count one request; TooManyRequests (429, with the headers) once the window's quota is spent."""
        now = int(self._clock())
        window_start = now - now % WINDOW_SECONDS
        start, used = self._windows.get(deployment_id, (window_start, 0))
        if start != window_start:
            start, used = window_start, 0
        reset_at = start + WINDOW_SECONDS
        if used >= self.per_hour:
            quota = Quota(self.per_hour, 0, reset_at)
            raise errors.TooManyRequests(
                f"rate limit: {self.per_hour} requests an hour for this deployment; try again after {reset_at}",
                headers={**quota.headers(), "Retry-After": str(max(1, reset_at - now))},
            )
        self._windows[deployment_id] = (start, used + 1)
        return Quota(self.per_hour, self.per_hour - used - 1, reset_at)
