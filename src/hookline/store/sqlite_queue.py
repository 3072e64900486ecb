"""The SQLite delivery queue: one writer thread, group commit, plain SQL on the stdlib driver.

Every statement of the queue (ingestion, claims, results, releases, prunes and its few reads) runs on one
dedicated thread that owns this queue's only sqlite3 connection. Callers hand it jobs (functions of the
connection); the thread takes everything queued, runs it in ONE transaction (if a job raises, the transaction is
rolled back and each job runs again alone, so the error fails only its own caller), commits, and then settles
the callers' futures on the event loop. Whatever arrives while one commit is running goes into the next, so
commits batch themselves without a timer window and `synchronous=FULL` costs almost nothing per delivery.

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
from pathlib import Path
from typing import Any, TypeVar

from hookline.domain import AttemptResult, ClaimedDelivery, NewEvent, StoredEvent
from hookline.store.queue import FailurePolicy, LeaseOffer
from hookline.store.sqlite_sql import (
    CANCEL_DELIVERIES,
    CANCEL_PENDING_OF_REMOVED,
    CANCEL_PENDING_OF_SUBSCRIPTION,
    CLAIM_SELECT_ALL,
    CLAIM_SELECT_EXCLUDING,
    CLAIMED_ORDER,
    CLEAR_RECORDED_RESULTS,
    COUNT_FANOUT_DELIVERIES,
    CREATE_RECORDED_RESULTS,
    DELETE_ATTEMPTS_OF,
    DELETE_DELIVERIES,
    DELETE_EVENTS,
    DELETE_FAILING_SUBSCRIPTIONS,
    DELETE_GONE_SUBSCRIPTIONS,
    EVENTS_STILL_DELIVERED,
    FANOUT,
    FANOUT_ONLY_FILTER,
    FANOUT_USERS_FILTER,
    FORGET_IDEMPOTENCY_KEY,
    INSERT_ATTEMPTS,
    INSERT_EVENT,
    INSERT_LEASED_DELIVERY,
    LEASE,
    MOVE_DELIVERIES_ON,
    NEXT_DUE_AT,
    PENDING_COUNT,
    REDELIVER,
    RELEASE_ALL,
    RELEASE_OWNER,
    RESULT_FIELDS,
    SELECT_EVENT_BY_KEY,
    SELECT_LIVE_SUBSCRIPTION,
    SELECT_OLD_EVENTS,
    SELECT_PRUNABLE,
    STAGE_RESULTS,
    STARTED_AT,
    TALLY_SUBSCRIPTIONS,
)

BUSY_TIMEOUT_SECONDS = 10.0

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


# --- The writer thread -----------------------------------------------------------------------------------


_Wakes = bool | Callable[[Any], bool]  # whether a job's commit brings new work: always, never, or by its result


class _Job:
    """A function of the connection, the future its caller awaits, and whether its commit brings new work."""

    __slots__ = ("future", "run", "wakes")

    def __init__(self, run: Callable[[sqlite3.Connection], Any], future: asyncio.Future[Any], wakes: _Wakes) -> None:
        self.run = run
        self.future = future
        self.wakes = wakes

    def woke(self, result: Any) -> bool:
        """Whether this job, having run and returned `result`, brought new work for the dispatchers."""
        return self.wakes(result) if callable(self.wakes) else self.wakes


_Outcome = tuple[_Job, Any, BaseException | None]


def _run_jobs(connection: sqlite3.Connection, jobs: list[_Job]) -> list[_Outcome]:
    """Run the jobs in one transaction; if one raises, roll all back and run each alone, so its error is its own.

    No savepoint per job: on a busy process every statement costs a wait for the GIL, and the usual batch has
    nothing to roll back.
    """
    try:
        connection.execute("BEGIN IMMEDIATE")
        outcomes: list[_Outcome] = [(job, job.run(connection), None) for job in jobs]
        connection.execute("COMMIT")
    except Exception as exc:
        if connection.in_transaction:
            with contextlib.suppress(sqlite3.Error):
                connection.execute("ROLLBACK")
        if len(jobs) == 1:
            return [(jobs[0], None, exc)]
        return [outcome for job in jobs for outcome in _run_jobs(connection, [job])]
    return outcomes


def _connect(path: Path) -> sqlite3.Connection:
    connection = sqlite3.connect(path, timeout=BUSY_TIMEOUT_SECONDS, isolation_level=None, cached_statements=256)
    connection.execute("PRAGMA journal_mode=WAL")
    connection.execute("PRAGMA synchronous=FULL")
    connection.execute("PRAGMA foreign_keys=ON")
    connection.execute("PRAGMA temp_store=MEMORY")  # recorded_results never touches the disk
    connection.execute(CREATE_RECORDED_RESULTS)
    return connection


def _to_json(values: Collection[Any]) -> str:
    return json.dumps(list(values))


class SqliteQueue:
    """The delivery queue on an SQLite file, for one `hookline serve` process."""

    work_available: asyncio.Event

    def __init__(self, path: Path, policy: FailurePolicy) -> None:
        self._path = path
        self._policy = policy
        self._jobs: queue.SimpleQueue[_Job | None] = queue.SimpleQueue()
        self._thread: threading.Thread | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._reader: sqlite3.Connection | None = None
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
        # A reader for the due time, asked inline on the event loop: an indexed min() takes microseconds, and a
        # WAL reader never waits for the writer, whose queue it would otherwise wait behind.
        self._reader = sqlite3.connect(self._path, timeout=BUSY_TIMEOUT_SECONDS, isolation_level=None)

    async def close(self) -> None:
        """Run every job already queued, commit, and close the connection."""
        if self._thread is None or self._closed:
            return
        self._closed = True
        self._jobs.put(None)
        await asyncio.to_thread(self._thread.join)
        if self._reader is not None:
            self._reader.close()
            self._reader = None

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
        outcomes = _run_jobs(connection, jobs)
        wakes = any(error is None and job.woke(result) for job, result, error in outcomes)
        assert self._loop is not None  # set by open() before the thread starts
        with contextlib.suppress(RuntimeError):  # the loop closed without close(): nobody is waiting
            self._loop.call_soon_threadsafe(self._settle, outcomes, wakes)

    def _settle(self, outcomes: list[_Outcome], wakes: bool) -> None:
        for job, result, error in outcomes:
            if job.future.done():  # the caller was cancelled; its job ran anyway
                continue
            if error is None:
                job.future.set_result(result)
            else:
                job.future.set_exception(error)
        if wakes:
            self.work_available.set()

    def _submit(
        self, run: Callable[[sqlite3.Connection], _Result], *, wakes: _Wakes = False
    ) -> asyncio.Future[_Result]:
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

    async def ingest_and_lease(
        self, events: Sequence[NewEvent], idempotency_window_seconds: float, offer: LeaseOffer
    ) -> tuple[list[StoredEvent], list[ClaimedDelivery]]:
        """`ingest`, and in the same commit lease due deliveries to the offering dispatcher."""
        excluded_json = _to_json(offer.excluded_subscription_ids) if offer.excluded_subscription_ids else None

        def ingest_and_lease(connection: sqlite3.Connection) -> tuple[list[StoredEvent], list[ClaimedDelivery]]:
            stored = _ingest(connection, events, idempotency_window_seconds)
            if not any(event.deliveries and not event.duplicate for event in stored):
                return stored, []
            return stored, _claim(connection, offer.owner, offer.limit, offer.lease_seconds, excluded_json)

        def may_leave_work(outcome: tuple[list[StoredEvent], list[ClaimedDelivery]]) -> bool:
            stored, leased = outcome
            fanned_out = any(event.deliveries and not event.duplicate for event in stored)
            return fanned_out and offer.may_leave_work(len(leased))

        return await self._submit(ingest_and_lease, wakes=may_leave_work)

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
            lambda connection: connection.execute(RELEASE_OWNER, (time.time(), owner)).rowcount, wakes=True
        )

    async def release_all(self) -> int:
        """Hand back every leased delivery (due now); only for the one dispatcher, once it holds the lock."""
        return await self._submit(
            lambda connection: connection.execute(RELEASE_ALL, (time.time(),)).rowcount, wakes=True
        )

    async def redeliver(self, delivery_id: int) -> int | None:
        """Queue a new delivery of the same event to the same live subscription; its id, or None."""
        return await self._submit(lambda connection: _redeliver(connection, delivery_id), wakes=True)

    async def next_due_at(self) -> float | None:
        """When the earliest pending delivery falls due, or None when nothing is pending."""
        if self._reader is None or self._closed:
            raise RuntimeError("the SQLite queue is not open")
        # fetchall, not fetchone: a statement left unfinished would hold a read snapshot, and with it the WAL.
        [(due,)] = self._reader.execute(NEXT_DUE_AT).fetchall()
        return due if due is None else float(due)

    async def seconds_until_due(self) -> float | None:
        """How long until the earliest pending delivery falls due (<= 0: due now), by this machine's clock."""
        due_at = await self.next_due_at()
        return None if due_at is None else due_at - time.time()

    async def pending_count(self) -> int:
        """How many deliveries are pending (due or not, leased or not)."""
        count: int = await self._submit(lambda connection: connection.execute(PENDING_COUNT).fetchone()[0])
        return count

    async def prune(self, finished_before: float, batch_size: int) -> int:
        """Delete up to batch_size finished deliveries (with their attempts, and events left without any)."""
        return await self._submit(lambda connection: _prune(connection, finished_before, batch_size))

    async def cancel_pending(self, subscription_id: str) -> int:
        """Cancel the pending deliveries of a subscription (after it was deleted); returns how many."""
        return await self._submit(
            lambda connection: (
                connection.execute(CANCEL_PENDING_OF_SUBSCRIPTION, (time.time(), subscription_id)).rowcount
            )
        )


