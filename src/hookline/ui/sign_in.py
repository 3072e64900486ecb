"""Signing in (an API token, or OAuth client credentials exchanged for a session-long token) and signing out."""

from __future__ import annotations

from fastapi import APIRouter
from starlette.requests import Request
from starlette.responses import Response

from hookline import errors
from hookline.api import auth
from hookline.api.state import app_state
from hookline.domain import Principal
from hookline.store import accounts
from hookline.ui import session as panel_session
from hookline.ui import web
from hookline.ui.session import Flash

router = APIRouter(route_class=web.PanelRoute, include_in_schema=False)

DEFAULT_CLIENT_SCOPES = ("read(all)",)
PANEL_TOKEN_PURPOSE = "panel"  # noqa: S105 (a label, not a password: tokens minted for a sign-in)


@router.get(web.SIGN_IN_PATH)
async def sign_in_page(request: Request) -> Response:
    """The sign-in page (or the panel, for someone already signed in)."""
    try:
        await web.current_viewer(request)
    except web.SignInRequired:
        return _sign_in_form(request, next_path=request.query_params.get("next"))
    return web.redirect(request, web.safe_next(request.query_params.get("next")))


@router.post(web.SIGN_IN_PATH)
async def sign_in(request: Request) -> Response:
    """Check a token or client credentials and start a session; errors are shown next to the field."""
    panel = web.panel_state(request)
    fields = await web.read_form(request)
    nonce = panel.signer.open_sign_in_nonce(request.cookies.get(panel_session.SIGN_IN_COOKIE), panel.clock())
    if nonce is None or not panel.signer.csrf_matches(nonce, fields.get(web.CSRF_FIELD)):
        raise web.csrf_refused()
    method = fields.get("method", "token")
    try:
        if method == "client":
            token = await _token_for_client(request, fields.get("client_id", ""), fields.get("client_secret", ""))
        else:
            token = fields.get("token", "").strip()
            if not token:
                raise _FieldProblem("token", "Enter an API token.")
        try:
            principal = await web.principal_for(app_state(request), token, panel.clock())
        except web.SignInRequired as exc:
            raise _FieldProblem("client_secret" if method == "client" else "token", str(exc)) from None
    except _FieldProblem as problem:
        return _sign_in_form(
            request,
            next_path=fields.get("next"),
            method=method,
            client_id=fields.get("client_id", ""),
            field_errors={problem.field: problem.message},
            status_code=400,
        )
    return _start_session(request, token, principal, web.safe_next(fields.get("next")))


@router.post(f"{web.PANEL_PREFIX}/sign-out")
async def sign_out(request: Request) -> Response:
    """End the session: the cookie is removed, and a token minted for this sign-in is revoked."""
    viewer = await web.current_viewer(request)
    await web.checked_form(request, viewer)
    await accounts.revoke_token(app_state(request).db, viewer.session.token, purpose=PANEL_TOKEN_PURPOSE)
    auth.forget_token(request, viewer.session.token)
    response = web.redirect(request, web.SIGN_IN_PATH, Flash("info", "You have signed out."))
    web.clear_cookie(response, request, panel_session.SESSION_COOKIE)
    return response


class _FieldProblem(Exception):
    def __init__(self, field: str, message: str) -> None:
        super().__init__(message)
        self.field = field
        self.message = message


async def _token_for_client(request: Request, client_id: str, client_secret: str) -> str:
    """A token for an OAuth client, as the token endpoint issues one, living as long as a session."""
    state = app_state(request)
    client_id, client_secret = client_id.strip(), client_secret.strip()
    if not client_id:
        raise _FieldProblem("client_id", "Enter the client id (hlc_…).")
    if not client_secret:
        raise _FieldProblem("client_secret", "Enter the client secret (hls_…).")
    client = await accounts.authenticate_client(state.db, client_id, client_secret)
    if client is None:
        raise _FieldProblem("client_secret", "Unknown client, or the secret does not match.")
    try:
        scopes = auth.parse_scopes(client["max_scopes"]) or DEFAULT_CLIENT_SCOPES
    except errors.InvalidScope as exc:
        raise _FieldProblem("client_id", exc.message) from None
    user = await accounts.get_user(state.db, client["user_id"])
    assert user is not None  # foreign key
    now = web.panel_state(request).clock()
    return await accounts.create_token(
        state.db,
        user,
        scopes=" ".join(scopes),
        is_admin=bool(client["is_admin"]),
        expires_at=now + panel_session.SESSION_MAX_AGE_SECONDS,
        oauth_client_id=client["id"],
        purpose=PANEL_TOKEN_PURPOSE,
    )


def _start_session(request: Request, token: str, principal: Principal, next_path: str) -> Response:
    panel = web.panel_state(request)
    _, cookie = panel.signer.new_session(token, panel.clock())
    who = principal.user.name or principal.user.email
    response = web.redirect(request, next_path, Flash("success", f"Signed in as {who} ({principal.deployment.name})."))
    max_age = panel_session.SESSION_MAX_AGE_SECONDS
    if principal.expires_at is not None:
        max_age = max(1, min(max_age, int(principal.expires_at - panel.clock())))
    web.set_cookie(response, request, panel_session.SESSION_COOKIE, cookie, max_age)
    web.clear_cookie(response, request, panel_session.SIGN_IN_COOKIE)
    return response


def _sign_in_form(
    request: Request,
    *,
    next_path: str | None,
    method: str = "token",
    client_id: str = "",
    field_errors: dict[str, str] | None = None,
    status_code: int = 200,
) -> Response:
    panel = web.panel_state(request)
    now = panel.clock()
    nonce = panel.signer.open_sign_in_nonce(request.cookies.get(panel_session.SIGN_IN_COOKIE), now)
    fresh_cookie = None
    if nonce is None:
        nonce, fresh_cookie = panel.signer.new_sign_in_nonce(now)
    response = web.render(
        request,
        "sign_in.html",
        {
            "sign_in_csrf": panel.signer.csrf_token(nonce),
            "next_path": web.safe_next(next_path),
            "method": method,
            "client_id": client_id,
            "field_errors": field_errors or {},
        },
        viewer=None,
        status_code=status_code,
    )
    if fresh_cookie is not None:
        web.set_cookie(
            response, request, panel_session.SIGN_IN_COOKIE, fresh_cookie, panel_session.SIGN_IN_MAX_AGE_SECONDS
        )
    return response
