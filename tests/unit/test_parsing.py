"""Request bodies as real clients send them, and the field checks the API answers with."""

from __future__ import annotations

import pytest

from hookline import errors
from hookline.api import parsing

JSON = "application/json"
FORM = "application/x-www-form-urlencoded"
CREATE_FIELDS = {"trigger_url": "https://your-domain.com/callback?a=1", "event_id": "assign_task"}
CREATE_JSON = b'{"trigger_url": "https://your-domain.com/callback?a=1", "event_id": "assign_task"}'
CREATE_FORM = b"trigger_url=https%3A%2F%2Fyour-domain.com%2Fcallback%3Fa%3D1&event_id=assign_task"


@pytest.mark.parametrize(
    ("body", "content_type", "expected"),
    [
        (CREATE_JSON, JSON, CREATE_FIELDS),
        (CREATE_JSON, "application/json; charset=utf-8", CREATE_FIELDS),
        (CREATE_JSON, "Application/JSON", CREATE_FIELDS),
        (CREATE_JSON, "application/vnd.api+json", CREATE_FIELDS),
        (CREATE_FORM, FORM, CREATE_FIELDS),
        (CREATE_FORM, f"{FORM}; charset=UTF-8", CREATE_FIELDS),
        # Form fields declared as JSON, and JSON declared as a form: both accepted.
        (CREATE_FORM, JSON, CREATE_FIELDS),
        (CREATE_JSON, FORM, CREATE_FIELDS),
        # No declared type: JSON first, then form.
        (CREATE_JSON, None, CREATE_FIELDS),
        (CREATE_FORM, None, CREATE_FIELDS),
        (CREATE_FORM, "", CREATE_FIELDS),
        # A parseable body under another declared type is accepted too.
        (CREATE_FORM, "text/plain", CREATE_FIELDS),
        (CREATE_JSON, "application/xml", CREATE_FIELDS),
        # Empty bodies carry no fields, whatever they declare.
        (b"", JSON, {}),
        (b"  \r\n", FORM, {}),
        (b"", "text/plain", {}),
        (b"", None, {}),
        # Form details: "+" is a space, blank values kept, stray "&" ignored, last repeat wins, trailing newline.
        (b"name=Simon+Jackson&secret=&&", FORM, {"name": "Simon Jackson", "secret": ""}),
        (b"event_id=first&event_id=last\n", FORM, {"event_id": "last"}),
        (b"name=Zo%C3%AB", FORM, {"name": "Zoë"}),
        (b"filters[user_id]=1", FORM, {"filters[user_id]": "1"}),
        # JSON details: values keep their JSON types; a UTF-8 byte order mark is dropped; last repeat wins.
        (b'{"object_id": 7, "flag": true, "nothing": null}', JSON, {"object_id": 7, "flag": True, "nothing": None}),
        (b'\xef\xbb\xbf{"name": "Zo\xc3\xab"}', JSON, {"name": "Zoë"}),
        (b'{"event_id": "first", "event_id": "last"}', JSON, {"event_id": "last"}),
        # A JSON value that merely contains "=" is still JSON, under either declaration.
        (b'{"trigger_url": "https://x/?a=b"}', FORM, {"trigger_url": "https://x/?a=b"}),
    ],
)
def test_parse_fields_accepts(body: bytes, content_type: str | None, expected: dict[str, object]) -> None:
    assert parsing.parse_fields(body, content_type) == expected


NOT_SUPPORTED = "is not supported; send application/json or application/x-www-form-urlencoded"


@pytest.mark.parametrize(
    ("body", "content_type", "message"),
    [
        (b'{"event_id": "assign_task",}', JSON, "request body: malformed JSON at line 1 column 28"),
        (b'{\n  "event_id": assign_task\n}', JSON, "request body: malformed JSON at line 2 column 15"),
        (b"not json", JSON, "request body: malformed JSON at line 1 column 1"),
        (b'["trigger_url"]', JSON, "request body: expected a JSON object, got an array"),
        (b'"assign_task"', JSON, "request body: expected a JSON object, got a string"),
        (b"42", JSON, "request body: expected a JSON object, got a number"),
        (b"null", JSON, "request body: expected a JSON object, got null"),
        (b"trigger_url", FORM, "request body: malformed form data near 'trigger_url'"),
        (b'{"event_id": "assign_task",}', FORM, "request body: malformed JSON at line 1 column 28"),
        (b"event_id=x&oops", FORM, "request body: malformed form data near 'oops'"),
        (b"name=%FF", FORM, "request body: form field 'name' is not valid UTF-8 once decoded"),
        (b"trigger_url", None, "request body: malformed form data near 'trigger_url'"),
        (b'{"event_id": }', None, "request body: malformed JSON at line 1 column 14"),
        (b"hello world", "text/plain", f"Content-Type 'text/plain' {NOT_SUPPORTED}"),
        (b"<subscription/>", "application/xml", f"Content-Type 'application/xml' {NOT_SUPPORTED}"),
        (
            b'--b\r\nContent-Disposition: form-data; name="event_id"\r\n\r\nassign_task\r\n--b--\r\n',
            "multipart/form-data; boundary=b",
            f"Content-Type 'multipart/form-data' {NOT_SUPPORTED}",
        ),
        (b"\xff\xfe", "text/plain", f"Content-Type 'text/plain' {NOT_SUPPORTED}"),
        (b'{"name": "caf\xe9"}', JSON, "request body: not valid UTF-8 (byte 0xe9 at offset 13)"),
        (b"name=caf\xe9", FORM, "request body: not valid UTF-8 (byte 0xe9 at offset 8)"),
        (b"\xef\xbb\xbfname=caf\xe9", FORM, "request body: not valid UTF-8 (byte 0xe9 at offset 11)"),
        (b"[" * 100_000, JSON, "request body: larger than the limit of 65536 bytes"),
    ],
)
def test_parse_fields_refuses_with_a_message_naming_the_problem(
    body: bytes, content_type: str | None, message: str
) -> None:
    with pytest.raises(errors.InvalidRequest) as raised:
        parsing.parse_fields(body, content_type)
    assert raised.value.message.startswith(message)
    assert raised.value.http_status == 400


