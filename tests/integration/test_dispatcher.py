"""The dispatcher and synchronous dispatch against real SQLite / PostgreSQL queues and a real HTTP receiver."""

from __future__ import annotations

import asyncio
import base64
import itertools
import time
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field

import pytest
from aiohttp import web
from gidgethub.sansio import validate_event
from standardwebhooks.webhooks import Webhook

from hookline import __version__, config, domain
from hookline.delivery import service
from hookline.delivery.dispatcher import Dispatcher
from hookline.store.queue import DeliveryQueue, FailurePolicy
from hookline.store.queues import open_queue
from tests.integration.seed import Seeder

SECRET = "it's a secret"
SHORT_SCHEDULE_SECONDS = [0.05, 0.05]
DEADLINE_SECONDS = 0.5
HANG_SECONDS = 3.0
WAIT_LIMIT_SECONDS = 10.0


@dataclass(frozen=True)
class Received:
    """One request as the receiver saw it."""

    path: str
    body: bytes
    headers: dict[str, str]
    arrived_at: float


@dataclass
class Receiver:
    """A real aiohttp server on 127.0.0.1 that records every request; the path picks the answer."""

    base_url: str
    requests: list[Received] = field(default_factory=list)
    failures_before_success: int = 1

    def url(self, path: str) -> str:
        return f"{self.base_url}{path}"

    def at(self, path: str) -> list[Received]:
        return [request for request in self.requests if request.path == path]


@pytest.fixture
async def receiver() -> AsyncIterator[Receiver]:
    state = Receiver("")
    flaky_calls = 0

    async def handle(request: web.Request) -> web.StreamResponse:
        nonlocal flaky_calls
        state.requests.append(Received(request.path, await request.read(), dict(request.headers), time.monotonic()))
        if request.path.startswith("/ok"):
            return web.Response(text="ok")
        if request.path == "/gone":
            return web.Response(status=410, text="unsubscribed")
        if request.path == "/fail":
            return web.Response(status=500, text="boom")
        if request.path == "/flaky":
            flaky_calls += 1
            return web.Response(status=503 if flaky_calls <= state.failures_before_success else 200)
        if request.path == "/slow":
            await asyncio.sleep(DEADLINE_SECONDS / 2)
            return web.Response(text="slow but fine")
        if request.path == "/hang":
            await asyncio.sleep(HANG_SECONDS)
            return web.Response(text="too late")
        return web.Response(status=404)

    app = web.Application()
    app.router.add_post("/{tail:.*}", handle)
    runner = web.AppRunner(app, shutdown_timeout=0.1, handler_cancellation=True)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    state.base_url = f"http://127.0.0.1:{runner.addresses[0][1]}"
    yield state
    await runner.cleanup()


@pytest.fixture
def seeder(database_url: str) -> Iterator[Seeder]:
    seeder = Seeder(database_url)
    yield seeder
    seeder.close()


@pytest.fixture
async def queue(database_url: str) -> AsyncIterator[DeliveryQueue]:
    opened = open_queue(database_url, FailurePolicy(threshold=20, window_seconds=86400.0))
    await opened.open()
    yield opened
    await opened.close()


def dispatcher_settings(**overrides: object) -> config.Settings:
    values: dict[str, object] = {
        "ssrf_allow_networks": ["127.0.0.0/8"],
        "retry_schedule_seconds": SHORT_SCHEDULE_SECONDS,
        "retry_jitter": 0.0,
        "delivery_timeout_seconds": DEADLINE_SECONDS,
        "poll_interval_seconds": 0.2,
        "max_in_flight": 8,
        "per_subscription_max_in_flight": 2,
        "claim_batch_size": 64,
    }
    values.update(overrides)
    return config.Settings(**values)  # type: ignore[arg-type]


