"""PostgresQueue against a real PostgreSQL: leases, fences, idempotency, NOTIFY and recovery from lost connections."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Iterator
from typing import Any

import psycopg
import pytest
from sqlalchemy import func, insert, select, update
from sqlalchemy.engine import Engine

from hookline.domain import AttemptOutcome, AttemptResult, ClaimedDelivery, NewEvent, new_subscription_id
from hookline.store import migrate, schema, urls
from hookline.store.postgres_queue import PostgresQueue
from hookline.store.queue import FailurePolicy
from tests.integration import test_queue as queue_suite

pytestmark = pytest.mark.postgres

EVENT = "create_task"
OTHER_EVENT = "update_task"
WINDOW_SECONDS = 86400.0
LEASE_SECONDS = 30.0


class Store:
    """Rows seeded and read back with SQLAlchemy Core, beside the queue under test."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.conninfo = urls.postgres_conninfo(url)
        self.engine: Engine = migrate.sync_engine(url)
        with self.engine.begin() as connection:
            self.deployment_id = self._insert(connection, schema.deployments, slug="acme", name="Acme")
            self.other_deployment_id = self._insert(connection, schema.deployments, slug="other", name="Other")
            self.alice = self._insert(
                connection, schema.users, deployment_id=self.deployment_id, name="Alice", email="a@example.com"
            )
            self.bob = self._insert(
                connection, schema.users, deployment_id=self.deployment_id, name="Bob", email="b@example.com"
            )

    @staticmethod
    def _insert(connection: Any, table: Any, **values: Any) -> int:
        row_id: int = connection.execute(
            insert(table).values(created_at=time.time(), **values).returning(table.c.id)
        ).scalar_one()
        return row_id

    def subscription(self, event_id: str = EVENT, user_id: int | None = None, deployment_id: int | None = None) -> str:
        subscription_id = new_subscription_id()
        with self.engine.begin() as connection:
            connection.execute(
                insert(schema.subscriptions).values(
                    id=subscription_id,
                    deployment_id=deployment_id or self.deployment_id,
                    user_id=user_id or self.alice,
                    event_id=event_id,
                    trigger_url="http://127.0.0.1:9/hook",
                    content_type="application/json",
                    secret="s3cret",
                    created_at=time.time(),
                )
            )
        return subscription_id

    def delete_subscription(self, subscription_id: str) -> None:
        with self.engine.begin() as connection:
            connection.execute(
                update(schema.subscriptions)
                .where(schema.subscriptions.c.id == subscription_id)
                .values(deleted_at=time.time(), deleted_reason="deleted")
            )

    def row(self, table: Any, row_id: object) -> dict[str, Any]:
        with self.engine.connect() as connection:
            return dict(connection.execute(select(table).where(table.c.id == row_id)).mappings().one())

    def count(self, table: Any, *where: Any) -> int:
        with self.engine.connect() as connection:
            counted: int = connection.execute(select(func.count()).select_from(table).where(*where)).scalar_one()
            return counted

    def states(self) -> dict[str, int]:
        with self.engine.connect() as connection:
            rows = connection.execute(
                select(schema.deliveries.c.state, func.count()).group_by(schema.deliveries.c.state)
            ).all()
        return {state: count for state, count in rows}

    def age_deliveries(self, seconds: float) -> None:
        """Make every finished delivery look `seconds` older."""
        with self.engine.begin() as connection:
            connection.execute(
                update(schema.deliveries)
                .where(schema.deliveries.c.finished_at.is_not(None))
                .values(finished_at=schema.deliveries.c.finished_at - seconds)
            )


@pytest.fixture
def store(postgres_url: str) -> Iterator[Store]:
    seeded = Store(postgres_url)
    yield seeded
    seeded.engine.dispose()


async def open_queue(store: Store, policy: FailurePolicy | None = None) -> PostgresQueue:
    queue = PostgresQueue(store.conninfo, policy or FailurePolicy(threshold=3, window_seconds=0.0))
    await queue.open()
    return queue


