"""PostgreSQL restarts in the middle of a run: the API and the workers reconnect on their own, nothing is lost.

This restarts the machine's PostgreSQL server (it needs root and pg_ctlcluster), so other tests using the
server at that moment see their connections dropped too.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import time
from pathlib import Path
from typing import Any

import pytest
import requests

from tests.acceptance.conftest import Api
from tests.conftest import postgres_admin_url
from tests.faults.cluster import (
    EVENTS,
    EVENTS_PER_REQUEST,
    Processes,
    admin_of,
    all_delivery_ids,
    api_answers,
    chunks,
    report_events,
    start_api,
    start_workers,
    states,
    wait_until_settled,
)
from tests.faults.receiver import FastReceiver, answer_slowly
from tests.support import hookline_env

pytestmark = [pytest.mark.slow, pytest.mark.postgres]

POSTGRES_CONFIG_DIR = Path("/etc/postgresql")
LOCAL_HOSTS = ("@127.0.0.1:", "@localhost:")
WORKER_COUNT = 2
EVENTS_BEFORE = 3000
EVENTS_AFTER = 3000
EVENT_TYPES = ("create_contact", "update_contact")
RESTART_AFTER_ARRIVALS = 500
RESTART_TIMEOUT_SECONDS = 60.0
RECOVERY_TIMEOUT_SECONDS = 30.0
DELIVERY_TIMEOUT_SECONDS = 60.0
PICKUP_LIMIT_SECONDS = 1.0
LISTEN_LOST_TEXT = "LISTEN connection lost"
# Each request takes a little while, so that the restart comes while deliveries are on their way. Polling is
# slowed down so that a worker whose LISTEN connection did not come back shows up as a slow pick-up.
ANSWER_SECONDS = (0.02, 0.04)
SETTINGS = {"lease_seconds": "5", "delivery_timeout_seconds": "2", "poll_interval_seconds": "30"}


def restart_command() -> list[str]:
    """The command that restarts the local cluster; skips (fails under CI=true) where that is impossible."""
    reason = None
    if os.geteuid() != 0:
        reason = "restarting PostgreSQL needs root"
    elif shutil.which("pg_ctlcluster") is None or not POSTGRES_CONFIG_DIR.is_dir():
        reason = "no pg_ctlcluster here to restart PostgreSQL with"
    elif not any(host in postgres_admin_url() for host in LOCAL_HOSTS):
        reason = f"the test PostgreSQL ({postgres_admin_url()}) is not this machine's"
    if reason is not None:
        if os.environ.get("CI") == "true":
            pytest.fail(f"CI=true but {reason}")
        pytest.skip(reason)
    versions = sorted(path.name for path in POSTGRES_CONFIG_DIR.iterdir())
    return ["pg_ctlcluster", "--skip-systemctl-redirect", versions[-1], "main", "restart"]


def restart_postgres(command: list[str]) -> float:
    """Restart the server and wait until it accepts connections again; how long it was away, in seconds."""
    import psycopg

    started = time.monotonic()
    subprocess.run(command, check=True, timeout=RESTART_TIMEOUT_SECONDS, capture_output=True)
    deadline = started + RESTART_TIMEOUT_SECONDS
    while True:
        try:
            with psycopg.connect(postgres_admin_url(), connect_timeout=2):
                return time.monotonic() - started
        except psycopg.OperationalError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.1)


def report_until_accepted(api: Api, events: list[dict[str, Any]], timeout_seconds: float) -> int:
    """Report events in batches, retrying each batch until it is accepted; how many deliveries they made.

    Every event carries an idempotency key, so a batch stored by a request whose answer was lost is not
    stored twice by the retry.
    """
    deliveries = 0
    deadline = time.monotonic() + timeout_seconds
    for batch in chunks(events, EVENTS_PER_REQUEST):
        while True:
            try:
                answer = api.post(EVENTS, json={"events": list(batch)})
                if answer.status_code == 202:
                    deliveries += sum(stored["deliveries"] for stored in answer.json()["response"]["events"])
                    break
            except requests.RequestException:
                pass
            assert time.monotonic() < deadline, "the API did not accept events again in time"
            time.sleep(0.2)
    return deliveries


@pytest.mark.timeout(180)
def test_workers_and_api_ride_out_a_postgres_restart(store: str, processes: Processes) -> None:
    command = restart_command()
    receiver = FastReceiver(answer_slowly(*ANSWER_SECONDS))
    try:
        env = hookline_env(store, **SETTINGS)
        api = processes.add(start_api(env))
        admin = admin_of(api)
        for event_type in EVENT_TYPES:
            admin.subscribe(receiver.url(f"/{event_type}"), event_type, content_type="application/json")
        workers = processes.add_all(start_workers(env, WORKER_COUNT))

        before = [
            {"event_id": EVENT_TYPES[n % 2], "object_id": n, "idempotency_key": f"before-{n}"}
            for n in range(EVENTS_BEFORE)
        ]
        assert report_events(admin, before) == EVENTS_BEFORE
        arrived_before_restart = receiver.wait_for_count(RESTART_AFTER_ARRIVALS, timeout_seconds=30)
        away_seconds = restart_postgres(command)
        restarted_at = time.monotonic()
        while not api_answers(admin):
            assert time.monotonic() - restarted_at < RECOVERY_TIMEOUT_SECONDS, f"API did not recover:\n{api.output}"
            time.sleep(0.1)
        api_recovery_seconds = time.monotonic() - restarted_at

        after = [
            {"event_id": EVENT_TYPES[n % 2], "object_id": n, "idempotency_key": f"after-{n}"}
            for n in range(EVENTS_AFTER)
        ]
        assert report_until_accepted(admin, after, RECOVERY_TIMEOUT_SECONDS) == EVENTS_AFTER
        expected_ids = all_delivery_ids(store)
        counts = receiver.wait_for_ids(expected_ids, timeout_seconds=DELIVERY_TIMEOUT_SECONDS)
        settled = wait_until_settled(store, len(expected_ids), timeout_seconds=DELIVERY_TIMEOUT_SECONDS)

        # And the workers listen again: one more event is picked up at once, not at the next poll.
        arrivals_so_far = len(receiver.arrivals())
        reported_at = time.monotonic()
        assert report_events(admin, [{"event_id": EVENT_TYPES[0], "object_id": "last"}]) == 1
        receiver.wait_for_count(arrivals_so_far + 1, timeout_seconds=DELIVERY_TIMEOUT_SECONDS)
        pickup_seconds = receiver.arrivals()[-1].arrived_at - reported_at
    finally:
        receiver.close()

    duplicates = sum(count - 1 for count in counts.values() if count > 1)
    summary = (
        f"{len(expected_ids)} deliveries ({EVENTS_BEFORE} events before the restart, {EVENTS_AFTER} after), "
        f"{len(expected_ids & counts.keys())} arrived, {duplicates} duplicates; restarted after "
        f"{arrived_before_restart} arrivals, PostgreSQL away {away_seconds:.1f} s, API answering "
        f"{api_recovery_seconds:.2f} s later, next pick-up {pickup_seconds:.3f} s; states {settled}"
    )
    print(f"\npostgres restart: {summary}")
    # The restart really reached every worker: each lost its LISTEN connection (and came back, see above).
    assert all(LISTEN_LOST_TEXT in worker.output for worker in workers), [worker.output for worker in workers]
    assert len(expected_ids) == EVENTS_BEFORE + EVENTS_AFTER, summary
    assert expected_ids <= counts.keys(), f"missing {sorted(expected_ids - counts.keys())[:20]}: {summary}"
    assert settled == {"succeeded": len(expected_ids)}, summary
    assert pickup_seconds < PICKUP_LIMIT_SECONDS, summary
    assert all(worker.process.poll() is None for worker in workers), [worker.output for worker in workers]
    assert [worker.stop(signal.SIGTERM) for worker in workers] == [0] * WORKER_COUNT
    assert api.stop(signal.SIGTERM) == 0, api.output
    assert states(store) == {"succeeded": len(expected_ids) + 1}
