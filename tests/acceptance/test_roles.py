"""Process roles: `serve --no-dispatcher` (the API alone), `worker` (the dispatcher alone), any number of each on
PostgreSQL, one dispatcher process on SQLite; and `hookline prune` on both stores."""

from __future__ import annotations

import re
import signal
import sqlite3
import subprocess
import time
from collections import Counter
from collections.abc import Iterator
from typing import Any

import pytest
from sqlalchemy import text

from hookline.store import migrate, urls
from tests.acceptance.conftest import Api
from tests.faults.cluster import admin_of, start_api, start_workers
from tests.support import Receiver, Server, cli, hookline_env, start_process, start_server

EVENTS = "/api/v0/webhooks/events"
IDLE_SECONDS = 2.0  # longer than the default poll interval: a dispatcher anywhere would have sent by then
PICKUP_LIMIT_SECONDS = 1.0
PICKUP_ROUNDS = 3
PICKUP_IDLE_SECONDS = 1.5  # the worker has long settled into waiting by then
REFUSAL_TIMEOUT_SECONDS = 30.0
DAY_SECONDS = 86400.0


@pytest.fixture
def hook_receiver() -> Iterator[Receiver]:
    """A recording receiver for this test alone."""
    running = Receiver()
    yield running
    running.close()


def report(admin: Api, event_id: str, object_id: object) -> dict[str, Any]:
    """Report one event as the platform; the stored event."""
    answer = admin.post(EVENTS, json={"event_id": event_id, "object_id": object_id})
    assert answer.status_code == 202, answer.text
    stored: dict[str, Any] = answer.json()["response"]["event"]
    return stored


def one_line(output: str) -> str:
    """Output with its line wrapping undone (rich folds long error messages at the terminal width)."""
    return re.sub(r"\s+", " ", output)


def test_api_alone_delivers_nothing_until_a_worker_runs(database_url: str, hook_receiver: Receiver) -> None:
    env = hookline_env(database_url)
    api = start_api(env)
    try:
        admin = admin_of(api)
        subscription = admin.subscribe(hook_receiver.url("/alone"), "create_task")
        assert report(admin, "create_task", 1)["deliveries"] == 1
        time.sleep(IDLE_SECONDS)
        assert hook_receiver.received() == []
        listed = admin.get(f"/api/v0/webhooks/subscriptions/{subscription['subscription_id']}/deliveries").json()
        assert [delivery["state"] for delivery in listed["response"]["deliveries"]] == ["pending"]

        [worker] = start_workers(env, 1)
        [got] = hook_receiver.wait_for(1, "/alone")
        assert got.headers["X-Accelo-Event"] == "create_task"
        assert worker.stop(signal.SIGTERM) == 0, worker.output
    finally:
        assert api.stop(signal.SIGTERM) == 0, api.output


@pytest.mark.postgres
def test_an_idle_worker_picks_up_a_reported_event_within_a_second(postgres_url: str, hook_receiver: Receiver) -> None:
    # Polling every 30 s, so only the LISTEN/NOTIFY wake-up can bring the event over in time.
    env = hookline_env(postgres_url, poll_interval_seconds="30")
    api = start_api(env)
    try:
        admin = admin_of(api)
        admin.subscribe(hook_receiver.url("/pickup"), "create_task")
        [worker] = start_workers(env, 1)
        pickups: list[float] = []
        for round_number in range(PICKUP_ROUNDS):
            time.sleep(PICKUP_IDLE_SECONDS)  # the worker is idle, waiting on its 30 s poll interval
            reported_at = time.time()
            report(admin, "create_task", round_number)
            arrived = hook_receiver.wait_for(round_number + 1, "/pickup")[-1]
            pickups.append(arrived.at - reported_at)
        print(f"\nidle worker pick-up, report to arrival: {', '.join(f'{s * 1000:.0f} ms' for s in pickups)}")
        assert max(pickups) < PICKUP_LIMIT_SECONDS, pickups
        assert worker.stop(signal.SIGTERM) == 0, worker.output
    finally:
        assert api.stop(signal.SIGTERM) == 0, api.output