@pytest.fixture
async def queue(store: Store) -> AsyncIterator[PostgresQueue]:
    opened = await open_queue(store)
    yield opened
    await opened.close()


def new_event(store: Store, object_id: str = "42", **overrides: Any) -> NewEvent:
    fields: dict[str, Any] = {
        "deployment_id": store.deployment_id,
        "event_id": EVENT,
        "object_id": object_id,
        "resource_url": f"http://platform.example/api/v0/tasks/{object_id}.json",
    }
    fields.update(overrides)
    return NewEvent(**fields)


def result_for(
    claimed: ClaimedDelivery,
    owner: str,
    outcome: AttemptOutcome,
    *,
    status_code: int | None = 200,
    retry_in_seconds: float | None = None,
    started_at: float | None = None,
) -> AttemptResult:
    """The shared suite's result builder, with this module's defaults (a 200 started now)."""
    return queue_suite.result_for(
        claimed,
        outcome,
        owner=owner,
        started_at=started_at if started_at is not None else time.time(),
        status_code=status_code,
        retry_in_seconds=retry_in_seconds,
    )


async def pool_backend_pids(store: Store) -> list[int]:
    async with await psycopg.AsyncConnection.connect(store.conninfo, autocommit=True) as admin:
        cursor = await admin.execute(
            "SELECT pid FROM pg_stat_activity WHERE datname = current_database() AND pid <> pg_backend_pid()"
        )
        return [row[0] for row in await cursor.fetchall()]


async def terminate_backends(store: Store) -> int:
    """Kill every server connection to the test database but the admin one (as a server restart would)."""
    pids = await pool_backend_pids(store)
    async with await psycopg.AsyncConnection.connect(store.conninfo, autocommit=True) as admin:
        for pid in pids:
            await admin.execute("SELECT pg_terminate_backend(%s)", (pid,))
    return len(pids)


# -- ingestion ------------------------------------------------------------------------------------------


async def test_ingest_fans_out_to_matching_live_subscriptions_only(store: Store, queue: PostgresQueue) -> None:
    alice_sub = store.subscription()
    bob_sub = store.subscription(user_id=store.bob)
    store.subscription(event_id=OTHER_EVENT)
    deleted = store.subscription()
    store.delete_subscription(deleted)

    stored = await queue.ingest(
        [
            new_event(store, "1"),
            new_event(store, "2", user_ids=(store.bob,)),
            new_event(store, "3", only_subscription_id=alice_sub),
            new_event(store, "4", deployment_id=store.other_deployment_id),
            new_event(store, "5", user_ids=()),
        ],
        WINDOW_SECONDS,
    )

    assert [event.object_id for event in stored] == ["1", "2", "3", "4", "5"]
    assert [event.deliveries for event in stored] == [2, 1, 1, 0, 0]
    assert not any(event.duplicate for event in stored)
    assert abs(stored[0].created_at - time.time()) < 5
    with store.engine.connect() as connection:
        targets = connection.execute(
            select(schema.events.c.object_id, schema.deliveries.c.subscription_id)
            .join(schema.events, schema.events.c.id == schema.deliveries.c.event_row_id)
            .order_by(schema.events.c.object_id, schema.deliveries.c.subscription_id)
        ).all()
    assert sorted(targets) == sorted([("1", alice_sub), ("1", bob_sub), ("2", bob_sub), ("3", alice_sub)])
    assert store.row(schema.events, stored[1].id)["user_ids"] == f"[{store.bob}]"
    assert queue.work_available.is_set()


