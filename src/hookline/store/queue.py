"""The durable delivery queue: the one interface between the delivery engine and the database.

Two implementations share it: `sqlite_queue.SqliteQueue` (one writer thread, group commit) and
`postgres_queue.PostgresQueue` (psycopg pool, FOR UPDATE SKIP LOCKED, LISTEN/NOTIFY). Both speak plain
SQL to their driver: this is the hot path, where SQLAlchemy statement building costs too much.
"""

from __future__ import annotations

import asyncio
from collections.abc import Collection, Sequence
from dataclasses import dataclass
from typing import Protocol

from hookline.domain import AttemptResult, ClaimedDelivery, NewEvent, StoredEvent

NOTIFY_CHANNEL = "hookline_work"


@dataclass(frozen=True, slots=True)
class FailurePolicy:
    """When a failing subscription is removed: after this many consecutive failed attempts spanning this long."""

    threshold: int = 20
    window_seconds: float = 86400.0


@dataclass(frozen=True, slots=True)
class LeaseOffer:
    """A waiting dispatcher's offer to take due deliveries leased in the same commit as an ingest.

    The deliveries an ingest fans out reach that dispatcher with the commit itself, without a wake-up
    and a claim of their own (the lowest-latency path); `limit` is the room the dispatcher has.
    """

    owner: str
    limit: int
    lease_seconds: float
    excluded_subscription_ids: tuple[str, ...] = ()

    def may_leave_work(self, leased: int) -> bool:
        """Whether due deliveries may be left after leasing `leased` for this offer (other dispatchers must wake)."""
        return leased >= self.limit or bool(self.excluded_subscription_ids)


class DeliveryQueue(Protocol):
    """Durable, leased, at-least-once queue of deliveries."""

    work_available: asyncio.Event
    """Set whenever new work may be due: an ingest in this process, or a notification from another."""

    async def open(self) -> None:
        """Connect (and start any writer thread or listener)."""

    async def close(self) -> None:
        """Flush pending writes and disconnect."""

    async def now(self) -> float:
        """The queue's clock in epoch seconds (the database's clock where processes share one)."""

    async def ingest(self, events: Sequence[NewEvent], idempotency_window_seconds: float) -> list[StoredEvent]:
        """Store events and fan each out to its matching live subscriptions, in one durable commit.

        A subscription matches when it is not deleted, belongs to the event's deployment, subscribes to its
        event_id, and (when the event names user_ids) is owned by one of them; `only_subscription_id`
        narrows the fan-out to that subscription. An idempotency key seen within the window for the same
        deployment answers the original event with `duplicate=True` and creates nothing.
        Returns one StoredEvent per input, in order, and wakes the dispatchers.
        """

    async def ingest_and_lease(
        self, events: Sequence[NewEvent], idempotency_window_seconds: float, offer: LeaseOffer
    ) -> tuple[list[StoredEvent], list[ClaimedDelivery]]:
        """`ingest`, and in the same commit lease due deliveries (oldest first) as `claim` would for the offer.

        Other dispatchers are woken only when due deliveries may be left over (the offer's limit was reached,
        or it excluded subscriptions).
        """

    async def enqueue_leased(
        self, event: NewEvent, subscription_id: str, owner: str, lease_seconds: float
    ) -> ClaimedDelivery | None:
        """Store an event with one delivery to this subscription, already leased to `owner`, without retries.

        Used by synchronous dispatch; None when the subscription does not exist or is deleted.
        """

    async def claim(
        self, owner: str, limit: int, lease_seconds: float, exclude_subscription_ids: Collection[str] = ()
    ) -> list[ClaimedDelivery]:
        """Lease up to `limit` due deliveries (oldest due first), skipping the excluded subscriptions.

        A leased row's next_attempt_at becomes now + lease_seconds and its lease_owner `owner`, so it is
        claimed again by anyone once the lease expires (a crashed worker loses nothing).
        """

    async def record(self, results: Sequence[AttemptResult]) -> None:
        """Record attempts in one commit and move each delivery on; results from a lost lease are ignored.

        success: delivery succeeded, subscription's consecutive_failures reset.
        retry: due again at now + retry_in_seconds. failed: delivery failed for good.
        retry and failed count one consecutive failure; at the policy's threshold and window the
        subscription is soft-deleted with reason too_many_failures and its pending deliveries cancelled.
        gone: the subscription is soft-deleted with reason gone and its pending deliveries cancelled.
        """

    async def release(self, owner: str) -> int:
        """Hand back every delivery leased to `owner` (due now); returns how many."""

    async def redeliver(self, delivery_id: int) -> int | None:
        """Queue a new delivery of the same event to the same live subscription; its id, or None."""

    async def next_due_at(self) -> float | None:
        """When the earliest pending delivery falls due, or None when nothing is pending."""

    async def seconds_until_due(self) -> float | None:
        """Seconds until the earliest pending delivery falls due (<= 0: due now), by the queue's clock, or None."""

    async def pending_count(self) -> int:
        """How many deliveries are pending (due or not, leased or not)."""

    async def prune(self, finished_before: float, batch_size: int) -> int:
        """Delete up to batch_size finished deliveries (with their attempts, and events left without any)."""

    async def cancel_pending(self, subscription_id: str) -> int:
        """Cancel the pending deliveries of a subscription (after it was deleted); returns how many."""
