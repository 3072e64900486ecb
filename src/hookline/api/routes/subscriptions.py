"""/api/v0/webhooks/subscriptions: list, types, create, get, delete, trigger and dispatch."""

from __future__ import annotations

import time
from typing import Any

from fastapi import APIRouter
from starlette.requests import Request
from starlette.responses import Response

from hookline import domain, errors
from hookline.api import auth, parsing, respond, views
from hookline.api.event_input import event_for_subscription
from hookline.api.ownership import visible_subscription
from hookline.api.paging import page_from
from hookline.api.state import app_state
from hookline.api.subscription_input import new_subscription_from
from hookline.delivery import service
from hookline.store import accounts, subscriptions

router = APIRouter(prefix="/api/v0/webhooks/subscriptions", tags=["subscriptions"])

MAX_BODY_BYTES = 65536
FORM_OR_JSON_BODY = {
    "requestBody": {
        "content": {
            media: {"schema": {"$ref": "#/components/schemas/SubscriptionCreate"}}
            for media in (domain.CONTENT_TYPE_JSON, domain.CONTENT_TYPE_FORM)
        }
    }
}
OBJECT_ID_BODY = {
    "requestBody": {
        "content": {
            media: {"schema": {"$ref": "#/components/schemas/ObjectId"}}
            for media in (domain.CONTENT_TYPE_JSON, domain.CONTENT_TYPE_FORM)
        }
    }
}


async def _fields(request: Request) -> dict[str, object]:
    body = await request.body()
    return parsing.parse_fields(body, request.headers.get("content-type"), max_bytes=MAX_BODY_BYTES)


@router.get("", summary="List the caller's subscriptions (an admin token: the deployment's)")
async def list_subscriptions(request: Request) -> Response:
    """Every live subscription the caller owns (all of the deployment's for an admin), with their users."""
    principal = await auth.authenticate(request, "read")
    state = app_state(request)
    page = page_from(request, default_limit=None)
    owner_filter = None if principal.is_admin else principal.user.id
    found = await subscriptions.list_for(
        state.db, principal.deployment.id, user_id=owner_filter, limit=page.limit, offset=page.offset
    )
    owners = {owner.id: owner for _, owner in found}
    return respond.ok(
        request,
        {
            "subscriptions": [views.subscription_view(s, principal.deployment, state.catalogue) for s, _ in found],
            "subscriptions_users": [views.user_view(owners[uid]) for uid in sorted(owners)],
        },
    )


@router.get("/types", summary="List the event types one can subscribe to")
async def list_types(request: Request) -> Response:
    """The event catalogue."""
    await auth.authenticate(request, "read")
    state = app_state(request)
    return respond.ok(request, {"types": [views.event_type_view(t) for t in state.catalogue.all()]})


@router.post("", summary="Create a subscription", openapi_extra=FORM_OR_JSON_BODY)
async def create_subscription(request: Request) -> Response:
    """Subscribe a trigger_url to an event_id (JSON or form body); 201 with the subscription."""
    principal = await auth.authenticate(request, "write")
    state = app_state(request)
    fields = await _fields(request)
    subscription = new_subscription_from(fields, principal.user, state.catalogue, state.address_policy)
    await subscriptions.create(state.db, subscription)
    view = views.subscription_view(subscription, principal.deployment, state.catalogue, owner=principal.user)
    return respond.created(request, {"subscription": view})


@router.get("/{subscription_id}", summary="Get one subscription")
async def get_subscription(request: Request, subscription_id: str) -> Response:
    """One subscription, with its owner."""
    principal = await auth.authenticate(request, "read")
    state = app_state(request)
    found = await visible_subscription(state.db, principal, subscription_id)
    return respond.ok(request, {"subscription": await _full_view(request, found)})


@router.delete("/{subscription_id}", summary="Delete a subscription")
async def delete_subscription(request: Request, subscription_id: str) -> Response:
    """Delete (soft: kept with time and reason "deleted") and cancel its pending deliveries."""
    principal = await auth.authenticate(request, "write")
    state = app_state(request)
    found = await visible_subscription(state.db, principal, subscription_id)
    await subscriptions.soft_delete(state.db, found.id, "deleted", time.time())
    deleted = await subscriptions.get(state.db, found.id)
    return respond.ok(request, {"subscription": await _full_view(request, deleted or found)})


@router.post(
    "/{subscription_id}/trigger", summary="Queue the subscription's event for an object", openapi_extra=OBJECT_ID_BODY
)
async def trigger_subscription(request: Request, subscription_id: str) -> Response:
    """Queue this subscription's event for object_id to every matching subscription of the deployment."""
    principal = await auth.authenticate(request, "write")
    state = app_state(request)
    found = await visible_subscription(state.db, principal, subscription_id)
    new_event = await _event_for(request, principal.deployment, found)
    stored = await state.ingest([new_event])
    return respond.ok(request, {"event": views.stored_event_view(stored[0])})


@router.post(
    "/{subscription_id}/dispatch",
    summary="Deliver to this subscription now and answer its status",
    openapi_extra=OBJECT_ID_BODY,
)
async def dispatch_subscription(request: Request, subscription_id: str) -> Response:
    """Deliver this subscription's event for object_id to it alone, synchronously; answers the receiver's status."""
    principal = await auth.authenticate(request, "write")
    state = app_state(request)
    found = await visible_subscription(state.db, principal, subscription_id)
    new_event = await _event_for(request, principal.deployment, found)
    outcome = await service.dispatch_now(
        state.queue, state.sender, state.settings, state.retry_policy, new_event, found.id
    )
    if outcome is None:
        raise errors.InvalidRequest(f"subscription_id: no subscription {subscription_id!r}")
    result: dict[str, Any] = {"status": outcome.status_code, "delivery_id": outcome.delivery_id}
    if outcome.error is not None:
        result["error"] = outcome.error
    return respond.ok(request, result)


async def _event_for(
    request: Request, deployment: domain.Deployment, subscription: domain.Subscription
) -> domain.NewEvent:
    state = app_state(request)
    fields = await _fields(request)
    raw_object_id = fields.get("object_id", request.query_params.get("object_id"))
    return event_for_subscription(state.settings, state.catalogue, deployment, subscription, raw_object_id)


async def _full_view(request: Request, subscription: domain.Subscription) -> dict[str, Any]:
    state = app_state(request)
    owner = await accounts.get_user(state.db, subscription.user_id)
    deployment = await accounts.get_deployment_by_id(state.db, subscription.deployment_id)
    assert deployment is not None  # a subscription always belongs to a deployment (foreign key)
    return views.subscription_view(subscription, deployment, state.catalogue, owner=owner)