async def test_repeated_idempotency_key_answers_the_original_and_creates_nothing(
    store: Store, queue: PostgresQueue
) -> None:
    store.subscription()
    (first,) = await queue.ingest([new_event(store, "1", idempotency_key="k1")], WINDOW_SECONDS)
    again, same_batch_a, same_batch_b = await queue.ingest(
        [
            new_event(store, "1", idempotency_key="k1"),
            new_event(store, "2", idempotency_key="k2"),
            new_event(store, "2", idempotency_key="k2"),
        ],
        WINDOW_SECONDS,
    )

    assert again.duplicate
    assert again.id == first.id
    assert again.deliveries == 1
    assert not same_batch_a.duplicate
    assert same_batch_b.duplicate
    assert same_batch_b.id == same_batch_a.id
    assert store.count(schema.events) == 2
    assert store.count(schema.deliveries) == 2
    # The same key in another deployment is another event.
    (elsewhere,) = await queue.ingest(
        [new_event(store, "1", idempotency_key="k1", deployment_id=store.other_deployment_id)], WINDOW_SECONDS
    )
    assert not elsewhere.duplicate


async def test_idempotency_key_older_than_the_window_makes_a_new_event(store: Store, queue: PostgresQueue) -> None:
    store.subscription()
    (first,) = await queue.ingest([new_event(store, idempotency_key="k")], WINDOW_SECONDS)
    await asyncio.sleep(0.05)

    (second,) = await queue.ingest([new_event(store, idempotency_key="k")], 0.01)

    assert not second.duplicate
    assert second.id != first.id
    assert second.deliveries == 1
    assert store.row(schema.events, first.id)["idempotency_key"] is None
    assert store.row(schema.events, second.id)["idempotency_key"] == "k"


async def test_concurrent_duplicates_from_two_processes_store_one_event(store: Store, queue: PostgresQueue) -> None:
    store.subscription()
    other = await open_queue(store)
    try:
        for attempt in range(10):
            key = f"race-{attempt}"
            answers = await asyncio.gather(
                *(
                    q.ingest([new_event(store, idempotency_key=key)], WINDOW_SECONDS)
                    for q in (queue, other, queue, other)
                )
            )
            ids = {stored.id for (stored,) in answers}
            assert len(ids) == 1
            assert sum(not stored.duplicate for (stored,) in answers) == 1
    finally:
        await other.close()
    assert store.count(schema.events) == 10
    assert store.count(schema.deliveries) == 10


AWKWARD_TEXTS = ['say "hi"', "back\\slash", "a,b {c} 'd'", "NULL", "", "  spaced  ", "ünïcødé ✓", "new\nline"]


async def test_awkward_text_survives_the_round_trip_through_the_queue(store: Store, queue: PostgresQueue) -> None:
    store.subscription()
    stored = await queue.ingest(
        [
            new_event(store, text, resource_url=f"http://x/{text}", idempotency_key=f"key {text}")
            for text in AWKWARD_TEXTS
        ],
        WINDOW_SECONDS,
    )
    claimed = await queue.claim('owner, with "quotes"', limit=100, lease_seconds=LEASE_SECONDS)

    assert [event.object_id for event in stored] == AWKWARD_TEXTS
    assert not any(event.duplicate for event in stored)
    assert [c.object_id for c in claimed] == AWKWARD_TEXTS
    assert [c.resource_url for c in claimed] == [f"http://x/{text}" for text in AWKWARD_TEXTS]
    results = []
    for delivery, text in zip(claimed, AWKWARD_TEXTS, strict=True):
        result = result_for(delivery, 'owner, with "quotes"', "failed", status_code=None)
        result.error = text
        result.response_excerpt = text
        results.append(result)
    await queue.record(results)
    with store.engine.connect() as connection:
        logged = connection.execute(
            select(schema.attempts.c.error, schema.attempts.c.response_excerpt).order_by(schema.attempts.c.delivery_id)
        ).all()
    assert [tuple(row) for row in logged] == [(text, text) for text in AWKWARD_TEXTS]
    again = await queue.ingest([new_event(store, "x", idempotency_key=f"key {AWKWARD_TEXTS[0]}")], WINDOW_SECONDS)
    assert again[0].duplicate


# -- claims and leases ----------------------------------------------------------------------------------


