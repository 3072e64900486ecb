"""The _limit / _page / _offset paging flags."""

from __future__ import annotations

from dataclasses import dataclass

from starlette.requests import Request

from hookline import errors

MAX_PAGE_LIMIT = 100
DEFAULT_PAGE_LIMIT = 10


@dataclass(frozen=True, slots=True)
class Page:
    """Which slice of a list to answer: limit None means everything."""

    limit: int | None
    offset: int


def _non_negative_int(request: Request, name: str) -> int | None:
    raw = request.query_params.get(name)
    if raw is None or raw.strip() == "":
        return None
    try:
        value = int(raw.strip())
    except ValueError:
        raise errors.InvalidRequest(f"{name}: must be a whole number, got {raw!r}") from None
    if value < 0:
        raise errors.InvalidRequest(f"{name}: must be 0 or more, got {value}")
    return value


def page_from(request: Request, *, default_limit: int | None) -> Page:
    """The page asked for: _limit (at most 100), _page (0-based, pages of _limit or 10) or _offset."""
    limit = _non_negative_int(request, "_limit")
    page = _non_negative_int(request, "_page")
    offset = _non_negative_int(request, "_offset")
    if limit is not None:
        if limit == 0:
            raise errors.InvalidRequest("_limit: must be at least 1")
        limit = min(limit, MAX_PAGE_LIMIT)
    elif page is not None:
        limit = DEFAULT_PAGE_LIMIT if default_limit is None else default_limit
    else:
        limit = default_limit
    if offset is None:
        offset = (page or 0) * (limit or 0)
    return Page(limit, offset)
