"""Domain records as the API shows them."""

from __future__ import annotations

import math
import time
from typing import Any

from hookline.catalogue import Catalogue, EventType
from hookline.domain import Attempt, Delivery, Deployment, StoredEvent, Subscription, User


def timestamp(seconds: float | None) -> str | None:
    """Epoch seconds as ISO 8601 UTC with milliseconds (2026-12-03T17:58:08.123Z), or None."""
    if seconds is None:
        return None
    # What datetime.fromtimestamp(seconds, UTC).isoformat(timespec="milliseconds") says, at a third of the cost:
    # lists render this for every time field of every row.
    fraction, whole = math.modf(seconds)
    micros = round(fraction * 1_000_000)
    if micros >= 1_000_000:
        whole, micros = whole + 1, micros - 1_000_000
    return f"{time.strftime('%Y-%m-%dT%H:%M:%S', time.gmtime(whole))}.{micros // 1000:03d}Z"


def user_view(user: User) -> dict[str, Any]:
    """A user: id, name, email."""
    return {"id": user.id, "name": user.name, "email": user.email}


def event_type_view(event_type: EventType) -> dict[str, Any]:
    """An entry of the types list."""
    return {
        "event_id": event_type.event_id,
        "event_title": event_type.event_title,
        "trigger_table": event_type.trigger_table,
        "trigger_type": event_type.trigger_type,
    }


def subscription_view(
    subscription: Subscription,
    deployment: Deployment,
    catalogue: Catalogue,
    *,
    owner: User | None = None,
) -> dict[str, Any]:
    """A subscription as Accelo shows it (never its secret), plus the owner when given."""
    event_type = catalogue.get(subscription.event_id)
    view: dict[str, Any] = {
        "subscription_id": subscription.id,
        "event_id": subscription.event_id,
        "trigger_url": subscription.trigger_url,
        "content_type": subscription.content_type,
        "trigger_table": event_type.trigger_table if event_type else None,
        "trigger_type": event_type.trigger_type if event_type else None,
        "user_id": subscription.user_id,
        "user_deployment": deployment.slug,
        "created_at": timestamp(subscription.created_at),
        "has_secret": subscription.secret is not None,
    }
    if subscription.deleted_at is not None:
        view["deleted_at"] = timestamp(subscription.deleted_at)
        view["deleted_reason"] = subscription.deleted_reason
    if owner is not None:
        view["user"] = user_view(owner)
    return view


def attempt_view(attempt: Attempt) -> dict[str, Any]:
    """One logged attempt."""
    return {
        "attempt_number": attempt.attempt_number,
        "started_at": timestamp(attempt.started_at),
        "duration_ms": round(attempt.duration_ms, 3),
        "status_code": attempt.status_code,
        "outcome": attempt.outcome,
        "error": attempt.error,
        "error_class": attempt.error_class,
        "response_excerpt": attempt.response_excerpt,
    }


def delivery_view(delivery: Delivery) -> dict[str, Any]:
    """A delivery with its attempts."""
    return {
        "delivery_id": delivery.id,
        "subscription_id": delivery.subscription_id,
        "event_id": delivery.event_id,
        "object_id": delivery.object_id,
        "state": delivery.state,
        "attempt_count": delivery.attempts,
        "created_at": timestamp(delivery.created_at),
        "next_attempt_at": timestamp(delivery.next_attempt_at),
        "finished_at": timestamp(delivery.finished_at),
        "last_status_code": delivery.last_status_code,
        "last_error": delivery.last_error,
        "redelivery_of": delivery.redelivery_of,
        "attempts": [attempt_view(a) for a in delivery.attempt_log],
    }


def stored_event_view(event: StoredEvent) -> dict[str, Any]:
    """A reported event: its id, what it was, how many deliveries it made."""
    return {
        "id": event.id,
        "event_id": event.event_id,
        "object_id": event.object_id,
        "resource_url": event.resource_url,
        "created_at": timestamp(event.created_at),
        "deliveries": event.deliveries,
        "duplicate": event.duplicate,
    }