async def test_claim_leases_oldest_first_with_everything_needed_to_send(store: Store, queue: PostgresQueue) -> None:
    subscription_id = store.subscription()
    stored = await queue.ingest([new_event(store, str(n)) for n in range(5)], WINDOW_SECONDS)

    claimed = await queue.claim("w1", limit=3, lease_seconds=LEASE_SECONDS)
    rest = await queue.claim("w2", limit=10, lease_seconds=LEASE_SECONDS)

    assert [c.object_id for c in claimed] == ["0", "1", "2"]
    assert [c.object_id for c in rest] == ["3", "4"]
    first = claimed[0]
    assert first.subscription_id == subscription_id
    assert first.deployment_id == store.deployment_id
    assert first.attempts_done == 0
    assert first.event_id == EVENT
    assert first.resource_url == stored[0].resource_url
    assert first.trigger_url == "http://127.0.0.1:9/hook"
    assert first.content_type == "application/json"
    assert first.secret == "s3cret"
    assert first.standard_webhooks is False
    assert first.retries_allowed is True
    assert await queue.claim("w3", limit=10, lease_seconds=LEASE_SECONDS) == []
    assert await queue.pending_count() == 5
    due_at = await queue.next_due_at()
    assert due_at is not None
    assert due_at > await queue.now() + LEASE_SECONDS - 5


async def test_an_expired_lease_is_claimed_again_by_anyone(store: Store, queue: PostgresQueue) -> None:
    store.subscription()
    await queue.ingest([new_event(store)], WINDOW_SECONDS)
    (crashed,) = await queue.claim("crashed-worker", limit=10, lease_seconds=0.2)
    assert await queue.claim("w2", limit=10, lease_seconds=LEASE_SECONDS) == []

    await asyncio.sleep(0.3)
    (reclaimed,) = await queue.claim("w2", limit=10, lease_seconds=LEASE_SECONDS)

    assert reclaimed.delivery_id == crashed.delivery_id
    # The crashed worker's late result is ignored; the new holder's counts.
    await queue.record([result_for(crashed, "crashed-worker", "success")])
    assert store.row(schema.deliveries, crashed.delivery_id)["state"] == "pending"
    assert store.count(schema.attempts) == 0
    await queue.record([result_for(reclaimed, "w2", "success")])
    assert store.row(schema.deliveries, crashed.delivery_id)["state"] == "succeeded"
    assert store.count(schema.attempts) == 1


async def test_claim_skips_excluded_subscriptions(store: Store, queue: PostgresQueue) -> None:
    busy = store.subscription()
    calm = store.subscription()
    await queue.ingest([new_event(store, str(n)) for n in range(3)], WINDOW_SECONDS)

    claimed = await queue.claim("w", limit=10, lease_seconds=LEASE_SECONDS, exclude_subscription_ids={busy})

    assert {c.subscription_id for c in claimed} == {calm}
    assert len(claimed) == 3


async def test_claim_cancels_deliveries_of_a_deleted_subscription(store: Store, queue: PostgresQueue) -> None:
    doomed = store.subscription()
    await queue.ingest([new_event(store)], WINDOW_SECONDS)
    store.delete_subscription(doomed)

    assert await queue.claim("w", limit=10, lease_seconds=LEASE_SECONDS) == []
    assert store.states() == {"cancelled": 1}
    assert await queue.next_due_at() is None


async def test_two_workers_claiming_concurrently_never_get_the_same_delivery(
    store: Store, queue: PostgresQueue
) -> None:
    for _ in range(4):
        store.subscription()
    await queue.ingest([new_event(store, str(n)) for n in range(500)], WINDOW_SECONDS)  # 2,000 deliveries
    other = await open_queue(store)
    seen: dict[str, list[int]] = {"a": [], "b": []}

    async def drain(q: PostgresQueue, owner: str) -> None:
        for _ in range(200):
            claimed = await q.claim(owner, limit=37, lease_seconds=LEASE_SECONDS)
            if not claimed:
                return
            seen[owner].extend(c.delivery_id for c in claimed)

    try:
        await asyncio.gather(drain(queue, "a"), drain(other, "b"), drain(queue, "a"), drain(other, "b"))
    finally:
        await other.close()

    everything = seen["a"] + seen["b"]
    assert len(everything) == 2000
    assert len(set(everything)) == 2000, "a delivery was leased twice"
    assert seen["a"]
    assert seen["b"]


