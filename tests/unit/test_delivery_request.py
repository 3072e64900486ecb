"""The headers and body of one delivery, as a receiver sees them."""

from __future__ import annotations

import base64
import time

from gidgethub.sansio import validate_event
from standardwebhooks.webhooks import Webhook

from hookline import __version__, config, domain
from hookline.delivery import request

SECRET = "topsecret"


def claimed_delivery(**overrides: object) -> domain.ClaimedDelivery:
    fields: dict[str, object] = {
        "delivery_id": 901,
        "subscription_id": "a" * 24,
        "deployment_id": 1,
        "attempts_done": 0,
        "event_id": "create_issue",
        "object_id": "17",
        "resource_url": "https://acme.example/api/v0/issues/17.json",
        "trigger_url": "http://127.0.0.1:9/hook",
        "content_type": domain.CONTENT_TYPE_JSON,
        "secret": SECRET,
        "standard_webhooks": False,
        "created_at": 1_700_000_000.0,
    }
    fields.update(overrides)
    return domain.ClaimedDelivery(**fields)  # type: ignore[arg-type]


def test_headers_name_the_event_the_delivery_and_hookline() -> None:
    body, headers = request.build_request(claimed_delivery(), config.Settings(), time.time)
    assert body == b'{"id":17,"resource_url":"https://acme.example/api/v0/issues/17.json"}'
    assert headers["Content-Type"] == "application/json"
    assert headers["X-Accelo-Event"] == "create_issue"
    assert headers["X-Hookline-Delivery"] == "901"
    assert headers["User-Agent"] == f"Hookline/{__version__} (+https://github.com/hookline/hookline)"


def test_signatures_verify_with_gidgethub() -> None:
    body, headers = request.build_request(claimed_delivery(), config.Settings(), time.time)
    assert headers["X-Hub-Signature"].startswith("sha1=")
    assert headers["X-Hub-Signature-256"].startswith("sha256=")
    validate_event(body, signature=headers["X-Hub-Signature"], secret=SECRET)
    validate_event(body, signature=headers["X-Hub-Signature-256"], secret=SECRET)


def test_no_secret_means_no_signature_headers() -> None:
    _, headers = request.build_request(claimed_delivery(secret=None), config.Settings(), time.time)
    assert "X-Hub-Signature" not in headers
    assert "X-Hub-Signature-256" not in headers


def test_configured_names_algorithm_and_bare_hex() -> None:
    settings = config.Settings(
        event_header="X-Event",
        delivery_id_header="X-Delivery",
        signature_header="X-Signature",
        signature_algorithm="sha512",
        signature_256_header="",
        signature_prefix=False,
    )
    _, headers = request.build_request(claimed_delivery(), settings, time.time)
    assert headers["X-Event"] == "create_issue"
    assert headers["X-Delivery"] == "901"
    assert len(headers["X-Signature"]) == 128
    assert "X-Hub-Signature-256" not in headers
    assert not any(name.startswith("X-Hub") or name.startswith("X-Accelo") for name in headers)


def test_form_body_and_content_type() -> None:
    claimed = claimed_delivery(content_type=domain.CONTENT_TYPE_FORM, resource_url=None, object_id="x1")
    body, headers = request.build_request(claimed, config.Settings(), time.time)
    assert body == b"id=x1"
    assert headers["Content-Type"] == "application/x-www-form-urlencoded"


def test_standard_webhooks_headers_verify_with_the_reference_library() -> None:
    claimed = claimed_delivery(standard_webhooks=True)
    body, headers = request.build_request(claimed, config.Settings(), time.time)
    assert headers["webhook-id"] == "dlv_901"
    Webhook(base64.b64encode(SECRET.encode()).decode()).verify(body, headers)


def test_standard_webhooks_without_a_secret_carry_id_and_timestamp_only() -> None:
    claimed = claimed_delivery(standard_webhooks=True, secret=None)
    _, headers = request.build_request(claimed, config.Settings(), lambda: 1_700_000_123.9)
    assert headers["webhook-id"] == "dlv_901"
    assert headers["webhook-timestamp"] == "1700000123"
    assert "webhook-signature" not in headers


def test_delivery_id_header_is_the_same_across_retries() -> None:
    first = request.build_request(claimed_delivery(attempts_done=0), config.Settings(), time.time)[1]
    third = request.build_request(claimed_delivery(attempts_done=2), config.Settings(), time.time)[1]
    assert first["X-Hookline-Delivery"] == third["X-Hookline-Delivery"]
    assert first["X-Hub-Signature"] == third["X-Hub-Signature"]