@asynccontextmanager
async def running_dispatcher(queue: DeliveryQueue, settings: config.Settings) -> AsyncIterator[Dispatcher]:
    """A dispatcher running in the background; stopped (gracefully) on the way out."""
    async with service.build_sender(settings) as sender:
        dispatcher = Dispatcher(queue, sender, settings, retry_policy=service.build_retry_policy(settings))
        task = asyncio.create_task(dispatcher.run())
        try:
            yield dispatcher
        finally:
            await asyncio.wait_for(dispatcher.stop(), WAIT_LIMIT_SECONDS)
            await task


async def eventually(condition: Callable[[], object], limit_seconds: float = WAIT_LIMIT_SECONDS) -> None:
    """Wait until `condition()` is true, failing after the limit."""
    deadline = time.monotonic() + limit_seconds
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"still not true after {limit_seconds} s")
        await asyncio.sleep(0.01)


@dataclass
class Tenant:
    deployment_id: int
    user_id: int

    def event(
        self, event_id: str = "create_task", object_id: str = "42", resource_url: str | None = None
    ) -> domain.NewEvent:
        url = resource_url if resource_url is not None else f"https://acme.example/api/v0/tasks/{object_id}.json"
        return domain.NewEvent(self.deployment_id, event_id, object_id, None if event_id == "delete_invoice" else url)


def tenant_of(seeder: Seeder, *, standard_webhooks: bool = False) -> Tenant:
    deployment_id = seeder.deployment(standard_webhooks=standard_webhooks)
    return Tenant(deployment_id, seeder.user(deployment_id))


async def test_delivers_exact_bodies_and_headers_for_both_content_types(
    queue: DeliveryQueue, seeder: Seeder, receiver: Receiver
) -> None:
    tenant = tenant_of(seeder)
    json_id = seeder.subscription(
        tenant.deployment_id, tenant.user_id, "create_task", trigger_url=receiver.url("/ok/json"), secret=SECRET
    )
    seeder.subscription(
        tenant.deployment_id,
        tenant.user_id,
        "create_task",
        trigger_url=receiver.url("/ok/form"),
        content_type=domain.CONTENT_TYPE_FORM,
    )
    async with running_dispatcher(queue, dispatcher_settings()):
        await queue.ingest([tenant.event(object_id="42")], 3600.0)
        await eventually(lambda: len(receiver.requests) == 2)

    json_request = receiver.at("/ok/json")[0]
    assert json_request.body == b'{"id":42,"resource_url":"https://acme.example/api/v0/tasks/42.json"}'
    assert json_request.headers["Content-Type"] == "application/json"
    assert json_request.headers["X-Accelo-Event"] == "create_task"
    assert json_request.headers["User-Agent"] == f"Hookline/{__version__} (+https://github.com/hookline/hookline)"
    validate_event(json_request.body, signature=json_request.headers["X-Hub-Signature"], secret=SECRET)
    validate_event(json_request.body, signature=json_request.headers["X-Hub-Signature-256"], secret=SECRET)
    assert "webhook-id" not in json_request.headers
    (delivery,) = seeder.deliveries(subscription_id=json_id)
    assert json_request.headers["X-Hookline-Delivery"] == str(delivery["id"])
    assert delivery["state"] == "succeeded"
    (logged,) = seeder.attempts(delivery["id"])
    assert (logged["status_code"], logged["outcome"], logged["response_excerpt"]) == (200, "success", "ok")

    form_request = receiver.at("/ok/form")[0]
    assert form_request.body == b"id=42&resource_url=https%3A%2F%2Facme.example%2Fapi%2Fv0%2Ftasks%2F42.json"
    assert form_request.headers["Content-Type"] == "application/x-www-form-urlencoded"
    assert "X-Hub-Signature" not in form_request.headers