# -- results --------------------------------------------------------------------------------------------


async def test_record_moves_each_delivery_on_and_logs_the_attempt(store: Store, queue: PostgresQueue) -> None:
    store.subscription()
    await queue.ingest([new_event(store, str(n)) for n in range(3)], WINDOW_SECONDS)
    ok, retried, failed = await queue.claim("w", limit=10, lease_seconds=LEASE_SECONDS)

    await queue.record(
        [
            result_for(ok, "w", "success"),
            result_for(retried, "w", "retry", status_code=500, retry_in_seconds=120.0),
            result_for(failed, "w", "failed", status_code=400),
        ]
    )

    now = await queue.now()
    ok_row = store.row(schema.deliveries, ok.delivery_id)
    assert ok_row["state"] == "succeeded"
    assert ok_row["attempts"] == 1
    assert ok_row["lease_owner"] is None
    assert ok_row["finished_at"] == pytest.approx(now, abs=5)
    retried_row = store.row(schema.deliveries, retried.delivery_id)
    assert retried_row["state"] == "pending"
    assert retried_row["attempts"] == 1
    assert retried_row["next_attempt_at"] == pytest.approx(now + 120, abs=5)
    assert retried_row["last_status_code"] == 500
    assert retried_row["last_error"] == "HTTP 500"
    assert store.row(schema.deliveries, failed.delivery_id)["state"] == "failed"
    with store.engine.connect() as connection:
        logged = connection.execute(select(schema.attempts).order_by(schema.attempts.c.delivery_id)).mappings().all()
    assert [(a["delivery_id"], a["outcome"], a["status_code"]) for a in logged] == [
        (ok.delivery_id, "success", 200),
        (retried.delivery_id, "retry", 500),
        (failed.delivery_id, "failed", 400),
    ]
    assert logged[0]["response_excerpt"] == "ok"
    assert logged[0]["attempt_number"] == 1
    # Recording the same results again (a retried commit) changes nothing.
    await queue.record([result_for(ok, "w", "success"), result_for(failed, "w", "failed", status_code=400)])
    assert store.count(schema.attempts) == 3


async def test_a_retried_delivery_comes_back_due_with_its_attempt_count(store: Store, queue: PostgresQueue) -> None:
    store.subscription()
    await queue.ingest([new_event(store)], WINDOW_SECONDS)
    (first,) = await queue.claim("w", limit=10, lease_seconds=LEASE_SECONDS)
    await queue.record([result_for(first, "w", "retry", status_code=503, retry_in_seconds=0.0)])

    (second,) = await queue.claim("w", limit=10, lease_seconds=LEASE_SECONDS)

    assert second.delivery_id == first.delivery_id
    assert second.attempts_done == 1


async def test_gone_removes_the_subscription_and_cancels_its_pending_deliveries(
    store: Store, queue: PostgresQueue
) -> None:
    gone = store.subscription()
    kept = store.subscription()
    await queue.ingest([new_event(store, str(n)) for n in range(3)], WINDOW_SECONDS)
    claimed = await queue.claim("w", limit=1, lease_seconds=LEASE_SECONDS, exclude_subscription_ids={kept})

    await queue.record([result_for(claimed[0], "w", "gone", status_code=410)])

    subscription = store.row(schema.subscriptions, gone)
    assert subscription["deleted_reason"] == "gone"
    assert subscription["deleted_at"] is not None
    assert (
        store.count(
            schema.deliveries, schema.deliveries.c.subscription_id == gone, schema.deliveries.c.state == "pending"
        )
        == 0
    )
    assert (
        store.count(
            schema.deliveries, schema.deliveries.c.subscription_id == kept, schema.deliveries.c.state == "pending"
        )
        == 3
    )
    assert store.row(schema.subscriptions, kept)["deleted_at"] is None