# --- Jobs: each runs on the writer thread, inside the batch's transaction --------------------------------


def _ingest(connection: sqlite3.Connection, events: Sequence[NewEvent], window_seconds: float) -> list[StoredEvent]:
    now = time.time()
    return [_ingest_one(connection, event, window_seconds, now) for event in events]


def _ingest_one(connection: sqlite3.Connection, event: NewEvent, window_seconds: float, now: float) -> StoredEvent:
    if event.idempotency_key is not None:
        original = connection.execute(SELECT_EVENT_BY_KEY, (event.deployment_id, event.idempotency_key)).fetchone()
        if original is not None:
            row_id, event_id, object_id, resource_url, created_at = original
            if now - created_at < window_seconds:
                (fanned_out,) = connection.execute(COUNT_FANOUT_DELIVERIES, (row_id,)).fetchone()
                return StoredEvent(row_id, event_id, object_id, resource_url, created_at, fanned_out, duplicate=True)
            connection.execute(FORGET_IDEMPOTENCY_KEY, (row_id,))
    user_ids_json = None if event.user_ids is None else _to_json(event.user_ids)
    row_id = connection.execute(
        INSERT_EVENT,
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
    fanout_sql = FANOUT
    parameters: list[Any] = [row_id, now, now, event.deployment_id, event.event_id]
    if user_ids_json is not None:
        fanout_sql += FANOUT_USERS_FILTER
        parameters.append(user_ids_json)
    if event.only_subscription_id is not None:
        fanout_sql += FANOUT_ONLY_FILTER
        parameters.append(event.only_subscription_id)
    fanned_out = connection.execute(fanout_sql, parameters).rowcount
    assert row_id is not None  # an INSERT always sets lastrowid
    return StoredEvent(row_id, event.event_id, event.object_id, event.resource_url, now, fanned_out)


def _enqueue_leased(
    connection: sqlite3.Connection, event: NewEvent, subscription_id: str, owner: str, lease_seconds: float
) -> ClaimedDelivery | None:
    subscription = connection.execute(SELECT_LIVE_SUBSCRIPTION, (subscription_id,)).fetchone()
    if subscription is None or subscription[0] != event.deployment_id:
        return None
    deployment_id, trigger_url, content_type, secret, standard_webhooks = subscription
    now = time.time()
    # Synchronous dispatch takes no part in idempotency: its key, if any, is not stored.
    event_row_id = connection.execute(
        INSERT_EVENT,
        (deployment_id, event.event_id, event.object_id, event.resource_url, None, None, now),
    ).lastrowid
    delivery_id = connection.execute(
        INSERT_LEASED_DELIVERY, (event_row_id, subscription_id, deployment_id, now + lease_seconds, owner, now)
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
        (rows_json,) = connection.execute(CLAIM_SELECT_ALL, (now, limit)).fetchone()
    else:
        (rows_json,) = connection.execute(CLAIM_SELECT_EXCLUDING, (now, excluded_json, limit)).fetchone()
    rows = json.loads(rows_json)
    rows.sort(key=CLAIMED_ORDER)
    # One comprehension, positional arguments: this runs on the writer thread, holding the GIL, per delivery.
    claimed = [
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
            standard_webhooks != 0,
            created_at,
            retries_allowed != 0,
        )
        for (
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
            standard_webhooks,
            created_at,
            retries_allowed,
            deleted_at,
            _due_at,
        ) in rows
        if deleted_at is None
    ]
    if len(claimed) < len(rows):  # some subscriptions were deleted since their deliveries were queued
        orphaned = [row[0] for row in rows if row[13] is not None]
        connection.execute(CANCEL_DELIVERIES, (now, _to_json(orphaned)))
    if claimed:
        leased_json = _to_json([delivery.delivery_id for delivery in claimed])
        connection.execute(LEASE, (now + lease_seconds, owner, leased_json))
    return claimed


def _record(connection: sqlite3.Connection, results: Sequence[AttemptResult], policy: FailurePolicy) -> None:
    now = time.time()
    staged = connection.execute(
        STAGE_RESULTS, (json.dumps([RESULT_FIELDS(result) for result in sorted(results, key=STARTED_AT)]),)
    )
    if staged.rowcount == 0:
        return  # every lease was lost (expired and claimed again, released, or the delivery cancelled)
    connection.execute(INSERT_ATTEMPTS)
    connection.execute(MOVE_DELIVERIES_ON, {"now": now})
    connection.execute(TALLY_SUBSCRIPTIONS)
    if all(result.outcome == "success" for result in results):  # the usual batch: no subscription to remove
        connection.execute(CLEAR_RECORDED_RESULTS)
        return
    deleted = connection.execute(
        DELETE_FAILING_SUBSCRIPTIONS, (now, policy.threshold, now - policy.window_seconds)
    ).fetchall()
    connection.execute(DELETE_GONE_SUBSCRIPTIONS, (now,))
    deleted_json = _to_json([subscription_id for (subscription_id,) in deleted]) if deleted else "[]"
    connection.execute(CANCEL_PENDING_OF_REMOVED, (now, deleted_json))
    connection.execute(CLEAR_RECORDED_RESULTS)


def _redeliver(connection: sqlite3.Connection, delivery_id: int) -> int | None:
    now = time.time()
    cursor = connection.execute(REDELIVER, (now, now, delivery_id))
    return cursor.lastrowid if cursor.rowcount == 1 else None


def _prune(connection: sqlite3.Connection, finished_before: float, batch_size: int) -> int:
    prunable = connection.execute(SELECT_PRUNABLE, (finished_before, batch_size)).fetchall()
    if prunable:
        delivery_ids_json = _to_json([delivery_id for delivery_id, _ in prunable])
        connection.execute(DELETE_ATTEMPTS_OF, (delivery_ids_json,))
        connection.execute(DELETE_DELIVERIES, (delivery_ids_json,))
    # Events whose last deliveries just went, and old events that never fanned out to anyone.
    candidates = {event_row_id for _, event_row_id in prunable}
    candidates.update(row_id for (row_id,) in connection.execute(SELECT_OLD_EVENTS, (finished_before, batch_size)))
    if candidates:
        candidates_json = _to_json(candidates)
        still_delivered = {row_id for (row_id,) in connection.execute(EVENTS_STILL_DELIVERED, (candidates_json,))}
        if still_delivered:
            candidates -= still_delivered
            candidates_json = _to_json(candidates)
        if candidates:
            connection.execute(DELETE_EVENTS, (candidates_json,))
    return len(prunable)
