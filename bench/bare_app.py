"""The API baseline: bare FastAPI endpoints shaped like Hookline's, served the way `hookline serve` serves.

No store, no auth: a pydantic-validated create answering the Accelo envelope, and a list of ten fixed
subscriptions. `python -m bench.bare_app --port P` serves it with uvicorn (uvloop, httptools, no access log).
"""

from __future__ import annotations

import argparse
import os

import uvicorn
from fastapi import FastAPI
from pydantic import BaseModel

LISTED_SUBSCRIPTIONS = 10


class CreateSubscription(BaseModel):
    """The create body Hookline accepts as JSON."""

    trigger_url: str
    event_id: str
    content_type: str = "application/x-www-form-urlencoded"
    secret: str | None = None


class ReportEvent(BaseModel):
    """The one-event body Hookline's events endpoint accepts as JSON."""

    event_id: str
    object_id: str
    resource_url: str | None = None


def _subscription(number: int, trigger_url: str, event_id: str, content_type: str) -> dict[str, object]:
    return {
        "subscription_id": f"{number:024x}",
        "event_id": event_id,
        "trigger_url": trigger_url,
        "content_type": content_type,
        "trigger_table": "task",
        "trigger_type": "update",
        "user_id": 1,
        "user_deployment": "bench",
    }


def create_app() -> FastAPI:
    """The bare app: POST and GET /bare/subscriptions, POST /bare/events."""
    app = FastAPI()
    listed = [
        _subscription(number, "http://127.0.0.1:9/hook", "assign_task", "application/json")
        for number in range(1, LISTED_SUBSCRIPTIONS + 1)
    ]
    user = {"id": 1, "name": "Bench", "email": "bench@localhost"}

    @app.post("/bare/subscriptions", status_code=201)
    async def create(body: CreateSubscription) -> dict[str, object]:
        subscription = _subscription(int.from_bytes(os.urandom(12)), body.trigger_url, body.event_id, body.content_type)
        return {
            "meta": {"status": "ok_created", "message": "A resource was successfully created.", "more_info": ""},
            "response": {"subscription": {**subscription, "user": user}},
        }

    @app.post("/bare/events", status_code=202)
    async def report(body: ReportEvent) -> dict[str, object]:
        return {
            "meta": {"status": "ok", "message": "Everything executed as expected.", "more_info": ""},
            "response": {"event": {"event_id": body.event_id, "object_id": body.object_id, "deliveries": 0}},
        }

    @app.get("/bare/subscriptions")
    async def list_all() -> dict[str, object]:
        return {
            "meta": {"status": "ok", "message": "Everything executed as expected.", "more_info": ""},
            "response": {"subscriptions": listed, "subscriptions_users": [user]},
        }

    return app


def main() -> None:
    """Serve the bare app on 127.0.0.1."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, required=True)
    args = parser.parse_args()
    uvicorn.run(
        create_app(),
        host="127.0.0.1",
        port=args.port,
        log_level="warning",
        access_log=False,
        loop="uvloop",
        http="httptools",
    )


if __name__ == "__main__":
    main()