async def test_delete_events_and_standard_webhooks_headers(
    queue: DeliveryQueue, seeder: Seeder, receiver: Receiver
) -> None:
    tenant = tenant_of(seeder, standard_webhooks=True)
    seeder.subscription(
        tenant.deployment_id, tenant.user_id, "delete_invoice", trigger_url=receiver.url("/ok"), secret=SECRET
    )
    async with running_dispatcher(queue, dispatcher_settings()):
        await queue.ingest([tenant.event("delete_invoice", object_id="INV-9")], 3600.0)
        await eventually(lambda: len(receiver.requests) == 1)

    (request,) = receiver.requests
    assert request.body == b'{"id":"INV-9"}'
    assert request.headers["webhook-id"] == f"dlv_{request.headers['X-Hookline-Delivery']}"
    Webhook(base64.b64encode(SECRET.encode()).decode()).verify(request.body, request.headers)


async def test_failures_are_retried_on_the_schedule_then_given_up(
    queue: DeliveryQueue, seeder: Seeder, receiver: Receiver
) -> None:
    tenant = tenant_of(seeder)
    subscription_id = seeder.subscription(tenant.deployment_id, tenant.user_id, trigger_url=receiver.url("/fail"))
    async with running_dispatcher(queue, dispatcher_settings()):
        await queue.ingest([tenant.event()], 3600.0)
        await eventually(lambda: seeder.deliveries(subscription_id=subscription_id)[0]["state"] == "failed")

    requests = receiver.at("/fail")
    assert len(requests) == 1 + len(SHORT_SCHEDULE_SECONDS)
    assert len({request.headers["X-Hookline-Delivery"] for request in requests}) == 1
    gaps = [later.arrived_at - earlier.arrived_at for earlier, later in itertools.pairwise(requests)]
    assert all(gap >= SHORT_SCHEDULE_SECONDS[0] * 0.9 for gap in gaps), gaps
    assert all(gap < 1.0 for gap in gaps), gaps  # a retry wakes the dispatcher; it does not wait for the poll
    (delivery,) = seeder.deliveries(subscription_id=subscription_id)
    logged = seeder.attempts(delivery["id"])
    assert [(row["attempt_number"], row["status_code"], row["outcome"]) for row in logged] == [
        (1, 500, "retry"),
        (2, 500, "retry"),
        (3, 500, "failed"),
    ]
    assert seeder.subscription_row(subscription_id)["consecutive_failures"] == 3


async def test_a_retry_that_succeeds_ends_the_delivery(
    queue: DeliveryQueue, seeder: Seeder, receiver: Receiver
) -> None:
    tenant = tenant_of(seeder)
    subscription_id = seeder.subscription(tenant.deployment_id, tenant.user_id, trigger_url=receiver.url("/flaky"))
    async with running_dispatcher(queue, dispatcher_settings()):
        await queue.ingest([tenant.event()], 3600.0)
        await eventually(lambda: seeder.deliveries(subscription_id=subscription_id)[0]["state"] == "succeeded")
    assert [row["status_code"] for row in seeder.attempts(seeder.deliveries()[0]["id"])] == [503, 200]
    assert seeder.subscription_row(subscription_id)["consecutive_failures"] == 0


async def test_410_removes_the_subscription_and_nothing_more_is_sent(
    queue: DeliveryQueue, seeder: Seeder, receiver: Receiver
) -> None:
    tenant = tenant_of(seeder)
    subscription_id = seeder.subscription(tenant.deployment_id, tenant.user_id, trigger_url=receiver.url("/gone"))
    async with running_dispatcher(queue, dispatcher_settings(per_subscription_max_in_flight=1)):
        await queue.ingest([tenant.event(object_id=str(n)) for n in range(5)], 3600.0)
        await eventually(lambda: seeder.subscription_row(subscription_id)["deleted_reason"] == "gone")
        await asyncio.sleep(0.2)
        stored = await queue.ingest([tenant.event(object_id="99")], 3600.0)
        await asyncio.sleep(0.2)

    assert len(receiver.at("/gone")) == 1
    assert stored[0].deliveries == 0
    states = sorted(row["state"] for row in seeder.deliveries(subscription_id=subscription_id))
    assert states == ["cancelled"] * 4 + ["failed"]


