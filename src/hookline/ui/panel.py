"""The control panel at /webhooks: its static files, its pages, and a page for unknown panel paths."""

from __future__ import annotations

from fastapi import APIRouter, FastAPI
from starlette.requests import Request
from starlette.responses import Response
from starlette.staticfiles import StaticFiles

from hookline.config import Settings
from hookline.ui import delivery_actions, session, sign_in, subscription_pages, web
from hookline.ui.templating import STATIC_DIR

fallback = APIRouter(route_class=web.PanelRoute, include_in_schema=False)


@fallback.get(f"{web.PANEL_PREFIX}/{{unknown:path}}")
async def unknown_page(request: Request, unknown: str) -> Response:
    """A 404 page for panel paths that lead nowhere."""
    del request, unknown
    raise web.PanelError(404, "Page not found", "There is no such page in the control panel.")


def install(app: FastAPI, settings: Settings) -> None:
    """Mount the control panel's routes on the app.

    Sessions are signed with settings.session_secret; without one, with a random secret made now, so that
    signing in again is needed after a restart (set session_secret to keep sessions across restarts).
    """
    secret = settings.session_secret.encode("utf-8") if settings.session_secret else session.new_secret()
    app.state.hookline_panel = web.PanelState(
        signer=session.Signer(secret),
        secure_cookies=settings.base_url.startswith("https://"),
    )
    app.mount(f"{web.PANEL_PREFIX}/static", StaticFiles(directory=STATIC_DIR), name="panel-static")
    app.include_router(sign_in.router)
    app.include_router(subscription_pages.router)
    app.include_router(delivery_actions.router)
    app.include_router(fallback)
