"""Every kind of bad input is answered in the envelope, with the right status and the field named."""

from __future__ import annotations

from typing import Any

import pytest
import requests

from tests.acceptance.conftest import Api
from tests.support import Receiver

SUBS = "/api/v0/webhooks/subscriptions"
GOOD_URL = "http://127.0.0.1:9/hook"

# (case id, method, path, request kwargs, expected HTTP status, expected meta.status, text the message must contain)
CASES: list[tuple[str, str, str, dict[str, Any], int, str, str]] = [
    ("missing trigger_url", "POST", SUBS, {"json": {"event_id": "assign_task"}}, 400, "invalid_request", "trigger_url"),
    ("missing event_id", "POST", SUBS, {"json": {"trigger_url": GOOD_URL}}, 400, "invalid_request", "event_id"),
    (
        "unknown event",
        "POST",
        SUBS,
        {"json": {"trigger_url": GOOD_URL, "event_id": "eat_cake"}},
        400,
        "invalid_request",
        "event_id",
    ),
    (
        "relative url",
        "POST",
        SUBS,
        {"json": {"trigger_url": "/callback", "event_id": "assign_task"}},
        400,
        "invalid_request",
        "trigger_url",
    ),
    (
        "ftp url",
        "POST",
        SUBS,
        {"json": {"trigger_url": "ftp://example.com/x", "event_id": "assign_task"}},
        400,
        "invalid_request",
        "trigger_url",
    ),
    (
        "url not a string",
        "POST",
        SUBS,
        {"json": {"trigger_url": 42, "event_id": "assign_task"}},
        400,
        "invalid_request",
        "trigger_url",
    ),
    (
        "oversize url",
        "POST",
        SUBS,
        {"json": {"trigger_url": "http://example.com/" + "a" * 3000, "event_id": "assign_task"}},
        400,
        "invalid_request",
        "trigger_url",
    ),
    (
        "bad content_type",
        "POST",
        SUBS,
        {"json": {"trigger_url": GOOD_URL, "event_id": "assign_task", "content_type": "text/plain"}},
        400,
        "invalid_request",
        "content_type",
    ),
    (
        "oversize secret",
        "POST",
        SUBS,
        {"json": {"trigger_url": GOOD_URL, "event_id": "assign_task", "secret": "x" * 300}},
        400,
        "invalid_request",
        "secret",
    ),
    (
        "secret not a string",
        "POST",
        SUBS,
        {"json": {"trigger_url": GOOD_URL, "event_id": "assign_task", "secret": ["a"]}},
        400,
        "invalid_request",
        "secret",
    ),
    (
        "malformed json",
        "POST",
        SUBS,
        {"data": '{"trigger_url": ', "headers": {"Content-Type": "application/json"}},
        400,
        "invalid_request",
        "JSON",
    ),
    (
        "json array body",
        "POST",
        SUBS,
        {"data": "[1, 2]", "headers": {"Content-Type": "application/json"}},
        400,
        "invalid_request",
        "object",
    ),
    (
        "wrong content type",
        "POST",
        SUBS,
        {"data": "<sub/>", "headers": {"Content-Type": "application/xml"}},
        400,
        "invalid_request",
        "Content-Type",
    ),
    (
        "malformed form",
        "POST",
        SUBS,
        {"data": b"\xff\xfe=\x00", "headers": {"Content-Type": "application/x-www-form-urlencoded"}},
        400,
        "invalid_request",
        "UTF-8",
    ),
    (
        "oversize body",
        "POST",
        SUBS,
        {"json": {"trigger_url": GOOD_URL, "event_id": "assign_task", "pad": "x" * 70000}},
        400,
        "invalid_request",
        "limit",
    ),
    ("unknown id", "GET", f"{SUBS}/{'a' * 24}", {}, 400, "invalid_request", "subscription_id"),
    ("numeric id", "GET", f"{SUBS}/12345", {}, 400, "invalid_request", "subscription_id"),
    ("unknown id delete", "DELETE", f"{SUBS}/{'b' * 24}", {}, 400, "invalid_request", "subscription_id"),
    ("bad _limit", "GET", SUBS, {"params": {"_limit": "ten"}}, 400, "invalid_request", "_limit"),
    ("negative _page", "GET", SUBS, {"params": {"_limit": "2", "_page": "-1"}}, 400, "invalid_request", "_page"),
    ("unknown path", "GET", "/api/v0/nothing/here", {}, 400, "invalid_request", "unknown resource"),
    ("unknown method", "PUT", SUBS, {"json": {}}, 400, "invalid_request", "PUT"),
    ("dispatch without object_id", "POST", f"{SUBS}/SUB/dispatch", {"json": {}}, 400, "invalid_request", "object_id"),
    (
        "trigger with bad object_id",
        "POST",
        f"{SUBS}/SUB/trigger",
        {"json": {"object_id": {"a": 1}}},
        400,
        "invalid_request",
        "object_id",
    ),
    (
        "event without object_id",
        "POST",
        "/api/v0/webhooks/events",
        {"json": {"event_id": "assign_task"}},
        400,
        "invalid_request",
        "object_id",
    ),
    (
        "event unknown id",
        "POST",
        "/api/v0/webhooks/events",
        {"json": {"event_id": "nope", "object_id": 1}},
        400,
        "invalid_request",
        "event_id",
    ),
    (
        "batch item names its index",
        "POST",
        "/api/v0/webhooks/events",
        {"json": {"events": [{"event_id": "assign_task", "object_id": 1}, {"event_id": "assign_task"}]}},
        400,
        "invalid_request",
        "events[1].object_id",
    ),
    (
        "batch too large",
        "POST",
        "/api/v0/webhooks/events",
        {"json": {"events": [{"event_id": "assign_task", "object_id": i} for i in range(1001)]}},
        400,
        "invalid_request",
        "events",
    ),
    (
        "bad user_ids",
        "POST",
        "/api/v0/webhooks/events",
        {"json": {"event_id": "assign_task", "object_id": 1, "user_ids": ["x"]}},
        400,
        "invalid_request",
        "user_ids",
    ),
    ("unknown delivery", "GET", "/api/v0/webhooks/deliveries/999999999", {}, 400, "invalid_request", "delivery_id"),
    ("non-numeric delivery", "GET", "/api/v0/webhooks/deliveries/abc", {}, 400, "invalid_request", "delivery_id"),
    (
        "malformed bearer header",
        "GET",
        SUBS,
        {"headers": {"Authorization": "Token abc"}},
        401,
        "invalid_client",
        "Bearer",
    ),
]


