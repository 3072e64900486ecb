"""Bearer-token authentication and Accelo-style scope checks."""

from __future__ import annotations

import re
import time
from datetime import UTC, datetime
from typing import Literal

from starlette.requests import Request

from hookline import errors
from hookline.api.state import app_state
from hookline.domain import Principal
from hookline.store import accounts

Access = Literal["read", "write"]
WEBHOOKS_RESOURCE = "webhooks"
SCOPE_PATTERN = re.compile(r"^(read|write)\(([a-z_]+(?:,[a-z_]+)*)\)$")
BEARER_QUERY_PARAMETER = "_bearer_token"


def parse_scopes(text: str) -> tuple[str, ...]:
    """Split and validate a scope string like "read(all) write(webhooks)"; InvalidScope names the bad one."""
    scopes = tuple(re.findall(r"(?:read|write)\([^)]*\)|[^\s,]+", text))
    for scope in scopes:
        if not SCOPE_PATTERN.match(scope):
            raise errors.InvalidScope(
                f"scope: {scope!r} is not a scope; use read(all), write(all), read(webhooks) or write(webhooks)"
            )
    return scopes


def allows(scopes: tuple[str, ...], access: Access, resource: str = WEBHOOKS_RESOURCE) -> bool:
    """Whether the scopes grant this access to the resource (write implies read)."""
    for scope in scopes:
        match = SCOPE_PATTERN.match(scope)
        if not match:
            continue
        kind, resources = match.group(1), match.group(2).split(",")
        if ("all" in resources or resource in resources) and (kind == "write" or access == "read"):
            return True
    return False


def bearer_token(request: Request) -> str:
    """The token from the Authorization header or the _bearer_token parameter (never both)."""
    header = request.headers.get("authorization")
    query = request.query_params.get(BEARER_QUERY_PARAMETER)
    if header is not None and query is not None:
        raise errors.InvalidRequest(
            "authorization: send the token either in the Authorization header or in _bearer_token, not both"
        )
    if query is not None:
        if not query.strip():
            raise errors.InvalidClient("_bearer_token: is empty")
        return query.strip()
    if header is None:
        raise errors.InvalidClient(
            "authorization: no bearer token; send 'Authorization: Bearer <token>' or the _bearer_token parameter",
            headers={"WWW-Authenticate": 'Bearer realm="hookline"'},
        )
    scheme, _, token = header.strip().partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise errors.InvalidClient(
            "authorization: expected 'Authorization: Bearer <token>'",
            headers={"WWW-Authenticate": 'Bearer realm="hookline"'},
        )
    return token.strip()


async def principal_for(request: Request, token: str) -> Principal | None:
    """Whom a token speaks for, from the cache when fresh."""
    state = app_state(request)
    cache = state.principal_cache
    principal = cache.get(token) if cache is not None else None
    if principal is None:
        principal = await accounts.principal_for_token(state.db, token)
        if principal is not None and cache is not None:
            cache.put(token, principal)
    return principal


def forget_token(request: Request, token: str) -> None:
    """Drop a revoked token from this process's cache at once."""
    cache = app_state(request).principal_cache
    if cache is not None:
        cache.forget(token)


async def authenticate(request: Request, access: Access | None) -> Principal:
    """The caller's principal, checked for expiry and (unless access is None) for the webhooks scope needed."""
    token = bearer_token(request)
    principal = await principal_for(request, token)
    if principal is None:
        raise errors.InvalidClient(
            "authorization: the bearer token is not valid", headers={"WWW-Authenticate": 'Bearer error="invalid_token"'}
        )
    if principal.expires_at is not None and principal.expires_at <= time.time():
        expired = datetime.fromtimestamp(principal.expires_at, UTC).isoformat(timespec="seconds")
        raise errors.InvalidClient(
            f"authorization: the bearer token expired at {expired}",
            headers={"WWW-Authenticate": 'Bearer error="invalid_token"'},
        )
    state = app_state(request)
    if state.rate_limiter is not None:
        request.state.rate_limit_headers = state.rate_limiter.hit(principal.deployment.id).headers()
    if access is not None and not allows(principal.scopes, access):
        raise errors.InvalidPermission(
            f"scope: this token's scope ({' '.join(principal.scopes) or 'none'}) does not allow "
            f"{access}({WEBHOOKS_RESOURCE})"
        )
    return principal


def require_admin(principal: Principal, what: str) -> None:
    """Refuse unless the token is a deployment admin token."""
    if not principal.is_admin:
        raise errors.InvalidPermission(f"{what} needs a deployment admin token (hookline tokens create --admin)")
