"""Errors the API answers with; each class's docstring is its default message."""

from __future__ import annotations

MORE_INFO_BASE = "https://affinitylive.jira.com/wiki/display/APIS/Status+Codes"


class HooklineError(Exception):
    """Something went wrong."""

    status = "server_error"
    http_status = 500

    def __init__(self, message: str | None = None, *, headers: dict[str, str] | None = None) -> None:
        self.message = message or (self.__doc__ or self.status).strip()
        self.headers = headers or {}
        super().__init__(self.message)


class InvalidRequest(HooklineError):
    """The request was invalid."""

    status = "invalid_request"
    http_status = 400


class Duplicate(HooklineError):
    """The resource already exists."""

    status = "duplicate"
    http_status = 400


class InvalidClient(HooklineError):
    """The client credentials or token are invalid."""

    status = "invalid_client"
    http_status = 401


class UnauthorizedClient(HooklineError):
    """This client may not use this grant."""

    status = "unauthorized_client"
    http_status = 401


class InvalidGrant(HooklineError):
    """The grant is invalid."""

    status = "invalid_grant"
    http_status = 400


class InvalidScope(HooklineError):
    """The requested scope is invalid."""

    status = "invalid_scope"
    http_status = 400


class UnsupportedGrantType(HooklineError):
    """This grant type is not supported."""

    status = "unsupported_grant_type"
    http_status = 400


class InvalidPermission(HooklineError):
    """This token does not have permission for this request."""

    status = "invalid_permission"
    http_status = 403


class TooManyRequests(HooklineError):
    """The rate limit was exceeded."""

    status = "too_many_requests"
    http_status = 429


class ServerError(HooklineError):
    """An unexpected error occurred; it has been logged."""


class Unavailable(HooklineError):
    """The service is temporarily unavailable; try again shortly."""

    status = "server_error"
    http_status = 503


class RefusedDestination(InvalidRequest):
    """The destination address is not allowed."""
