"""The body of a delivery: {"id": ..., "resource_url": ...} as JSON or as a form."""

from __future__ import annotations

from json.encoder import encode_basestring_ascii
from urllib.parse import urlencode

from hookline import domain


def payload_id(object_id: str) -> int | str:
    """The payload's id: an integer when the object id is a canonical decimal number, else the string itself."""
    if _is_canonical_integer(object_id):
        return int(object_id)
    return object_id


def _is_canonical_integer(text: str) -> bool:
    return text.isascii() and text.isdigit() and (text == "0" or not text.startswith("0"))


def build_body(object_id: str, resource_url: str | None, content_type: str) -> bytes:
    """The exact bytes POSTed: compact JSON, or id=...&resource_url=... for a form; no resource_url for deletes.

    The JSON is what json.dumps(..., separators=(",", ":")) writes, put together by hand because this
    runs once per delivery and the generic encoder costs several times more.
    """
    if content_type == domain.CONTENT_TYPE_JSON:
        id_json = object_id if _is_canonical_integer(object_id) else encode_basestring_ascii(object_id)
        if resource_url is None:
            return f'{{"id":{id_json}}}'.encode("ascii")
        return f'{{"id":{id_json},"resource_url":{encode_basestring_ascii(resource_url)}}}'.encode("ascii")
    fields = [("id", object_id)]
    if resource_url is not None:
        fields.append(("resource_url", resource_url))
    return urlencode(fields).encode("ascii")
