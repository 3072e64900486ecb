"""The DeliveryQueue contract, checked on real SQLite and real PostgreSQL through `open_queue`."""

from __future__ import annotations

import asyncio
import os
import sqlite3
from collections.abc import AsyncIterator, Awaitable, Callable, Collection, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from hookline.domain import AttemptOutcome, AttemptResult, ClaimedDelivery, NewEvent
from hookline.store import urls
from hookline.store.queue import DeliveryQueue, FailurePolicy, LeaseOffer
from hookline.store.queues import open_queue
from hookline.store.sqlite_queue import DispatcherAlreadyRunning, SqliteQueue, acquire_dispatcher_lock
from tests.integration.seed import Seeder

WINDOW_SECONDS = 3600.0
LEASE_SECONDS = 60.0
OWNER = "worker-a"
OTHER_OWNER = "worker-b"

OpenQueue = Callable[..., Awaitable[DeliveryQueue]]


@pytest.fixture
def seeder(database_url: str) -> Iterator[Seeder]:
    """Fixture rows and state reads on the test's database."""
    seeder = Seeder(database_url)
    yield seeder
    seeder.close()


@pytest.fixture
async def open_queues(database_url: str) -> AsyncIterator[OpenQueue]:
    """Opens queues on the test's database (several may share it), closing them all afterwards."""
    opened: list[DeliveryQueue] = []

    async def open_one(policy: FailurePolicy | None = None) -> DeliveryQueue:
        queue = open_queue(database_url, policy or FailurePolicy())
        await queue.open()
        opened.append(queue)
        return queue

    yield open_one
    for queue in opened:
        await queue.close()


@pytest.fixture
async def queue(open_queues: OpenQueue) -> DeliveryQueue:
    """An open queue with the default failure policy."""
    return await open_queues()


@dataclass
class Tenant:
    """A deployment with one user."""

    deployment_id: int
    user_id: int


@pytest.fixture
def tenant(seeder: Seeder) -> Tenant:
    """A deployment with one user."""
    deployment_id = seeder.deployment(standard_webhooks=True)
    return Tenant(deployment_id, seeder.user(deployment_id))


def new_event(
    tenant: Tenant,
    event_id: str = "create_task",
    object_id: str = "7",
    **fields: object,
) -> NewEvent:
    """An event of the tenant's deployment."""
    return NewEvent(
        deployment_id=tenant.deployment_id,
        event_id=event_id,
        object_id=object_id,
        resource_url=f"http://platform.test/api/v0/tasks/{object_id}.json",
        **fields,  # type: ignore[arg-type]
    )


def result_for(
    delivery: ClaimedDelivery,
    outcome: AttemptOutcome,
    *,
    owner: str = OWNER,
    started_at: float,
    status_code: int | None = 500,
    retry_in_seconds: float | None = None,
) -> AttemptResult:
    """What a dispatcher reports after one attempt of `delivery`."""
    return AttemptResult(
        delivery_id=delivery.delivery_id,
        subscription_id=delivery.subscription_id,
        lease_owner=owner,
        attempt_number=delivery.attempts_done + 1,
        started_at=started_at,
        duration_ms=12.5,
        status_code=status_code,
        response_excerpt="ok" if outcome == "success" else "nope",
        error=None if outcome == "success" else f"HTTP {status_code}",
        error_class=None if outcome == "success" else "HTTPStatus",
        outcome=outcome,
        retry_in_seconds=retry_in_seconds,
    )


async def claim_all(queue: DeliveryQueue, owner: str = OWNER, **options: float) -> list[ClaimedDelivery]:
    """Everything due, leased to `owner`."""
    return await queue.claim(owner, 10_000, options.get("lease_seconds", LEASE_SECONDS))


# --- Ingestion and fan-out -------------------------------------------------------------------------------


async def test_ingest_fans_out_to_the_live_subscriptions_of_that_event_and_deployment(
    queue: DeliveryQueue, seeder: Seeder, tenant: Tenant
) -> None:
    first = seeder.subscription(tenant.deployment_id, tenant.user_id, "create_task")
    second = seeder.subscription(tenant.deployment_id, tenant.user_id, "create_task")
    seeder.subscription(tenant.deployment_id, tenant.user_id, "update_task")
    deleted = seeder.subscription(tenant.deployment_id, tenant.user_id, "create_task")
    seeder.delete_subscription(deleted)
    elsewhere = seeder.deployment()
    seeder.subscription(elsewhere, seeder.user(elsewhere), "create_task")

    (stored,) = await queue.ingest([new_event(tenant, object_id="42")], WINDOW_SECONDS)

    assert (stored.event_id, stored.object_id, stored.deliveries, stored.duplicate) == ("create_task", "42", 2, False)
    rows = seeder.deliveries()
    assert {row["subscription_id"] for row in rows} == {first, second}
    assert {(row["state"], row["deployment_id"], row["event_row_id"]) for row in rows} == {
        ("pending", tenant.deployment_id, stored.id)
    }
    claimed = await claim_all(queue)
    assert {delivery.subscription_id for delivery in claimed} == {first, second}
    delivery = claimed[0]
    assert (delivery.event_id, delivery.object_id, delivery.resource_url) == (
        "create_task",
        "42",
        "http://platform.test/api/v0/tasks/42.json",
    )
    assert (delivery.deployment_id, delivery.attempts_done, delivery.standard_webhooks, delivery.retries_allowed) == (
        tenant.deployment_id,
        0,
        True,
        True,
    )
    assert delivery.trigger_url == "http://127.0.0.1:9/hook"
    assert delivery.created_at == pytest.approx(stored.created_at)