@pytest.mark.postgres
def test_any_number_of_apis_and_workers_share_one_queue(postgres_url: str, hook_receiver: Receiver) -> None:
    env = hookline_env(postgres_url)
    first_api = start_api(env)
    started: list[Server] = [first_api]
    try:
        admin = admin_of(first_api)
        started.append(second_api := start_api(env))
        admins = [admin, Api(second_api.base_url, admin.token)]
        admin.subscribe(hook_receiver.url("/shared"), "create_quote")
        started.extend(workers := start_workers(env, 3))
        reported = 0
        for batch in range(6):
            events = [{"event_id": "create_quote", "object_id": batch * 50 + n} for n in range(50)]
            answer = admins[batch % 2].post(EVENTS, json={"events": events})
            assert answer.status_code == 202, answer.text
            reported += len(events)
        got = hook_receiver.wait_for(reported, "/shared")
        time.sleep(0.5)  # anything sent twice would arrive by now
        delivered = Counter(request.headers["X-Hookline-Delivery"] for request in hook_receiver.received("/shared"))
        assert len(got) == reported
        assert len(delivered) == reported
        assert set(delivered.values()) == {1}
        assert all(worker.process.poll() is None for worker in workers)
    finally:
        codes = [server.stop(signal.SIGTERM) for server in reversed(started)]
    assert codes == [0] * len(started)


def refusal_of_second_dispatcher(env: dict[str, str], args: list[str]) -> tuple[int, str]:
    """Run a second dispatcher process that should refuse to start; its exit code and output."""
    second = start_process(args, env, base_url="")
    try:
        code = second.process.wait(timeout=REFUSAL_TIMEOUT_SECONDS)
    except subprocess.TimeoutExpired:
        second.kill()
        raise AssertionError(f"hookline {' '.join(args)} kept running beside the first dispatcher") from None
    second.stop()
    return code, one_line(second.output)


@pytest.mark.parametrize("first_role", ["serve", "worker"])
def test_sqlite_refuses_a_second_dispatcher_process(sqlite_url: str, hook_receiver: Receiver, first_role: str) -> None:
    env = hookline_env(sqlite_url)
    path = urls.sqlite_path(sqlite_url)
    api = start_server(env) if first_role == "serve" else start_api(env)
    running: list[Server] = [api]
    try:
        if first_role == "worker":
            running.extend(start_workers(env, 1))
        dispatcher = running[-1]

        code, output = refusal_of_second_dispatcher(env, ["worker"])
        assert code != 0, output
        assert "another Hookline dispatcher is already running" in output, output
        assert str(path) in output, output
        assert f"pid {dispatcher.process.pid}" in output, output
        assert "SQLite allows one dispatcher process" in output, output
        assert "PostgreSQL" in output, output
        assert "Traceback" not in output, output

        # The first dispatcher carries on, alone, on an intact store.
        admin = admin_of(api)
        admin.subscribe(hook_receiver.url("/single"), "create_issue")
        report(admin, "create_issue", 7)
        hook_receiver.wait_for(1, "/single")
        time.sleep(0.5)
        assert len(hook_receiver.received("/single")) == 1
        assert dispatcher.process.poll() is None
    finally:
        codes = [server.stop(signal.SIGTERM) for server in reversed(running)]
    assert codes == [0] * len(running)
    with sqlite3.connect(path) as connection:
        assert connection.execute("PRAGMA integrity_check").fetchall() == [("ok",)]
        assert connection.execute("SELECT state FROM deliveries").fetchall() == [("succeeded",)]


def test_a_second_serve_on_sqlite_refuses_clearly(sqlite_url: str) -> None:
    env = hookline_env(sqlite_url)
    first = start_server(env)
    try:
        port = str(int(first.base_url.rpartition(":")[2]) + 1)
        code, output = refusal_of_second_dispatcher(env, ["serve", "--host", "127.0.0.1", "--port", port])
    finally:
        assert first.stop(signal.SIGTERM) == 0
    assert code != 0, output
    assert "another Hookline dispatcher is already running" in output, output
    assert "Traceback" not in output, output
    assert "listening" not in output, output


# --- hookline prune -----------------------------------------------------------------------------------

