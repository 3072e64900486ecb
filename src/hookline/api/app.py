"""The ASGI application: routes, format suffixes, envelopes for every error, and the process lifespan."""

from __future__ import annotations

import contextlib
import logging
from collections.abc import AsyncIterator
from typing import Any

from fastapi import FastAPI
from fastapi.exceptions import RequestValidationError
from fastapi.openapi.utils import get_openapi
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.requests import Request
from starlette.responses import Response
from starlette.types import ASGIApp, Receive, Scope, Send

from hookline import __version__, errors, runtime
from hookline.api import openapi_schemas, rendering, respond
from hookline.api.routes import deliveries, events, oauth, subscriptions
from hookline.api.state import AppState
from hookline.config import Settings

log = logging.getLogger("hookline.api")

SUFFIXED_PREFIXES = ("/api/", "/oauth2/")


class FormatSuffixMiddleware:
    """Strips a .json/.yml/.xml suffix from API paths and remembers it as the requested format."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["path"].startswith(SUFFIXED_PREFIXES):
            path, fmt = rendering.split_format_suffix(scope["path"])
            if fmt is not None:
                scope = dict(scope)
                scope["path"] = path
                scope["raw_path"] = path.encode("utf-8")
                scope.setdefault("state", {})[respond.SUFFIX_STATE_KEY] = fmt
        await self.app(scope, receive, send)


def create_app(settings: Settings, *, with_dispatcher: bool = True) -> FastAPI:
    """The Hookline app; its lifespan starts the store, queue, sender and (optionally) the dispatcher."""

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        async with runtime.running(settings, with_dispatcher=with_dispatcher) as running:
            app.state.hookline = AppState.serving(running)
            yield

    app = FastAPI(
        title="Hookline",
        version=__version__,
        description="Self-hosted webhooks, compatible with Accelo's webhooks API.",
        lifespan=lifespan,
        docs_url=None,  # Swagger UI would load its scripts from a CDN; /openapi.json is served
        redoc_url=None,
    )
    app.include_router(subscriptions.router)
    app.include_router(events.router)
    app.include_router(deliveries.router)
    app.include_router(oauth.router)
    _mount_ui(app, settings)
    app.add_middleware(FormatSuffixMiddleware)
    _install_error_handlers(app)
    app.openapi = lambda: _openapi(app)  # type: ignore[method-assign]
    return app


def _mount_ui(app: FastAPI, settings: Settings) -> None:
    from hookline.ui import panel

    panel.install(app, settings)


def _install_error_handlers(app: FastAPI) -> None:
    async def hookline_error(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, errors.HooklineError)
        if request.url.path.startswith("/oauth2/"):
            return oauth.oauth_error(exc)
        return respond.error(request, exc)

    async def http_error(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, StarletteHTTPException)
        if exc.status_code == 404:
            error = errors.InvalidRequest(f"unknown resource: {request.method} {request.url.path}")
        elif exc.status_code == 405:
            allowed = (exc.headers or {}).get("allow", "")
            error = errors.InvalidRequest(
                f"method {request.method} is not allowed on {request.url.path}"
                + (f"; allowed: {allowed}" if allowed else ""),
                headers={"Allow": allowed} if allowed else None,
            )
        else:
            error = errors.InvalidRequest(str(exc.detail))
        return await hookline_error(request, error)

    async def validation_error(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, RequestValidationError)
        first = exc.errors()[0] if exc.errors() else {}
        field = ".".join(str(part) for part in first.get("loc", ())[1:]) or "request"
        return await hookline_error(request, errors.InvalidRequest(f"{field}: {first.get('msg', 'is invalid')}"))

    async def unexpected_error(request: Request, exc: Exception) -> Response:
        log.exception("unexpected error on %s %s", request.method, request.url.path, exc_info=exc)
        return await hookline_error(request, errors.ServerError())

    app.add_exception_handler(errors.HooklineError, hookline_error)
    app.add_exception_handler(StarletteHTTPException, http_error)
    app.add_exception_handler(RequestValidationError, validation_error)
    app.add_exception_handler(Exception, unexpected_error)


def _openapi(app: FastAPI) -> dict[str, Any]:
    if app.openapi_schema is None:
        schema = get_openapi(title=app.title, version=app.version, description=app.description, routes=app.routes)
        schema.setdefault("components", {}).setdefault("schemas", {}).update(openapi_schemas.SCHEMAS)
        schema["components"]["securitySchemes"] = {"bearer": {"type": "http", "scheme": "bearer"}}
        schema["security"] = [{"bearer": []}]
        app.openapi_schema = schema
    return app.openapi_schema