async def test_a_claimed_delivery_carries_its_subscriptions_content_type_and_secret(
    queue: DeliveryQueue, seeder: Seeder, tenant: Tenant
) -> None:
    seeder.subscription(
        tenant.deployment_id,
        tenant.user_id,
        trigger_url="http://127.0.0.1:8765/form",
        content_type="application/x-www-form-urlencoded",
        secret="s3cret",
    )
    await queue.ingest([new_event(tenant)], WINDOW_SECONDS)

    (delivery,) = await claim_all(queue)

    assert (delivery.trigger_url, delivery.content_type, delivery.secret) == (
        "http://127.0.0.1:8765/form",
        "application/x-www-form-urlencoded",
        "s3cret",
    )


async def test_user_ids_limit_the_fan_out_to_subscriptions_those_users_own(
    queue: DeliveryQueue, seeder: Seeder, tenant: Tenant
) -> None:
    other_user = seeder.user(tenant.deployment_id)
    third_user = seeder.user(tenant.deployment_id)
    owned = seeder.subscription(tenant.deployment_id, tenant.user_id)
    seeder.subscription(tenant.deployment_id, other_user)
    also_owned = seeder.subscription(tenant.deployment_id, third_user)

    limited, unrestricted, nobody = await queue.ingest(
        [
            new_event(tenant, object_id="1", user_ids=(tenant.user_id, third_user)),
            new_event(tenant, object_id="2"),
            new_event(tenant, object_id="3", user_ids=()),
        ],
        WINDOW_SECONDS,
    )

    assert (limited.deliveries, unrestricted.deliveries, nobody.deliveries) == (2, 3, 0)
    assert {row["subscription_id"] for row in seeder.deliveries(event_row_id=limited.id)} == {owned, also_owned}


async def test_only_subscription_id_narrows_the_fan_out_to_that_subscription(
    queue: DeliveryQueue, seeder: Seeder, tenant: Tenant
) -> None:
    seeder.subscription(tenant.deployment_id, tenant.user_id)
    chosen = seeder.subscription(tenant.deployment_id, tenant.user_id)
    other_event = seeder.subscription(tenant.deployment_id, tenant.user_id, "update_task")

    chosen_only, wrong_event = await queue.ingest(
        [
            new_event(tenant, only_subscription_id=chosen),
            new_event(tenant, only_subscription_id=other_event),
        ],
        WINDOW_SECONDS,
    )

    assert (chosen_only.deliveries, wrong_event.deliveries) == (1, 0)
    assert [row["subscription_id"] for row in seeder.deliveries()] == [chosen]


async def test_a_batch_answers_one_stored_event_per_input_in_order_and_wakes_the_dispatcher(
    queue: DeliveryQueue, seeder: Seeder, tenant: Tenant
) -> None:
    seeder.subscription(tenant.deployment_id, tenant.user_id)
    queue.work_available.clear()

    stored = await queue.ingest([new_event(tenant, object_id=str(number)) for number in range(50)], WINDOW_SECONDS)

    assert [event.object_id for event in stored] == [str(number) for number in range(50)]
    assert len({event.id for event in stored}) == 50
    assert all(event.deliveries == 1 for event in stored)
    assert queue.work_available.is_set()
    assert await queue.pending_count() == 50


async def test_a_repeated_idempotency_key_within_the_window_answers_the_original_and_stores_nothing(
    queue: DeliveryQueue, seeder: Seeder, tenant: Tenant
) -> None:
    seeder.subscription(tenant.deployment_id, tenant.user_id)
    seeder.subscription(tenant.deployment_id, tenant.user_id)
    (original,) = await queue.ingest([new_event(tenant, object_id="1", idempotency_key="k-1")], WINDOW_SECONDS)

    repeat, repeat_in_same_batch = await queue.ingest(
        [
            new_event(tenant, object_id="1", idempotency_key="k-1"),
            new_event(tenant, object_id="1", idempotency_key="k-1"),
        ],
        WINDOW_SECONDS,
    )

    for answer in (repeat, repeat_in_same_batch):
        assert answer.duplicate
        assert (answer.id, answer.deliveries, answer.created_at) == (original.id, 2, original.created_at)
    assert seeder.count("events") == 1
    assert seeder.count("deliveries") == 2


