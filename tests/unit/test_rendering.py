"""The envelope in JSON, YAML and XML: the same data whichever format a client reads, and the choice of format."""

from __future__ import annotations

import json
from typing import Any
from xml.etree import ElementTree

import pytest
import yaml

from hookline import errors
from hookline.api import rendering

SUBSCRIPTION = {
    "trigger_table": "task",
    "trigger_type": "update",
    "subscription_id": "583e3c6328dc591a33139361",
    "content_type": "application/x-www-form-urlencoded",
    "trigger_url": "https://your-domain.com/callback?a=1&b=<2>",
    "user_deployment": "your-deployment",
    "user_id": 1,
    "event_id": "assign_task",
}
USER = {"id": 1, "name": 'Zoë O\'Brien "Zed"', "email": "zoe@your-domain.com"}

DOCUMENTS: dict[str, dict[str, Any]] = {
    "list subscriptions": rendering.envelope(
        **rendering.OK, response={"subscriptions": [SUBSCRIPTION, SUBSCRIPTION], "subscriptions_users": [USER]}
    ),
    "create": rendering.envelope(**rendering.OK_CREATED, response={"subscription": {**SUBSCRIPTION, "user": USER}}),
    "types": rendering.envelope(
        **rendering.OK,
        response={"types": [{"event_id": "assign_task", "event_title": "Task assigned", "trigger_table": "task"}]},
    ),
    "error": rendering.envelope(**rendering.error_meta(errors.InvalidRequest("event_id: unknown")), response=None),
    "empty list": rendering.envelope(**rendering.OK, response={"subscriptions": [], "subscriptions_users": []}),
    "count": {"response": {"count": 1013}},
    "scalars of every kind": {
        "response": {
            "numeric_looking_id": "123456789012345678901234",
            "float_looking": "1e3",
            "boolean_looking": "yes",
            "true": True,
            "false": False,
            "ratio": 0.25,
            "negative": -7,
            "multiline": "line one\nline two\ttabbed",
            "unicode": "日本語 ✓ café",
            "empty": "",
        }
    },
    "lists of scalars and nested containers": {
        "response": {
            "tags": ["a", "b", "c"],
            "deliveries": [{"id": 1, "attempts": [{"status": 200}, {"status": 410}]}],
            "events": [{"id": 5, "payload": {"id": 9, "resource_url": "https://x/api/v0/tasks/9.json"}}],
        }
    },
}


def parse_xml(rendered: bytes) -> ElementTree.Element:
    """Parse XML we rendered ourselves."""
    return ElementTree.fromstring(rendered)


def xml_scalar(value: object) -> str:
    """How a scalar reads back from XML: as text, booleans spelled as in JSON."""
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def assert_xml_holds(element: ElementTree.Element, value: object) -> None:
    """element carries value: scalars as attributes (None left out), dicts and lists as children, in order."""
    if isinstance(value, dict):
        expected_attributes = {
            key: xml_scalar(item)
            for key, item in value.items()
            if item is not None and not isinstance(item, dict | list)
        }
        assert element.attrib == expected_attributes
        containers = [(key, item) for key, item in value.items() if isinstance(item, dict | list)]
        assert [child.tag for child in element] == [key for key, _ in containers]
        for child, (_, item) in zip(element, containers, strict=True):
            assert_xml_holds(child, item)
    elif isinstance(value, list):
        assert len(element) == len(value)
        for child, item in zip(element, value, strict=True):
            assert_xml_holds(child, item)
    elif value is None:
        assert element.attrib == {}
        assert len(element) == 0
        assert not element.text
    else:
        assert element.text == xml_scalar(value)


@pytest.mark.parametrize("name", DOCUMENTS)
def test_json_and_yaml_read_back_the_same_data(name: str) -> None:
    document = DOCUMENTS[name]
    assert json.loads(rendering.render(document, "json")) == document
    assert yaml.safe_load(rendering.render(document, "yml")) == document


@pytest.mark.parametrize("name", DOCUMENTS)
def test_xml_reads_back_the_same_data_under_a_data_root(name: str) -> None:
    document = DOCUMENTS[name]
    root = parse_xml(rendering.render(document, "xml"))
    assert root.tag == "data"
    assert [child.tag for child in root] == list(document)
    for child, value in zip(root, document.values(), strict=True):
        assert_xml_holds(child, value)


