"""Delivery bodies, byte for byte."""

from __future__ import annotations

import json
from urllib.parse import parse_qsl

import pytest

from hookline import domain
from hookline.delivery import payload

URL = "https://acme.example/api/v0/issues/17.json"


def test_json_body_is_compact_with_a_numeric_id() -> None:
    body = payload.build_body("17", URL, domain.CONTENT_TYPE_JSON)
    assert body == b'{"id":17,"resource_url":"https://acme.example/api/v0/issues/17.json"}'


@pytest.mark.parametrize(
    ("object_id", "expected_id"),
    [("0", b"0"), ("123", b"123"), ("007", b'"007"'), ("ab-1", b'"ab-1"'), ("", b'""'), ("\u0661", b'"\\u0661"')],
)
def test_json_id_is_a_number_only_for_canonical_digits(object_id: str, expected_id: bytes) -> None:
    assert payload.build_body(object_id, None, domain.CONTENT_TYPE_JSON) == b'{"id":' + expected_id + b"}"


def test_delete_event_body_has_no_resource_url() -> None:
    assert payload.build_body("5", None, domain.CONTENT_TYPE_JSON) == b'{"id":5}'
    assert payload.build_body("5", None, domain.CONTENT_TYPE_FORM) == b"id=5"


def test_form_body_is_urlencoded_in_order() -> None:
    body = payload.build_body("17", URL, domain.CONTENT_TYPE_FORM)
    assert body == b"id=17&resource_url=https%3A%2F%2Facme.example%2Fapi%2Fv0%2Fissues%2F17.json"
    assert parse_qsl(body.decode()) == [("id", "17"), ("resource_url", URL)]


@pytest.mark.parametrize("object_id", ["1", "0", "00", 'x"y', "caf\u00e9", "12a", "-3"])
@pytest.mark.parametrize("resource_url", [None, URL, 'https://x.example/a"b\\c/\u00e9'])
def test_json_body_is_exactly_what_json_dumps_writes(object_id: str, resource_url: str | None) -> None:
    document: dict[str, object] = {"id": payload.payload_id(object_id)}
    if resource_url is not None:
        document["resource_url"] = resource_url
    expected = json.dumps(document, separators=(",", ":")).encode()
    assert payload.build_body(object_id, resource_url, domain.CONTENT_TYPE_JSON) == expected