async def test_concurrent_ingests_each_answer_their_own_events_in_order(
    queue: DeliveryQueue, seeder: Seeder, tenant: Tenant
) -> None:
    seeder.subscription(tenant.deployment_id, tenant.user_id)
    batches = [
        [new_event(tenant, object_id=f"{batch}-{index}") for index in range(batch % 3 + 1)] for batch in range(12)
    ]

    answers = await asyncio.gather(*(queue.ingest(batch, WINDOW_SECONDS) for batch in batches))

    for batch, stored in zip(batches, answers, strict=True):
        assert [event.object_id for event in stored] == [event.object_id for event in batch]
        assert all(event.deliveries == 1 and not event.duplicate for event in stored)
    assert len(seeder.deliveries()) == sum(len(batch) for batch in batches)


async def test_concurrent_ingests_with_one_idempotency_key_store_one_event(
    queue: DeliveryQueue, seeder: Seeder, tenant: Tenant
) -> None:
    seeder.subscription(tenant.deployment_id, tenant.user_id)

    answers = await asyncio.gather(
        *(queue.ingest([new_event(tenant, idempotency_key="only-once")], WINDOW_SECONDS) for _ in range(8))
    )

    assert len({stored.id for [stored] in answers}) == 1
    assert sorted(stored.duplicate for [stored] in answers) == [False] + [True] * 7
    assert len(seeder.deliveries()) == 1


async def test_idempotency_keys_belong_to_one_deployment(queue: DeliveryQueue, seeder: Seeder, tenant: Tenant) -> None:
    other_deployment = seeder.deployment()
    other = Tenant(other_deployment, seeder.user(other_deployment))
    seeder.subscription(tenant.deployment_id, tenant.user_id)
    seeder.subscription(other.deployment_id, other.user_id)

    mine, theirs = await queue.ingest(
        [new_event(tenant, idempotency_key="same"), new_event(other, idempotency_key="same")], WINDOW_SECONDS
    )

    assert not mine.duplicate
    assert not theirs.duplicate
    assert mine.id != theirs.id
    assert seeder.count("deliveries") == 2


async def test_an_idempotency_key_older_than_the_window_is_a_new_event_and_moves_to_it(
    queue: DeliveryQueue, seeder: Seeder, tenant: Tenant
) -> None:
    seeder.subscription(tenant.deployment_id, tenant.user_id)
    (first,) = await queue.ingest([new_event(tenant, idempotency_key="k")], WINDOW_SECONDS)
    await asyncio.sleep(0.01)

    (second,) = await queue.ingest([new_event(tenant, idempotency_key="k")], 0.0)
    (third,) = await queue.ingest([new_event(tenant, idempotency_key="k")], WINDOW_SECONDS)

    assert not second.duplicate
    assert second.id != first.id
    assert second.deliveries == 1
    assert third.duplicate
    assert third.id == second.id
    assert seeder.count("deliveries") == 2


# --- Claims and leases -----------------------------------------------------------------------------------


async def test_claim_takes_at_most_the_limit_oldest_due_first(
    queue: DeliveryQueue, seeder: Seeder, tenant: Tenant
) -> None:
    seeder.subscription(tenant.deployment_id, tenant.user_id)
    for number in range(5):
        await queue.ingest([new_event(tenant, object_id=str(number))], WINDOW_SECONDS)

    first_two = await queue.claim(OWNER, 2, LEASE_SECONDS)
    next_two = await queue.claim(OWNER, 2, LEASE_SECONDS)
    rest = await queue.claim(OWNER, 2, LEASE_SECONDS)

    assert [delivery.object_id for delivery in first_two + next_two + rest] == ["0", "1", "2", "3", "4"]
    assert await queue.claim(OWNER, 2, LEASE_SECONDS) == []


async def test_claim_skips_the_excluded_subscriptions(queue: DeliveryQueue, seeder: Seeder, tenant: Tenant) -> None:
    busy = seeder.subscription(tenant.deployment_id, tenant.user_id)
    idle = seeder.subscription(tenant.deployment_id, tenant.user_id)
    await queue.ingest([new_event(tenant, object_id=str(number)) for number in range(3)], WINDOW_SECONDS)

    claimed = await queue.claim(OWNER, 100, LEASE_SECONDS, exclude_subscription_ids={busy})

    assert [delivery.subscription_id for delivery in claimed] == [idle] * 3
    assert {delivery.subscription_id for delivery in await claim_all(queue)} == {busy}


async def test_ingest_and_lease_leases_the_new_deliveries_in_the_same_commit_within_the_offer(
    queue: DeliveryQueue, seeder: Seeder, tenant: Tenant
) -> None:
    subscriptions = [seeder.subscription(tenant.deployment_id, tenant.user_id) for _ in range(3)]
    queue.work_available.clear()

    [stored], leased = await queue.ingest_and_lease([new_event(tenant)], WINDOW_SECONDS, LeaseOffer(OWNER, 10, 600.0))

    assert stored.deliveries == 3
    assert sorted(delivery.subscription_id for delivery in leased) == sorted(subscriptions)
    assert {row["lease_owner"] for row in seeder.deliveries()} == {OWNER}
    assert not queue.work_available.is_set()  # all of it leased: no other dispatcher needs to wake
    assert await claim_all(queue, OTHER_OWNER) == []