def test_xml_matches_accelos_published_sample() -> None:
    rendered = rendering.render({"response": {"count": 1013}}, "xml")
    assert rendered.endswith(b'<data><response count="1013" /></data>')
    assert rendered.startswith(b'<?xml version="1.0" encoding="UTF-8"?>')


def test_xml_failure_has_an_empty_response_element() -> None:
    document = DOCUMENTS["error"]
    root = parse_xml(rendering.render(document, "xml"))
    response = root.find("response")
    assert response is not None
    assert response.attrib == {}
    assert len(response) == 0
    assert root.find("meta[@status='invalid_request']") is not None


@pytest.mark.parametrize(
    ("list_key", "item_tag"),
    [
        ("subscriptions", "subscription"),
        ("types", "type"),
        ("subscriptions_users", "user"),
        ("deliveries", "delivery"),
        ("attempts", "attempt"),
        ("events", "event"),
        ("addresses", "address"),
        ("data", "item"),
    ],
)
def test_xml_list_items_are_named_by_the_singular_of_their_list(list_key: str, item_tag: str) -> None:
    root = parse_xml(rendering.render({"response": {list_key: [{"id": 1}, {"id": 2}]}}, "xml"))
    container = root.find(f"response/{list_key}")
    assert container is not None
    assert [item.tag for item in container] == [item_tag, item_tag]


def test_xml_survives_keys_and_text_that_xml_cannot_carry() -> None:
    document = {"response": {"1st key": {"a b": "x\x00y\x1bz", "ok": "fine"}, "": [1], "é": "\ud800"}}
    root = parse_xml(rendering.render(document, "xml"))
    sanitized = root.find("response/_1st_key")
    assert sanitized is not None
    assert sanitized.attrib == {"a_b": "x\ufffdy\ufffdz", "ok": "fine"}


def test_json_keeps_non_ascii_as_utf8() -> None:
    rendered = rendering.render({"response": {"name": "Zoë"}}, "json")
    assert rendered == '{"response":{"name":"Zoë"}}'.encode()


@pytest.mark.parametrize("fmt", ["json", "yml", "xml"])
def test_a_lone_surrogate_does_not_break_rendering(fmt: rendering.Format) -> None:
    assert "\ufffd".encode() in rendering.render({"response": {"echo": "bad \ud800 input"}}, fmt)


def test_yaml_writes_a_shared_object_out_in_full_each_time() -> None:
    rendered = rendering.render(DOCUMENTS["list subscriptions"], "yml")
    assert b"&id" not in rendered
    assert b"*id" not in rendered
    assert rendered.count(b"subscription_id: 583e3c6328dc591a33139361") == 2


def test_yaml_uses_the_libyaml_dumper_when_available() -> None:
    if not yaml.__with_libyaml__:
        pytest.skip("PyYAML built without libyaml")
    assert issubclass(rendering._YamlDumper, yaml.CSafeDumper)


def test_success_messages_are_accelos() -> None:
    assert rendering.OK == {
        "status": "ok",
        "message": "Everything executed as expected.",
        "more_info": "https://affinitylive.jira.com/wiki/display/APIS/Status+Codes#ok",
    }
    assert rendering.OK_CREATED["message"] == "A resource was successfully created."
    assert rendering.OK_CREATED["more_info"].endswith("#ok_created")


SHAPE_CASES = [
    # (message, http_status, meta) flags, expected meta (None: no meta at all), expected HTTP status
    ((False, False, False), {"status": "invalid_request", "message": "m", "more_info": "u"}, 400),
    ((True, False, False), {"status": "invalid_request"}, 400),
    ((False, True, False), {"status": "invalid_request", "message": "m", "more_info": "u", "response_code": 400}, 200),
    ((True, True, False), {"status": "invalid_request", "response_code": 400}, 200),
    ((False, False, True), None, 400),
    ((False, True, True), None, 200),
]


