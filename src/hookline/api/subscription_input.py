"""Validating a new subscription's fields (shared by the API and the control panel)."""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping

from hookline import domain, errors
from hookline.api.validation import absolute_http_url
from hookline.catalogue import Catalogue
from hookline.delivery.ssrf import AddressPolicy

MAX_SECRET_LENGTH = 256


def check_subscription_fields(
    fields: Mapping[str, object], catalogue: Catalogue, address_policy: AddressPolicy
) -> tuple[dict[str, str | None], dict[str, errors.InvalidRequest]]:
    """Every field checked: the clean values, and an error per bad field (messages start "field: ...")."""
    checks: dict[str, Callable[[], str | None]] = {
        "trigger_url": lambda: trigger_url_from(fields, address_policy),
        "event_id": lambda: event_id_from(fields, catalogue),
        "content_type": lambda: content_type_from(fields.get("content_type")),
        "secret": lambda: secret_from(fields.get("secret")),
    }
    values: dict[str, str | None] = {}
    field_errors: dict[str, errors.InvalidRequest] = {}
    for name, check in checks.items():
        try:
            values[name] = check()
        except errors.InvalidRequest as exc:
            field_errors[name] = exc
    return values, field_errors


def new_subscription_from(
    fields: Mapping[str, object],
    owner: domain.User,
    catalogue: Catalogue,
    address_policy: AddressPolicy,
) -> domain.Subscription:
    """A new subscription for `owner`; InvalidRequest names the first bad field ("trigger_url: ...")."""
    values, field_errors = check_subscription_fields(fields, catalogue, address_policy)
    if field_errors:
        raise next(iter(field_errors.values()))
    return domain.Subscription(
        id=domain.new_subscription_id(),
        deployment_id=owner.deployment_id,
        user_id=owner.id,
        event_id=str(values["event_id"]),
        trigger_url=str(values["trigger_url"]),
        content_type=str(values["content_type"]),
        secret=values["secret"],
        created_at=time.time(),
    )


def trigger_url_from(fields: Mapping[str, object], address_policy: AddressPolicy) -> str:
    """An absolute http(s) URL that the outbound policy does not refuse outright (IP literals)."""
    trigger_url = absolute_http_url(required_str(fields, "trigger_url"), "trigger_url")
    refusal = address_policy.check_literal_url(trigger_url)
    if refusal is not None:
        raise errors.InvalidRequest(f"trigger_url: {refusal}")
    return trigger_url


def event_id_from(fields: Mapping[str, object], catalogue: Catalogue) -> str:
    """An event id from the catalogue."""
    event_id = required_str(fields, "event_id")
    if event_id not in catalogue:
        raise errors.InvalidRequest(
            f"event_id: unknown event {event_id!r}; GET /api/v0/webhooks/subscriptions/types lists them"
        )
    return event_id


def required_str(fields: Mapping[str, object], name: str) -> str:
    """A required, non-empty string field."""
    value = fields.get(name)
    if value is None or value == "":
        raise errors.InvalidRequest(f"{name}: is required")
    if not isinstance(value, str):
        raise errors.InvalidRequest(f"{name}: must be a string")
    return value.strip()


def content_type_from(value: object) -> str:
    """One of the two payload content types; form-encoded when absent."""
    if value is None or value == "":
        return domain.CONTENT_TYPE_FORM
    if not isinstance(value, str):
        raise errors.InvalidRequest("content_type: must be a string")
    normalized = value.split(";", 1)[0].strip().lower()
    if normalized not in domain.CONTENT_TYPES:
        raise errors.InvalidRequest(
            f"content_type: must be {domain.CONTENT_TYPE_FORM!r} or {domain.CONTENT_TYPE_JSON!r}, got {value!r}"
        )
    return normalized


def secret_from(value: object) -> str | None:
    """An optional secret of at most 256 characters; empty means none."""
    if value is None or value == "":
        return None
    if not isinstance(value, str):
        raise errors.InvalidRequest("secret: must be a string")
    if len(value) > MAX_SECRET_LENGTH:
        raise errors.InvalidRequest(f"secret: must be at most {MAX_SECRET_LENGTH} characters")
    return value