async def test_ingest_and_lease_leaves_the_rest_beyond_the_limit_or_excluded_and_wakes_for_it(
    queue: DeliveryQueue, seeder: Seeder, tenant: Tenant
) -> None:
    busy = seeder.subscription(tenant.deployment_id, tenant.user_id)
    idle = seeder.subscription(tenant.deployment_id, tenant.user_id)
    offer = LeaseOffer(OWNER, 2, 600.0, excluded_subscription_ids=(busy,))
    queue.work_available.clear()

    stored, leased = await queue.ingest_and_lease(
        [new_event(tenant, object_id=str(number)) for number in range(3)], WINDOW_SECONDS, offer
    )

    assert [event.deliveries for event in stored] == [2, 2, 2]
    assert [(delivery.subscription_id, delivery.object_id) for delivery in leased] == [(idle, "0"), (idle, "1")]
    assert queue.work_available.is_set()
    left = await claim_all(queue, OTHER_OWNER)
    assert sorted((delivery.subscription_id, delivery.object_id) for delivery in left) == sorted(
        [(busy, "0"), (busy, "1"), (busy, "2"), (idle, "2")]
    )


async def test_ingest_and_lease_of_a_duplicate_leases_nothing(
    queue: DeliveryQueue, seeder: Seeder, tenant: Tenant
) -> None:
    seeder.subscription(tenant.deployment_id, tenant.user_id)
    [original] = await queue.ingest([new_event(tenant, idempotency_key="once")], WINDOW_SECONDS)
    await claim_all(queue)

    [again], leased = await queue.ingest_and_lease(
        [new_event(tenant, idempotency_key="once")], WINDOW_SECONDS, LeaseOffer(OTHER_OWNER, 10, 600.0)
    )

    assert (again.id, again.duplicate) == (original.id, True)
    assert leased == []
    assert {row["lease_owner"] for row in seeder.deliveries()} == {OWNER}


async def test_a_leased_delivery_is_not_claimed_again_until_its_lease_expires(
    queue: DeliveryQueue, seeder: Seeder, tenant: Tenant
) -> None:
    seeder.subscription(tenant.deployment_id, tenant.user_id)
    await queue.ingest([new_event(tenant)], WINDOW_SECONDS)

    (leased,) = await claim_all(queue, lease_seconds=0.3)
    assert await claim_all(queue, OTHER_OWNER) == []
    assert await queue.pending_count() == 1
    await asyncio.sleep(0.4)
    (reclaimed,) = await claim_all(queue, OTHER_OWNER)

    assert reclaimed.delivery_id == leased.delivery_id
    assert seeder.delivery(leased.delivery_id)["lease_owner"] == OTHER_OWNER  # type: ignore[index]


async def test_the_result_of_a_lost_lease_is_ignored(queue: DeliveryQueue, seeder: Seeder, tenant: Tenant) -> None:
    subscription_id = seeder.subscription(tenant.deployment_id, tenant.user_id)
    await queue.ingest([new_event(tenant)], WINDOW_SECONDS)
    (stale,) = await claim_all(queue, lease_seconds=0.2)
    await asyncio.sleep(0.3)
    (current,) = await claim_all(queue, OTHER_OWNER)
    now = await queue.now()

    await queue.record([result_for(stale, "failed", owner=OWNER, started_at=now)])
    assert seeder.delivery(stale.delivery_id)["state"] == "pending"  # type: ignore[index]
    assert seeder.attempts(stale.delivery_id) == []
    await queue.record([result_for(current, "success", owner=OTHER_OWNER, started_at=now, status_code=200)])

    row = seeder.delivery(current.delivery_id)
    assert row is not None
    assert (row["state"], row["attempts"]) == ("succeeded", 1)
    assert [attempt["outcome"] for attempt in seeder.attempts(current.delivery_id)] == ["success"]
    assert seeder.subscription_row(subscription_id)["consecutive_failures"] == 0


async def test_claim_cancels_deliveries_whose_subscription_was_deleted_meanwhile(
    queue: DeliveryQueue, seeder: Seeder, tenant: Tenant
) -> None:
    kept = seeder.subscription(tenant.deployment_id, tenant.user_id)
    removed = seeder.subscription(tenant.deployment_id, tenant.user_id)
    await queue.ingest([new_event(tenant)], WINDOW_SECONDS)
    seeder.delete_subscription(removed)

    claimed = await claim_all(queue)

    assert [delivery.subscription_id for delivery in claimed] == [kept]
    (cancelled,) = seeder.deliveries(subscription_id=removed)
    assert cancelled["state"] == "cancelled"
    assert cancelled["finished_at"] is not None
    assert await queue.pending_count() == 1


async def test_two_claimers_at_once_never_lease_the_same_delivery(
    open_queues: OpenQueue, seeder: Seeder, tenant: Tenant
) -> None:
    for _ in range(4):
        seeder.subscription(tenant.deployment_id, tenant.user_id)
    first, second = await open_queues(), await open_queues()
    await first.ingest([new_event(tenant, object_id=str(number)) for number in range(100)], WINDOW_SECONDS)

    batches = await asyncio.gather(
        *((first if number % 2 else second).claim(f"worker-{number % 2}", 30, LEASE_SECONDS) for number in range(20))
    )

    claimed_ids = [delivery.delivery_id for batch in batches for delivery in batch]
    assert len(claimed_ids) == 400
    assert len(set(claimed_ids)) == 400