@pytest.mark.parametrize(("flags", "expected_meta", "expected_status"), SHAPE_CASES)
def test_suppress_flags_shape_the_envelope(
    flags: tuple[bool, bool, bool], expected_meta: dict[str, Any] | None, expected_status: int
) -> None:
    original = rendering.envelope("invalid_request", "m", "u", None)
    suppress_message, suppress_http_status, suppress_meta = flags
    shaped, status = rendering.shape(
        original,
        suppress_message=suppress_message,
        suppress_http_status=suppress_http_status,
        suppress_meta=suppress_meta,
        http_status=400,
    )
    assert status == expected_status
    assert shaped.get("meta") == expected_meta
    assert ("meta" in shaped) == (expected_meta is not None)
    assert shaped["response"] is None
    assert original == rendering.envelope("invalid_request", "m", "u", None)


@pytest.mark.parametrize(
    ("path", "expected"),
    [
        ("/api/v0/webhooks/subscriptions", ("/api/v0/webhooks/subscriptions", None)),
        ("/api/v0/webhooks/subscriptions.json", ("/api/v0/webhooks/subscriptions", "json")),
        ("/api/v0/webhooks/subscriptions.yml", ("/api/v0/webhooks/subscriptions", "yml")),
        ("/api/v0/webhooks/subscriptions.yaml", ("/api/v0/webhooks/subscriptions", "yml")),
        ("/api/v0/webhooks/subscriptions.XML", ("/api/v0/webhooks/subscriptions", "xml")),
        ("/api/v0/webhooks/subscriptions/types.xml", ("/api/v0/webhooks/subscriptions/types", "xml")),
        ("/api/v0/webhooks/subscriptions.html", ("/api/v0/webhooks/subscriptions.html", None)),
        ("/api/v0/.json", ("/api/v0/.json", None)),
        ("/v1.2/things", ("/v1.2/things", None)),
    ],
)
def test_split_format_suffix(path: str, expected: tuple[str, rendering.Format | None]) -> None:
    assert rendering.split_format_suffix(path) == expected


BROWSER_ACCEPT = "text/html,application/xhtml+xml,application/xml;q=0.9,image/avif,*/*;q=0.8"


@pytest.mark.parametrize(
    ("suffix", "accept_type", "accept", "expected"),
    [
        (None, None, None, "json"),
        ("yml", "text/xml", "application/json", "yml"),
        ("json", "text/xml", None, "json"),
        (None, "text/xml", "application/json", "xml"),
        (None, "application/xml", None, "xml"),
        (None, "text/x-yaml", None, "yml"),
        (None, "text/yaml", None, "yml"),
        (None, "application/x-yaml", None, "yml"),
        (None, "application/yaml; charset=utf-8", None, "yml"),
        (None, "application/json", "text/xml", "json"),
        (None, "TEXT/XML", None, "xml"),
        (None, "text/plain", "text/xml", "xml"),
        (None, None, "*/*", "json"),
        (None, None, "text/xml", "xml"),
        (None, None, "application/x-yaml", "yml"),
        (None, None, "application/json;q=0.5, text/xml", "xml"),
        (None, None, "text/xml;q=0.2, application/x-yaml;q=0.8", "yml"),
        (None, None, "text/xml, application/json", "xml"),
        (None, None, "application/*", "json"),
        (None, None, "text/*", "xml"),
        (None, None, "application/json;q=0, */*", "xml"),
        (None, None, "image/png", "json"),
        (None, None, "text/xml;q=0", "json"),
        (None, None, "text/xml;q=bogus, application/x-yaml", "yml"),
        (None, None, BROWSER_ACCEPT, "json"),
        (None, "", "", "json"),
    ],
)
def test_negotiate(
    suffix: rendering.Format | None, accept_type: str | None, accept: str | None, expected: rendering.Format
) -> None:
    assert rendering.negotiate(suffix, accept_type, accept) == expected


@pytest.mark.parametrize("fmt", ["json", "yml", "xml"])
def test_media_types_name_the_format(fmt: rendering.Format) -> None:
    media_type = rendering.MEDIA_TYPES[fmt].split(";")[0]
    assert rendering.negotiate(None, media_type, None) == fmt
