"""What every request handler needs: the process runtime (settings, database, queue, sender) and the rate limiter."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

from starlette.requests import Request

from hookline.api.principal_cache import PrincipalCache
from hookline.api.rate_limit import RateLimiter
from hookline.runtime import Runtime


@dataclass
class AppState(Runtime):
    """The long-lived parts of a running API process."""

    rate_limiter: RateLimiter | None = None
    principal_cache: PrincipalCache | None = None

    @classmethod
    def serving(cls, running: Runtime) -> AppState:
        """The API's view of a started runtime."""
        parts = {field.name: getattr(running, field.name) for field in dataclasses.fields(Runtime)}
        settings = running.settings
        return cls(
            **parts,
            rate_limiter=RateLimiter(settings.rate_limit_per_hour) if settings.rate_limit_per_hour else None,
            principal_cache=PrincipalCache(settings.token_cache_seconds) if settings.token_cache_seconds else None,
        )


def app_state(request: Request) -> AppState:
    """The AppState of the app serving this request."""
    state: AppState = request.app.state.hookline
    return state