def test_deeply_nested_json_is_refused_not_crashed() -> None:
    body = b"[" * 60_000 + b"]" * 60_000
    with pytest.raises(errors.InvalidRequest, match="request body: "):
        parsing.parse_fields(body, JSON, max_bytes=len(body))


def test_the_size_limit_is_the_callers() -> None:
    assert parsing.parse_fields(b'{"a": "12345"}', JSON, max_bytes=14) == {"a": "12345"}
    with pytest.raises(errors.InvalidRequest, match="larger than the limit of 13 bytes"):
        parsing.parse_fields(b'{"a": "12345"}', JSON, max_bytes=13)


@pytest.mark.parametrize(
    ("fields", "required", "expected"),
    [
        ({"secret": "s3cret"}, False, "s3cret"),
        ({"secret": "s3cret"}, True, "s3cret"),
        ({}, False, None),
        ({"secret": None}, False, None),
        ({"secret": ""}, False, None),
        ({"secret": " "}, False, " "),
        ({"secret": "x" * 256}, True, "x" * 256),
        ({"secret": "Zoë ✓"}, True, "Zoë ✓"),
    ],
)
def test_field_str_accepts(fields: dict[str, object], required: bool, expected: str | None) -> None:
    assert parsing.field_str(fields, "secret", required=required, max_length=256) == expected


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({}, "secret: is required"),
        ({"secret": None}, "secret: is required"),
        ({"secret": ""}, "secret: is required"),
        ({"secret": "x" * 257}, "secret: must be at most 256 characters"),
        ({"secret": 42}, "secret: must be a string"),
        ({"secret": True}, "secret: must be a string"),
        ({"secret": ["a"]}, "secret: must be a string"),
        ({"secret": {"a": 1}}, "secret: must be a string"),
        ({"secret": "a\x00b"}, "secret: must not contain NUL or unpaired surrogate characters"),
        ({"secret": "a\ud800b"}, "secret: must not contain NUL or unpaired surrogate characters"),
    ],
)
def test_field_str_refuses_naming_the_field(fields: dict[str, object], message: str) -> None:
    with pytest.raises(errors.InvalidRequest) as raised:
        parsing.field_str(fields, "secret", required=True, max_length=256)
    assert raised.value.message == message


@pytest.mark.parametrize(
    ("value", "expected"),
    [(7, 7), ("7", 7), (" 42 ", 42), ("+3", 3), (7.0, 7), (None, None), ("", None), (2**63 - 1, 2**63 - 1)],
)
def test_field_int_accepts(value: object, expected: int | None) -> None:
    assert parsing.field_int({"object_id": value}, "object_id", required=False) == expected


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({}, "object_id: is required"),
        ({"object_id": ""}, "object_id: is required"),
        ({"object_id": "seven"}, "object_id: must be an integer"),
        ({"object_id": "7.5"}, "object_id: must be an integer"),
        ({"object_id": 7.5}, "object_id: must be an integer"),
        ({"object_id": "1_000"}, "object_id: must be an integer"),
        ({"object_id": "٣"}, "object_id: must be an integer"),
        ({"object_id": True}, "object_id: must be an integer"),
        ({"object_id": [1]}, "object_id: must be an integer"),
        ({"object_id": "9" * 5000}, "object_id: must be an integer"),
        ({"object_id": 0}, "object_id: must be at least 1"),
        ({"object_id": "-5"}, "object_id: must be at least 1"),
        ({"object_id": 2**63}, "object_id: must be at most 9223372036854775807"),
        ({"object_id": "99999999999999999999"}, "object_id: must be at most 9223372036854775807"),
    ],
)
def test_field_int_refuses_naming_the_field(fields: dict[str, object], message: str) -> None:
    with pytest.raises(errors.InvalidRequest) as raised:
        parsing.field_int(fields, "object_id", required=True, minimum=1)
    assert raised.value.message == message


def test_field_int_honours_a_maximum() -> None:
    assert parsing.field_int({"expires_in": "3600"}, "expires_in", required=True, maximum=3600) == 3600
    with pytest.raises(errors.InvalidRequest, match=r"^expires_in: must be at most 3600$"):
        parsing.field_int({"expires_in": 3601}, "expires_in", required=True, maximum=3600)
