"""The panel's pages: the subscriptions list, creating one, one subscription with its log, deleting, event types."""

from __future__ import annotations

import time
from dataclasses import dataclass

from fastapi import APIRouter
from starlette.requests import Request
from starlette.responses import Response

from hookline import domain, errors
from hookline.api import ownership, subscription_input
from hookline.api.state import AppState, app_state
from hookline.catalogue import EventType
from hookline.domain import Delivery, Subscription, User
from hookline.store import accounts, delivery_log, subscriptions
from hookline.ui import web
from hookline.ui.session import Flash

router = APIRouter(route_class=web.PanelRoute, include_in_schema=False)

SUBSCRIPTIONS_PAGE_SIZE = 25
DELIVERIES_PAGE_SIZE = 10
MAX_PAGE_NUMBER = 100_000
SHOW_CHOICES = ("all", "active")
CONTENT_TYPE_CHOICES = (
    (domain.CONTENT_TYPE_FORM, "Form fields", "application/x-www-form-urlencoded, as Accelo sends by default"),
    (domain.CONTENT_TYPE_JSON, "JSON", "application/json"),
)


@dataclass(frozen=True, slots=True)
class SubscriptionRow:
    """A subscription with what the pages show beside it: its event type and its owner."""

    subscription: Subscription
    event_type: EventType | None
    owner: User | None

    @property
    def event_title(self) -> str:
        """The event's title, or its id when it left the catalogue."""
        return self.event_type.event_title if self.event_type else self.subscription.event_id

    @property
    def state(self) -> str:
        """active, failing or removed."""
        if self.subscription.deleted_at is not None:
            return "removed"
        return "failing" if self.subscription.consecutive_failures > 0 else "active"


def page_number(request: Request, name: str = "page") -> int:
    """A 1-based page number from the query string; anything unreadable is page 1."""
    raw = request.query_params.get(name, "1").strip()
    return min(int(raw), MAX_PAGE_NUMBER) if raw.isdigit() and int(raw) >= 1 else 1


async def subscription_for(
    request: Request, viewer: web.Viewer, subscription_id: str, *, allow_deleted: bool
) -> Subscription:
    """A subscription this viewer may see, by the API's ownership rules; a 404 or 403 page otherwise."""
    try:
        return await ownership.visible_subscription(
            app_state(request).db, viewer.principal, subscription_id, allow_deleted=allow_deleted
        )
    except errors.InvalidPermission:
        raise web.PanelError(
            403,
            "Another user's subscription",
            "This subscription belongs to another user. Only its owner or a deployment admin can see it.",
        ) from None
    except errors.InvalidRequest:
        gone = ", or it was deleted" if not allow_deleted else ""
        raise web.PanelError(
            404, "Subscription not found", f"There is no subscription {subscription_id!r} in your deployment{gone}."
        ) from None


@router.get(web.PANEL_PREFIX)
async def subscriptions_page(request: Request) -> Response:
    """The viewer's subscriptions (the deployment's, with owners, for an admin), removed ones included."""
    viewer = await web.current_viewer(request)
    state = app_state(request)
    page = page_number(request)
    show = request.query_params.get("show", "all")
    show = show if show in SHOW_CHOICES else "all"
    owner_filter = None if viewer.is_admin else viewer.principal.user.id
    found = await subscriptions.list_for(
        state.db,
        viewer.principal.deployment.id,
        user_id=owner_filter,
        limit=SUBSCRIPTIONS_PAGE_SIZE + 1,
        offset=(page - 1) * SUBSCRIPTIONS_PAGE_SIZE,
        include_deleted=show == "all",
    )
    active_count = await subscriptions.count_for(state.db, viewer.principal.deployment.id, user_id=owner_filter)
    rows = [SubscriptionRow(s, state.catalogue.get(s.event_id), owner) for s, owner in found[:SUBSCRIPTIONS_PAGE_SIZE]]
    return web.render(
        request,
        "subscriptions.html",
        {
            "rows": rows,
            "page": page,
            "has_next": len(found) > SUBSCRIPTIONS_PAGE_SIZE,
            "show": show,
            "active_count": active_count,
        },
        viewer=viewer,
        section="subscriptions",
    )


@router.get(f"{web.PANEL_PREFIX}/new")
async def new_subscription_page(request: Request) -> Response:
    """The form to create a subscription."""
    viewer = await web.current_viewer(request)
    web.require_write(viewer)
    chosen = request.query_params.get("event_id", "")
    values = {"event_id": chosen, "trigger_url": "", "content_type": domain.CONTENT_TYPE_FORM}
    return _new_form(request, viewer, values, {})


