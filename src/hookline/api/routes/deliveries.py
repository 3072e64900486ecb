"""The delivery log: a subscription's deliveries, one delivery, and redelivery."""

from __future__ import annotations

from fastapi import APIRouter
from starlette.requests import Request
from starlette.responses import Response

from hookline import errors
from hookline.api import auth, respond, views
from hookline.api.ownership import visible_subscription
from hookline.api.paging import page_from
from hookline.api.state import app_state
from hookline.domain import Delivery, Principal
from hookline.store import delivery_log

router = APIRouter(prefix="/api/v0/webhooks", tags=["deliveries"])

DEFAULT_DELIVERIES_PAGE = 10


def _delivery_id(raw: str) -> int:
    if not raw.isdigit() or len(raw) > 18:
        raise errors.InvalidRequest(f"delivery_id: no delivery {raw!r}")
    return int(raw)


async def _visible_delivery(request: Request, principal: Principal, raw_id: str) -> Delivery:
    state = app_state(request)
    delivery = await delivery_log.get(state.db, _delivery_id(raw_id))
    if delivery is None:
        raise errors.InvalidRequest(f"delivery_id: no delivery {raw_id!r}")
    try:
        await visible_subscription(state.db, principal, delivery.subscription_id, allow_deleted=True)
    except errors.InvalidRequest:
        raise errors.InvalidRequest(f"delivery_id: no delivery {raw_id!r}") from None
    return delivery


@router.get("/subscriptions/{subscription_id}/deliveries", summary="A subscription's deliveries, newest first")
async def list_deliveries(request: Request, subscription_id: str) -> Response:
    """One page (_limit, default 10; _page or _offset) of a subscription's deliveries with their attempts."""
    principal = await auth.authenticate(request, "read")
    state = app_state(request)
    subscription = await visible_subscription(state.db, principal, subscription_id, allow_deleted=True)
    page = page_from(request, default_limit=DEFAULT_DELIVERIES_PAGE)
    found = await delivery_log.list_for_subscription(
        state.db, subscription.id, limit=page.limit or DEFAULT_DELIVERIES_PAGE, offset=page.offset
    )
    return respond.ok(request, {"deliveries": [views.delivery_view(d) for d in found]})


@router.get("/deliveries/{delivery_id}", summary="One delivery with its attempts")
async def get_delivery(request: Request, delivery_id: str) -> Response:
    """A delivery and every attempt made at it."""
    principal = await auth.authenticate(request, "read")
    delivery = await _visible_delivery(request, principal, delivery_id)
    return respond.ok(request, {"delivery": views.delivery_view(delivery)})


@router.post("/deliveries/{delivery_id}/redeliver", summary="Send a delivery's event to its subscription again")
async def redeliver(request: Request, delivery_id: str) -> Response:
    """Queue a new delivery of the same event to the same (live) subscription; 201 with it."""
    principal = await auth.authenticate(request, "write")
    state = app_state(request)
    original = await _visible_delivery(request, principal, delivery_id)
    new_id = await state.queue.redeliver(original.id)
    if new_id is None:
        raise errors.InvalidRequest(
            f"delivery_id: subscription {original.subscription_id!r} of delivery {delivery_id} was deleted"
        )
    created = await delivery_log.get(state.db, new_id)
    assert created is not None  # just committed by the queue
    return respond.created(request, {"delivery": views.delivery_view(created)})
