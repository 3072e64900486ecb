"""Turning results and errors into Accelo envelopes in the format the client asked for."""

from __future__ import annotations

from typing import Any

from starlette.requests import Request
from starlette.responses import Response

from hookline import errors
from hookline.api import rendering

TRUTHY = frozenset({"1", "true", "yes", "on"})
SUFFIX_STATE_KEY = "format_suffix"


def request_format(request: Request) -> rendering.Format:
    """The format this request answers in: path suffix, then Accept-Type, then Accept, then JSON."""
    suffix: rendering.Format | None = request.scope.get("state", {}).get(SUFFIX_STATE_KEY)
    return rendering.negotiate(suffix, request.headers.get("accept-type"), request.headers.get("accept"))


def _flag(request: Request, name: str) -> bool:
    return request.query_params.get(name, "").strip().lower() in TRUTHY


def envelope_response(
    request: Request,
    *,
    status: str,
    message: str,
    response: Any,
    http_status: int,
    headers: dict[str, str] | None = None,
) -> Response:
    """An envelope rendered for this request, with the _suppress_* flags applied."""
    document = rendering.envelope(status, message, rendering.more_info_url(status), response)
    shaped, code = rendering.shape(
        document,
        suppress_message=_flag(request, "_suppress_message"),
        suppress_http_status=_flag(request, "_suppress_http_status"),
        suppress_meta=_flag(request, "_suppress_meta"),
        http_status=http_status,
    )
    fmt = request_format(request)
    quota_headers: dict[str, str] | None = getattr(request.state, "rate_limit_headers", None)
    if quota_headers:
        headers = {**quota_headers, **(headers or {})}
    return Response(
        rendering.render(shaped, fmt), status_code=code, media_type=rendering.MEDIA_TYPES[fmt], headers=headers
    )


def ok(request: Request, response: Any, *, http_status: int = 200) -> Response:
    """A success envelope ("ok")."""
    return envelope_response(
        request, status="ok", message=rendering.OK["message"], response=response, http_status=http_status
    )


def created(request: Request, response: Any) -> Response:
    """A 201 envelope ("ok_created")."""
    return envelope_response(
        request, status="ok_created", message=rendering.OK_CREATED["message"], response=response, http_status=201
    )


def error(request: Request, exc: errors.HooklineError) -> Response:
    """The failure envelope for an error: its status, its message, and a null response."""
    return envelope_response(
        request,
        status=exc.status,
        message=exc.message,
        response=None,
        http_status=exc.http_status,
        headers=exc.headers,
    )
