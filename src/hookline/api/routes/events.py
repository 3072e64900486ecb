"""/api/v0/webhooks/events: the platform reports events (admin token)."""

from __future__ import annotations

import json

from fastapi import APIRouter
from starlette.requests import Request
from starlette.responses import Response

from hookline import errors
from hookline.api import auth, parsing, respond, views
from hookline.api.event_input import new_event_from
from hookline.api.state import app_state

router = APIRouter(prefix="/api/v0/webhooks/events", tags=["events"])

MAX_BATCH = 1000
MAX_EVENTS_BODY_BYTES = 4 * 1024 * 1024
EVENTS_BODY = {
    "requestBody": {
        "content": {
            "application/json": {"schema": {"$ref": "#/components/schemas/EventReport"}},
            "application/x-www-form-urlencoded": {"schema": {"$ref": "#/components/schemas/Event"}},
        }
    }
}


@router.post("", summary="Report one event or a batch of up to 1000", status_code=202, openapi_extra=EVENTS_BODY)
async def report_events(request: Request) -> Response:
    """Store the events and their deliveries durably, then answer 202; repeated idempotency keys are not redelivered."""
    principal = await auth.authenticate(request, "write")
    auth.require_admin(principal, "reporting events")
    state = app_state(request)
    body = await request.body()
    fields = parsing.parse_fields(body, request.headers.get("content-type"), max_bytes=MAX_EVENTS_BODY_BYTES)
    if "events" in fields:
        batch = fields["events"]
        if isinstance(batch, str):
            try:
                batch = json.loads(batch)
            except ValueError:
                raise errors.InvalidRequest("events: must be a JSON list of events") from None
        if not isinstance(batch, list) or not batch:
            raise errors.InvalidRequest("events: must be a non-empty list of events")
        if len(batch) > MAX_BATCH:
            raise errors.InvalidRequest(f"events: at most {MAX_BATCH} events a request, got {len(batch)}")
        new_events = []
        for index, item in enumerate(batch):
            if not isinstance(item, dict):
                raise errors.InvalidRequest(f"events[{index}]: must be an object")
            new_events.append(
                new_event_from(item, state.settings, state.catalogue, principal.deployment, f"events[{index}].")
            )
        stored = await state.ingest(new_events)
        return respond.ok(request, {"events": [views.stored_event_view(e) for e in stored]}, http_status=202)
    new_event = new_event_from(fields, state.settings, state.catalogue, principal.deployment)
    stored = await state.ingest([new_event])
    return respond.ok(request, {"event": views.stored_event_view(stored[0])}, http_status=202)