async def test_release_hands_an_owners_leases_back_at_once(
    queue: DeliveryQueue, seeder: Seeder, tenant: Tenant
) -> None:
    seeder.subscription(tenant.deployment_id, tenant.user_id)
    await queue.ingest([new_event(tenant, object_id=str(number)) for number in range(6)], WINDOW_SECONDS)
    mine = await queue.claim(OWNER, 4, 3600.0)
    theirs = await queue.claim(OTHER_OWNER, 2, 3600.0)

    released = await queue.release(OWNER)
    reclaimed = await claim_all(queue, "worker-c")

    assert released == 4
    assert {delivery.delivery_id for delivery in reclaimed} == {delivery.delivery_id for delivery in mine}
    assert await queue.release("nobody") == 0
    assert {row["lease_owner"] for row in seeder.deliveries()} == {"worker-c", OTHER_OWNER}
    assert len(theirs) == 2


# --- Results ---------------------------------------------------------------------------------------------


async def test_a_success_finishes_the_delivery_and_logs_the_attempt(
    queue: DeliveryQueue, seeder: Seeder, tenant: Tenant
) -> None:
    subscription_id = seeder.subscription(tenant.deployment_id, tenant.user_id)
    await queue.ingest([new_event(tenant)], WINDOW_SECONDS)
    (delivery,) = await claim_all(queue)
    started_at = await queue.now()

    await queue.record([result_for(delivery, "success", started_at=started_at, status_code=204)])

    row = seeder.delivery(delivery.delivery_id)
    assert row is not None
    assert (row["state"], row["attempts"], row["last_status_code"], row["last_error"]) == ("succeeded", 1, 204, None)
    assert row["finished_at"] is not None
    (attempt,) = seeder.attempts(delivery.delivery_id)
    assert (attempt["attempt_number"], attempt["status_code"], attempt["outcome"], attempt["response_excerpt"]) == (
        1,
        204,
        "success",
        "ok",
    )
    assert attempt["started_at"] == pytest.approx(started_at)
    subscription = seeder.subscription_row(subscription_id)
    assert (subscription["last_status_code"], subscription["consecutive_failures"]) == (204, 0)
    assert subscription["last_attempt_at"] == pytest.approx(started_at)
    assert await queue.pending_count() == 0
    assert await queue.next_due_at() is None


async def test_a_retry_comes_due_again_after_its_delay_with_the_attempt_counted(
    queue: DeliveryQueue, seeder: Seeder, tenant: Tenant
) -> None:
    subscription_id = seeder.subscription(tenant.deployment_id, tenant.user_id)
    await queue.ingest([new_event(tenant, object_id="late"), new_event(tenant, object_id="soon")], WINDOW_SECONDS)
    late, soon = await claim_all(queue)
    now = await queue.now()

    await queue.record(
        [
            result_for(late, "retry", started_at=now, status_code=503, retry_in_seconds=3600.0),
            result_for(soon, "retry", started_at=now, status_code=503, retry_in_seconds=0.0),
        ]
    )

    (again,) = await claim_all(queue)
    assert (again.delivery_id, again.attempts_done) == (soon.delivery_id, 1)
    row = seeder.delivery(late.delivery_id)
    assert row is not None
    assert (row["state"], row["attempts"], row["last_status_code"], row["finished_at"]) == ("pending", 1, 503, None)
    assert row["next_attempt_at"] == pytest.approx(now + 3600.0, abs=5.0)
    subscription = seeder.subscription_row(subscription_id)
    assert subscription["consecutive_failures"] == 2
    assert subscription["failing_since"] == pytest.approx(now)
    assert subscription["deleted_at"] is None


async def test_a_failed_delivery_is_finished_and_not_claimed_again(
    queue: DeliveryQueue, seeder: Seeder, tenant: Tenant
) -> None:
    seeder.subscription(tenant.deployment_id, tenant.user_id)
    await queue.ingest([new_event(tenant)], WINDOW_SECONDS)
    (delivery,) = await claim_all(queue)

    await queue.record([result_for(delivery, "failed", started_at=await queue.now(), status_code=400)])

    row = seeder.delivery(delivery.delivery_id)
    assert row is not None
    assert (row["state"], row["last_status_code"], row["last_error"]) == ("failed", 400, "HTTP 400")
    assert row["finished_at"] is not None
    assert await claim_all(queue) == []


