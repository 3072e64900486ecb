"""Liberal parsing of create-style request bodies (JSON or form) and checking of their fields.

Clients in the wild send form fields while declaring JSON and JSON while declaring a form, so the declared type
is tried first and the other second. Choices where the reference is silent:
- UTF-8 only (RFC 8259 for JSON; the WHATWG URL standard for forms); a `charset` parameter is ignored.
- multipart/form-data is not supported (no Accelo client sends it); it is refused like any other type.
- A field repeated in a form keeps its last value, as a repeated JSON key does.
- An empty string counts as a missing field (an HTML form sends "" for a blank input).
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from typing import Final
from urllib.parse import unquote_plus

from hookline import errors

DEFAULT_MAX_BODY_BYTES: Final = 65536
JSON_MEDIA_TYPE: Final = "application/json"
FORM_MEDIA_TYPE: Final = "application/x-www-form-urlencoded"
INT64_MIN: Final = -(2**63)
INT64_MAX: Final = 2**63 - 1

# A form field name as clients send them (PHP-style `a[b]` included). Anything else means the body is no form:
# that is how a JSON body declared as a form is told from a form.
_FORM_FIELD_NAME = re.compile(r"[A-Za-z0-9_.\-\[\]]+")
# Up to 4000 digits: below the 4300 that int() refuses to convert (CVE-2020-10735), so too large is "at most".
_DECIMAL_INTEGER = re.compile(r"[+-]?[0-9]{1,4000}")
_UNSTORABLE_CHARACTERS = re.compile("[\x00\ud800-\udfff]")
_JSON_TYPE_NAMES: Final[dict[type, str]] = {list: "an array", str: "a string", bool: "a boolean", type(None): "null"}


class _NotThisKind(ValueError):
    """The body does not parse as the kind tried; the message says why."""


def parse_fields(
    body: bytes, content_type: str | None, *, max_bytes: int = DEFAULT_MAX_BODY_BYTES
) -> dict[str, object]:
    """The fields of a JSON-object or form body; errors.InvalidRequest naming the problem if it is neither."""
    if len(body) > max_bytes:
        raise errors.InvalidRequest(f"request body: larger than the limit of {max_bytes} bytes")
    media_type = (content_type or "").split(";", 1)[0].strip().lower()
    declared_json = media_type == JSON_MEDIA_TYPE or media_type.endswith("+json")
    declared_form = media_type == FORM_MEDIA_TYPE
    try:
        text = body.decode("utf-8-sig")
    except UnicodeDecodeError as error:
        if media_type and not (declared_json or declared_form):
            raise _unsupported(media_type) from None
        offset = error.start + len(body) - len(error.object)  # utf-8-sig reports offsets after a byte order mark
        raise errors.InvalidRequest(
            f"request body: not valid UTF-8 (byte 0x{body[offset]:02x} at offset {offset})"
        ) from None
    if not text.strip():
        return {}
    failures: dict[str, str] = {}
    for kind in ("form", "json") if declared_form else ("json", "form"):
        try:
            return _PARSERS[kind](text)
        except _NotThisKind as failure:
            failures[kind] = str(failure)
    if media_type and not (declared_json or declared_form):
        raise _unsupported(media_type)
    # Say what is wrong with the body as JSON if it looks like JSON or was declared so, else as a form.
    looks_like_json = text.lstrip()[:1] in ("{", "[", '"')
    raise errors.InvalidRequest(failures["json" if looks_like_json or declared_json else "form"])


def _unsupported(media_type: str) -> errors.InvalidRequest:
    return errors.InvalidRequest(
        f"Content-Type {media_type!r} is not supported; send {JSON_MEDIA_TYPE} or {FORM_MEDIA_TYPE}"
    )


def _parse_json(text: str) -> dict[str, object]:
    try:
        value = json.loads(text)
    except json.JSONDecodeError as error:
        raise _NotThisKind(
            f"request body: malformed JSON at line {error.lineno} column {error.colno} ({error.msg})"
        ) from None
    except RecursionError:
        raise _NotThisKind("request body: JSON nested too deeply") from None
    if not isinstance(value, dict):
        kind = _JSON_TYPE_NAMES.get(type(value), "a number")
        raise _NotThisKind(f"request body: expected a JSON object, got {kind}")
    return value


def _parse_form(text: str) -> dict[str, object]:
    fields: dict[str, object] = {}
    for pair in text.strip().split("&"):
        if not pair:
            continue  # "a=1&&b=2" and a trailing "&" are harmless
        raw_name, equals, raw_value = pair.partition("=")
        try:
            name = unquote_plus(raw_name, errors="strict")
            value = unquote_plus(raw_value, errors="strict")
        except UnicodeDecodeError:
            raise _NotThisKind(f"request body: form field {raw_name[:40]!r} is not valid UTF-8 once decoded") from None
        if not equals or not _FORM_FIELD_NAME.fullmatch(name):
            raise _NotThisKind(f"request body: malformed form data near {pair[:40]!r}")
        fields[name] = value
    return fields


_PARSERS: Final[dict[str, Callable[[str], dict[str, object]]]] = {"json": _parse_json, "form": _parse_form}


def field_str(fields: dict[str, object], name: str, *, required: bool, max_length: int) -> str | None:
    """The text field name, or None if absent and optional; errors.InvalidRequest starting "name: " otherwise."""
    value = fields.get(name)
    if value is None or value == "":
        if required:
            raise errors.InvalidRequest(f"{name}: is required")
        return None
    if not isinstance(value, str):
        raise errors.InvalidRequest(f"{name}: must be a string")
    if len(value) > max_length:
        raise errors.InvalidRequest(f"{name}: must be at most {max_length} characters")
    if _UNSTORABLE_CHARACTERS.search(value):
        raise errors.InvalidRequest(f"{name}: must not contain NUL or unpaired surrogate characters")
    return value


def field_int(
    fields: dict[str, object],
    name: str,
    *,
    required: bool,
    minimum: int = INT64_MIN,
    maximum: int = INT64_MAX,
) -> int | None:
    """The integer field name (a JSON number or decimal text), or None if absent and optional."""
    value = fields.get(name)
    if value is None or value == "":
        if required:
            raise errors.InvalidRequest(f"{name}: is required")
        return None
    number: int | None = None
    if isinstance(value, bool):
        number = None  # JSON true is not 1
    elif isinstance(value, int):
        number = value
    elif isinstance(value, float) and value.is_integer():
        number = int(value)
    elif isinstance(value, str) and _DECIMAL_INTEGER.fullmatch(value.strip()):
        number = int(value.strip())
    if number is None:
        raise errors.InvalidRequest(f"{name}: must be an integer")
    if number < minimum:
        raise errors.InvalidRequest(f"{name}: must be at least {minimum}")
    if number > maximum:
        raise errors.InvalidRequest(f"{name}: must be at most {maximum}")
    return number