async def test_a_failing_subscription_is_removed_at_the_threshold_and_not_before(
    store: Store, queue: PostgresQueue
) -> None:
    subscription_id = store.subscription()
    await queue.ingest([new_event(store, str(n)) for n in range(6)], WINDOW_SECONDS)
    claimed = await queue.claim("w", limit=10, lease_seconds=LEASE_SECONDS)
    start = time.time() - 10

    await queue.record([result_for(claimed[0], "w", "failed", status_code=500, started_at=start)])
    await queue.record([result_for(claimed[1], "w", "success", started_at=start + 1)])  # resets the count
    await queue.record(
        [
            result_for(claimed[2], "w", "retry", status_code=500, retry_in_seconds=60, started_at=start + 2),
            result_for(claimed[3], "w", "failed", status_code=500, started_at=start + 3),
        ]
    )
    before = store.row(schema.subscriptions, subscription_id)
    assert before["consecutive_failures"] == 2
    assert before["deleted_at"] is None
    assert before["failing_since"] == pytest.approx(start + 2)

    await queue.record([result_for(claimed[4], "w", "failed", status_code=500, started_at=start + 4)])

    after = store.row(schema.subscriptions, subscription_id)
    assert after["consecutive_failures"] == 3
    assert after["deleted_reason"] == "too_many_failures"
    assert after["deleted_at"] is not None
    # Its last claimed delivery and the retried one were pending: both are cancelled.
    assert store.states() == {"succeeded": 1, "failed": 3, "cancelled": 2}


async def test_failures_within_the_window_do_not_remove_the_subscription(store: Store) -> None:
    subscription_id = store.subscription()
    queue = await open_queue(store, FailurePolicy(threshold=2, window_seconds=3600.0))
    try:
        await queue.ingest([new_event(store, str(n)) for n in range(3)], WINDOW_SECONDS)
        claimed = await queue.claim("w", limit=10, lease_seconds=LEASE_SECONDS)
        await queue.record([result_for(c, "w", "failed", status_code=500) for c in claimed])
        recent = store.row(schema.subscriptions, subscription_id)
        assert recent["consecutive_failures"] == 3
        assert recent["deleted_at"] is None

        # The same run of failures, begun two hours ago, spans the window.
        await queue.ingest([new_event(store, "late")], WINDOW_SECONDS)
        (late,) = await queue.claim("w", limit=10, lease_seconds=LEASE_SECONDS)
        with store.engine.begin() as connection:
            connection.execute(
                update(schema.subscriptions)
                .where(schema.subscriptions.c.id == subscription_id)
                .values(failing_since=time.time() - 7200)
            )
        await queue.record([result_for(late, "w", "failed", status_code=500)])
    finally:
        await queue.close()
    assert store.row(schema.subscriptions, subscription_id)["deleted_reason"] == "too_many_failures"


async def test_concurrent_record_calls_all_commit(store: Store, queue: PostgresQueue) -> None:
    for _ in range(3):
        store.subscription()
    await queue.ingest([new_event(store, str(n)) for n in range(200)], WINDOW_SECONDS)
    claimed = await queue.claim("w", limit=1000, lease_seconds=LEASE_SECONDS)

    await asyncio.gather(*(queue.record([result_for(c, "w", "success")]) for c in claimed))

    assert store.states() == {"succeeded": 600}
    assert store.count(schema.attempts) == 600


# -- the rest of the interface --------------------------------------------------------------------------