async def test_gone_removes_the_subscription_and_cancels_its_pending_deliveries(
    queue: DeliveryQueue, seeder: Seeder, tenant: Tenant
) -> None:
    gone = seeder.subscription(tenant.deployment_id, tenant.user_id)
    healthy = seeder.subscription(tenant.deployment_id, tenant.user_id)
    await queue.ingest([new_event(tenant, object_id=str(number)) for number in range(3)], WINDOW_SECONDS)
    answered_410 = next(delivery for delivery in await claim_all(queue) if delivery.subscription_id == gone)

    await queue.record([result_for(answered_410, "gone", started_at=await queue.now(), status_code=410)])

    subscription = seeder.subscription_row(gone)
    assert subscription["deleted_reason"] == "gone"
    assert subscription["deleted_at"] is not None
    assert seeder.delivery(answered_410.delivery_id)["state"] in ("failed", "cancelled")  # type: ignore[index]
    assert len(seeder.deliveries(subscription_id=gone, state="cancelled")) == 2
    assert seeder.attempts(answered_410.delivery_id)[0]["status_code"] == 410
    assert seeder.subscription_row(healthy)["deleted_at"] is None
    assert len(seeder.deliveries(subscription_id=healthy, state="pending")) == 3


# --- Removing subscriptions that keep failing ------------------------------------------------------------


async def fail_once(queue: DeliveryQueue, *, started_at: float | None = None, exclude: Collection[str] = ()) -> None:
    """Claim the oldest due delivery and record a failed attempt of it, to be retried at once."""
    (delivery,) = await queue.claim(OWNER, 1, LEASE_SECONDS, exclude_subscription_ids=exclude)
    when = started_at if started_at is not None else await queue.now()
    await queue.record([result_for(delivery, "retry", started_at=when, retry_in_seconds=0.0)])


async def test_a_failing_subscription_is_removed_exactly_at_the_threshold(
    open_queues: OpenQueue, seeder: Seeder, tenant: Tenant
) -> None:
    queue = await open_queues(FailurePolicy(threshold=3, window_seconds=0.0))
    subscription_id = seeder.subscription(tenant.deployment_id, tenant.user_id)
    await queue.ingest([new_event(tenant, object_id=str(number)) for number in range(4)], WINDOW_SECONDS)

    for expected_failures in (1, 2):
        await fail_once(queue)
        subscription = seeder.subscription_row(subscription_id)
        assert (subscription["consecutive_failures"], subscription["deleted_at"]) == (expected_failures, None)
    await fail_once(queue)

    subscription = seeder.subscription_row(subscription_id)
    assert subscription["deleted_reason"] == "too_many_failures"
    assert subscription["deleted_at"] is not None
    assert await queue.pending_count() == 0
    assert len(seeder.deliveries(subscription_id=subscription_id, state="cancelled")) == 4


async def test_a_failing_subscription_is_kept_until_its_failures_span_the_window(
    open_queues: OpenQueue, seeder: Seeder, tenant: Tenant
) -> None:
    queue = await open_queues(FailurePolicy(threshold=2, window_seconds=3600.0))
    recent = seeder.subscription(tenant.deployment_id, tenant.user_id, "create_task")
    long_failing = seeder.subscription(tenant.deployment_id, tenant.user_id, "update_task")
    await queue.ingest([new_event(tenant, "create_task")], WINDOW_SECONDS)
    for _ in range(3):
        await fail_once(queue)
    await queue.ingest([new_event(tenant, "update_task")], WINDOW_SECONDS)
    now = await queue.now()

    await fail_once(queue, started_at=now - 3601.0, exclude={recent})
    assert seeder.subscription_row(long_failing)["deleted_at"] is None  # the window is spanned, the count is not
    await fail_once(queue, exclude={recent})

    assert seeder.subscription_row(recent)["consecutive_failures"] == 3
    assert seeder.subscription_row(recent)["deleted_at"] is None
    assert seeder.subscription_row(long_failing)["deleted_reason"] == "too_many_failures"


async def test_a_success_resets_the_failure_count(open_queues: OpenQueue, seeder: Seeder, tenant: Tenant) -> None:
    queue = await open_queues(FailurePolicy(threshold=3, window_seconds=0.0))
    subscription_id = seeder.subscription(tenant.deployment_id, tenant.user_id)
    await queue.ingest([new_event(tenant)], WINDOW_SECONDS)
    for _ in range(2):
        await fail_once(queue)
    (delivery,) = await claim_all(queue)

    await queue.record([result_for(delivery, "success", started_at=await queue.now(), status_code=200)])
    await queue.ingest([new_event(tenant)], WINDOW_SECONDS)
    for _ in range(2):
        await fail_once(queue)

    subscription = seeder.subscription_row(subscription_id)
    assert (subscription["consecutive_failures"], subscription["deleted_at"]) == (2, None)


async def test_failures_in_one_batch_count_one_each(open_queues: OpenQueue, seeder: Seeder, tenant: Tenant) -> None:
    queue = await open_queues(FailurePolicy(threshold=3, window_seconds=0.0))
    subscription_id = seeder.subscription(tenant.deployment_id, tenant.user_id)
    await queue.ingest([new_event(tenant, object_id=str(number)) for number in range(5)], WINDOW_SECONDS)
    claimed = await claim_all(queue)
    now = await queue.now()

    await queue.record([result_for(delivery, "failed", started_at=now) for delivery in claimed[:2]])
    assert seeder.subscription_row(subscription_id)["consecutive_failures"] == 2
    await queue.record([result_for(delivery, "failed", started_at=now) for delivery in claimed[2:]])

    subscription = seeder.subscription_row(subscription_id)
    assert subscription["deleted_reason"] == "too_many_failures"
    assert subscription["consecutive_failures"] == 5


