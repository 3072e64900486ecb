"""Signatures checked with third-party verifiers (gidgethub, standardwebhooks), not only our own code."""

from __future__ import annotations

import base64
import time

import pytest
from gidgethub import ValidationFailure
from gidgethub.sansio import Event, validate_event
from standardwebhooks.webhooks import Webhook, WebhookVerificationError

from hookline.delivery import signing

BODY = b'{"id":1,"resource_url":"https://example.com/api/v0/issues/1.json"}'
SECRET = "s3cr\u00e9t"


@pytest.mark.parametrize("algorithm", ["sha1", "sha256"])
def test_hub_signature_passes_gidgethub_validation(algorithm: str) -> None:
    signature = signing.hub_signature(SECRET, BODY, algorithm, prefixed=True)
    assert signature.startswith(f"{algorithm}=")
    validate_event(BODY, signature=signature, secret=SECRET)


def test_hub_signature_is_checked_by_gidgethub_event_from_http() -> None:
    headers = {
        "content-type": "application/json",
        "x-github-event": "assign_task",
        "x-github-delivery": "1",
        "x-hub-signature": signing.hub_signature(SECRET, BODY, "sha1", prefixed=True),
    }
    event = Event.from_http(headers, BODY, secret=SECRET)
    assert event.data["id"] == 1


def test_hub_signature_does_not_verify_a_different_body() -> None:
    signature = signing.hub_signature(SECRET, BODY, "sha256", prefixed=True)
    with pytest.raises(ValidationFailure):
        validate_event(BODY + b" ", signature=signature, secret=SECRET)


def test_bare_hub_signature_is_the_hex_digest_alone() -> None:
    prefixed = signing.hub_signature(SECRET, BODY, "sha512", prefixed=True)
    bare = signing.hub_signature(SECRET, BODY, "sha512", prefixed=False)
    assert prefixed == f"sha512={bare}"
    assert len(bare) == 128
    int(bare, 16)


def test_standard_webhooks_headers_verify_with_a_whsec_secret() -> None:
    secret = "whsec_" + base64.b64encode(b"0123456789abcdef0123456789abcdef").decode()
    headers = signing.standard_webhooks_headers(secret, "dlv_42", int(time.time()), BODY)
    assert headers["webhook-id"] == "dlv_42"
    assert headers["webhook-signature"].startswith("v1,")
    assert Webhook(secret).verify(BODY, headers) == {
        "id": 1,
        "resource_url": "https://example.com/api/v0/issues/1.json",
    }


def test_standard_webhooks_headers_verify_with_a_plain_secret_given_as_base64() -> None:
    headers = signing.standard_webhooks_headers(SECRET, "dlv_7", int(time.time()), BODY)
    verifier = Webhook(base64.b64encode(SECRET.encode("utf-8")).decode())
    verifier.verify(BODY, headers)


def test_standard_webhooks_signature_fails_for_a_tampered_timestamp() -> None:
    now = int(time.time())
    headers = signing.standard_webhooks_headers(SECRET, "dlv_7", now, BODY)
    headers["webhook-timestamp"] = str(now - 1)
    with pytest.raises(WebhookVerificationError):
        Webhook(base64.b64encode(SECRET.encode("utf-8")).decode()).verify(BODY, headers)


def test_standard_webhooks_headers_without_a_secret_have_no_signature() -> None:
    headers = signing.standard_webhooks_headers(None, "dlv_1", 1_700_000_000, BODY)
    assert headers == {"webhook-id": "dlv_1", "webhook-timestamp": "1700000000"}
