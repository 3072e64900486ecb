"""Classifying attempts: success, gone, retry on the schedule, failed for good."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
from aiohttp import web

from hookline import config, domain
from hookline.delivery import ssrf
from hookline.delivery.attempt import attempt_delivery, classify
from hookline.delivery.retry import RetryPolicy
from hookline.delivery.sender import Sender, SendResult

OWNER = "test-owner"
POLICY = RetryPolicy([5.0, 60.0], jitter=0.0, retry_after_max_seconds=600.0)


def claimed_delivery(**overrides: object) -> domain.ClaimedDelivery:
    fields: dict[str, object] = {
        "delivery_id": 7,
        "subscription_id": "b" * 24,
        "deployment_id": 1,
        "attempts_done": 0,
        "event_id": "create_task",
        "object_id": "3",
        "resource_url": "https://acme.example/api/v0/tasks/3.json",
        "trigger_url": "http://127.0.0.1:9/hook",
        "content_type": domain.CONTENT_TYPE_JSON,
        "secret": "k",
        "standard_webhooks": False,
        "created_at": 1_700_000_000.0,
    }
    fields.update(overrides)
    return domain.ClaimedDelivery(**fields)  # type: ignore[arg-type]


def response(status_code: int | None, error_class: str | None = None, retry_after: str | None = None) -> SendResult:
    error = None if error_class is None else "something went wrong"
    return SendResult(status_code, None, error, error_class, 12.5, retry_after)


@pytest.mark.parametrize("status_code", [200, 201, 204, 299])
def test_2xx_is_success(status_code: int) -> None:
    result = classify(claimed_delivery(), response(status_code), POLICY, OWNER, 100.0)
    assert (result.outcome, result.retry_in_seconds) == ("success", None)
    assert (result.attempt_number, result.lease_owner, result.started_at) == (1, OWNER, 100.0)


def test_410_is_gone_even_without_retries() -> None:
    result = classify(claimed_delivery(retries_allowed=False), response(410), POLICY, OWNER, 0.0)
    assert result.outcome == "gone"


@pytest.mark.parametrize(
    ("status_code", "error_class"), [(500, None), (302, None), (404, None), (None, "timeout"), (None, "connect_error")]
)
def test_other_outcomes_are_retried_on_the_schedule(status_code: int | None, error_class: str | None) -> None:
    first = classify(claimed_delivery(), response(status_code, error_class), POLICY, OWNER, 0.0)
    assert (first.outcome, first.retry_in_seconds) == ("retry", 5.0)
    second = classify(claimed_delivery(attempts_done=1), response(status_code, error_class), POLICY, OWNER, 0.0)
    assert (second.outcome, second.attempt_number, second.retry_in_seconds) == ("retry", 2, 60.0)
    last = classify(claimed_delivery(attempts_done=2), response(status_code, error_class), POLICY, OWNER, 0.0)
    assert (last.outcome, last.attempt_number, last.retry_in_seconds) == ("failed", 3, None)


def test_retry_after_on_429_sets_the_delay() -> None:
    result = classify(claimed_delivery(), response(429, retry_after="42"), POLICY, OWNER, 0.0)
    assert (result.outcome, result.retry_in_seconds) == ("retry", 42.0)


def test_dispatch_without_retries_fails_at_once() -> None:
    result = classify(claimed_delivery(retries_allowed=False), response(500), POLICY, OWNER, 0.0)
    assert (result.outcome, result.retry_in_seconds) == ("failed", None)


def test_invalid_url_is_not_retried() -> None:
    result = classify(claimed_delivery(), response(None, "invalid_url"), POLICY, OWNER, 0.0)
    assert result.outcome == "failed"


@pytest.fixture
async def receiver_url() -> AsyncIterator[str]:
    async def gone(request: web.Request) -> web.Response:
        return web.Response(status=410, text="unsubscribe me")

    app = web.Application()
    app.router.add_post("/gone", gone)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    yield f"http://127.0.0.1:{runner.addresses[0][1]}/gone"
    await runner.cleanup()


async def test_attempt_delivery_sends_and_reports_what_came_back(receiver_url: str) -> None:
    settings = config.Settings(ssrf_allow_networks=["127.0.0.0/8"])
    async with Sender(settings, ssrf.AddressPolicy(settings.ssrf_allow_networks)) as sender:
        result = await attempt_delivery(
            claimed_delivery(trigger_url=receiver_url, attempts_done=4), sender, settings, POLICY, OWNER, lambda: 5.0
        )
    assert (result.outcome, result.status_code, result.attempt_number) == ("gone", 410, 5)
    assert result.response_excerpt == "unsubscribe me"
    assert result.started_at == 5.0
    assert result.duration_ms > 0


async def test_attempt_delivery_turns_an_internal_error_into_a_failed_attempt() -> None:
    settings = config.Settings()
    sender = Sender(settings, ssrf.AddressPolicy([]))  # never opened: send() raises RuntimeError
    result = await attempt_delivery(claimed_delivery(), sender, settings, POLICY, OWNER, lambda: 0.0)
    assert (result.outcome, result.error_class) == ("retry", "internal_error")
    assert result.error is not None
    assert "RuntimeError" in result.error