# --- Redelivery and synchronous dispatch -----------------------------------------------------------------


async def test_redeliver_queues_the_same_event_again_to_a_live_subscription(
    queue: DeliveryQueue, seeder: Seeder, tenant: Tenant
) -> None:
    subscription_id = seeder.subscription(tenant.deployment_id, tenant.user_id)
    await queue.ingest([new_event(tenant, object_id="99")], WINDOW_SECONDS)
    (delivery,) = await claim_all(queue)
    await queue.record([result_for(delivery, "success", started_at=await queue.now(), status_code=200)])
    queue.work_available.clear()

    redelivery_id = await queue.redeliver(delivery.delivery_id)

    assert redelivery_id is not None
    assert redelivery_id != delivery.delivery_id
    assert queue.work_available.is_set()
    (again,) = await claim_all(queue)
    assert (again.delivery_id, again.subscription_id, again.object_id, again.attempts_done) == (
        redelivery_id,
        subscription_id,
        "99",
        0,
    )
    assert seeder.delivery(redelivery_id)["redelivery_of"] == delivery.delivery_id  # type: ignore[index]
    assert await queue.redeliver(10_000_000) is None
    seeder.delete_subscription(subscription_id)
    assert await queue.redeliver(delivery.delivery_id) is None


async def test_enqueue_leased_stores_one_delivery_already_leased_and_without_retries(
    queue: DeliveryQueue, seeder: Seeder, tenant: Tenant
) -> None:
    subscription_id = seeder.subscription(tenant.deployment_id, tenant.user_id)
    seeder.subscription(tenant.deployment_id, tenant.user_id)

    leased = await queue.enqueue_leased(new_event(tenant, object_id="5"), subscription_id, OWNER, LEASE_SECONDS)

    assert leased is not None
    assert (leased.subscription_id, leased.object_id, leased.attempts_done, leased.retries_allowed) == (
        subscription_id,
        "5",
        0,
        False,
    )
    assert leased.standard_webhooks
    assert seeder.count("deliveries") == 1
    assert await claim_all(queue, OTHER_OWNER) == []
    await queue.record([result_for(leased, "retry", started_at=await queue.now(), retry_in_seconds=0.0)])
    row = seeder.delivery(leased.delivery_id)
    assert row is not None
    assert (row["state"], row["attempts"]) == ("failed", 1)
    assert await claim_all(queue, OTHER_OWNER) == []


async def test_enqueue_leased_answers_none_for_a_deleted_or_unknown_subscription(
    queue: DeliveryQueue, seeder: Seeder, tenant: Tenant
) -> None:
    deleted = seeder.subscription(tenant.deployment_id, tenant.user_id)
    seeder.delete_subscription(deleted)

    assert await queue.enqueue_leased(new_event(tenant), deleted, OWNER, LEASE_SECONDS) is None
    assert await queue.enqueue_leased(new_event(tenant), "0" * 24, OWNER, LEASE_SECONDS) is None
    assert seeder.count("deliveries") == 0


# --- Housekeeping ----------------------------------------------------------------------------------------


async def test_cancel_pending_cancels_only_that_subscriptions_pending_deliveries(
    queue: DeliveryQueue, seeder: Seeder, tenant: Tenant
) -> None:
    deleted = seeder.subscription(tenant.deployment_id, tenant.user_id)
    kept = seeder.subscription(tenant.deployment_id, tenant.user_id)
    await queue.ingest([new_event(tenant, object_id=str(number)) for number in range(3)], WINDOW_SECONDS)

    cancelled = await queue.cancel_pending(deleted)

    assert cancelled == 3
    assert {delivery.subscription_id for delivery in await claim_all(queue)} == {kept}
    assert await queue.cancel_pending(deleted) == 0


async def test_next_due_at_and_pending_count_follow_the_queue(
    queue: DeliveryQueue, seeder: Seeder, tenant: Tenant
) -> None:
    seeder.subscription(tenant.deployment_id, tenant.user_id)
    assert (await queue.next_due_at(), await queue.seconds_until_due(), await queue.pending_count()) == (None, None, 0)
    before = await queue.now()

    await queue.ingest([new_event(tenant), new_event(tenant)], WINDOW_SECONDS)
    due_at = await queue.next_due_at()
    await claim_all(queue, lease_seconds=600.0)

    assert due_at is not None
    assert before - 1.0 <= due_at <= await queue.now() + 1.0
    leased_until = await queue.next_due_at()
    assert leased_until is not None
    assert leased_until == pytest.approx(before + 600.0, abs=5.0)
    assert await queue.seconds_until_due() == pytest.approx(600.0, abs=5.0)
    assert await queue.pending_count() == 2


