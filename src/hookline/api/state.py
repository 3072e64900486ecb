"""What every request handler needs: settings, the engine, the queue, the sender."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy.ext.asyncio import AsyncEngine
from starlette.requests import Request

from hookline.api.rate_limit import RateLimiter
from hookline.catalogue import Catalogue
from hookline.config import Settings
from hookline.delivery.retry import RetryPolicy
from hookline.delivery.sender import Sender
from hookline.delivery.ssrf import AddressPolicy
from hookline.store.queue import DeliveryQueue


@dataclass
class AppState:
    """The long-lived parts of a running API process."""

    settings: Settings
    catalogue: Catalogue
    engine: AsyncEngine
    queue: DeliveryQueue
    sender: Sender
    address_policy: AddressPolicy
    retry_policy: RetryPolicy
    rate_limiter: RateLimiter | None = None


def app_state(request: Request) -> AppState:
    """The AppState of the app serving this request."""
    state: AppState = request.app.state.hookline
    return state
