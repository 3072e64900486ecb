"""Validating reported events and building their resource URLs."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from hookline import errors
from hookline.api.validation import absolute_http_url
from hookline.catalogue import Catalogue, EventType, resource_name
from hookline.config import Settings
from hookline.domain import Deployment, NewEvent, Subscription

MAX_OBJECT_ID_LENGTH = 64
MAX_IDEMPOTENCY_KEY_LENGTH = 200
MAX_USER_IDS = 1000


def resource_url_for(settings: Settings, deployment: Deployment, event_type: EventType, object_id: str) -> str | None:
    """The payload's resource_url from the configured template; None for delete events."""
    if event_type.is_delete:
        return None
    return settings.resource_url_template.format(
        base_url=settings.base_url,
        deployment=deployment.slug,
        table=event_type.trigger_table,
        resource=resource_name(event_type.trigger_table),
        id=object_id,
    )


def object_id_from(value: object, field: str) -> str:
    """An object id: a non-empty string or whole number of at most 64 characters."""
    if isinstance(value, bool) or value is None:
        raise errors.InvalidRequest(f"{field}: is required (the id of the object the event is about)")
    if isinstance(value, int):
        value = str(value)
    if not isinstance(value, str) or not value.strip():
        raise errors.InvalidRequest(f"{field}: must be a non-empty string or a whole number")
    value = value.strip()
    if len(value) > MAX_OBJECT_ID_LENGTH:
        raise errors.InvalidRequest(f"{field}: must be at most {MAX_OBJECT_ID_LENGTH} characters")
    return value


def _user_ids_from(value: object, field: str) -> tuple[int, ...] | None:
    if value is None:
        return None
    if isinstance(value, str):
        parts: list[Any] = [p for p in value.replace(" ", "").split(",") if p]
    elif isinstance(value, list):
        parts = value
    else:
        raise errors.InvalidRequest(f"{field}: must be a list of user ids")
    if len(parts) > MAX_USER_IDS:
        raise errors.InvalidRequest(f"{field}: at most {MAX_USER_IDS} user ids")
    ids: list[int] = []
    for part in parts:
        if isinstance(part, bool):
            raise errors.InvalidRequest(f"{field}: user ids are whole numbers")
        try:
            ids.append(int(part))
        except (TypeError, ValueError):
            raise errors.InvalidRequest(f"{field}: {part!r} is not a user id") from None
    return tuple(ids)


def new_event_from(
    fields: Mapping[str, object], settings: Settings, catalogue: Catalogue, deployment: Deployment, prefix: str = ""
) -> NewEvent:
    """A NewEvent from reported fields; errors name the field (with the batch index in `prefix`)."""
    event_id = fields.get("event_id")
    if event_id is None or event_id == "":
        raise errors.InvalidRequest(f"{prefix}event_id: is required")
    if not isinstance(event_id, str):
        raise errors.InvalidRequest(f"{prefix}event_id: must be a string")
    event_type = catalogue.get(event_id)
    if event_type is None:
        raise errors.InvalidRequest(
            f"{prefix}event_id: unknown event {event_id!r}; GET /api/v0/webhooks/subscriptions/types lists them"
        )
    object_id = object_id_from(fields.get("object_id"), f"{prefix}object_id")
    resource_url: str | None
    raw_url = fields.get("resource_url")
    if event_type.is_delete:
        resource_url = None
    elif raw_url is None or raw_url == "":
        resource_url = resource_url_for(settings, deployment, event_type, object_id)
    else:
        resource_url = absolute_http_url(raw_url, f"{prefix}resource_url")
    key = fields.get("idempotency_key")
    if key is not None:
        if not isinstance(key, str | int) or isinstance(key, bool) or not str(key).strip():
            raise errors.InvalidRequest(f"{prefix}idempotency_key: must be a non-empty string")
        key = str(key).strip()
        if len(key) > MAX_IDEMPOTENCY_KEY_LENGTH:
            raise errors.InvalidRequest(
                f"{prefix}idempotency_key: must be at most {MAX_IDEMPOTENCY_KEY_LENGTH} characters"
            )
    return NewEvent(
        deployment_id=deployment.id,
        event_id=event_id,
        object_id=object_id,
        resource_url=resource_url,
        user_ids=_user_ids_from(fields.get("user_ids"), f"{prefix}user_ids"),
        idempotency_key=key,
    )


def event_for_subscription(
    settings: Settings,
    catalogue: Catalogue,
    deployment: Deployment,
    subscription: Subscription,
    raw_object_id: object,
) -> NewEvent:
    """The subscription's own event for an object (what trigger and dispatch send)."""
    object_id = object_id_from(raw_object_id if raw_object_id != "" else None, "object_id")
    event_type = catalogue.get(subscription.event_id)
    if event_type is None:
        raise errors.InvalidRequest(
            f"event_id: the subscription's event {subscription.event_id!r} is no longer in the catalogue"
        )
    return NewEvent(
        deployment_id=subscription.deployment_id,
        event_id=subscription.event_id,
        object_id=object_id,
        resource_url=resource_url_for(settings, deployment, event_type, object_id),
    )
