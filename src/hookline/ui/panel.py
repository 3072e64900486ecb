"""The control panel's routes (placeholder until the panel lands: /webhooks answers a short page)."""

from __future__ import annotations

from fastapi import FastAPI
from starlette.requests import Request
from starlette.responses import HTMLResponse

from hookline.config import Settings


def install(app: FastAPI, settings: Settings) -> None:
    """Mount the control panel's routes on the app."""
    del settings

    @app.get("/webhooks", include_in_schema=False)
    async def panel_home(request: Request) -> HTMLResponse:
        del request
        return HTMLResponse("<!doctype html><title>Hookline</title><h1>Hookline</h1><p>Control panel coming soon.</p>")
