"""The panel's Jinja2 environment and the filters its templates use (times, durations, HTTP statuses)."""

from __future__ import annotations

import http
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import jinja2

TEMPLATES_DIR = Path(__file__).with_name("templates")
STATIC_DIR = Path(__file__).with_name("static")
EXCERPT_PREVIEW_CHARACTERS = 160


def iso_utc(seconds: float | None) -> str:
    """Epoch seconds as ISO 8601 UTC with milliseconds (the <time datetime> the browser localizes)."""
    if seconds is None:
        return ""
    return datetime.fromtimestamp(seconds, UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def utc_text(seconds: float | None) -> str:
    """Epoch seconds as readable UTC, shown until the browser rewrites it in its own zone."""
    if seconds is None:
        return ""
    return datetime.fromtimestamp(seconds, UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


def duration_text(milliseconds: float | None) -> str:
    """A duration for people: 14 ms, 1.25 s."""
    if milliseconds is None:
        return ""
    if milliseconds < 1000:
        return f"{milliseconds:.0f} ms" if milliseconds >= 10 else f"{milliseconds:.1f} ms"
    return f"{milliseconds / 1000:.2f} s"


def status_text(status_code: int | None) -> str:
    """An HTTP status with its reason phrase: 200 OK, 410 Gone; empty when there was no response."""
    if status_code is None:
        return ""
    try:
        return f"{status_code} {http.HTTPStatus(status_code).phrase}"
    except ValueError:
        return str(status_code)


def status_tone(status_code: int | None) -> str:
    """The badge colour of a status: ok for 2xx, warn for 4xx, bad otherwise."""
    if status_code is None:
        return "bad"
    if 200 <= status_code < 300:
        return "ok"
    return "warn" if 400 <= status_code < 500 else "bad"


def preview(text: str | None, limit: int = EXCERPT_PREVIEW_CHARACTERS) -> str:
    """The start of a long text on one line."""
    if not text:
        return ""
    one_line = " ".join(text.split())
    return one_line if len(one_line) <= limit else one_line[: limit - 1] + "…"


def humanize(identifier: str | None) -> str:
    """too_many_failures -> too many failures."""
    return (identifier or "").replace("_", " ")


def _build_environment() -> jinja2.Environment:
    environment = jinja2.Environment(
        loader=jinja2.FileSystemLoader(TEMPLATES_DIR),
        autoescape=True,
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    environment.filters.update(
        iso_utc=iso_utc,
        utc_text=utc_text,
        duration=duration_text,
        status_text=status_text,
        status_tone=status_tone,
        preview=preview,
        humanize=humanize,
    )
    return environment


ENVIRONMENT = _build_environment()


def render_page(template_name: str, context: dict[str, Any]) -> str:
    """A template rendered to HTML."""
    return ENVIRONMENT.get_template(template_name).render(context)
