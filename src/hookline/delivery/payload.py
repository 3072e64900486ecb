"""The body of a delivery: {"id": ..., "resource_url": ...} as JSON or as a form."""

from __future__ import annotations

import json
from urllib.parse import urlencode

from hookline import domain

_JSON_SEPARATORS = (",", ":")


def payload_id(object_id: str) -> int | str:
    """The payload's id: an integer when the object id is a canonical decimal number, else the string itself."""
    if object_id.isascii() and object_id.isdigit() and (object_id == "0" or not object_id.startswith("0")):
        return int(object_id)
    return object_id


def build_body(object_id: str, resource_url: str | None, content_type: str) -> bytes:
    """The exact bytes POSTed: compact JSON, or id=...&resource_url=... for a form; no resource_url for deletes."""
    if content_type == domain.CONTENT_TYPE_JSON:
        document: dict[str, int | str] = {"id": payload_id(object_id)}
        if resource_url is not None:
            document["resource_url"] = resource_url
        return json.dumps(document, separators=_JSON_SEPARATORS).encode("ascii")
    fields = [("id", object_id)]
    if resource_url is not None:
        fields.append(("resource_url", resource_url))
    return urlencode(fields).encode("ascii")
