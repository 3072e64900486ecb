"""Two workers never deliver the same claimed delivery at once, even when leases run out and change hands."""

from __future__ import annotations

import itertools
import signal
import time
from collections import defaultdict
from dataclasses import dataclass

import pytest

from tests.faults.cluster import (
    Processes,
    admin_of,
    all_delivery_ids,
    report_events,
    start_api,
    start_workers,
    wait_until_settled,
    watch_lease_owners,
)
from tests.faults.receiver import Arrival, FastReceiver, answer_slowly
from tests.support import cli, hookline_env

pytestmark = [pytest.mark.slow, pytest.mark.postgres]

WORKER_COUNT = 2
DELIVERY_TIMEOUT_SECONDS = 90.0


@dataclass(frozen=True)
class Run:
    """What a run of slow deliveries through two workers showed."""

    expected_ids: set[int]
    arrivals: list[Arrival]
    handed_over: int
    settled: dict[str, int]
    seconds: float

    @property
    def overlaps(self) -> list[tuple[Arrival, Arrival]]:
        """Pairs of requests for one delivery id where the second arrived before the first was answered."""
        by_delivery: dict[int, list[Arrival]] = defaultdict(list)
        for arrival in self.arrivals:
            by_delivery[arrival.delivery_id].append(arrival)
        pairs: list[tuple[Arrival, Arrival]] = []
        for requests in by_delivery.values():
            requests.sort(key=lambda arrival: arrival.arrived_at)
            for earlier, later in itertools.pairwise(requests):
                if later.arrived_at < earlier.answered_at:
                    pairs.append((earlier, later))
        return pairs

    def summary(self) -> str:
        """The counts, for the output and the assertion messages."""
        arrived = {arrival.delivery_id for arrival in self.arrivals}
        return (
            f"{len(self.expected_ids)} deliveries, {len(self.expected_ids & arrived)} arrived, "
            f"{len(self.arrivals)} requests, {self.handed_over} leases changed hands, "
            f"{len(self.overlaps)} overlapping; states {self.settled}; {self.seconds:.1f} s"
        )


def run_slow_deliveries(
    store: str,
    processes: Processes,
    settings: dict[str, str],
    answer_seconds: tuple[float, float],
    subscriptions: int,
    events: int,
) -> Run:
    """Fan `events` out to `subscriptions` on a slow receiver, deliver them with two workers, record it all."""
    receiver = FastReceiver(answer_slowly(*answer_seconds))
    try:
        env = hookline_env(store, **settings)
        admin = admin_of(processes.add(start_api(env)))
        for number in range(subscriptions):
            admin.subscribe(receiver.url(f"/slow/{number}"), "update_issue", content_type="application/json")
        workers = processes.add_all(start_workers(env, WORKER_COUNT))
        started = time.monotonic()
        assert report_events(admin, [{"event_id": "update_issue", "object_id": n} for n in range(events)]) == (
            events * subscriptions
        )
        expected_ids = all_delivery_ids(store)
        owners = watch_lease_owners(
            store, lambda: expected_ids <= receiver.counts().keys(), timeout_seconds=DELIVERY_TIMEOUT_SECONDS
        )
        settled = wait_until_settled(store, len(expected_ids), timeout_seconds=DELIVERY_TIMEOUT_SECONDS)
        arrivals = receiver.arrivals()
    finally:
        receiver.close()
    assert [worker.stop(signal.SIGTERM) for worker in workers] == [0] * WORKER_COUNT
    handed_over = sum(1 for seen in owners.values() if len(seen) > 1)
    return Run(expected_ids, arrivals, handed_over, settled, time.monotonic() - started)


@pytest.mark.timeout(150)
def test_two_workers_never_send_one_delivery_at_the_same_time(store: str, processes: Processes) -> None:
    # A slow receiver and two slots per subscription: deliveries wait behind their subscription longer than
    # they may start (lease 3 s, timeout 1 s: 2 s), are given up, their leases run out and change hands.
    run = run_slow_deliveries(
        store,
        processes,
        {"lease_seconds": "3", "delivery_timeout_seconds": "1", "per_subscription_max_in_flight": "2"},
        answer_seconds=(0.05, 0.25),
        subscriptions=20,
        events=100,
    )
    print(f"\nno concurrent delivery: {run.summary()}")
    assert run.overlaps == [], f"{run.overlaps[:5]}: {run.summary()}"
    assert run.expected_ids <= {arrival.delivery_id for arrival in run.arrivals}, run.summary()
    assert run.settled == {"succeeded": len(run.expected_ids)}, run.summary()
    assert run.handed_over > 0, f"no lease changed hands, so nothing was shown: {run.summary()}"


@pytest.mark.timeout(120)
def test_an_attempt_never_outlives_its_lease_whatever_the_settings(store: str, processes: Processes) -> None:
    # Valid settings today: a delivery may take 0.9 s, the lease lasts 1 s. Either they are refused, or
    # every attempt must end inside its lease.
    settings = {"lease_seconds": "1", "delivery_timeout_seconds": "0.9", "per_subscription_max_in_flight": "1"}
    refused = cli(hookline_env(store, **settings), "migrate", check=False)
    if refused.returncode != 0:
        assert "lease_seconds" in refused.stderr + refused.stdout
        return
    run = run_slow_deliveries(store, processes, settings, answer_seconds=(0.3, 0.75), subscriptions=24, events=10)
    print(f"\nattempts outliving their lease: {run.summary()}")
    assert run.overlaps == [], f"{run.overlaps[:3]}: {run.summary()}"
