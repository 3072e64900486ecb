"""What every request handler needs: the process's runtime (settings, engine, queue, sender...) and the rate limiter."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

from starlette.requests import Request

from hookline.api.rate_limit import RateLimiter
from hookline.runtime import Runtime


@dataclass
class AppState(Runtime):
    """The long-lived parts of a running API process."""

    rate_limiter: RateLimiter | None = None

    @classmethod
    def serving(cls, running: Runtime, rate_limiter: RateLimiter | None) -> AppState:
        """The API's view of a started runtime."""
        parts = {field.name: getattr(running, field.name) for field in dataclasses.fields(Runtime)}
        return cls(**parts, rate_limiter=rate_limiter)


def app_state(request: Request) -> AppState:
    """The AppState of the app serving this request."""
    state: AppState = request.app.state.hookline
    return state