async def test_release_hands_back_only_the_owners_leases(store: Store, queue: PostgresQueue) -> None:
    store.subscription()
    await queue.ingest([new_event(store, str(n)) for n in range(4)], WINDOW_SECONDS)
    mine = await queue.claim("me", limit=3, lease_seconds=LEASE_SECONDS)
    await queue.claim("them", limit=1, lease_seconds=LEASE_SECONDS)

    other_process = await open_queue(store)
    try:
        other_process.work_available.clear()
        assert await queue.release("me") == 3
        await asyncio.wait_for(other_process.work_available.wait(), timeout=1.0)  # released work wakes everyone
    finally:
        await other_process.close()

    again = await queue.claim("next", limit=10, lease_seconds=LEASE_SECONDS)
    assert sorted(c.delivery_id for c in again) == sorted(c.delivery_id for c in mine)


async def test_redeliver_queues_a_new_delivery_of_the_same_event(store: Store, queue: PostgresQueue) -> None:
    subscription_id = store.subscription()
    (stored,) = await queue.ingest([new_event(store)], WINDOW_SECONDS)
    (claimed,) = await queue.claim("w", limit=10, lease_seconds=LEASE_SECONDS)
    await queue.record([result_for(claimed, "w", "success")])

    new_id = await queue.redeliver(claimed.delivery_id)

    assert new_id is not None
    assert new_id != claimed.delivery_id
    row = store.row(schema.deliveries, new_id)
    assert row["event_row_id"] == stored.id
    assert row["redelivery_of"] == claimed.delivery_id
    (again,) = await queue.claim("w", limit=10, lease_seconds=LEASE_SECONDS)
    assert again.delivery_id == new_id
    assert again.object_id == claimed.object_id
    assert await queue.redeliver(10**9) is None
    store.delete_subscription(subscription_id)
    assert await queue.redeliver(claimed.delivery_id) is None


async def test_enqueue_leased_stores_one_delivery_already_leased_without_retries(
    store: Store, queue: PostgresQueue
) -> None:
    subscription_id = store.subscription()
    store.subscription()  # another matching subscription gets nothing

    claimed = await queue.enqueue_leased(new_event(store), subscription_id, "api", LEASE_SECONDS)

    assert claimed is not None
    assert claimed.subscription_id == subscription_id
    assert claimed.retries_allowed is False
    assert claimed.object_id == "42"
    assert claimed.secret == "s3cret"
    assert claimed.attempts_done == 0
    assert store.count(schema.deliveries) == 1
    assert await queue.claim("w", limit=10, lease_seconds=LEASE_SECONDS) == []
    await queue.record([result_for(claimed, "api", "success")])
    assert store.states() == {"succeeded": 1}
    store.delete_subscription(subscription_id)
    assert await queue.enqueue_leased(new_event(store), subscription_id, "api", LEASE_SECONDS) is None
    assert await queue.enqueue_leased(new_event(store), "0" * 24, "api", LEASE_SECONDS) is None


async def test_counts_due_time_and_cancel_pending(store: Store, queue: PostgresQueue) -> None:
    subscription_id = store.subscription()
    assert await queue.next_due_at() is None
    assert await queue.pending_count() == 0
    await queue.ingest([new_event(store, str(n)) for n in range(3)], WINDOW_SECONDS)
    due_at = await queue.next_due_at()
    assert due_at is not None
    assert due_at <= await queue.now()
    assert await queue.pending_count() == 3

    store.delete_subscription(subscription_id)
    assert await queue.cancel_pending(subscription_id) == 3

    assert await queue.pending_count() == 0
    assert store.states() == {"cancelled": 3}


