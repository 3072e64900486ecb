"""The panel's HTTP plumbing: who is signed in, CSRF checks, forms, HTML pages, redirects and error pages."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Coroutine
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qsl, quote, urlsplit

from fastapi.routing import APIRoute
from starlette.requests import Request
from starlette.responses import HTMLResponse, RedirectResponse, Response

from hookline import __version__, errors
from hookline.api import auth
from hookline.api.state import AppState, app_state
from hookline.domain import Principal
from hookline.store import accounts
from hookline.ui import session as panel_session
from hookline.ui.session import Flash, Session, Signer
from hookline.ui.templating import render_page

log = logging.getLogger("hookline.ui")

PANEL_PREFIX = "/webhooks"
SIGN_IN_PATH = f"{PANEL_PREFIX}/sign-in"
MAX_FORM_BYTES = 65536
MAX_FORM_FIELDS = 32
CSRF_FIELD = "csrf_token"
CONTENT_SECURITY_POLICY = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "form-action 'self'; frame-ancestors 'none'; base-uri 'none'"
)
SECURITY_HEADERS = {
    "Content-Security-Policy": CONTENT_SECURITY_POLICY,
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "same-origin",
    "Cache-Control": "no-store",
}


@dataclass(frozen=True)
class PanelState:
    """What the panel keeps for the life of the process: its cookie signer and its clock."""

    signer: Signer
    secure_cookies: bool
    clock: Callable[[], float] = field(default=time.time)


def panel_state(request: Request) -> PanelState:
    """The PanelState of the app serving this request."""
    state: PanelState = request.app.state.hookline_panel
    return state


@dataclass(frozen=True, slots=True)
class Viewer:
    """The signed-in person: their principal (user, deployment, scopes, admin flag) and their session."""

    principal: Principal
    session: Session
    csrf_token: str

    @property
    def can_write(self) -> bool:
        """Whether the token may change webhooks (write(webhooks) or write(all))."""
        return auth.allows(self.principal.scopes, "write")

    @property
    def is_admin(self) -> bool:
        """Whether this is a deployment admin, who sees and manages every user's subscriptions."""
        return self.principal.is_admin


class PanelError(Exception):
    """An error page: an HTTP status, a title and a sentence saying what to do."""

    def __init__(self, status_code: int, title: str, message: str) -> None:
        super().__init__(message)
        self.status_code = status_code
        self.title = title
        self.message = message


class SignInRequired(Exception):
    """No valid session: send the browser to the sign-in page."""

    def __init__(self, message: str | None = None) -> None:
        super().__init__(message or "Sign in to continue.")
        self.message = message


def csrf_refused() -> PanelError:
    """The answer to a state-changing form without this session's CSRF token."""
    return PanelError(
        403,
        "Form refused",
        "This form was refused because its security token (CSRF token) is missing or does not belong to your "
        "session. Go back, reload the page and submit the form again.",
    )


def safe_next(target: str | None) -> str:
    """A same-site panel path to return to after sign-in; anything else becomes the panel's home."""
    if not target or "\\" in target or target.startswith("//"):
        return PANEL_PREFIX
    parts = urlsplit(target)
    if parts.scheme or parts.netloc or not (parts.path == PANEL_PREFIX or parts.path.startswith(PANEL_PREFIX + "/")):
        return PANEL_PREFIX
    if parts.path.startswith(SIGN_IN_PATH):
        return PANEL_PREFIX
    return target


def set_cookie(response: Response, request: Request, name: str, value: str, max_age_seconds: int) -> None:
    """Set one of the panel's cookies: HttpOnly, SameSite=Strict, scoped to /webhooks, Secure over HTTPS."""
    response.set_cookie(
        name,
        value,
        max_age=max_age_seconds,
        path=panel_session.COOKIE_PATH,
        secure=panel_state(request).secure_cookies or request.url.scheme == "https",
        httponly=True,
        samesite="strict",
    )


def clear_cookie(response: Response, request: Request, name: str) -> None:
    """Remove one of the panel's cookies."""
    response.delete_cookie(
        name,
        path=panel_session.COOKIE_PATH,
        secure=panel_state(request).secure_cookies or request.url.scheme == "https",
        httponly=True,
        samesite="strict",
    )


def redirect(request: Request, url: str, flash: Flash | None = None) -> RedirectResponse:
    """303 See Other to a panel page, with an optional one-time message for it."""
    response = RedirectResponse(url, status_code=303)
    if flash is not None:
        set_cookie(
            response,
            request,
            panel_session.FLASH_COOKIE,
            panel_state(request).signer.seal_flash(flash),
            panel_session.FLASH_MAX_AGE_SECONDS,
        )
    return response


def render(
    request: Request,
    template_name: str,
    context: dict[str, Any],
    *,
    viewer: Viewer | None,
    status_code: int = 200,
    section: str = "",
) -> HTMLResponse:
    """A full panel page (with the viewer's header and any one-time message), consuming the message."""
    flash = panel_state(request).signer.open_flash(request.cookies.get(panel_session.FLASH_COOKIE))
    page_context: dict[str, Any] = {
        "viewer": viewer,
        "csrf_token": viewer.csrf_token if viewer is not None else "",
        "flash": flash,
        "section": section,
        "asset_version": __version__,
        "prefix": PANEL_PREFIX,
        **context,
    }
    response = HTMLResponse(render_page(template_name, page_context), status_code=status_code)
    if panel_session.FLASH_COOKIE in request.cookies:
        clear_cookie(response, request, panel_session.FLASH_COOKIE)
    return response


