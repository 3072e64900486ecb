"""The dispatcher loop: claim due deliveries in batches, send them concurrently, record results in groups.

Shape of the loop:
- Claims are batched and leased. The "new work" signal is cleared BEFORE each claim, so an ingest that
  commits during the claim wakes the next round instead of being lost.
- `max_in_flight` worker coroutines (the global cap) take deliveries from a ready queue. A subscription has at
  most `per_subscription_max_in_flight` deliveries ready or in flight (its slots); the rest of its claimed
  deliveries wait, parked, until one of its own attempts ends. So a receiver that hangs until the deadline
  holds only its own subscription's slots, and healthy subscriptions keep flowing.
- Parked deliveries do not use up the claim buffer, and a subscription with a full set of slots and as many
  deliveries parked behind them is left out of claims and lease offers, so one slow receiver cannot fill the
  buffer either (a healthy one, merely busy at the moment, keeps a short line ready to go). A parked delivery
  that could no longer finish inside its lease is not sent: its lease runs out and it is claimed again later,
  never sent twice at once.
- An ingest made through `ingest()` carries a lease offer: the deliveries it fans out (and any others due)
  are leased to this dispatcher in the ingest's own commit and handed straight to the workers, without a
  wake-up and a claim round trip (the latency path). At most MAX_OFFERS ingests lease at once, each up to the
  free room, so the buffer overfills by a bounded amount; the rest ingest plainly and wake the claim loop.
- One recorder task writes results: whatever accumulated while the previous `queue.record` ran is the next
  batch (group commit without a timer window).
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import logging
import os
import secrets
import socket
import time
from collections.abc import Callable, Sequence

from hookline import config, domain
from hookline.delivery import attempt, retry
from hookline.delivery.sender import Sender, SendResult
from hookline.domain import StoredEvent
from hookline.store.queue import DeliveryQueue, LeaseOffer

logger = logging.getLogger(__name__)

BUFFER_PER_IN_FLIGHT = 4  # deliveries kept ready or in flight, per global slot
PARKED_PER_BUFFER = 4  # deliveries waiting for a busy subscription, at most this many buffers' worth
DUE_RECHECK_SECONDS = 0.05  # the earliest due row is due already but was not claimable (its subscription is busy)
CLAIM_ERROR_BACKOFF_SECONDS = 1.0
RECORD_ATTEMPTS = 3
# Ingests leasing at once. Each may lease up to the free room, so the buffer may overfill by (this - 1) offers
# (8,000 small objects at the defaults; in practice an ingest leases what it fans out). Fewer left PostgreSQL's
# grouped ingests without an offer at 500 requests/s, sending their deliveries the long way (p99 50 ms vs 5-14).
MAX_OFFERS = 32
OFFERS_SETTLE_TIMEOUT_SECONDS = 10.0  # at stop, how long to wait for ingests holding a lease offer
RECORD_RETRY_DELAY_SECONDS = 0.5
OWNER_HOST_MAX_CHARS = 40

_Claimed = tuple[domain.ClaimedDelivery, float]  # a delivery and the monotonic time it was claimed


def new_owner() -> str:
    """A lease owner name unique to this process: host, pid and a random suffix (fits the 64-character column)."""
    host = socket.gethostname()[:OWNER_HOST_MAX_CHARS] or "host"
    return f"{host}:{os.getpid()}:{secrets.token_hex(4)}"


class Dispatcher:
    """Delivers due deliveries from a queue until stopped; see the module docstring for the loop's shape."""

    def __init__(
        self,
        queue: DeliveryQueue,
        sender: Sender,
        settings: config.Settings,
        owner: str | None = None,
        retry_policy: retry.RetryPolicy | None = None,
        clock: Callable[[], float] = time.time,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self.queue = queue
        self.sender = sender
        self.settings = settings
        self.owner = owner or new_owner()
        self.retry_policy = retry_policy or retry.RetryPolicy.from_settings(settings)
        self._clock = clock
        self._monotonic = monotonic

        self._per_subscription_cap = settings.per_subscription_max_in_flight
        self._buffer_limit = BUFFER_PER_IN_FLIGHT * settings.max_in_flight
        self._refill_at_free = max(1, min(settings.claim_batch_size, self._buffer_limit // 2))
        self._parked_limit = PARKED_PER_BUFFER * self._buffer_limit
        # The latest moment after its claim that a delivery may still start: its attempt must end inside the
        # lease, or another worker could claim and send it while it is still in flight (Settings keep this > 0).
        self._start_within_seconds = settings.lease_seconds - settings.delivery_timeout_seconds

        self._ready: collections.deque[_Claimed] = collections.deque()
        self._slots_taken: dict[str, int] = {}  # per subscription: deliveries ready or in flight
        self._parked_by_subscription: dict[str, collections.deque[_Claimed]] = {}
        self._outstanding = 0  # claimed and not finished: ready, in flight or parked
        self._offers = 0  # ingests in progress that may lease deliveries to this dispatcher
        self._offers_settled = asyncio.Event()
        self._offers_settled.set()
        self._parked = 0
        self._gone_subscriptions: set[str] = set()
        self._idle_workers: list[asyncio.Future[None]] = []

        self._results: list[domain.AttemptResult] = []
        self._results_ready = asyncio.Event()
        self._wake = asyncio.Event()
        self._stopping = False
        self._all_attempts_done = False
        self._stopped = asyncio.Event()
        self._running = False

        self.attempts_sent = 0
        self.results_recorded = 0
        self.leases_given_up = 0

    # Public lifecycle ----------------------------------------------------------------------------------

    async def run(self) -> None:
        """Deliver until `stop()`; then finish in-flight attempts, record them, release the rest and return."""
        if self._running:
            raise RuntimeError("Dispatcher.run() is already running")
        self._running = True  # a stop() that came first makes this return at once (after releasing leases)
        self._all_attempts_done = False
        self._stopped.clear()
        recorder = asyncio.create_task(self._record_forever(), name="hookline-recorder")
        workers = [
            asyncio.create_task(self._work(), name=f"hookline-worker-{number}")
            for number in range(self.settings.max_in_flight)
        ]
        try:
            await self._claim_forever()
        finally:
            self._stopping = True
            await self._finish(workers, recorder)
            self._running = False
            self._stopped.set()

    async def stop(self) -> None:
        """Stop claiming and wait until `run()` has finished in-flight attempts and released the rest."""
        self._stopping = True
        self._wake.set()
        if self._running:
            await self._stopped.wait()

    @property
    def in_flight(self) -> int:
        """Deliveries claimed by this dispatcher and not yet finished."""
        return self._outstanding

    # Claiming ------------------------------------------------------------------------------------------

    async def _claim_forever(self) -> None:
        while not self._stopping:
            self._wake.clear()  # cleared before the checks below, so a change made after them still wakes us
            free = self._free_room()
            if free < self._refill_at_free or self._parked >= self._parked_limit:
                await self._wait_for_wake(None, include_new_work=False)  # full: only finishing work frees room
                continue
            work_signal = self.queue.work_available
            work_signal.clear()  # before claiming: an ingest committed during the claim must wake the next round
            limit = min(self.settings.claim_batch_size, free)
            claimed_at = self._monotonic()  # before the query: the lease starts (database clock) once it is sent
            try:
                batch = await self.queue.claim(
                    self.owner, limit, self.settings.lease_seconds, self._busy_subscriptions()
                )
            except Exception:
                logger.exception("claiming deliveries failed; trying again in %s s", CLAIM_ERROR_BACKOFF_SECONDS)
                await self._wait_for_wake(CLAIM_ERROR_BACKOFF_SECONDS, include_new_work=False)
                continue
            for claimed in batch:
                self._take(claimed, claimed_at)
            if len(batch) == limit:
                await asyncio.sleep(0)  # let the workers start on the batch before claiming more
                continue
            await self._wait_for_wake(await self._seconds_until_due(), include_new_work=True)

    def _free_room(self) -> int:
        """How many more deliveries may be claimed: the buffer less those ready or in flight."""
        return self._buffer_limit - (self._outstanding - self._parked)

    def _busy_subscriptions(self) -> list[str]:
        """Subscriptions with every slot taken and a full set parked behind them: leave theirs in the queue."""
        budget = self._per_subscription_cap
        return [
            subscription_id for subscription_id, parked in self._parked_by_subscription.items() if len(parked) >= budget
        ]

    async def _seconds_until_due(self) -> float:
        """How long to sleep when the last claim came back short: until the next due row, at most a poll interval."""
        poll_seconds = self.settings.poll_interval_seconds
        try:
            until_due = await self.queue.seconds_until_due()
            if until_due is None:
                return poll_seconds
        except Exception:
            logger.exception("reading the next due time failed")
            return poll_seconds
        if until_due <= 0:
            # Due already, yet not claimed: held by a busy subscription (whose progress wakes us) or just come due.
            return min(poll_seconds, DUE_RECHECK_SECONDS)
        return min(poll_seconds, until_due)

    async def _wait_for_wake(self, at_most_seconds: float | None, *, include_new_work: bool) -> None:
        """Sleep until our own state changes (or new work is signalled, when asked), or at_most_seconds pass."""
        if self._stopping:
            return
        if not include_new_work:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), at_most_seconds)
            return
        waiters = [
            asyncio.ensure_future(self.queue.work_available.wait()),
            asyncio.ensure_future(self._wake.wait()),
        ]
        try:
            await asyncio.wait(waiters, timeout=at_most_seconds, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for waiter in waiters:
                waiter.cancel()

    # Ingesting with a lease offer --------------------------------------------------------------------

    async def ingest(self, events: Sequence[domain.NewEvent], idempotency_window_seconds: float) -> list[StoredEvent]:
        """Store events like `queue.ingest`, leasing their deliveries to this dispatcher in the same commit."""
        offer = self._lease_offer()
        if offer is None:
            return await self.queue.ingest(events, idempotency_window_seconds)
        claimed_at = self._monotonic()
        ingesting = asyncio.ensure_future(self.queue.ingest_and_lease(events, idempotency_window_seconds, offer))
        # Settled even if the caller is cancelled: the leased deliveries must reach the workers either way.
        ingesting.add_done_callback(lambda done: self._take_offered(offer, done, claimed_at))
        stored, _leased = await asyncio.shield(ingesting)
        return stored

    def _lease_offer(self) -> LeaseOffer | None:
        """An offer of this dispatcher's free room to an ingest; None when stopping, full or offers are many."""
        if self._stopping or self._offers >= MAX_OFFERS or self._parked >= self._parked_limit:
            return None
        limit = min(self.settings.claim_batch_size, self._free_room())
        if limit <= 0:
            return None
        self._offers += 1
        self._offers_settled.clear()
        return LeaseOffer(self.owner, limit, self.settings.lease_seconds, tuple(self._busy_subscriptions()))

    def _take_offered(
        self,
        offer: LeaseOffer,
        ingesting: asyncio.Future[tuple[list[StoredEvent], list[domain.ClaimedDelivery]]],
        claimed_at: float,
    ) -> None:
        self._offers -= 1
        if not self._offers:
            self._offers_settled.set()
        if ingesting.cancelled() or ingesting.exception() is not None:
            return  # nothing was committed, so nothing was leased
        if self._stopping:
            return  # the final release hands them back (it waits for offers to settle)
        _stored, leased = ingesting.result()
        for claimed in leased:
            self._take(claimed, claimed_at)

    # Scheduling: slots per subscription, a ready queue, a pool of workers --------------------------------

    def _take(self, claimed: domain.ClaimedDelivery, claimed_at: float) -> None:
        """Queue a claimed delivery: ready when its subscription has a free slot, else parked behind it."""
        subscription_id = claimed.subscription_id
        taken = self._slots_taken.get(subscription_id, 0)
        self._outstanding += 1
        if taken < self._per_subscription_cap:
            self._slots_taken[subscription_id] = taken + 1
            self._ready.append((claimed, claimed_at))
            self._wake_a_worker()
        else:
            parked = self._parked_by_subscription.get(subscription_id)
            if parked is None:
                parked = self._parked_by_subscription[subscription_id] = collections.deque()
            parked.append((claimed, claimed_at))
            self._parked += 1

    def _wake_a_worker(self) -> None:
        idle = self._idle_workers
        while idle:
            waiter = idle.pop()
            if not waiter.done():
                waiter.set_result(None)
                return

    async def _work(self) -> None:
        """One worker (one global slot): run ready deliveries one at a time until stopped."""
        ready = self._ready
        loop = asyncio.get_running_loop()
        while True:
            if not ready:
                if self._stopping:
                    return
                waiter = loop.create_future()
                self._idle_workers.append(waiter)
                await waiter
                continue
            claimed, claimed_at = ready.popleft()
            try:
                if self._should_send(claimed, claimed_at):
                    self.attempts_sent += 1
                    result = await self._attempt(claimed)
                    if result.outcome == "gone":
                        self._gone_subscriptions.add(claimed.subscription_id)
                    self._results.append(result)
                    self._results_ready.set()
            finally:
                self._finished(claimed.subscription_id)

    def _should_send(self, claimed: domain.ClaimedDelivery, claimed_at: float) -> bool:
        """Whether to start this attempt now, rather than leave it to be released or claimed again."""
        if self._stopping:
            return False  # released on the way out
        if claimed.subscription_id in self._gone_subscriptions:
            return False  # the receiver answered 410: recording that cancels this delivery
        if self._monotonic() - claimed_at > self._start_within_seconds:
            self.leases_given_up += 1  # waited too long behind a slow subscription: its lease runs out first
            return False
        return True

    async def _attempt(self, claimed: domain.ClaimedDelivery) -> domain.AttemptResult:
        started_at = self._clock()
        try:
            return await attempt.attempt_delivery(
                claimed, self.sender, self.settings, self.retry_policy, self.owner, self._clock
            )
        except Exception as exc:  # attempt_delivery catches its own errors; this is the last line of defence
            logger.exception("delivery %s: unexpected error", claimed.delivery_id)
            failed = SendResult(None, None, f"internal error: {type(exc).__name__}", "internal_error", 0.0)
            return attempt.classify(claimed, failed, self.retry_policy, self.owner, started_at)

    def _finished(self, subscription_id: str) -> None:
        """An attempt ended (or was skipped): hand its slot to the subscription's next parked delivery, if any."""
        self._outstanding -= 1
        parked = self._parked_by_subscription.get(subscription_id)
        if parked:
            self._ready.append(parked.popleft())  # the slot passes on: slots_taken stays the same
            self._parked -= 1
            if not parked:
                del self._parked_by_subscription[subscription_id]
            if len(parked) == self._per_subscription_cap - 1 or self._parked == self._parked_limit - 1:
                self._wake.set()  # a busy subscription became claimable, or there is room for parked ones again
            return
        taken = self._slots_taken[subscription_id] - 1
        if taken:
            self._slots_taken[subscription_id] = taken
        else:
            del self._slots_taken[subscription_id]
            self._gone_subscriptions.discard(subscription_id)
        if self._free_room() == self._refill_at_free:
            self._wake.set()  # room for a batch

    # Recording -----------------------------------------------------------------------------------------

    async def _record_forever(self) -> None:
        while True:
            await self._results_ready.wait()
            self._results_ready.clear()
            batch, self._results = self._results, []
            if batch:
                await self._record(batch)
                if any(result.outcome == "retry" for result in batch):
                    self._wake.set()  # a retry may fall due before the claim loop's current sleep ends
            if self._all_attempts_done and not self._results:
                return

    async def _record(self, batch: list[domain.AttemptResult]) -> None:
        for attempt_number in range(1, RECORD_ATTEMPTS + 1):
            try:
                await self.queue.record(batch)
            except Exception:
                logger.exception("recording %d attempt results failed (try %d)", len(batch), attempt_number)
                await asyncio.sleep(RECORD_RETRY_DELAY_SECONDS)
            else:
                self.results_recorded += len(batch)
                return
        # The leases still run out, so these deliveries go out again: at-least-once, nothing lost.
        logger.error("gave up recording %d attempt results; their deliveries will be retried", len(batch))

    # Stopping ------------------------------------------------------------------------------------------

    async def _finish(self, workers: list[asyncio.Task[None]], recorder: asyncio.Task[None]) -> None:
        """Let in-flight attempts end (each within its deadline), record them, release the rest."""
        for waiter in self._idle_workers:
            if not waiter.done():
                waiter.set_result(None)
        self._idle_workers.clear()
        await asyncio.gather(*workers, return_exceptions=True)
        self._all_attempts_done = True
        self._results_ready.set()
        with contextlib.suppress(Exception):
            await recorder
        if self._results:  # the recorder died; write what is left directly
            batch, self._results = self._results, []
            await self._record(batch)
        with contextlib.suppress(TimeoutError):  # ingests still in progress may lease deliveries to us
            await asyncio.wait_for(self._offers_settled.wait(), OFFERS_SETTLE_TIMEOUT_SECONDS)
        try:
            released = await self.queue.release(self.owner)
        except Exception:
            logger.exception("releasing leases failed; they will run out on their own")
        else:
            logger.info("dispatcher %s stopped; released %d leased deliveries", self.owner, released)