async def test_prune_deletes_old_finished_deliveries_in_bounded_batches(store: Store, queue: PostgresQueue) -> None:
    store.subscription()
    store.subscription(event_id=OTHER_EVENT)
    await queue.ingest([new_event(store, str(n)) for n in range(5)], WINDOW_SECONDS)
    await queue.ingest([new_event(store, "unmatched", event_id="create_quote")], WINDOW_SECONDS)
    claimed = await queue.claim("w", limit=4, lease_seconds=LEASE_SECONDS)
    await queue.record([result_for(c, "w", "success") for c in claimed])
    store.age_deliveries(40 * 86400)
    await queue.ingest([new_event(store, "fresh")], WINDOW_SECONDS)
    cutoff = await queue.now() - 30 * 86400
    with store.engine.begin() as connection:  # the unmatched event is old too
        connection.execute(
            update(schema.events).where(schema.events.c.object_id == "unmatched").values(created_at=cutoff - 1)
        )

    assert await queue.prune(cutoff, batch_size=3) == 3
    assert await queue.prune(cutoff, batch_size=3) == 1
    assert await queue.prune(cutoff, batch_size=3) == 0

    assert store.states() == {"pending": 2}
    assert store.count(schema.attempts) == 0
    with store.engine.connect() as connection:
        left = sorted(connection.execute(select(schema.events.c.object_id)).scalars())
    assert left == ["4", "fresh"]


# -- wake-ups and lost connections ----------------------------------------------------------------------


async def test_an_ingest_in_one_process_wakes_the_dispatcher_of_another(store: Store, queue: PostgresQueue) -> None:
    store.subscription()
    worker = await open_queue(store)
    try:
        worker.work_available.clear()
        await queue.ingest([new_event(store)], WINDOW_SECONDS)
        await asyncio.wait_for(worker.work_available.wait(), timeout=1.0)
    finally:
        await worker.close()


async def test_the_pool_and_the_listener_recover_after_every_connection_is_killed(
    store: Store, queue: PostgresQueue
) -> None:
    store.subscription()
    await queue.ingest([new_event(store, "before")], WINDOW_SECONDS)
    (claimed,) = await queue.claim("w", limit=10, lease_seconds=LEASE_SECONDS)
    ingester = await open_queue(store)
    try:
        assert await terminate_backends(store) >= 3  # the pool's connections and the LISTEN one

        # The next operations succeed: each retries once on a fresh connection where that is safe.
        assert (await queue.now()) > 0
        await queue.record([result_for(claimed, "w", "success")])
        assert store.row(schema.deliveries, claimed.delivery_id)["state"] == "succeeded"
        assert await terminate_backends(store) >= 1
        (stored,) = await ingester.ingest([new_event(store, "after")], WINDOW_SECONDS)
        assert stored.deliveries == 1
        assert await terminate_backends(store) >= 1
        (again,) = await queue.claim("w", limit=10, lease_seconds=LEASE_SECONDS)
        assert again.object_id == "after"

        # The LISTEN connection came back too: another process's ingest still wakes this one.
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            queue.work_available.clear()
            await ingester.ingest([new_event(store, "wake")], WINDOW_SECONDS)
            try:
                await asyncio.wait_for(queue.work_available.wait(), timeout=0.5)
                break
            except TimeoutError:
                continue
        else:
            pytest.fail("the LISTEN connection never came back")
    finally:
        await ingester.close()


async def test_close_flushes_results_waiting_for_the_writer(store: Store) -> None:
    store.subscription()
    queue = await open_queue(store)
    await queue.ingest([new_event(store, str(n)) for n in range(50)], WINDOW_SECONDS)
    claimed = await queue.claim("w", limit=100, lease_seconds=LEASE_SECONDS)
    recording = [asyncio.create_task(queue.record([result_for(c, "w", "success")])) for c in claimed]
    await asyncio.sleep(0)

    await queue.close()

    await asyncio.gather(*recording)
    assert store.states() == {"succeeded": 50}


async def test_open_fails_with_a_clear_error_when_no_server_answers() -> None:
    queue = PostgresQueue(
        "postgresql://postgres:hunter2@127.0.0.1:1/nowhere", FailurePolicy(), connect_timeout_seconds=0.5
    )
    with pytest.raises(psycopg.OperationalError) as refused:
        await asyncio.wait_for(queue.open(), timeout=30)
    assert "could not connect to PostgreSQL (host 127.0.0.1 port 1 database nowhere) within 0.5 s" in str(refused.value)
    assert "hunter2" not in str(refused.value)