async def current_viewer(request: Request) -> Viewer:
    """The signed-in viewer, or SignInRequired (no cookie, a forged or old one, an expired or revoked token)."""
    panel = panel_state(request)
    cookie = request.cookies.get(panel_session.SESSION_COOKIE)
    if cookie is None:
        raise SignInRequired()
    now = panel.clock()
    session = panel.signer.open_session(cookie, now)
    if session is None:
        raise SignInRequired("Your session has ended. Sign in again.")
    principal = await principal_for(app_state(request), session.token, now)
    return Viewer(principal, session, panel.signer.csrf_token(session.nonce))


async def principal_for(state: AppState, token: str, now: float) -> Principal:
    """Who a token speaks for, refused (SignInRequired) when unknown, revoked, expired or without read access."""
    principal = await accounts.principal_for_token(state.db, token)
    if principal is None:
        raise SignInRequired("That token is not valid (unknown or revoked).")
    if principal.expires_at is not None and principal.expires_at <= now:
        raise SignInRequired("Your token has expired. Sign in with a new one.")
    if not auth.allows(principal.scopes, "read"):
        raise SignInRequired("That token's scope does not allow reading webhooks (it needs read(webhooks)).")
    return principal


async def read_form(request: Request) -> dict[str, str]:
    """A URL-encoded form body, read up to MAX_FORM_BYTES; the first value of each field (none for no body)."""
    body = bytearray()
    async for chunk in request.stream():
        body += chunk
        if len(body) > MAX_FORM_BYTES:
            raise PanelError(413, "Form too large", f"A form may carry at most {MAX_FORM_BYTES // 1024} KiB.")
    if not body:
        return {}
    media_type = request.headers.get("content-type", "").split(";", 1)[0].strip().lower()
    if media_type != "application/x-www-form-urlencoded":
        raise PanelError(415, "Unsupported form", "The panel's forms are sent as application/x-www-form-urlencoded.")
    try:
        pairs = parse_qsl(body.decode("utf-8"), keep_blank_values=True, max_num_fields=MAX_FORM_FIELDS)
    except (UnicodeDecodeError, ValueError):
        raise PanelError(400, "Unreadable form", "The form could not be read; reload the page and try again.") from None
    fields: dict[str, str] = {}
    for name, value in pairs:
        fields.setdefault(name, value)
    return fields


async def checked_form(request: Request, viewer: Viewer) -> dict[str, str]:
    """The form of a state-changing request, refused with 403 unless it carries this session's CSRF token."""
    fields = await read_form(request)
    if not panel_state(request).signer.csrf_matches(viewer.session.nonce, fields.get(CSRF_FIELD)):
        raise csrf_refused()
    return fields


def require_write(viewer: Viewer) -> None:
    """Refuse a change when the viewer's token may only read."""
    if not viewer.can_write:
        raise PanelError(
            403,
            "Read-only token",
            "Your token may only read webhooks. Sign in with a token whose scope includes write(webhooks).",
        )


def field_error(exc: errors.HooklineError) -> tuple[str, str]:
    """Split an API error like "trigger_url: must be ..." into the field and a sentence for next to it."""
    field_name, separator, message = exc.message.partition(": ")
    if not separator or " " in field_name:
        return "", exc.message
    return field_name, message[:1].upper() + message[1:]


class PanelRoute(APIRoute):
    """A route whose errors become HTML pages (or a redirect to sign-in) and whose answers carry security headers."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        """The route's handler, wrapped."""
        handle = super().get_route_handler()

        async def handle_panel_request(request: Request) -> Response:
            try:
                response = await handle(request)
            except SignInRequired as exc:
                response = _to_sign_in(request, exc)
            except PanelError as exc:
                response = await _error_page(request, exc.status_code, exc.title, exc.message)
            except errors.HooklineError as exc:
                response = await _error_page(request, exc.http_status, "Request refused", exc.message)
            except Exception:
                log.exception("control panel error on %s %s", request.method, request.url.path)
                response = await _error_page(
                    request, 500, "Something went wrong", "The server could not answer this page; try again shortly."
                )
            response.headers.update(SECURITY_HEADERS)
            return response

        return handle_panel_request


def _to_sign_in(request: Request, exc: SignInRequired) -> Response:
    target = SIGN_IN_PATH
    if request.method == "GET" and request.url.path != PANEL_PREFIX:
        wanted = request.url.path + (f"?{request.url.query}" if request.url.query else "")
        target += f"?next={quote(wanted, safe='')}"
    flash = Flash("info", exc.message) if exc.message else None
    response = redirect(request, target, flash)
    if panel_session.SESSION_COOKIE in request.cookies:
        clear_cookie(response, request, panel_session.SESSION_COOKIE)
    return response


async def _error_page(request: Request, status_code: int, title: str, message: str) -> Response:
    """The error page, with the viewer's header when the session is still good."""
    viewer: Viewer | None
    try:
        viewer = await current_viewer(request)
    except Exception:  # no session, or the store is what failed: the page is shown without the header
        viewer = None
    return render(
        request,
        "error.html",
        {"status_code": status_code, "title": title, "message": message},
        viewer=viewer,
        status_code=status_code,
    )
