"""OAuth 2.0 client credentials (/oauth2/v0/token, /oauth2/v0/revoke) and /api/v0/tokeninfo."""

from __future__ import annotations

import base64
import binascii
import time
from typing import Any
from urllib.parse import unquote, urlsplit

from fastapi import APIRouter
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from hookline import errors
from hookline.api import auth, parsing, respond, views
from hookline.api.state import app_state
from hookline.store import accounts

router = APIRouter(tags=["oauth"])

MAX_EXPIRES_IN_SECONDS = 365 * 86400
MAX_TOKEN_BODY_BYTES = 8192
TOKEN_BODY = {
    "requestBody": {
        "content": {"application/x-www-form-urlencoded": {"schema": {"$ref": "#/components/schemas/TokenRequest"}}}
    }
}


def oauth_error(exc: errors.HooklineError) -> Response:
    """An RFC 6749 error answer ({"error", "error_description"}) that also carries the Accelo meta."""
    body = {
        "error": exc.status,
        "error_description": exc.message,
        "meta": {"status": exc.status, "message": exc.message, "more_info": f"{errors.MORE_INFO_BASE}#{exc.status}"},
        "response": None,
    }
    headers = {"Cache-Control": "no-store", **exc.headers}
    if exc.http_status == 401:
        headers.setdefault("WWW-Authenticate", 'Basic realm="hookline"')
    return JSONResponse(body, status_code=exc.http_status, headers=headers)


def _basic_credentials(request: Request, fields: dict[str, object]) -> tuple[str, str]:
    header = request.headers.get("authorization", "")
    scheme, _, encoded = header.partition(" ")
    if scheme.lower() == "basic" and encoded.strip():
        try:
            decoded = base64.b64decode(encoded.strip(), validate=True).decode("utf-8")
        except (binascii.Error, UnicodeDecodeError):
            raise errors.InvalidClient("authorization: malformed Basic credentials") from None
        client_id, sep, secret = decoded.partition(":")
        if not sep:
            raise errors.InvalidClient("authorization: Basic credentials must be client_id:client_secret")
        return unquote(client_id), unquote(secret)
    form_id, form_secret = fields.get("client_id"), fields.get("client_secret")
    if isinstance(form_id, str) and isinstance(form_secret, str) and form_id and form_secret:
        return form_id, form_secret
    raise errors.InvalidClient("authorization: send the client credentials with HTTP Basic authentication")


@router.post("/oauth2/v0/token", summary="Client-credentials token for a service application", openapi_extra=TOKEN_BODY)
async def token(request: Request) -> Response:
    """Exchange HTTP Basic client credentials for a bearer token (grant_type=client_credentials)."""
    try:
        return await _issue_token(request)
    except errors.HooklineError as exc:
        return oauth_error(exc)