async def test_prune_deletes_old_finished_deliveries_in_bounded_batches(
    queue: DeliveryQueue, seeder: Seeder, tenant: Tenant
) -> None:
    seeder.subscription(tenant.deployment_id, tenant.user_id)
    seeder.subscription(tenant.deployment_id, tenant.user_id, "update_task")
    finished = await queue.ingest([new_event(tenant, object_id=str(number)) for number in range(10)], WINDOW_SECONDS)
    (still_pending,) = await queue.ingest([new_event(tenant, "update_task")], WINDOW_SECONDS)
    (never_delivered,) = await queue.ingest([new_event(tenant, "create_company")], WINDOW_SECONDS)
    claimed = await queue.claim(OWNER, 10, LEASE_SECONDS, exclude_subscription_ids=())
    now = await queue.now()
    await queue.record([result_for(delivery, "success", started_at=now, status_code=200) for delivery in claimed])
    assert {delivery.object_id for delivery in claimed} == {event.object_id for event in finished}
    cutoff = await queue.now() + 1.0

    assert await queue.prune(now - 3600.0, 100) == 0
    assert [await queue.prune(cutoff, 4) for _ in range(4)] == [4, 4, 2, 0]

    assert seeder.count("attempts") == 0
    (remaining,) = seeder.deliveries()
    assert (remaining["event_row_id"], remaining["state"]) == (still_pending.id, "pending")
    assert seeder.count("events") == 1
    assert never_delivered.deliveries == 0


# --- SQLite only: one dispatcher process, group commit ---------------------------------------------------


async def test_a_second_sqlite_dispatcher_is_refused_with_a_clear_message(tmp_path: Path) -> None:
    database_path = tmp_path / "hookline.db"

    with acquire_dispatcher_lock(database_path):
        with pytest.raises(DispatcherAlreadyRunning) as refused, acquire_dispatcher_lock(database_path):
            pass  # pragma: no cover - never entered
        assert str(refused.value) == (
            f"another Hookline dispatcher is already running on {database_path} (pid {os.getpid()}); "
            "SQLite allows one dispatcher process: stop it, or use PostgreSQL to run several"
        )
    with acquire_dispatcher_lock(database_path):
        pass  # released on exit: the next dispatcher may start


async def test_release_all_hands_back_every_lease_of_a_crashed_sqlite_dispatcher(sqlite_url: str) -> None:
    seeder = Seeder(sqlite_url)
    deployment_id = seeder.deployment()
    tenant = Tenant(deployment_id, seeder.user(deployment_id))
    seeder.subscription(tenant.deployment_id, tenant.user_id)
    crashed = SqliteQueue(urls.sqlite_path(sqlite_url), FailurePolicy())
    await crashed.open()
    await crashed.ingest([new_event(tenant, object_id=str(number)) for number in range(5)], WINDOW_SECONDS)
    await crashed.claim("crashed-worker", 3, 3600.0)
    await crashed.close()
    restarted = SqliteQueue(urls.sqlite_path(sqlite_url), FailurePolicy())
    await restarted.open()
    try:
        restarted.work_available.clear()

        released = await restarted.release_all()

        assert released == 3
        assert restarted.work_available.is_set()
        assert len(await claim_all(restarted)) == 5
    finally:
        await restarted.close()
        seeder.close()


async def test_a_failing_job_fails_alone_and_the_jobs_committed_with_it_stand(sqlite_url: str) -> None:
    seeder = Seeder(sqlite_url)
    deployment_id = seeder.deployment()
    tenant = Tenant(deployment_id, seeder.user(deployment_id))
    seeder.subscription(tenant.deployment_id, tenant.user_id)
    queue = SqliteQueue(urls.sqlite_path(sqlite_url), FailurePolicy())
    await queue.open()
    try:
        no_such_deployment = NewEvent(10_000, "create_task", "1", None)

        outcomes = await asyncio.gather(
            queue.ingest([new_event(tenant, object_id="before")], WINDOW_SECONDS),
            queue.ingest([new_event(tenant, object_id="x"), no_such_deployment], WINDOW_SECONDS),
            queue.ingest([new_event(tenant, object_id="after")], WINDOW_SECONDS),
            return_exceptions=True,
        )

        assert isinstance(outcomes[1], sqlite3.IntegrityError)
        assert sorted(delivery.object_id for delivery in await claim_all(queue)) == ["after", "before"]
        assert seeder.count("events") == 2
    finally:
        await queue.close()
        seeder.close()


async def test_closing_the_sqlite_queue_commits_what_was_already_submitted(sqlite_url: str) -> None:
    seeder = Seeder(sqlite_url)
    deployment_id = seeder.deployment()
    tenant = Tenant(deployment_id, seeder.user(deployment_id))
    seeder.subscription(tenant.deployment_id, tenant.user_id)
    queue = SqliteQueue(urls.sqlite_path(sqlite_url), FailurePolicy())
    await queue.open()

    ingesting = asyncio.ensure_future(queue.ingest([new_event(tenant)], WINDOW_SECONDS))
    await asyncio.sleep(0)
    await queue.close()

    assert (await ingesting)[0].deliveries == 1
    assert seeder.count("deliveries") == 1
    with pytest.raises(RuntimeError, match="not open"):
        await queue.pending_count()
    seeder.close()