async def test_a_hanging_receiver_is_cut_at_the_deadline_and_does_not_hold_up_others(
    queue: DeliveryQueue, seeder: Seeder, receiver: Receiver
) -> None:
    healthy_count = 200
    tenant = tenant_of(seeder)
    hanging_id = seeder.subscription(
        tenant.deployment_id, tenant.user_id, "create_issue", trigger_url=receiver.url("/hang")
    )
    healthy_id = seeder.subscription(
        tenant.deployment_id, tenant.user_id, "create_task", trigger_url=receiver.url("/ok")
    )
    settings = dispatcher_settings(retry_schedule_seconds=[], max_in_flight=8, per_subscription_max_in_flight=2)
    # The hanging subscription's backlog is older, so the first claim is all of it.
    await queue.ingest([tenant.event("create_issue", object_id=str(n)) for n in range(40)], 3600.0)
    await queue.ingest([tenant.event("create_task", object_id=str(n)) for n in range(healthy_count)], 3600.0)
    async with running_dispatcher(queue, settings):
        started = time.monotonic()
        await eventually(lambda: len(receiver.at("/ok")) == healthy_count)
        healthy_seconds = time.monotonic() - started
        await eventually(lambda: len(receiver.at("/hang")) >= 2)
        await asyncio.sleep(DEADLINE_SECONDS * 1.5)

    rate = healthy_count / healthy_seconds
    print(f"healthy deliveries with a hanging neighbour: {healthy_count} in {healthy_seconds:.2f} s = {rate:.0f}/s")
    assert rate > 50, f"healthy receiver starved: {rate:.0f} deliveries/s"
    assert {row["state"] for row in seeder.deliveries(subscription_id=healthy_id)} == {"succeeded"}
    cut = [row for delivery in seeder.deliveries(subscription_id=hanging_id) for row in seeder.attempts(delivery["id"])]
    assert cut, "the hanging receiver's attempts were logged"
    for row in cut:
        assert row["error_class"] == "timeout"
        assert row["status_code"] is None
        assert DEADLINE_SECONDS * 1000 * 0.9 <= row["duration_ms"] <= DEADLINE_SECONDS * 1000 + 600


async def test_deliveries_stuck_behind_a_slow_subscription_are_never_sent_after_their_lease(
    queue: DeliveryQueue, seeder: Seeder, receiver: Receiver
) -> None:
    tenant = tenant_of(seeder)
    subscription_id = seeder.subscription(tenant.deployment_id, tenant.user_id, trigger_url=receiver.url("/hang"))
    settings = dispatcher_settings(lease_seconds=1.0, per_subscription_max_in_flight=1, retry_schedule_seconds=[])
    await queue.ingest([tenant.event(object_id=str(n)) for n in range(3)], 3600.0)
    async with running_dispatcher(queue, settings) as dispatcher:
        await eventually(lambda: {row["state"] for row in seeder.deliveries()} == {"failed"})

    # One at a time, each cut at the deadline; those whose lease ran out while they waited went back to the
    # queue unsent and were claimed again, so no delivery was ever sent twice.
    delivery_ids = [request.headers["X-Hookline-Delivery"] for request in receiver.requests]
    assert sorted(delivery_ids) == sorted(str(row["id"]) for row in seeder.deliveries(subscription_id=subscription_id))
    assert dispatcher.leases_given_up > 0
    assert all(row["attempts"] == 1 for row in seeder.deliveries())


