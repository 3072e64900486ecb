"""The SQLite delivery queue: one writer thread, group commit, plain SQL on the stdlib driver.

Every statement of the queue (ingestion, claims, results, releases, prunes and its few reads) runs on one
dedicated thread that owns this queue's only sqlite3 connection. Callers hand it jobs (functions of the
connection); the thread takes everything queued, runs it in ONE transaction with a SAVEPOINT per job (a job
that raises rolls back only itself and fails only its own caller), commits, and then settles the callers'
futures on the event loop. Whatever arrives while one commit is running goes into the next, so commits batch
themselves without a timer window and `synchronous=FULL` costs almost nothing per delivery.

SQLite allows one dispatcher process per file: `acquire_dispatcher_lock` enforces it.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import fcntl
import json
import os
import queue
import sqlite3
import threading
import time
from collections.abc import Callable, Collection, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

from hookline.domain import AttemptResult, ClaimedDelivery, NewEvent, StoredEvent
from hookline.store.queue import FailurePolicy

BUSY_TIMEOUT_SECONDS = 10.0
ERROR_MAX_CHARS = 300
ERROR_CLASS_MAX_CHARS = 64

_Result = TypeVar("_Result")


class DispatcherAlreadyRunning(RuntimeError):
    """Another process already runs the dispatcher on this SQLite file."""


@contextlib.contextmanager
def acquire_dispatcher_lock(path: Path) -> Iterator[None]:
    """Hold the one-dispatcher lock of an SQLite store (`<path>.dispatcher.lock`) for the block's duration."""
    lock_path = Path(f"{path}.dispatcher.lock")
    descriptor = os.open(lock_path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(descriptor, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        holder = os.pread(descriptor, 32, 0).decode(errors="replace").strip() or "unknown"
        os.close(descriptor)
        raise DispatcherAlreadyRunning(
            f"another Hookline dispatcher is already running on {path} (pid {holder}); "
            "SQLite allows one dispatcher process: stop it, or use PostgreSQL to run several"
        ) from None
    try:
        os.ftruncate(descriptor, 0)
        os.pwrite(descriptor, str(os.getpid()).encode(), 0)
        yield
    finally:
        fcntl.flock(descriptor, fcntl.LOCK_UN)
        os.close(descriptor)


# --- SQL -------------------------------------------------------------------------------------------------
# Terminal states clear the due time and the lease, so the partial due index only ever holds pending rows.

_SELECT_EVENT_BY_KEY = (
    "SELECT id, event_id, object_id, resource_url, created_at FROM events"
    " WHERE deployment_id = ? AND idempotency_key = ?"
)
_COUNT_FANOUT_DELIVERIES = "SELECT count(*) FROM deliveries WHERE event_row_id = ? AND redelivery_of IS NULL"
_FORGET_IDEMPOTENCY_KEY = "UPDATE events SET idempotency_key = NULL WHERE id = ?"
_INSERT_EVENT = (
    "INSERT INTO events (deployment_id, event_id, object_id, resource_url, user_ids, idempotency_key, created_at)"
    " VALUES (?, ?, ?, ?, ?, ?, ?)"
)
_FANOUT = (
    "INSERT INTO deliveries (event_row_id, subscription_id, deployment_id, state, attempts, retries_allowed,"
    " next_attempt_at, created_at)"
    " SELECT ?, id, deployment_id, 'pending', 0, 1, ?, ? FROM subscriptions"
    " WHERE deployment_id = ? AND event_id = ? AND deleted_at IS NULL"
)
_FANOUT_USERS_FILTER = " AND user_id IN (SELECT value FROM json_each(?))"
_FANOUT_ONLY_FILTER = " AND id = ?"

_SELECT_LIVE_SUBSCRIPTION = (
    "SELECT s.deployment_id, s.trigger_url, s.content_type, s.secret, dep.standard_webhooks"
    " FROM subscriptions AS s JOIN deployments AS dep ON dep.id = s.deployment_id"
    " WHERE s.id = ? AND s.deleted_at IS NULL"
)
_INSERT_LEASED_DELIVERY = (
    "INSERT INTO deliveries (event_row_id, subscription_id, deployment_id, state, attempts, retries_allowed,"
    " next_attempt_at, lease_owner, created_at) VALUES (?, ?, ?, 'pending', 0, 0, ?, ?, ?)"
)

_CLAIM_SELECT = (
    "SELECT d.id, d.subscription_id, d.deployment_id, d.attempts, d.retries_allowed,"
    " e.event_id, e.object_id, e.resource_url, e.created_at,"
    " s.trigger_url, s.content_type, s.secret, s.deleted_at, dep.standard_webhooks"
    " FROM deliveries AS d"
    " JOIN events AS e ON e.id = d.event_row_id"
    " JOIN subscriptions AS s ON s.id = d.subscription_id"
    " JOIN deployments AS dep ON dep.id = d.deployment_id"
    " WHERE d.state = 'pending' AND d.next_attempt_at <= ?{exclusion}"
    " ORDER BY d.next_attempt_at, d.id LIMIT ?"
)
_CLAIM_SELECT_ALL = _CLAIM_SELECT.format(exclusion="")
_CLAIM_SELECT_EXCLUDING = _CLAIM_SELECT.format(
    exclusion=" AND d.subscription_id NOT IN (SELECT value FROM json_each(?))"
)
_LEASE = "UPDATE deliveries SET next_attempt_at = ?, lease_owner = ? WHERE id IN (SELECT value FROM json_each(?))"
_CANCEL_DELIVERIES = (
    "UPDATE deliveries SET state = 'cancelled', finished_at = ?, next_attempt_at = NULL, lease_owner = NULL"
    " WHERE id IN (SELECT value FROM json_each(?))"
)

_SELECT_LEASES = (
    "SELECT id, lease_owner, subscription_id, retries_allowed FROM deliveries"
    " WHERE id IN (SELECT value FROM json_each(?)) AND state = 'pending'"
)
_INSERT_ATTEMPT = (
    "INSERT INTO attempts (delivery_id, subscription_id, attempt_number, started_at, duration_ms, status_code,"
    " response_excerpt, error, error_class, outcome) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
)
_MOVE_DELIVERY_ON = (
    "UPDATE deliveries SET state = ?, attempts = attempts + 1, next_attempt_at = ?, lease_owner = NULL,"
    " finished_at = ?, last_status_code = ?, last_error = ? WHERE id = ?"
)
_TALLY_SUBSCRIPTION = (
    "UPDATE subscriptions SET"
    " consecutive_failures = CASE WHEN :reset THEN :failures ELSE consecutive_failures + :failures END,"
    " failing_since = CASE WHEN :reset THEN :first_failure_at ELSE coalesce(failing_since, :first_failure_at) END,"
    " last_attempt_at = :last_attempt_at, last_status_code = :last_status_code, last_error = :last_error"
    " WHERE id = :id"
)
_DELETE_FAILING_SUBSCRIPTIONS = (
    "UPDATE subscriptions SET deleted_at = ?, deleted_reason = 'too_many_failures'"
    " WHERE id IN (SELECT value FROM json_each(?)) AND deleted_at IS NULL"
    " AND consecutive_failures >= ? AND failing_since IS NOT NULL AND failing_since <= ?"
    " RETURNING id"
)
_DELETE_GONE_SUBSCRIPTIONS = (
    "UPDATE subscriptions SET deleted_at = ?, deleted_reason = 'gone'"
    " WHERE id IN (SELECT value FROM json_each(?)) AND deleted_at IS NULL"
)
_CANCEL_PENDING_OF_SUBSCRIPTIONS = (
    "UPDATE deliveries SET state = 'cancelled', finished_at = ?, next_attempt_at = NULL, lease_owner = NULL"
    " WHERE subscription_id IN (SELECT value FROM json_each(?)) AND state = 'pending'"
)

_RELEASE_OWNER = (
    "UPDATE deliveries SET next_attempt_at = ?, lease_owner = NULL WHERE state = 'pending' AND lease_owner = ?"
)
_RELEASE_ALL = (
    "UPDATE deliveries SET next_attempt_at = ?, lease_owner = NULL WHERE state = 'pending' AND lease_owner IS NOT NULL"
)
_REDELIVER = (
    "INSERT INTO deliveries (event_row_id, subscription_id, deployment_id, state, attempts, retries_allowed,"
    " next_attempt_at, created_at, redelivery_of)"
    " SELECT d.event_row_id, d.subscription_id, d.deployment_id, 'pending', 0, 1, ?, ?, d.id"
    " FROM deliveries AS d JOIN subscriptions AS s ON s.id = d.subscription_id"
    " WHERE d.id = ? AND s.deleted_at IS NULL"
)
_NEXT_DUE_AT = "SELECT min(next_attempt_at) FROM deliveries WHERE state = 'pending'"
_PENDING_COUNT = "SELECT count(*) FROM deliveries WHERE state = 'pending'"

_SELECT_PRUNABLE = (
    "SELECT id, event_row_id FROM deliveries WHERE state <> 'pending' AND finished_at < ? ORDER BY finished_at LIMIT ?"
)
_SELECT_OLD_EVENTS = "SELECT id FROM events WHERE created_at < ? ORDER BY created_at LIMIT ?"
_DELETE_ATTEMPTS_OF = "DELETE FROM attempts WHERE delivery_id IN (SELECT value FROM json_each(?))"
_DELETE_DELIVERIES = "DELETE FROM deliveries WHERE id IN (SELECT value FROM json_each(?))"
# One pass over deliveries for the whole batch (an index on deliveries.event_row_id makes it a lookup).
_EVENTS_STILL_DELIVERED = (
    "SELECT DISTINCT event_row_id FROM deliveries WHERE event_row_id IN (SELECT value FROM json_each(?))"
)
_DELETE_EVENTS = "DELETE FROM events WHERE id IN (SELECT value FROM json_each(?))"

_CANCEL_PENDING_OF_SUBSCRIPTION = (
    "UPDATE deliveries SET state = 'cancelled', finished_at = ?, next_attempt_at = NULL, lease_owner = NULL"
    " WHERE subscription_id = ? AND state = 'pending'"
)


# --- The writer thread -----------------------------------------------------------------------------------


class _Job:
    """A function of the connection, the future its caller awaits, and whether its commit brings new work."""

    __slots__ = ("future", "run", "wakes")

    def __init__(self, run: Callable[[sqlite3.Connection], Any], future: asyncio.Future[Any], wakes: bool) -> None:
        self.run = run
        self.future = future
        self.wakes = wakes


def _connect(path: Path) -> sqlite3.Connection:
    connection = sqlite3.connect(path, timeout=BUSY_TIMEOUT_SECONDS, isolation_level=None, cached_statements=256)
    connection.execute("PRAGMA journal_mode=WAL")
    connection.execute("PRAGMA synchronous=FULL")
    connection.execute("PRAGMA foreign_keys=ON")
    return connection


def _to_json(values: Collection[Any]) -> str:
    return json.dumps(list(values))


def _clip(text: str | None, max_chars: int) -> str | None:
    return text if text is None or len(text) <= max_chars else text[:max_chars]


class SqliteQueue:
    """The delivery queue on an SQLite file, for one `hookline serve` process."""

    work_available: asyncio.Event

    def __init__(self, path: Path, policy: FailurePolicy) -> None:
        self._path = path
        self._policy = policy
        self._jobs: queue.SimpleQueue[_Job | None] = queue.SimpleQueue()
        self._thread: threading.Thread | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._closed = False

    # Lifecycle ------------------------------------------------------------------------------------------

    async def open(self) -> None:
        """Open the connection on a new writer thread."""
        if self._thread is not None:
            raise RuntimeError("SqliteQueue.open() called twice")
        self._loop = asyncio.get_running_loop()
        self.work_available = asyncio.Event()
        connected: concurrent.futures.Future[None] = concurrent.futures.Future()
        self._thread = threading.Thread(
            target=self._write_forever, args=(connected,), name="hookline-sqlite-writer", daemon=True
        )
        self._thread.start()
        await asyncio.wrap_future(connected)

    async def close(self) -> None:
        """Run every job already queued, commit, and close the connection."""
        if self._thread is None or self._closed:
            return
        self._closed = True
        self._jobs.put(None)
        await asyncio.to_thread(self._thread.join)

    def _write_forever(self, connected: concurrent.futures.Future[None]) -> None:
        try:
            connection = _connect(self._path)
        except Exception as exc:
            connected.set_exception(exc)
            return
        connected.set_result(None)
        try:
            stopping = False
            while not stopping:
                batch = [self._jobs.get()]
                with contextlib.suppress(queue.Empty):
                    while True:
                        batch.append(self._jobs.get_nowait())
                jobs = [job for job in batch if job is not None]
                stopping = len(jobs) < len(batch)
                if jobs:
                    self._run_in_one_transaction(connection, jobs)
        finally:
            connection.close()

    def _run_in_one_transaction(self, connection: sqlite3.Connection, jobs: list[_Job]) -> None:
        outcomes: list[tuple[_Job, Any, BaseException | None]] = []
        try:
            connection.execute("BEGIN IMMEDIATE")
            for job in jobs:
                connection.execute("SAVEPOINT job")
                try:
                    result = job.run(connection)
                except Exception as exc:
                    if not connection.in_transaction:
                        raise  # SQLite rolled the whole transaction back (disk full, I/O error): fail the batch
                    connection.execute("ROLLBACK TO job")
                    connection.execute("RELEASE job")
                    outcomes.append((job, None, exc))
                else:
                    connection.execute("RELEASE job")
                    outcomes.append((job, result, None))
            connection.execute("COMMIT")
        except Exception as exc:
            if connection.in_transaction:
                with contextlib.suppress(sqlite3.Error):
                    connection.execute("ROLLBACK")
            outcomes = [(job, None, exc) for job in jobs]
        wakes = any(job.wakes and error is None for job, _, error in outcomes)
        assert self._loop is not None  # set by open() before the thread starts
        with contextlib.suppress(RuntimeError):  # the loop closed without close(): nobody is waiting
            self._loop.call_soon_threadsafe(self._settle, outcomes, wakes)

    def _settle(self, outcomes: list[tuple[_Job, Any, BaseException | None]], wakes: bool) -> None:
        for job, result, error in outcomes:
            if job.future.done():  # the caller was cancelled; its job ran anyway
                continue
            if error is None:
                job.future.set_result(result)
            else:
                job.future.set_exception(error)
        if wakes:
            self.work_available.set()

    def _submit(self, run: Callable[[sqlite3.Connection], _Result], *, wakes: bool = False) -> asyncio.Future[_Result]:
        if self._loop is None or self._closed:
            raise RuntimeError("the SQLite queue is not open")
        future: asyncio.Future[_Result] = self._loop.create_future()
        self._jobs.put(_Job(run, future, wakes))
        return future

    # The DeliveryQueue protocol ---------------------------------------------------------------------------

    async def now(self) -> float:
        """The clock claims and due times are compared with: this machine's, in epoch seconds."""
        return time.time()

    async def ingest(self, events: Sequence[NewEvent], idempotency_window_seconds: float) -> list[StoredEvent]:
        """Store events and fan each out to its matching live subscriptions, in one durable commit."""
        return await self._submit(
            lambda connection: _ingest(connection, events, idempotency_window_seconds), wakes=True
        )

    async def enqueue_leased(
        self, event: NewEvent, subscription_id: str, owner: str, lease_seconds: float
    ) -> ClaimedDelivery | None:
        """Store an event with one delivery to this subscription, already leased to `owner`, without retries."""
        return await self._submit(
            lambda connection: _enqueue_leased(connection, event, subscription_id, owner, lease_seconds)
        )

    async def claim(
        self, owner: str, limit: int, lease_seconds: float, exclude_subscription_ids: Collection[str] = ()
    ) -> list[ClaimedDelivery]:
        """Lease up to `limit` due deliveries (oldest due first), skipping the excluded subscriptions."""
        excluded_json = _to_json(exclude_subscription_ids) if exclude_subscription_ids else None
        return await self._submit(lambda connection: _claim(connection, owner, limit, lease_seconds, excluded_json))

    async def record(self, results: Sequence[AttemptResult]) -> None:
        """Record attempts in one commit and move each delivery on; results from a lost lease are ignored."""
        if results:
            await self._submit(lambda connection: _record(connection, results, self._policy))

    async def release(self, owner: str) -> int:
        """Hand back every delivery leased to `owner` (due now); returns how many."""
        return await self._submit(
            lambda connection: connection.execute(_RELEASE_OWNER, (time.time(), owner)).rowcount, wakes=True
        )

    async def release_all(self) -> int:
        """Hand back every leased delivery (due now); only for the one dispatcher, once it holds the lock."""
        return await self._submit(
            lambda connection: connection.execute(_RELEASE_ALL, (time.time(),)).rowcount, wakes=True
        )

    async def redeliver(self, delivery_id: int) -> int | None:
        """Queue a new delivery of the same event to the same live subscription; its id, or None."""
        return await self._submit(lambda connection: _redeliver(connection, delivery_id), wakes=True)

    async def next_due_at(self) -> float | None:
        """When the earliest pending delivery falls due, or None when nothing is pending."""
        due: float | None = await self._submit(lambda connection: connection.execute(_NEXT_DUE_AT).fetchone()[0])
        return due

    async def pending_count(self) -> int:
        """How many deliveries are pending (due or not, leased or not)."""
        count: int = await self._submit(lambda connection: connection.execute(_PENDING_COUNT).fetchone()[0])
        return count

    async def prune(self, finished_before: float, batch_size: int) -> int:
        """Delete up to batch_size finished deliveries (with their attempts, and events left without any)."""
        return await self._submit(lambda connection: _prune(connection, finished_before, batch_size))

    async def cancel_pending(self, subscription_id: str) -> int:
        """Cancel the pending deliveries of a subscription (after it was deleted); returns how many."""
        return await self._submit(
            lambda connection: (
                connection.execute(_CANCEL_PENDING_OF_SUBSCRIPTION, (time.time(), subscription_id)).rowcount
            )
        )


# --- Jobs: each runs on the writer thread, inside the batch's transaction --------------------------------


def _ingest(connection: sqlite3.Connection, events: Sequence[NewEvent], window_seconds: float) -> list[StoredEvent]:
    now = time.time()
    return [_ingest_one(connection, event, window_seconds, now) for event in events]


def _ingest_one(connection: sqlite3.Connection, event: NewEvent, window_seconds: float, now: float) -> StoredEvent:
    if event.idempotency_key is not None:
        original = connection.execute(_SELECT_EVENT_BY_KEY, (event.deployment_id, event.idempotency_key)).fetchone()
        if original is not None:
            row_id, event_id, object_id, resource_url, created_at = original
            if now - created_at < window_seconds:
                (fanned_out,) = connection.execute(_COUNT_FANOUT_DELIVERIES, (row_id,)).fetchone()
                return StoredEvent(row_id, event_id, object_id, resource_url, created_at, fanned_out, duplicate=True)
            connection.execute(_FORGET_IDEMPOTENCY_KEY, (row_id,))
    user_ids_json = None if event.user_ids is None else _to_json(event.user_ids)
    row_id = connection.execute(
        _INSERT_EVENT,
        (
            event.deployment_id,
            event.event_id,
            event.object_id,
            event.resource_url,
            user_ids_json,
            event.idempotency_key,
            now,
        ),
    ).lastrowid
    fanout_sql = _FANOUT
    parameters: list[Any] = [row_id, now, now, event.deployment_id, event.event_id]
    if user_ids_json is not None:
        fanout_sql += _FANOUT_USERS_FILTER
        parameters.append(user_ids_json)
    if event.only_subscription_id is not None:
        fanout_sql += _FANOUT_ONLY_FILTER
        parameters.append(event.only_subscription_id)
    fanned_out = connection.execute(fanout_sql, parameters).rowcount
    assert row_id is not None  # an INSERT always sets lastrowid
    return StoredEvent(row_id, event.event_id, event.object_id, event.resource_url, now, fanned_out)


def _enqueue_leased(
    connection: sqlite3.Connection, event: NewEvent, subscription_id: str, owner: str, lease_seconds: float
) -> ClaimedDelivery | None:
    subscription = connection.execute(_SELECT_LIVE_SUBSCRIPTION, (subscription_id,)).fetchone()
    if subscription is None or subscription[0] != event.deployment_id:
        return None
    deployment_id, trigger_url, content_type, secret, standard_webhooks = subscription
    now = time.time()
    # Synchronous dispatch takes no part in idempotency: its key, if any, is not stored.
    event_row_id = connection.execute(
        _INSERT_EVENT,
        (deployment_id, event.event_id, event.object_id, event.resource_url, None, None, now),
    ).lastrowid
    delivery_id = connection.execute(
        _INSERT_LEASED_DELIVERY, (event_row_id, subscription_id, deployment_id, now + lease_seconds, owner, now)
    ).lastrowid
    assert delivery_id is not None  # an INSERT always sets lastrowid
    return ClaimedDelivery(
        delivery_id=delivery_id,
        subscription_id=subscription_id,
        deployment_id=deployment_id,
        attempts_done=0,
        event_id=event.event_id,
        object_id=event.object_id,
        resource_url=event.resource_url,
        trigger_url=trigger_url,
        content_type=content_type,
        secret=secret,
        standard_webhooks=bool(standard_webhooks),
        created_at=now,
        retries_allowed=False,
    )


def _claim(
    connection: sqlite3.Connection, owner: str, limit: int, lease_seconds: float, excluded_json: str | None
) -> list[ClaimedDelivery]:
    now = time.time()
    if excluded_json is None:
        rows = connection.execute(_CLAIM_SELECT_ALL, (now, limit)).fetchall()
    else:
        rows = connection.execute(_CLAIM_SELECT_EXCLUDING, (now, excluded_json, limit)).fetchall()
    claimed: list[ClaimedDelivery] = []
    orphaned: list[int] = []  # their subscription was deleted since they were queued
    for (
        delivery_id,
        subscription_id,
        deployment_id,
        attempts_done,
        retries_allowed,
        event_id,
        object_id,
        resource_url,
        created_at,
        trigger_url,
        content_type,
        secret,
        deleted_at,
        standard_webhooks,
    ) in rows:
        if deleted_at is not None:
            orphaned.append(delivery_id)
            continue
        claimed.append(
            ClaimedDelivery(
                delivery_id,
                subscription_id,
                deployment_id,
                attempts_done,
                event_id,
                object_id,
                resource_url,
                trigger_url,
                content_type,
                secret,
                bool(standard_webhooks),
                created_at,
                bool(retries_allowed),
            )
        )
    if claimed:
        leased_json = _to_json([delivery.delivery_id for delivery in claimed])
        connection.execute(_LEASE, (now + lease_seconds, owner, leased_json))
    if orphaned:
        connection.execute(_CANCEL_DELIVERIES, (now, _to_json(orphaned)))
    return claimed


@dataclass(slots=True)
class _SubscriptionTally:
    """What one batch of results does to a subscription's failure counters and last-attempt fields."""

    reset: bool = False
    failures: int = 0
    first_failure_at: float | None = None
    last_attempt_at: float = float("-inf")
    last_status_code: int | None = None
    last_error: str | None = None


def _record(connection: sqlite3.Connection, results: Sequence[AttemptResult], policy: FailurePolicy) -> None:
    now = time.time()
    leases = {
        delivery_id: (owner, subscription_id, bool(retries_allowed))
        for delivery_id, owner, subscription_id, retries_allowed in connection.execute(
            _SELECT_LEASES, (_to_json({result.delivery_id for result in results}),)
        )
    }
    attempt_rows: list[tuple[Any, ...]] = []
    delivery_rows: list[tuple[Any, ...]] = []
    tallies: dict[str, _SubscriptionTally] = {}
    gone: set[str] = set()
    for result in sorted(results, key=lambda result: result.started_at):
        lease = leases.get(result.delivery_id)
        if lease is None or lease[0] != result.lease_owner:
            continue  # the lease was lost (expired and claimed again, released, or the delivery cancelled)
        del leases[result.delivery_id]  # one result per lease: a second one is ignored too
        _, subscription_id, retries_allowed = lease
        error = _clip(result.error, ERROR_MAX_CHARS)
        attempt_rows.append(
            (
                result.delivery_id,
                subscription_id,
                result.attempt_number,
                result.started_at,
                result.duration_ms,
                result.status_code,
                result.response_excerpt,
                error,
                _clip(result.error_class, ERROR_CLASS_MAX_CHARS),
                result.outcome,
            )
        )
        outcome = result.outcome
        if outcome == "retry" and not retries_allowed:
            outcome = "failed"
        if outcome == "retry":
            due_at = now + (result.retry_in_seconds or 0.0)
            delivery_rows.append(("pending", due_at, None, result.status_code, error, result.delivery_id))
        else:
            state = "succeeded" if outcome == "success" else "failed"
            delivery_rows.append((state, None, now, result.status_code, error, result.delivery_id))
        tally = tallies.setdefault(subscription_id, _SubscriptionTally())
        if outcome == "success":
            tally.reset, tally.failures, tally.first_failure_at = True, 0, None
        elif outcome == "gone":
            gone.add(subscription_id)
        else:
            tally.failures += 1
            if tally.first_failure_at is None:
                tally.first_failure_at = result.started_at
        if result.started_at >= tally.last_attempt_at:
            tally.last_attempt_at = result.started_at
            tally.last_status_code = result.status_code
            tally.last_error = error
    if not attempt_rows:
        return
    connection.executemany(_INSERT_ATTEMPT, attempt_rows)
    connection.executemany(_MOVE_DELIVERY_ON, delivery_rows)
    connection.executemany(
        _TALLY_SUBSCRIPTION,
        [
            {
                "id": subscription_id,
                "reset": tally.reset,
                "failures": tally.failures,
                "first_failure_at": tally.first_failure_at,
                "last_attempt_at": tally.last_attempt_at,
                "last_status_code": tally.last_status_code,
                "last_error": tally.last_error,
            }
            for subscription_id, tally in tallies.items()
        ],
    )
    removed = set(gone)
    failing = [subscription_id for subscription_id, tally in tallies.items() if tally.failures]
    if failing:
        deleted = connection.execute(
            _DELETE_FAILING_SUBSCRIPTIONS,
            (now, _to_json(failing), policy.threshold, now - policy.window_seconds),
        ).fetchall()
        removed.update(subscription_id for (subscription_id,) in deleted)
    if gone:
        connection.execute(_DELETE_GONE_SUBSCRIPTIONS, (now, _to_json(gone)))
    if removed:
        connection.execute(_CANCEL_PENDING_OF_SUBSCRIPTIONS, (now, _to_json(removed)))


def _redeliver(connection: sqlite3.Connection, delivery_id: int) -> int | None:
    now = time.time()
    cursor = connection.execute(_REDELIVER, (now, now, delivery_id))
    return cursor.lastrowid if cursor.rowcount == 1 else None


def _prune(connection: sqlite3.Connection, finished_before: float, batch_size: int) -> int:
    prunable = connection.execute(_SELECT_PRUNABLE, (finished_before, batch_size)).fetchall()
    if prunable:
        delivery_ids_json = _to_json([delivery_id for delivery_id, _ in prunable])
        connection.execute(_DELETE_ATTEMPTS_OF, (delivery_ids_json,))
        connection.execute(_DELETE_DELIVERIES, (delivery_ids_json,))
    # Events whose last deliveries just went, and old events that never fanned out to anyone.
    candidates = {event_row_id for _, event_row_id in prunable}
    candidates.update(row_id for (row_id,) in connection.execute(_SELECT_OLD_EVENTS, (finished_before, batch_size)))
    if candidates:
        candidates_json = _to_json(candidates)
        still_delivered = {row_id for (row_id,) in connection.execute(_EVENTS_STILL_DELIVERED, (candidates_json,))}
        if still_delivered:
            candidates -= still_delivered
            candidates_json = _to_json(candidates)
        if candidates:
            connection.execute(_DELETE_EVENTS, (candidates_json,))
    return len(prunable)
