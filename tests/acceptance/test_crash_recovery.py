"""Kill -9 with deliveries pending and in flight, restart: every delivery arrives at least once."""

from __future__ import annotations

import signal
import time
from collections import Counter

import pytest

from tests.acceptance.conftest import Api
from tests.support import Behaviour, Receiver, hookline_env, start_server

SUBSCRIPTIONS = 4
EVENTS = 500  # x 4 subscriptions = 2,000 deliveries


@pytest.mark.slow
def test_kill_minus_nine_then_restart_loses_nothing(store_url: str) -> None:
    receiver = Receiver()
    env = hookline_env(store_url, lease_seconds="3", delivery_timeout_seconds="2")
    first = start_server(env)
    admin = Api(first.base_url, first.admin_token())
    paths = [f"/crash{i}" for i in range(SUBSCRIPTIONS)]
    for path in paths:
        receiver.behave(path, Behaviour(delay_seconds=0.005))
        admin.subscribe(receiver.url(path), "create_task", content_type="application/json")
    answer = admin.post(
        "/api/v0/webhooks/events", json={"events": [{"event_id": "create_task", "object_id": i} for i in range(EVENTS)]}
    )
    assert answer.status_code == 202
    expected = SUBSCRIPTIONS * EVENTS

    deadline = time.monotonic() + 30
    while len([r for r in receiver.received() if r.path in paths]) < expected // 10 and time.monotonic() < deadline:
        time.sleep(0.005)
    first.kill()
    arrived_before_kill = len([r for r in receiver.received() if r.path in paths])
    assert arrived_before_kill < expected, "everything arrived before the kill: the test proved nothing"

    second = start_server(env)
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            ids = Counter(r.headers["X-Hookline-Delivery"] for r in receiver.received() if r.path in paths)
            if len(ids) >= expected:
                break
            time.sleep(0.1)
        duplicates = sum(count - 1 for count in ids.values())
        print(
            f"\n{expected} deliveries, killed after {arrived_before_kill} arrived: "
            f"{len(ids)} distinct arrived, {duplicates} arrived twice"
        )
        assert len(ids) == expected, f"lost {expected - len(ids)} deliveries"
        per_path = Counter(r.path for r in receiver.received() if r.path in paths)
        assert all(per_path[path] >= EVENTS for path in paths), per_path
    finally:
        assert second.stop(signal.SIGTERM) == 0, second.output
        receiver.close()
