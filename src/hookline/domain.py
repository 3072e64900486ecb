"""Plain records passed between the store, the delivery engine and the API."""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from typing import Literal

CONTENT_TYPE_FORM = "application/x-www-form-urlencoded"
CONTENT_TYPE_JSON = "application/json"
CONTENT_TYPES = (CONTENT_TYPE_FORM, CONTENT_TYPE_JSON)

DeletedReason = Literal["deleted", "gone", "too_many_failures"]
DeliveryState = Literal["pending", "succeeded", "failed", "cancelled"]
AttemptOutcome = Literal["success", "retry", "failed", "gone"]


def new_subscription_id() -> str:
    """A fresh subscription id: 24 lowercase hex characters, like Accelo's."""
    return secrets.token_hex(12)


@dataclass(frozen=True, slots=True)
class Deployment:
    """A tenant."""

    id: int
    slug: str
    name: str
    standard_webhooks: bool


@dataclass(frozen=True, slots=True)
class User:
    """A user of a deployment."""

    id: int
    deployment_id: int
    name: str
    email: str


@dataclass(frozen=True, slots=True)
class Principal:
    """Who is calling: the token's user, its deployment, scopes and admin flag."""

    user: User
    deployment: Deployment
    scopes: tuple[str, ...]
    is_admin: bool
    expires_at: float | None
    token_id: int


@dataclass(frozen=True, slots=True)
class Subscription:
    """A URL subscribed to one event type."""

    id: str
    deployment_id: int
    user_id: int
    event_id: str
    trigger_url: str
    content_type: str
    secret: str | None
    created_at: float
    deleted_at: float | None = None
    deleted_reason: str | None = None
    consecutive_failures: int = 0
    failing_since: float | None = None
    last_attempt_at: float | None = None
    last_status_code: int | None = None
    last_error: str | None = None


@dataclass(frozen=True, slots=True)
class NewEvent:
    """An event reported by the platform, before it is stored."""

    deployment_id: int
    event_id: str
    object_id: str
    resource_url: str | None
    user_ids: tuple[int, ...] | None = None
    idempotency_key: str | None = None
    only_subscription_id: str | None = None


@dataclass(frozen=True, slots=True)
class StoredEvent:
    """An event as stored, with how many deliveries it fanned out to."""

    id: int
    event_id: str
    object_id: str
    resource_url: str | None
    created_at: float
    deliveries: int
    duplicate: bool = False


@dataclass(slots=True)
class ClaimedDelivery:
    """A delivery leased to a dispatcher, with everything needed to send it."""

    delivery_id: int
    subscription_id: str
    deployment_id: int
    attempts_done: int
    event_id: str
    object_id: str
    resource_url: str | None
    trigger_url: str
    content_type: str
    secret: str | None
    standard_webhooks: bool
    created_at: float
    retries_allowed: bool = True


@dataclass(slots=True)
class AttemptResult:
    """The outcome of one attempt, to be recorded in the store."""

    delivery_id: int
    subscription_id: str
    lease_owner: str
    attempt_number: int
    started_at: float
    duration_ms: float
    status_code: int | None
    response_excerpt: str | None
    error: str | None
    error_class: str | None
    outcome: AttemptOutcome
    retry_in_seconds: float | None = None


@dataclass(frozen=True, slots=True)
class Attempt:
    """One logged attempt of a delivery."""

    attempt_number: int
    started_at: float
    duration_ms: float
    status_code: int | None
    response_excerpt: str | None
    error: str | None
    error_class: str | None
    outcome: str


@dataclass(frozen=True, slots=True)
class Delivery:
    """A delivery of one event to one subscription, with its attempts."""

    id: int
    subscription_id: str
    event_row_id: int
    event_id: str
    object_id: str
    state: str
    attempts: int
    next_attempt_at: float | None
    created_at: float
    finished_at: float | None
    last_status_code: int | None
    last_error: str | None
    redelivery_of: int | None
    attempt_log: tuple[Attempt, ...] = ()