@pytest.fixture(scope="module")
def live_subscription(admin: Api, receiver: Receiver) -> str:
    return admin.subscribe(receiver.url("/bad-input"))["subscription_id"]


@pytest.mark.parametrize(
    ("method", "path", "kwargs", "http_status", "meta_status", "names"),
    [case[1:] for case in CASES],
    ids=[case[0] for case in CASES],
)
def test_bad_input_is_answered_in_the_envelope(
    admin: Api,
    live_subscription: str,
    method: str,
    path: str,
    kwargs: dict[str, Any],
    http_status: int,
    meta_status: str,
    names: str,
) -> None:
    before = admin.get(SUBS).json()["response"]["subscriptions"]
    answer = admin.call(method, path.replace("SUB", live_subscription), **kwargs)
    assert answer.status_code == http_status, answer.text
    body = answer.json()
    assert body["meta"]["status"] == meta_status
    assert names in body["meta"]["message"]
    assert body["response"] is None
    assert "Traceback" not in answer.text
    if method == "POST" and path == SUBS:
        assert admin.get(SUBS).json()["response"]["subscriptions"] == before, "a refused create stored something"


@pytest.mark.parametrize("fmt", ["xml", "yml"])
def test_errors_render_in_the_asked_format(admin: Api, fmt: str) -> None:
    answer = admin.get(f"{SUBS}/{'c' * 24}.{fmt}")
    assert answer.status_code == 400
    assert b"invalid_request" in answer.content
    assert ("xml" if fmt == "xml" else "yaml") in answer.headers["content-type"]


def test_huge_unauthenticated_garbage_is_not_a_500(admin: Api) -> None:
    answer = requests.post(f"{admin.base_url}{SUBS}", data=b"\x00" * 100_000, timeout=30)
    assert answer.status_code == 401
    assert answer.json()["meta"]["status"] == "invalid_client"
