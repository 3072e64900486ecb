"""Deadlines, automatic removal of failing subscriptions, isolation, and outbound safety (SSRF)."""

from __future__ import annotations

import signal
import time
from collections.abc import Iterator

import pytest

from tests.acceptance.conftest import Api
from tests.support import Behaviour, Receiver, Server, hookline_env, start_server

DEADLINE_SECONDS = 1.0
FAILURE_THRESHOLD = 5


@pytest.fixture(scope="module")
def server(store_url: str) -> Iterator[Server]:
    """A server with a 1 s deadline, two quick retries, and removal after 5 failures (no minimum span)."""
    running = start_server(
        hookline_env(
            store_url,
            delivery_timeout_seconds=str(DEADLINE_SECONDS),
            retry_schedule_seconds="[0.3, 0.3]",
            failure_threshold=str(FAILURE_THRESHOLD),
            failure_window_seconds="0",
            per_subscription_max_in_flight="4",
        )
    )
    yield running
    assert running.stop(signal.SIGTERM) == 0, running.output


def report(admin: Api, event_id: str, object_ids: range) -> None:
    """Report a batch of events."""
    answer = admin.post(
        "/api/v0/webhooks/events", json={"events": [{"event_id": event_id, "object_id": i} for i in object_ids]}
    )
    assert answer.status_code == 202, answer.text


def wait_for_delivery_state(admin: Api, sid: str, state: str, timeout: float = 15.0) -> dict[str, object]:
    """Poll the delivery log until the newest delivery reaches `state`."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        newest: dict[str, object] = admin.get(f"/api/v0/webhooks/subscriptions/{sid}/deliveries").json()["response"][
            "deliveries"
        ][0]
        if newest["state"] == state:
            return newest
        time.sleep(0.05)
    raise AssertionError(f"delivery never reached {state}: {newest}")


def test_an_attempt_is_cut_at_the_deadline(admin: Api, receiver: Receiver) -> None:
    receiver.behave("/slow", Behaviour(delay_seconds=4.0))
    sid = admin.subscribe(receiver.url("/slow"), "create_task")["subscription_id"]
    report(admin, "create_task", range(1))
    receiver.wait_for(1, "/slow")
    first = None
    deadline = time.monotonic() + 10
    while first is None and time.monotonic() < deadline:
        delivery = admin.get(f"/api/v0/webhooks/subscriptions/{sid}/deliveries").json()["response"]["deliveries"][0]
        first = delivery["attempts"][0] if delivery["attempts"] else None
        time.sleep(0.05)
    assert first is not None
    assert first["error_class"] == "timeout"
    assert first["status_code"] is None
    assert DEADLINE_SECONDS * 1000 * 0.9 <= first["duration_ms"] < DEADLINE_SECONDS * 1000 * 2, first
    admin.delete(f"/api/v0/webhooks/subscriptions/{sid}")


def test_failing_subscription_is_removed_at_the_threshold_and_not_before(admin: Api, receiver: Receiver) -> None:
    receiver.behave("/failing", Behaviour(status=503))
    sid = admin.subscribe(receiver.url("/failing"), "update_issue")["subscription_id"]
    report(admin, "update_issue", range(1))
    wait_for_delivery_state(admin, sid, "failed")  # 3 attempts: below the threshold of 5
    assert len(receiver.received("/failing")) == 3
    assert admin.get(f"/api/v0/webhooks/subscriptions/{sid}").status_code == 200, "removed before the threshold"

    report(admin, "update_issue", range(1, 2))
    receiver.wait_for(FAILURE_THRESHOLD, "/failing")
    deadline = time.monotonic() + 10
    while admin.get(f"/api/v0/webhooks/subscriptions/{sid}").status_code == 200 and time.monotonic() < deadline:
        time.sleep(0.05)
    removed = [
        s
        for s in admin.get("/api/v0/webhooks/subscriptions").json()["response"]["subscriptions"]
        if s["subscription_id"] == sid
    ]
    assert removed == []
    log = admin.get(f"/api/v0/webhooks/subscriptions/{sid}/deliveries").json()["response"]["deliveries"]
    assert log[0]["state"] == "cancelled"
    time.sleep(1.0)
    assert len(receiver.received("/failing")) == FAILURE_THRESHOLD, "nothing more is sent once removed"


def test_a_hanging_receiver_does_not_hold_up_a_healthy_one(admin: Api, receiver: Receiver) -> None:
    receiver.behave("/hang", Behaviour(delay_seconds=5.0))
    hanging = admin.subscribe(receiver.url("/hang"), "create_invoice")["subscription_id"]
    healthy = admin.subscribe(receiver.url("/healthy"), "create_invoice")["subscription_id"]
    del hanging, healthy
    events = 300
    started = time.monotonic()
    report(admin, "create_invoice", range(events))
    receiver.wait_for(events, "/healthy", timeout=30)
    elapsed = time.monotonic() - started
    hang_attempts = len(receiver.received("/hang"))
    print(f"healthy: {events} deliveries in {elapsed:.2f}s ({events / elapsed:.0f}/s) beside a hanging receiver")
    # With a 1 s deadline and 4 slots for the hanging subscription, its 300 deliveries need >= 75 s;
    # the healthy subscription finished while the hanging one had been tried only a few times.
    assert hang_attempts < events / 4, f"the hanging subscription got {hang_attempts} attempts"


@pytest.fixture(scope="module")
def strict_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """A server with the default outbound policy: no private or loopback destinations."""
    env = hookline_env(f"sqlite:///{tmp_path_factory.mktemp('strict') / 'strict.db'}")
    env["HOOKLINE_SSRF_ALLOW_NETWORKS"] = "[]"
    running = start_server(env)
    yield running
    assert running.stop(signal.SIGTERM) == 0, running.output


@pytest.mark.parametrize(
    "url",
    ["http://127.0.0.1:9/x", "http://10.0.0.1/x", "http://169.254.169.254/latest/meta-data", "http://[::1]:9/x"],
)
def test_private_destinations_are_refused_at_create(strict_server: Server, url: str) -> None:
    admin = Api(strict_server.base_url, strict_server.admin_token())
    answer = admin.post("/api/v0/webhooks/subscriptions", json={"trigger_url": url, "event_id": "create_task"})
    assert answer.status_code == 400
    message = answer.json()["meta"]["message"]
    assert message.startswith("trigger_url")
    assert "ssrf_allow_networks" in message


def test_a_name_resolving_to_loopback_is_never_delivered(strict_server: Server, receiver: Receiver) -> None:
    admin = Api(strict_server.base_url, strict_server.admin_token())
    sid = admin.subscribe(f"http://localhost:{receiver.port}/rebound", "create_task")["subscription_id"]
    answer = admin.post(f"/api/v0/webhooks/subscriptions/{sid}/dispatch", json={"object_id": 1})
    assert answer.status_code == 200
    assert answer.json()["response"]["status"] is None
    assert "loopback" in answer.json()["response"]["error"]
    attempt = admin.get(f"/api/v0/webhooks/subscriptions/{sid}/deliveries").json()["response"]["deliveries"][0][
        "attempts"
    ][0]
    assert attempt["error_class"] == "refused_destination"
    assert "ssrf_allow_networks" in attempt["error"]
    assert receiver.received("/rebound") == []
