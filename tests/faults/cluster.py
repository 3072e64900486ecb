"""Many Hookline processes on one store: start API-only servers and workers, report events, read the queue."""

from __future__ import annotations

import time
from collections import defaultdict
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

import requests

from tests.acceptance.conftest import Api
from tests.support import STARTUP_TIMEOUT_SECONDS, Server, start_process, start_server

EVENTS = "/api/v0/webhooks/events"
WORKER_READY_TEXT = "dispatching from"
EVENTS_PER_REQUEST = 1000
OUTPUT_POLL_SECONDS = 0.05
LEASE_SAMPLE_SECONDS = 0.1


def start_workers(env: dict[str, str], count: int) -> list[Server]:
    """Start `count` `hookline worker` processes at once and wait until each says it is dispatching."""
    workers = [start_process(["worker"], env, base_url="") for _ in range(count)]
    deadline = time.monotonic() + STARTUP_TIMEOUT_SECONDS
    waiting = list(workers)
    while waiting and time.monotonic() < deadline:
        for worker in list(waiting):
            if WORKER_READY_TEXT in worker.output:
                waiting.remove(worker)
            elif worker.process.poll() is not None:
                for started in workers:
                    started.kill()
                raise AssertionError(f"hookline worker exited with {worker.process.returncode}:\n{worker.output}")
        time.sleep(OUTPUT_POLL_SECONDS)
    if waiting:
        for started in workers:
            started.kill()
        raise AssertionError(f"hookline worker not ready within {STARTUP_TIMEOUT_SECONDS}s:\n{waiting[0].output}")
    return workers


def start_worker(env: dict[str, str]) -> Server:
    """Start `hookline worker` and wait until it says it is dispatching."""
    [worker] = start_workers(env, 1)
    return worker


def start_api(env: dict[str, str]) -> Server:
    """Start `hookline serve --no-dispatcher` (the API alone) and wait until it answers."""
    return start_server(env, "--no-dispatcher")


def admin_of(server: Server) -> Api:
    """An admin client for the first API server started on a fresh store (it printed the token)."""
    token = server.admin_token()
    assert token, f"serve printed no admin token:\n{server.output}"
    return Api(server.base_url, token)


def chunks(items: Sequence[dict[str, Any]], size: int) -> Iterator[Sequence[dict[str, Any]]]:
    """The items in consecutive slices of at most `size`."""
    for start in range(0, len(items), size):
        yield items[start : start + size]


def report_events(api: Api, events: Sequence[dict[str, Any]], per_request: int = EVENTS_PER_REQUEST) -> int:
    """Report events in batches (the platform's way); how many deliveries they made. Fails unless each is 202."""
    deliveries = 0
    for batch in chunks(events, per_request):
        answer = api.post(EVENTS, json={"events": list(batch)})
        assert answer.status_code == 202, answer.text
        deliveries += sum(stored["deliveries"] for stored in answer.json()["response"]["events"])
    return deliveries


@dataclass
class Processes:
    """Every process a test started, so that none outlives it whatever happens."""

    started: list[Server] = field(default_factory=list)

    def add(self, server: Server) -> Server:
        """Keep track of a started process; returns it."""
        self.started.append(server)
        return server

    def add_all(self, servers: list[Server]) -> list[Server]:
        """Keep track of started processes; returns them."""
        self.started.extend(servers)
        return servers

    def stop_all(self) -> dict[int, int]:
        """SIGTERM every process still running (SIGKILL after a while); each pid's exit code."""
        codes: dict[int, int] = {}
        for server in self.started:
            pid = server.process.pid
            if server.process.poll() is not None:
                codes[pid] = server.process.returncode
                server.kill()  # closes its output
                continue
            try:
                codes[pid] = server.stop()
            except AssertionError:
                codes[pid] = server.process.returncode
        return codes


def postgres_rows(url: str, sql: str, params: Iterable[Any] = ()) -> list[tuple[Any, ...]]:
    """Rows of one query on a PostgreSQL store (a short-lived connection of its own)."""
    import psycopg

    with psycopg.connect(url, autocommit=True, connect_timeout=5) as connection:
        return connection.execute(sql, tuple(params)).fetchall()


def all_delivery_ids(url: str) -> set[int]:
    """Every delivery the store holds."""
    return {row[0] for row in postgres_rows(url, "SELECT id FROM deliveries")}


def states(url: str) -> dict[str, int]:
    """How many deliveries are in each state."""
    return dict(postgres_rows(url, "SELECT state, count(*) FROM deliveries GROUP BY state"))


def leased_to_process(url: str, pid: int) -> set[int]:
    """The pending deliveries leased to the worker with this pid (lease owners are host:pid:tag)."""
    rows = postgres_rows(
        url, "SELECT id FROM deliveries WHERE state = 'pending' AND split_part(lease_owner, ':', 2) = %s", (str(pid),)
    )
    return {row[0] for row in rows}


def attempt_outcomes(url: str, delivery_ids: Iterable[int]) -> dict[int, list[str]]:
    """The logged outcome of every attempt of these deliveries, in attempt order."""
    rows = postgres_rows(
        url,
        "SELECT delivery_id, outcome FROM attempts WHERE delivery_id = ANY(%s) ORDER BY delivery_id, attempt_number",
        (list(delivery_ids),),
    )
    outcomes: dict[int, list[str]] = defaultdict(list)
    for delivery_id, outcome in rows:
        outcomes[delivery_id].append(outcome)
    return dict(outcomes)


def lease_owners(url: str) -> dict[int, str]:
    """The owner of every leased pending delivery right now."""
    rows = postgres_rows(
        url, "SELECT id, lease_owner FROM deliveries WHERE state = 'pending' AND lease_owner IS NOT NULL"
    )
    return dict(rows)


def watch_lease_owners(url: str, done: Callable[[], bool], timeout_seconds: float) -> dict[int, set[str]]:
    """Sample who holds each leased delivery until `done()` (or the timeout); every owner seen, by delivery."""
    owners: dict[int, set[str]] = defaultdict(set)
    deadline = time.monotonic() + timeout_seconds
    while not done() and time.monotonic() < deadline:
        for delivery_id, owner in lease_owners(url).items():
            owners[delivery_id].add(owner)
        time.sleep(LEASE_SAMPLE_SECONDS)
    return owners


def wait_until_settled(url: str, expected: int, timeout_seconds: float) -> dict[str, int]:
    """Wait until `expected` deliveries have all succeeded (recorded, not just sent); the states then."""
    deadline = time.monotonic() + timeout_seconds
    while True:
        counted = states(url)
        if counted.get("succeeded", 0) >= expected or time.monotonic() > deadline:
            return counted
        time.sleep(0.2)


def api_answers(api: Api) -> bool:
    """Whether the API answers an authenticated read right now."""
    headers = {"Authorization": f"Bearer {api.token}"}
    try:
        answer = requests.get(f"{api.base_url}/api/v0/webhooks/subscriptions", headers=headers, timeout=2)
        return answer.status_code == 200
    except requests.RequestException:
        return False
