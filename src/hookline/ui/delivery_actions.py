"""The panel's delivery buttons: Send test (synchronous dispatch), Trigger (queue an event), Redeliver."""

from __future__ import annotations

from dataclasses import dataclass

from fastapi import APIRouter
from starlette.requests import Request
from starlette.responses import Response

from hookline import domain, errors
from hookline.api.event_input import event_for_subscription
from hookline.api.state import app_state
from hookline.delivery import service
from hookline.store import delivery_log
from hookline.ui import web
from hookline.ui.session import Flash
from hookline.ui.subscription_pages import subscription_for
from hookline.ui.templating import duration_text, status_text

router = APIRouter(route_class=web.PanelRoute, include_in_schema=False)

MAX_DELIVERY_ID_DIGITS = 18


def _subscription_url(subscription_id: str) -> str:
    return f"{web.PANEL_PREFIX}/subscriptions/{subscription_id}"


@dataclass(frozen=True, slots=True)
class _Target:
    """A subscription a button acts on, the page to go back to, and its event for the form's object id."""

    subscription: domain.Subscription
    back: str
    event: domain.NewEvent | None
    problem: str


async def _target(request: Request, subscription_id: str) -> _Target:
    viewer = await web.current_viewer(request)
    fields = await web.checked_form(request, viewer)
    web.require_write(viewer)
    state = app_state(request)
    subscription = await subscription_for(request, viewer, subscription_id, allow_deleted=False)
    back = _subscription_url(subscription.id)
    try:
        event = event_for_subscription(
            state.settings, state.catalogue, viewer.principal.deployment, subscription, fields.get("object_id")
        )
    except errors.InvalidRequest as exc:
        return _Target(subscription, back, None, web.field_error(exc)[1])
    return _Target(subscription, back, event, "")


@router.post(f"{web.PANEL_PREFIX}/subscriptions/{{subscription_id}}/test")
async def send_test(request: Request, subscription_id: str) -> Response:
    """Deliver the subscription's event for an object id now, to this subscription alone, and show the answer."""
    target = await _target(request, subscription_id)
    if target.event is None:
        return web.redirect(request, target.back, Flash("error", f"Test not sent: {target.problem}"))
    state = app_state(request)
    outcome = await service.dispatch_now(
        state.queue, state.sender, state.settings, state.retry_policy, target.event, target.subscription.id
    )
    if outcome is None:
        return web.redirect(request, target.back, Flash("error", "Test not sent: the subscription no longer exists."))
    return web.redirect(request, target.back, _test_flash(outcome, target.event.object_id))


@router.post(f"{web.PANEL_PREFIX}/subscriptions/{{subscription_id}}/trigger")
async def trigger(request: Request, subscription_id: str) -> Response:
    """Queue the subscription's event for an object id, as the API's trigger does (every matching subscription)."""
    target = await _target(request, subscription_id)
    if target.event is None:
        return web.redirect(request, target.back, Flash("error", f"Event not queued: {target.problem}"))
    state = app_state(request)
    [stored] = await state.ingest([target.event])
    plural = "delivery" if stored.deliveries == 1 else "deliveries"
    return web.redirect(
        request,
        target.back,
        Flash(
            "success",
            f"Queued event #{stored.id} ({stored.event_id}, object {stored.object_id}): {stored.deliveries} "
            f"{plural}. Reload the page to see how they went.",
        ),
    )


@router.post(f"{web.PANEL_PREFIX}/deliveries/{{delivery_id}}/redeliver")
async def redeliver(request: Request, delivery_id: str) -> Response:
    """Queue a new delivery of a logged delivery's event to the same (live) subscription."""
    viewer = await web.current_viewer(request)
    await web.checked_form(request, viewer)
    web.require_write(viewer)
    state = app_state(request)
    not_found = web.PanelError(404, "Delivery not found", f"There is no delivery {delivery_id!r} you can see.")
    if not delivery_id.isdigit() or len(delivery_id) > MAX_DELIVERY_ID_DIGITS:
        raise not_found
    original = await delivery_log.get(state.db, int(delivery_id))
    if original is None:
        raise not_found
    try:
        await subscription_for(request, viewer, original.subscription_id, allow_deleted=True)
    except web.PanelError as exc:
        raise (not_found if exc.status_code == 404 else exc) from None
    back = _subscription_url(original.subscription_id)
    new_id = await state.queue.redeliver(original.id)
    if new_id is None:
        return web.redirect(
            request, back, Flash("error", f"Delivery #{original.id} was not redelivered: its subscription was deleted.")
        )
    return web.redirect(
        request,
        back,
        Flash("success", f"Queued delivery #{new_id}, a redelivery of #{original.id}. Reload to see its attempts."),
    )


def _test_flash(outcome: service.DispatchOutcome, object_id: str) -> Flash:
    """What a test delivery got, in a sentence."""
    lead = f"Test delivery #{outcome.delivery_id} for object {object_id}"
    took = duration_text(outcome.duration_ms)
    if outcome.status_code is None:
        return Flash("error", f"{lead} got no response after {took}: {outcome.error or 'no answer'}.")
    answered = f"{lead}: the receiver answered {status_text(outcome.status_code)} in {took}."
    if outcome.outcome == "gone":
        return Flash("error", f"{answered} A 410 asks to unsubscribe, so the subscription was removed.")
    return Flash("success" if outcome.outcome == "success" else "error", answered)