async def test_stop_finishes_in_flight_attempts_and_releases_the_rest(
    queue: DeliveryQueue, seeder: Seeder, receiver: Receiver
) -> None:
    tenant = tenant_of(seeder)
    subscription_id = seeder.subscription(tenant.deployment_id, tenant.user_id, trigger_url=receiver.url("/slow"))
    settings = dispatcher_settings(per_subscription_max_in_flight=1)
    await queue.ingest([tenant.event(object_id=str(n)) for n in range(10)], 3600.0)
    async with running_dispatcher(queue, settings) as dispatcher:
        await eventually(lambda: len(receiver.requests) == 1)
        stop_started = time.monotonic()
        await dispatcher.stop()
        stop_seconds = time.monotonic() - stop_started

    assert stop_seconds < DEADLINE_SECONDS + 1.0
    rows = seeder.deliveries(subscription_id=subscription_id)
    succeeded = [row for row in rows if row["state"] == "succeeded"]
    pending = [row for row in rows if row["state"] == "pending"]
    assert len(succeeded) == len(receiver.requests)  # every attempt made was recorded
    assert len(pending) == 10 - len(succeeded)
    assert all(row["lease_owner"] is None and row["next_attempt_at"] <= time.time() for row in pending)
    assert all(row["attempts"] == 0 for row in pending)


async def test_new_work_is_delivered_without_waiting_for_the_poll(
    queue: DeliveryQueue, seeder: Seeder, receiver: Receiver
) -> None:
    tenant = tenant_of(seeder)
    seeder.subscription(tenant.deployment_id, tenant.user_id, trigger_url=receiver.url("/ok"))
    async with running_dispatcher(queue, dispatcher_settings(poll_interval_seconds=30.0)):
        await asyncio.sleep(0.2)  # idle: the dispatcher sleeps on the new-work signal
        ingested_at = time.monotonic()
        await queue.ingest([tenant.event()], 3600.0)
        await eventually(lambda: len(receiver.requests) == 1, limit_seconds=5.0)
    latency = receiver.requests[0].arrived_at - ingested_at
    assert latency < 1.0, f"{latency:.3f} s from ingest to arrival"


async def test_an_ingest_while_idle_leases_its_deliveries_to_the_dispatcher_in_the_same_commit(
    queue: DeliveryQueue, seeder: Seeder, receiver: Receiver
) -> None:
    tenant = tenant_of(seeder)
    for _ in range(3):
        seeder.subscription(tenant.deployment_id, tenant.user_id, trigger_url=receiver.url("/ok"))
    # Polling every 30 s: only the lease handed over with the ingest can deliver these within the test.
    async with running_dispatcher(queue, dispatcher_settings(poll_interval_seconds=30.0)) as dispatcher:
        await asyncio.sleep(0.2)  # idle: the claim loop sleeps on the new-work signal
        queue.work_available.clear()
        [stored] = await dispatcher.ingest([tenant.event()], 3600.0)
        leased = seeder.deliveries()
        assert stored.deliveries == 3
        assert {row["lease_owner"] for row in leased} == {dispatcher.owner}  # leased by the ingest's own commit
        assert not queue.work_available.is_set()  # nothing left over: other dispatchers need not wake
        await eventually(lambda: {row["state"] for row in seeder.deliveries()} == {"succeeded"}, limit_seconds=5.0)
    assert len(receiver.requests) == 3
    assert dispatcher.in_flight == 0


async def test_loopback_is_refused_by_default_and_the_attempt_log_says_why(
    queue: DeliveryQueue, seeder: Seeder, receiver: Receiver
) -> None:
    tenant = tenant_of(seeder)
    by_address = seeder.subscription(tenant.deployment_id, tenant.user_id, trigger_url=receiver.url("/ok"))
    by_name = seeder.subscription(
        tenant.deployment_id, tenant.user_id, trigger_url=receiver.url("/ok").replace("127.0.0.1", "localhost")
    )
    settings = dispatcher_settings(ssrf_allow_networks=[], retry_schedule_seconds=[])
    async with running_dispatcher(queue, settings):
        await queue.ingest([tenant.event()], 3600.0)
        await eventually(lambda: {row["state"] for row in seeder.deliveries()} == {"failed"})

    assert receiver.requests == []
    for subscription_id in (by_address, by_name):
        (delivery,) = seeder.deliveries(subscription_id=subscription_id)
        (logged,) = seeder.attempts(delivery["id"])
        assert logged["error_class"] == "refused_destination"
        assert "loopback" in logged["error"]
        assert "ssrf_allow_networks" in logged["error"]


