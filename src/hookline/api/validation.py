"""Field checks shared by the endpoints."""

from __future__ import annotations

from urllib.parse import urlsplit

from hookline import errors

MAX_URL_LENGTH = 2048


def absolute_http_url(value: object, field: str) -> str:
    """An absolute http(s) URL with a host, at most 2048 characters."""
    if not isinstance(value, str) or not value.strip():
        raise errors.InvalidRequest(f"{field}: must be an absolute http(s) URL")
    url = value.strip()
    if len(url) > MAX_URL_LENGTH:
        raise errors.InvalidRequest(f"{field}: must be at most {MAX_URL_LENGTH} characters")
    if any(ch.isspace() or ord(ch) < 32 for ch in url):
        raise errors.InvalidRequest(f"{field}: must not contain spaces or control characters")
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError as exc:
        raise errors.InvalidRequest(f"{field}: is not a valid URL ({exc})") from None
    if parts.scheme.lower() not in ("http", "https") or not parts.hostname:
        raise errors.InvalidRequest(f"{field}: must be an absolute http(s) URL, like https://example.com/hook")
    if port == 0:
        raise errors.InvalidRequest(f"{field}: port 0 is not a valid port")
    if parts.username is not None or parts.password is not None:
        raise errors.InvalidRequest(f"{field}: must not carry credentials (user:password@)")
    return url