PRUNE_FIXTURE_SQL = [
    "INSERT INTO deployments (id, slug, name, standard_webhooks, created_at) VALUES (1, 'prune', 'Prune', false, :old)",
    "INSERT INTO users (id, deployment_id, name, email, created_at) VALUES (1, 1, 'P', 'p@example.com', :old)",
    "INSERT INTO subscriptions (id, deployment_id, user_id, event_id, trigger_url, content_type, created_at,"
    " consecutive_failures) VALUES ('sub_prune', 1, 1, 'create_task', 'http://127.0.0.1:9/h', 'application/json',"
    " :old, 0)",
    # Events: one whose deliveries are all old and finished, one old with a delivery still pending, one
    # recent, and one old that matched no subscription at all.
    "INSERT INTO events (id, deployment_id, event_id, object_id, created_at) VALUES"
    " (1, 1, 'create_task', 'old', :old), (2, 1, 'create_task', 'mixed', :old),"
    " (3, 1, 'create_task', 'recent', :recent), (4, 1, 'create_task', 'unmatched', :old)",
    "INSERT INTO deliveries (id, event_row_id, subscription_id, deployment_id, state, attempts, retries_allowed,"
    " next_attempt_at, created_at, finished_at) VALUES"
    " (11, 1, 'sub_prune', 1, 'succeeded', 1, true, NULL, :old, :old),"
    " (12, 1, 'sub_prune', 1, 'succeeded', 1, true, NULL, :old, :old),"
    " (13, 1, 'sub_prune', 1, 'succeeded', 1, true, NULL, :old, :old),"
    " (14, 1, 'sub_prune', 1, 'failed', 1, true, NULL, :old, :just_old),"
    " (15, 1, 'sub_prune', 1, 'cancelled', 0, true, NULL, :old, :just_old),"
    " (21, 2, 'sub_prune', 1, 'succeeded', 1, true, NULL, :old, :old),"
    " (22, 2, 'sub_prune', 1, 'pending', 3, true, :future, :old, NULL),"
    " (31, 3, 'sub_prune', 1, 'succeeded', 1, true, NULL, :recent, :recent)",
    "INSERT INTO attempts (delivery_id, subscription_id, attempt_number, started_at, duration_ms, status_code,"
    " outcome) VALUES (11, 'sub_prune', 1, :old, 5, 200, 'success'), (12, 'sub_prune', 1, :old, 5, 200, 'success'),"
    " (13, 'sub_prune', 1, :old, 5, 200, 'success'), (14, 'sub_prune', 1, :old, 5, 500, 'failed'),"
    " (21, 'sub_prune', 1, :old, 5, 200, 'success'), (22, 'sub_prune', 1, :old, 5, 503, 'retry'),"
    " (31, 'sub_prune', 1, :recent, 5, 200, 'success')",
]


def table_ids(database_url: str) -> dict[str, list[int]]:
    """The ids left in the delivery log's tables."""
    engine = migrate.sync_engine(database_url)
    try:
        with engine.connect() as connection:
            return {
                "events": [row[0] for row in connection.execute(text("SELECT id FROM events ORDER BY id"))],
                "deliveries": [row[0] for row in connection.execute(text("SELECT id FROM deliveries ORDER BY id"))],
                "attempts": [
                    row[0] for row in connection.execute(text("SELECT delivery_id FROM attempts ORDER BY delivery_id"))
                ],
            }
    finally:
        engine.dispose()


def test_prune_deletes_only_finished_deliveries_older_than_the_retention(database_url: str) -> None:
    now = time.time()
    times = {
        "old": now - 40 * DAY_SECONDS,
        "just_old": now - 31 * DAY_SECONDS,
        "recent": now - 1 * DAY_SECONDS,
        "future": now + DAY_SECONDS,
    }
    engine = migrate.sync_engine(database_url)
    try:
        with engine.begin() as connection:
            for statement in PRUNE_FIXTURE_SQL:
                connection.execute(text(statement), times)
    finally:
        engine.dispose()

    env = hookline_env(database_url, prune_batch_size="2")  # six old deliveries: three batches and a last look
    assert one_line(cli(env, "prune").stdout).strip() == "pruned 6 finished deliveries older than 30 days"
    assert table_ids(database_url) == {"events": [2, 3], "deliveries": [22, 31], "attempts": [22, 31]}
    assert one_line(cli(env, "prune").stdout).strip() == "pruned 0 finished deliveries older than 30 days"

    shorter = hookline_env(database_url, retention_days="0.5")
    assert "pruned 1 finished deliveries older than 0.5 days" in one_line(cli(shorter, "prune").stdout)
    assert table_ids(database_url) == {"events": [2], "deliveries": [22], "attempts": [22]}