async def test_dispatch_now_answers_the_receivers_status_and_logs_the_attempt(
    queue: DeliveryQueue, seeder: Seeder, receiver: Receiver
) -> None:
    tenant = tenant_of(seeder)
    ok_id = seeder.subscription(tenant.deployment_id, tenant.user_id, trigger_url=receiver.url("/ok"), secret=SECRET)
    failing_id = seeder.subscription(tenant.deployment_id, tenant.user_id, trigger_url=receiver.url("/fail"))
    settings = dispatcher_settings()
    policy = service.build_retry_policy(settings)
    async with service.build_sender(settings) as sender:
        ok = await service.dispatch_now(queue, sender, settings, policy, tenant.event(), ok_id)
        failing = await service.dispatch_now(queue, sender, settings, policy, tenant.event(), failing_id)
        missing = await service.dispatch_now(queue, sender, settings, policy, tenant.event(), "f" * 24)

    assert ok is not None
    assert (ok.status_code, ok.outcome, ok.error) == (200, "success", None)
    validate_event(
        receiver.at("/ok")[0].body, signature=receiver.at("/ok")[0].headers["X-Hub-Signature"], secret=SECRET
    )
    ok_row = seeder.delivery(ok.delivery_id)
    assert ok_row is not None
    assert ok_row["state"] == "succeeded"
    assert failing is not None
    assert (failing.status_code, failing.outcome) == (500, "failed")  # synchronous dispatch is not retried
    assert len(receiver.at("/fail")) == 1
    assert [row["outcome"] for row in seeder.attempts(failing.delivery_id)] == ["failed"]
    assert missing is None


async def test_dispatch_now_honours_410_and_reports_no_response(
    queue: DeliveryQueue, seeder: Seeder, receiver: Receiver
) -> None:
    tenant = tenant_of(seeder)
    gone_id = seeder.subscription(tenant.deployment_id, tenant.user_id, trigger_url=receiver.url("/gone"))
    hang_id = seeder.subscription(tenant.deployment_id, tenant.user_id, trigger_url=receiver.url("/hang"))
    settings = dispatcher_settings()
    policy = service.build_retry_policy(settings)
    async with service.build_sender(settings) as sender:
        gone = await service.dispatch_now(queue, sender, settings, policy, tenant.event(), gone_id)
        hung = await service.dispatch_now(queue, sender, settings, policy, tenant.event(), hang_id)
        again = await service.dispatch_now(queue, sender, settings, policy, tenant.event(), gone_id)

    assert gone is not None
    assert (gone.status_code, gone.outcome) == (410, "gone")
    assert seeder.subscription_row(gone_id)["deleted_reason"] == "gone"
    assert again is None
    assert hung is not None
    assert (hung.status_code, hung.error_class) == (None, "timeout")
    assert hung.error == "no complete response within 0.5 s"


async def test_a_stop_before_run_makes_run_return_at_once(
    queue: DeliveryQueue, seeder: Seeder, receiver: Receiver
) -> None:
    tenant = tenant_of(seeder)
    seeder.subscription(tenant.deployment_id, tenant.user_id, trigger_url=receiver.url("/ok"))
    await queue.ingest([tenant.event()], 3600.0)
    settings = dispatcher_settings()
    async with service.build_sender(settings) as sender:
        dispatcher = Dispatcher(queue, sender, settings)
        await dispatcher.stop()
        await asyncio.wait_for(dispatcher.run(), 2.0)
    assert receiver.requests == []
    assert await queue.pending_count() == 1