async def _issue_token(request: Request) -> Response:
    state = app_state(request)
    fields = parsing.parse_fields(
        await request.body(), request.headers.get("content-type"), max_bytes=MAX_TOKEN_BODY_BYTES
    )
    grant_type = fields.get("grant_type")
    if not grant_type:
        raise errors.InvalidRequest("grant_type: is required (client_credentials)")
    client_id, client_secret = _basic_credentials(request, fields)
    client = await accounts.authenticate_client(state.db, client_id, client_secret)
    if client is None:
        raise errors.InvalidClient("client_id: unknown client or wrong secret")
    if grant_type in ("authorization_code", "refresh_token"):
        raise errors.UnauthorizedClient("grant_type: a service application may only use client_credentials")
    if grant_type != "client_credentials":
        raise errors.UnsupportedGrantType(f"grant_type: {grant_type!r} is not supported; use client_credentials")
    requested = fields.get("scope")
    allowed = auth.parse_scopes(client["max_scopes"])
    if requested is None or requested == "":
        scopes = ("read(all)",) if auth.allows(allowed, "read", "all") or not allowed else allowed
    else:
        if not isinstance(requested, str):
            raise errors.InvalidScope("scope: must be a string like 'read(all) write(webhooks)'")
        scopes = auth.parse_scopes(requested)
        for scope in scopes:
            kind: auth.Access = "write" if scope.startswith("write") else "read"
            resources = scope[scope.index("(") + 1 : -1].split(",")
            if not all(auth.allows(allowed, kind, resource) for resource in resources):
                raise errors.InvalidScope(f"scope: this client may not ask for {scope}")
    expires_in = _expires_in(fields.get("expires_in"), state.settings.token_default_expires_seconds)
    user = await accounts.get_user(state.db, client["user_id"])
    deployment = await accounts.get_deployment_by_id(state.db, client["deployment_id"])
    assert user is not None  # foreign key
    assert deployment is not None  # foreign key
    access_token = await accounts.create_token(
        state.db,
        user,
        scopes=" ".join(scopes),
        is_admin=bool(client["is_admin"]),
        expires_at=time.time() + expires_in,
        oauth_client_id=client["id"],
    )
    body: dict[str, Any] = {
        "access_token": access_token,
        "token_type": "bearer",
        "expires_in": expires_in,
        "scope": " ".join(scopes),
        "deployment": deployment.slug,
        "deployment_name": deployment.name,
        "deployment_uri": _deployment_uri(state.settings.base_url, deployment.slug),
        "account_id": user.id,
    }
    return JSONResponse(body, headers={"Cache-Control": "no-store", "Pragma": "no-cache"})


def _expires_in(value: object, default: int) -> int:
    if value is None or value == "":
        return default
    try:
        seconds = int(str(value))
    except ValueError:
        raise errors.InvalidRequest(f"expires_in: must be a whole number of seconds, got {value!r}") from None
    if not 1 <= seconds <= MAX_EXPIRES_IN_SECONDS:
        raise errors.InvalidRequest(f"expires_in: must be between 1 and {MAX_EXPIRES_IN_SECONDS} seconds")
    return seconds


def _deployment_uri(base_url: str, slug: str) -> str:
    host = urlsplit(base_url).netloc
    return f"{slug}.{host}" if host else slug


@router.get("/api/v0/tokeninfo", summary="What the calling token is")
async def tokeninfo(request: Request) -> Response:
    """The token's deployment, user, scope, admin flag and expiry."""
    principal = await auth.authenticate(request, None)
    state = app_state(request)
    info: dict[str, Any] = {
        "deployment": principal.deployment.slug,
        "deployment_name": principal.deployment.name,
        "deployment_uri": _deployment_uri(state.settings.base_url, principal.deployment.slug),
        "account_id": principal.user.id,
        "user": views.user_view(principal.user),
        "scope": " ".join(principal.scopes),
        "is_admin": principal.is_admin,
        "expires_at": views.timestamp(principal.expires_at),
        "expires_in": None if principal.expires_at is None else max(0, int(principal.expires_at - time.time())),
    }
    return respond.ok(request, info)


@router.post("/oauth2/v0/revoke", summary="Revoke a token issued to this client (RFC 7009)")
async def revoke(request: Request) -> Response:
    """Revoke `token` if this client was issued it; answers 200 either way, as RFC 7009 asks."""
    try:
        state = app_state(request)
        fields = parsing.parse_fields(
            await request.body(), request.headers.get("content-type"), max_bytes=MAX_TOKEN_BODY_BYTES
        )
        client_id, client_secret = _basic_credentials(request, fields)
        client = await accounts.authenticate_client(state.db, client_id, client_secret)
        if client is None:
            raise errors.InvalidClient("client_id: unknown client or wrong secret")
        token_to_revoke = fields.get("token")
        if not isinstance(token_to_revoke, str) or not token_to_revoke:
            raise errors.InvalidRequest("token: is required")
        await accounts.revoke_token(state.db, token_to_revoke, oauth_client_id=client["id"])
        auth.forget_token(request, token_to_revoke)
        return JSONResponse({}, headers={"Cache-Control": "no-store"})
    except errors.HooklineError as exc:
        return oauth_error(exc)