@router.post(f"{web.PANEL_PREFIX}/new")
async def create_subscription(request: Request) -> Response:
    """Create a subscription with the API's checks; errors are shown next to their fields."""
    viewer = await web.current_viewer(request)
    fields = await web.checked_form(request, viewer)
    web.require_write(viewer)
    state = app_state(request)
    values, field_errors = _checked_subscription_fields(state, fields)
    if field_errors:
        return _new_form(request, viewer, values, field_errors, status_code=400)
    subscription = subscription_input.new_subscription_from(
        fields, viewer.principal.user, state.catalogue, state.address_policy
    )
    await subscriptions.create(state.db, subscription)
    return web.redirect(
        request,
        f"{web.PANEL_PREFIX}/subscriptions/{subscription.id}",
        Flash("success", "Subscription created. Press Send test to check that your receiver answers."),
    )


@router.get(f"{web.PANEL_PREFIX}/subscriptions/{{subscription_id}}")
async def subscription_page(request: Request, subscription_id: str) -> Response:
    """One subscription: details, actions, and one page of its delivery log."""
    viewer = await web.current_viewer(request)
    state = app_state(request)
    subscription = await subscription_for(request, viewer, subscription_id, allow_deleted=True)
    [row] = await _rows(state, [subscription])
    page = page_number(request)
    deliveries: list[Delivery] = await delivery_log.list_for_subscription(
        state.db, subscription.id, limit=DELIVERIES_PAGE_SIZE + 1, offset=(page - 1) * DELIVERIES_PAGE_SIZE
    )
    return web.render(
        request,
        "subscription.html",
        {
            "row": row,
            "deliveries": deliveries[:DELIVERIES_PAGE_SIZE],
            "page": page,
            "has_next": len(deliveries) > DELIVERIES_PAGE_SIZE,
        },
        viewer=viewer,
        section="subscriptions",
    )


@router.get(f"{web.PANEL_PREFIX}/subscriptions/{{subscription_id}}/delete")
async def confirm_delete_page(request: Request, subscription_id: str) -> Response:
    """Ask before deleting."""
    viewer = await web.current_viewer(request)
    web.require_write(viewer)
    subscription = await subscription_for(request, viewer, subscription_id, allow_deleted=False)
    [row] = await _rows(app_state(request), [subscription])
    return web.render(request, "confirm_delete.html", {"row": row}, viewer=viewer, section="subscriptions")


@router.post(f"{web.PANEL_PREFIX}/subscriptions/{{subscription_id}}/delete")
async def delete_subscription(request: Request, subscription_id: str) -> Response:
    """Delete (softly, as the API does: kept with when and why) and cancel its pending deliveries."""
    viewer = await web.current_viewer(request)
    await web.checked_form(request, viewer)
    web.require_write(viewer)
    subscription = await subscription_for(request, viewer, subscription_id, allow_deleted=False)
    await subscriptions.soft_delete(app_state(request).db, subscription.id, "deleted", time.time())
    return web.redirect(
        request,
        web.PANEL_PREFIX,
        Flash("success", f"Deleted the subscription to {subscription.event_id} at {subscription.trigger_url}."),
    )


@router.get(f"{web.PANEL_PREFIX}/event-types")
async def event_types_page(request: Request) -> Response:
    """The event catalogue."""
    viewer = await web.current_viewer(request)
    return web.render(
        request,
        "event_types.html",
        {"event_types": app_state(request).catalogue.all()},
        viewer=viewer,
        section="event-types",
    )


async def _rows(state: AppState, found: list[Subscription]) -> list[SubscriptionRow]:
    owners = await accounts.users_by_id(state.db, {s.user_id for s in found})
    return [SubscriptionRow(s, state.catalogue.get(s.event_id), owners.get(s.user_id)) for s in found]


def _checked_subscription_fields(state: AppState, fields: dict[str, str]) -> tuple[dict[str, str], dict[str, str]]:
    """The form's values (trimmed) and an error per field that fails the API's checks."""
    values = {
        "event_id": fields.get("event_id", "").strip(),
        "trigger_url": fields.get("trigger_url", "").strip(),
        "content_type": fields.get("content_type", domain.CONTENT_TYPE_FORM).strip().lower(),
    }
    _, problems = subscription_input.check_subscription_fields(fields, state.catalogue, state.address_policy)
    return values, {name: web.field_error(exc)[1] for name, exc in problems.items()}


def _new_form(
    request: Request,
    viewer: web.Viewer,
    values: dict[str, str],
    field_errors: dict[str, str],
    *,
    status_code: int = 200,
) -> Response:
    catalogue = app_state(request).catalogue.all()
    groups: dict[str, list[EventType]] = {}
    for event_type in catalogue:
        groups.setdefault(event_type.trigger_table, []).append(event_type)
    return web.render(
        request,
        "new_subscription.html",
        {
            "event_groups": sorted(groups.items()),
            "values": values,
            "field_errors": field_errors,
            "content_types": CONTENT_TYPE_CHOICES,
        },
        viewer=viewer,
        status_code=status_code,
        section="new",
    )
