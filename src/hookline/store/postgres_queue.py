"""The delivery queue on PostgreSQL: many processes on many machines share one queue.

Claims lease rows with `FOR UPDATE SKIP LOCKED` (a lease pushes next_attempt_at to its expiry, so a dead
worker's rows fall due again); results go through one writer task per process that commits whatever
accumulated while its previous commit ran, as `unnest` arrays; ingestion NOTIFYs `NOTIFY_CHANNEL` in its
own transaction and a dedicated LISTEN connection wakes this process's dispatcher. Every time is the
database's clock (epoch seconds), so processes on different machines agree on what is due.

Lock order, to keep concurrent writers free of deadlocks: a subscription row before any of its deliveries.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import json
import logging
from collections.abc import Awaitable, Callable, Collection, Iterable, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

import psycopg
import psycopg_pool
from psycopg.rows import TupleRow

from hookline.domain import AttemptResult, ClaimedDelivery, NewEvent, StoredEvent
from hookline.store.postgres_sql import (
    CANCEL_PENDING_OF_SUBSCRIPTIONS_SQL,
    CANCEL_PENDING_SQL,
    CLAIM_SQL,
    CLOCK_SQL,
    ENQUEUE_LEASED_SQL,
    FINISH_DELIVERIES_SQL,
    HASH_JOINS_FOR_THIS_TRANSACTION_SQL,
    INGEST_SQL,
    LISTEN_SQL,
    LOCK_ONE_SUBSCRIPTION_SQL,
    LOCK_SUBSCRIPTIONS_SQL,
    LOG_ATTEMPTS_AND_COUNTERS_SQL,
    NEXT_DUE_SQL,
    NO_HASH_JOINS_FOR_THIS_TRANSACTION_SQL,
    NOTIFY_SQL,
    ORIGINALS_SQL,
    PENDING_COUNT_SQL,
    PRUNE_DELIVERIES_SQL,
    PRUNE_EMPTIED_EVENTS_SQL,
    PRUNE_UNMATCHED_EVENTS_SQL,
    REDELIVER_SQL,
    RELEASE_EXPIRED_KEYS_SQL,
    RELEASE_SQL,
    SECONDS_UNTIL_DUE_SQL,
    SESSION_SETTINGS_SQL,
)
from hookline.store.queue import FailurePolicy, LeaseOffer
from hookline.store.schema import ERROR_CLASS_MAX_CHARS, ERROR_MAX_CHARS

logger = logging.getLogger(__name__)

T = TypeVar("T")
Connection = psycopg.AsyncConnection[TupleRow]

DEFAULT_MIN_POOL_SIZE = 2
DEFAULT_MAX_POOL_SIZE = 10
HOT_POOL_SIZE = 3  # the ingest writer, the result writer and the claimer
# How long open() waits for the server, and an operation for a pooled connection (a restart takes seconds).
CONNECT_TIMEOUT_SECONDS = 15.0
LISTEN_BACKOFF_MIN_SECONDS = 0.1
LISTEN_BACKOFF_MAX_SECONDS = 5.0
MAX_RESULTS_PER_COMMIT = 5000
MAX_EVENTS_PER_INGEST_COMMIT = 5000  # a bigger group waits for the next commit
# TCP keepalives, so a connection to a vanished server (no FIN) is noticed within ~25 s.
CONNECTION_KWARGS: dict[str, Any] = {
    "autocommit": True,
    "keepalives": 1,
    "keepalives_idle": 10,
    "keepalives_interval": 5,
    "keepalives_count": 3,
}

STATE_BY_OUTCOME = {"success": "succeeded", "retry": "pending", "failed": "failed", "gone": "failed"}
FAILURE_OUTCOMES = frozenset({"retry", "failed"})


_Ingested = tuple[list[StoredEvent], list[ClaimedDelivery]]


@dataclass(slots=True)
class _IngestRequest:
    """Events waiting for the ingest writer, with the lease offer they carry and the future their caller awaits."""

    events: Sequence[NewEvent]
    window_seconds: float
    offer: LeaseOffer | None
    done: asyncio.Future[_Ingested]


def _owner(offer: LeaseOffer | None) -> str | None:
    return None if offer is None else offer.owner


def _combined_offer(offers: Iterable[LeaseOffer | None]) -> LeaseOffer | None:
    """One offer for a group's transaction: each offer was the whole free room, so the largest; every exclusion."""
    made = [offer for offer in offers if offer is not None]
    if not made:
        return None
    excluded = sorted({subscription_id for offer in made for subscription_id in offer.excluded_subscription_ids})
    return LeaseOffer(made[0].owner, max(offer.limit for offer in made), made[0].lease_seconds, tuple(excluded))


def _settle(done: asyncio.Future[_Ingested], outcome: _Ingested | BaseException) -> None:
    """Resolve a caller's future with its outcome or error, unless the caller was cancelled meanwhile."""
    if done.done():
        return
    if isinstance(outcome, BaseException):
        done.set_exception(outcome)
    else:
        done.set_result(outcome)


@dataclass(slots=True)
class _SubscriptionCounters:
    """A subscription's failure counters, as locked at the start of a record commit."""

    consecutive_failures: int
    failing_since: float | None
    deleted: bool


@dataclass(slots=True)
class _CommitProgress:
    """Whether a transaction reached its COMMIT (after which a retry could apply it twice)."""

    commit_sent: bool = False


# Arrays go to the server as array literals built here ("{1,2,3}", '{"a","b"}'): psycopg's list dumper
# costs ~0.8 µs per element on the event loop, these joins a fraction of that.
def _int_array(values: Iterable[int | None]) -> str:
    return "{" + ",".join(["NULL" if value is None else str(int(value)) for value in values]) + "}"


def _float_array(values: Iterable[float | None]) -> str:
    return "{" + ",".join(["NULL" if value is None else repr(float(value)) for value in values]) + "}"


def _text_array(values: Iterable[str | None]) -> str:
    # Inside double quotes only a backslash and a double quote need escaping.
    quoted = [
        "NULL" if value is None else '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"' for value in values
    ]
    return "{" + ",".join(quoted) + "}"


def _truncate(text: str | None, max_chars: int) -> str | None:
    return None if text is None else text[:max_chars]


def _user_ids_json(user_ids: tuple[int, ...] | None) -> str | None:
    """How an event's user_ids are stored: a JSON array of ints, or NULL when the event named none."""
    return None if user_ids is None else json.dumps([int(user_id) for user_id in user_ids])


def _user_filter(user_ids: tuple[int, ...] | None) -> str | None:
    """The same user ids as a PostgreSQL int[] literal, for the fan-out's match."""
    return None if user_ids is None else "{" + ",".join(str(int(user_id)) for user_id in user_ids) + "}"


async def _configure_session(connection: Connection) -> None:
    """Session settings for every pooled connection (see SESSION_SETTINGS_SQL)."""
    await connection.execute(SESSION_SETTINGS_SQL)


def _new_pool(
    conninfo: str, min_size: int, max_size: int, timeout_seconds: float, name: str
) -> psycopg_pool.AsyncConnectionPool[Connection]:
    """A connection pool (opened later) whose connections carry the OLTP session settings."""
    return psycopg_pool.AsyncConnectionPool(
        conninfo,
        kwargs=CONNECTION_KWARGS,
        min_size=min_size,
        max_size=max_size,
        timeout=timeout_seconds,
        configure=_configure_session,
        open=False,
        name=name,
    )


def _describe(conninfo: str) -> str:
    """Where a conninfo points, without its password."""
    try:
        parts = psycopg.conninfo.conninfo_to_dict(conninfo)
    except psycopg.ProgrammingError:
        return "an unreadable database URL"
    return f"host {parts.get('host', 'localhost')} port {parts.get('port', 5432)} database {parts.get('dbname', '?')}"


def _retriable(exc: BaseException) -> bool:
    """A lost connection or a deadlock: worth one more try on a fresh connection (a pool timeout is not)."""
    return isinstance(exc, psycopg.OperationalError) and not isinstance(exc, psycopg_pool.PoolTimeout)


class PostgresQueue:
    """The DeliveryQueue on PostgreSQL: psycopg 3 pool, SKIP LOCKED leases, group commit, LISTEN/NOTIFY."""

    work_available: asyncio.Event

    def __init__(
        self,
        conninfo: str,
        policy: FailurePolicy,
        *,
        min_pool_size: int = DEFAULT_MIN_POOL_SIZE,
        max_pool_size: int = DEFAULT_MAX_POOL_SIZE,
        connect_timeout_seconds: float = CONNECT_TIMEOUT_SECONDS,
    ) -> None:
        self._conninfo = conninfo
        self._connect_timeout_seconds = connect_timeout_seconds
        self._policy = policy
        self._pool = _new_pool(conninfo, min_pool_size, max_pool_size, connect_timeout_seconds, "hookline")
        # The writers' and the claimer's own connections: never queued behind the API's requests.
        self._hot_pool = _new_pool(conninfo, HOT_POOL_SIZE, HOT_POOL_SIZE, connect_timeout_seconds, "hookline-hot")
        self.work_available = asyncio.Event()
        self._pending_results: list[tuple[Sequence[AttemptResult], asyncio.Future[None]]] = []
        self._results_arrived = asyncio.Event()
        self._writer_task: asyncio.Task[None] | None = None
        self._pending_ingests: collections.deque[_IngestRequest] = collections.deque()
        self._ingests_arrived = asyncio.Event()
        self._ingest_writer_task: asyncio.Task[None] | None = None
        self._listener_task: asyncio.Task[None] | None = None
        self._listening = asyncio.Event()
        self._closing = False

    # -- lifecycle -------------------------------------------------------------------------------------

    async def open(self) -> None:
        """Open the pool, start the result writer and the LISTEN connection (waits until it listens)."""
        self.work_available = asyncio.Event()
        self._results_arrived = asyncio.Event()
        self._listening = asyncio.Event()
        self._closing = False
        try:
            await self._pool.open(wait=True, timeout=self._connect_timeout_seconds)
            await self._hot_pool.open(wait=True, timeout=self._connect_timeout_seconds)
        except psycopg_pool.PoolTimeout as exc:
            await self._pool.close()  # stop its reconnection attempts: the caller gives up on this queue
            raise psycopg.OperationalError(
                f"could not connect to PostgreSQL ({_describe(self._conninfo)}) within"
                f" {self._connect_timeout_seconds:g} s; is the server running and the database URL right?"
            ) from exc
        self._writer_task = asyncio.create_task(self._write_results_forever(), name="hookline-pg-writer")
        self._ingests_arrived = asyncio.Event()
        self._ingest_writer_task = asyncio.create_task(self._write_ingests_forever(), name="hookline-pg-ingester")
        self._listener_task = asyncio.create_task(self._listen_forever(), name="hookline-pg-listener")
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._listening.wait(), self._connect_timeout_seconds)

    async def close(self) -> None:
        """Flush results still waiting for a commit, stop listening and close every connection."""
        self._closing = True
        self._results_arrived.set()
        self._ingests_arrived.set()
        if self._ingest_writer_task is not None:
            await self._ingest_writer_task
            self._ingest_writer_task = None
        if self._writer_task is not None:
            await self._writer_task
            self._writer_task = None
        if self._listener_task is not None:
            self._listener_task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._listener_task
            self._listener_task = None
        await self._pool.close()
        await self._hot_pool.close()

    # -- connections -----------------------------------------------------------------------------------

    async def _run(
        self,
        operation: Callable[[Connection, _CommitProgress], Awaitable[T]],
        *,
        idempotent: bool,
        hot: bool = False,
    ) -> T:
        """Run `operation` on a pooled connection; once more on a fresh one if the connection failed.

        A non-idempotent operation is retried only when its transaction never reached COMMIT.
        """
        pool = self._hot_pool if hot else self._pool
        progress = _CommitProgress()
        try:
            async with pool.connection() as connection:
                return await operation(connection, progress)
        except psycopg.Error as exc:
            if not _retriable(exc) or (progress.commit_sent and not idempotent):
                raise
            logger.warning("PostgreSQL operation failed (%s: %s); retrying once", type(exc).__name__, exc)
        # Other idle connections may be dead too (a server restart kills them all): weed them out first.
        await pool.check()
        async with pool.connection() as connection:
            return await operation(connection, _CommitProgress())

    async def _fetch_one(self, sql: str, params: Sequence[Any] = (), *, hot: bool = False) -> tuple[Any, ...]:
        async def fetch(connection: Connection, _progress: _CommitProgress) -> tuple[Any, ...]:
            cursor = await connection.execute(sql, params)
            row = await cursor.fetchone()
            assert row is not None  # aggregate queries always answer one row
            return row

        return await self._run(fetch, idempotent=True, hot=hot)

    # -- the clock and counts --------------------------------------------------------------------------

    async def now(self) -> float:
        """The database's clock in epoch seconds."""
        (now,) = await self._fetch_one(CLOCK_SQL)
        return float(now)

    async def next_due_at(self) -> float | None:
        """When the earliest pending delivery falls due (a leased one: when its lease expires), or None."""
        (due_at,) = await self._fetch_one(NEXT_DUE_SQL)
        return None if due_at is None else float(due_at)

    async def seconds_until_due(self) -> float | None:
        """How long until the earliest pending delivery falls due (<= 0: due now), by the database's clock."""
        (seconds,) = await self._fetch_one(SECONDS_UNTIL_DUE_SQL, hot=True)
        return None if seconds is None else float(seconds)

    async def pending_count(self) -> int:
        """How many deliveries are pending (due or not, leased or not)."""
        (count,) = await self._fetch_one(PENDING_COUNT_SQL)
        return int(count)

    # -- ingestion -------------------------------------------------------------------------------------

    async def ingest(self, events: Sequence[NewEvent], idempotency_window_seconds: float) -> list[StoredEvent]:
        """Store events and fan them out in one transaction; a live idempotency key answers its original."""
        stored, _ = await self._ingest(events, idempotency_window_seconds, None)
        return stored

    async def ingest_and_lease(
        self, events: Sequence[NewEvent], idempotency_window_seconds: float, offer: LeaseOffer
    ) -> tuple[list[StoredEvent], list[ClaimedDelivery]]:
        """`ingest`, and in the same transaction lease due deliveries to the offering dispatcher."""
        return await self._ingest(events, idempotency_window_seconds, offer)

    async def _ingest(
        self, events: Sequence[NewEvent], idempotency_window_seconds: float, offer: LeaseOffer | None
    ) -> tuple[list[StoredEvent], list[ClaimedDelivery]]:
        """Hand the events to the ingest writer; returns once the commit that holds them is done."""
        if not events:
            return [], []
        if self._closing or self._ingest_writer_task is None:
            raise RuntimeError("the queue is closed")
        done: asyncio.Future[_Ingested] = asyncio.get_running_loop().create_future()
        self._pending_ingests.append(_IngestRequest(events, idempotency_window_seconds, offer, done))
        self._ingests_arrived.set()
        return await done

    async def _write_ingests_forever(self) -> None:
        """The one ingest writer: commits the requests that accumulated while its previous commit ran, together."""
        while True:
            await self._ingests_arrived.wait()
            self._ingests_arrived.clear()
            while self._pending_ingests:
                group = [request for request in self._take_ingest_group() if not request.done.done()]
                if not group:
                    continue
                try:
                    outcomes = await self._ingest_together(group)
                except Exception as exc:
                    if len(group) == 1:
                        _settle(group[0].done, exc)
                        continue
                    # One request's trouble must not fail the others: each goes again on its own.
                    for request in group:
                        try:
                            [outcome] = await self._ingest_together([request])
                        except Exception as alone:
                            _settle(request.done, alone)
                        else:
                            _settle(request.done, outcome)
                else:
                    for request, outcome in zip(group, outcomes, strict=True):
                        _settle(request.done, outcome)
            if self._closing and not self._pending_ingests:
                return

    def _take_ingest_group(self) -> list[_IngestRequest]:
        """The oldest pending requests that can share one transaction: same window and lease owner, bounded."""
        first = self._pending_ingests.popleft()
        group = [first]
        events = len(first.events)
        while self._pending_ingests and events < MAX_EVENTS_PER_INGEST_COMMIT:
            candidate = self._pending_ingests[0]
            if candidate.window_seconds != first.window_seconds or _owner(candidate.offer) not in (
                _owner(first.offer),
                None,
            ):
                break
            group.append(self._pending_ingests.popleft())
            events += len(candidate.events)
        return group

    async def _ingest_together(self, group: list[_IngestRequest]) -> list[_Ingested]:
        """Ingest the group's events in one transaction; the deliveries leased go to the first offer's request."""
        events = [event for request in group for event in request.events]
        offer = _combined_offer([request.offer for request in group])
        stored, leased = await self._ingest_in_one_transaction(events, group[0].window_seconds, offer)
        outcomes: list[_Ingested] = []
        start = 0
        leased_to = next((index for index, request in enumerate(group) if request.offer is not None), None)
        for index, request in enumerate(group):
            end = start + len(request.events)
            outcomes.append((stored[start:end], leased if index == leased_to else []))
            start = end
        return outcomes

    async def _ingest_in_one_transaction(
        self, events: Sequence[NewEvent], idempotency_window_seconds: float, offer: LeaseOffer | None
    ) -> _Ingested:
        keyed = [event for event in events if event.idempotency_key is not None]
        key_deployments = _int_array([event.deployment_id for event in keyed])
        key_values = _text_array([event.idempotency_key for event in keyed])
        ingest_params = (
            _int_array([event.deployment_id for event in events]),
            _text_array([event.event_id for event in events]),
            _text_array([event.object_id for event in events]),
            _text_array([event.resource_url for event in events]),
            _text_array([_user_ids_json(event.user_ids) for event in events]),
            _text_array([_user_filter(event.user_ids) for event in events]),
            _text_array([event.idempotency_key for event in events]),
            _text_array([event.only_subscription_id for event in events]),
        )

        claim_params = None
        if offer is not None:
            claim_params = {
                "excluded": _text_array(offer.excluded_subscription_ids),
                "limit": offer.limit,
                "owner": offer.owner,
                "lease": offer.lease_seconds,
            }

        async def store(
            connection: Connection, progress: _CommitProgress
        ) -> tuple[list[StoredEvent], list[ClaimedDelivery]]:
            # Pipelined: BEGIN, the inserts (and the lease) in one round trip, NOTIFY and COMMIT in another.
            leased: list[ClaimedDelivery] = []
            async with connection.pipeline(), connection.transaction():
                await connection.execute(HASH_JOINS_FOR_THIS_TRANSACTION_SQL)
                if keyed:
                    await connection.execute(
                        RELEASE_EXPIRED_KEYS_SQL, (key_deployments, key_values, idempotency_window_seconds)
                    )
                cursor = await connection.execute(INGEST_SQL, ingest_params)
                claiming = None
                if claim_params is not None:
                    # The claim's plan wants hash joins off again (see SESSION_SETTINGS_SQL).
                    await connection.execute(NO_HASH_JOINS_FOR_THIS_TRANSACTION_SQL)
                    claiming = await connection.execute(CLAIM_SQL, claim_params)
                rows = await cursor.fetchall()
                if claiming is not None:
                    leased = [ClaimedDelivery(*row) for row in await claiming.fetchall()]
                originals: dict[tuple[int, str], StoredEvent] = {}
                if any(row[1] is None for row in rows):
                    cursor = await connection.execute(ORIGINALS_SQL, (key_deployments, key_values))
                    for deployment_id, key, *original in await cursor.fetchall():
                        row_id, event_id, object_id, url, created_at, count = original
                        originals[(deployment_id, key)] = StoredEvent(
                            row_id, event_id, object_id, url, created_at, count, duplicate=True
                        )
                if any(row[3] for row in rows) and (offer is None or offer.may_leave_work(len(leased))):
                    await connection.execute(NOTIFY_SQL)
                progress.commit_sent = True
            return self._stored_events(events, rows, originals), leased

        stored, leased = await self._run(store, idempotent=False, hot=True)
        fanned_out = any(event.deliveries and not event.duplicate for event in stored)
        if fanned_out and (offer is None or offer.may_leave_work(len(leased))):
            self.work_available.set()
        return stored, leased

    @staticmethod
    def _stored_events(
        events: Sequence[NewEvent],
        rows: list[tuple[Any, ...]],
        originals: dict[tuple[int, str], StoredEvent],
    ) -> list[StoredEvent]:
        stored: list[StoredEvent] = []
        for event, (_ord, row_id, created_at, deliveries) in zip(events, rows, strict=True):
            if row_id is None:
                assert event.idempotency_key is not None  # only a key can conflict
                stored.append(originals[(event.deployment_id, event.idempotency_key)])
            else:
                stored.append(
                    StoredEvent(row_id, event.event_id, event.object_id, event.resource_url, created_at, deliveries)
                )
        return stored

    async def enqueue_leased(
        self, event: NewEvent, subscription_id: str, owner: str, lease_seconds: float
    ) -> ClaimedDelivery | None:
        """Store an event with one delivery to this subscription, leased to `owner`, without retries."""
        params = {
            "subscription_id": subscription_id,
            "deployment_id": event.deployment_id,
            "event_id": event.event_id,
            "object_id": event.object_id,
            "resource_url": event.resource_url,
            "user_ids": _user_ids_json(event.user_ids),
            "lease": lease_seconds,
            "owner": owner,
        }

        async def store(connection: Connection, progress: _CommitProgress) -> ClaimedDelivery | None:
            # An explicit transaction, so a connection lost before COMMIT is known to have stored nothing.
            async with connection.transaction():
                cursor = await connection.execute(ENQUEUE_LEASED_SQL, params)
                row = await cursor.fetchone()
                progress.commit_sent = True
            return None if row is None else ClaimedDelivery(*row)

        return await self._run(store, idempotent=False)

    # -- the hot path: claim and record ----------------------------------------------------------------

    async def claim(
        self, owner: str, limit: int, lease_seconds: float, exclude_subscription_ids: Collection[str] = ()
    ) -> list[ClaimedDelivery]:
        """Lease up to `limit` due deliveries, oldest due first; cancels those of deleted subscriptions."""
        excluded = _text_array(exclude_subscription_ids)
        params = {"excluded": excluded, "limit": limit, "owner": owner, "lease": lease_seconds}

        async def lease(connection: Connection, _progress: _CommitProgress) -> list[ClaimedDelivery]:
            cursor = await connection.execute(CLAIM_SQL, params)
            return [ClaimedDelivery(*row) for row in await cursor.fetchall()]

        # Idempotent enough: rows leased by a claim whose answer was lost come back when the lease expires.
        return await self._run(lease, idempotent=True, hot=True)

    async def record(self, results: Sequence[AttemptResult]) -> None:
        """Hand results to the writer; returns once the commit that holds them is done."""
        if not results:
            return
        if self._closing or self._writer_task is None:
            raise RuntimeError("the queue is closed")
        committed: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._pending_results.append((results, committed))
        self._results_arrived.set()
        await committed

    async def _write_results_forever(self) -> None:
        """The one writer: commits whatever accumulated while its previous commit ran."""
        while True:
            await self._results_arrived.wait()
            self._results_arrived.clear()
            while self._pending_results:
                waiting = self._take_pending_batch()
                batch = [result for results, _ in waiting for result in results]

                async def commit(connection: Connection, _progress: _CommitProgress) -> None:
                    await self._commit_results(connection, batch)  # noqa: B023 (awaited within this iteration)

                try:
                    # Fenced on the lease: applying a batch twice changes nothing, so a retry is safe.
                    await self._run(commit, idempotent=True, hot=True)
                except Exception as exc:
                    logger.exception("could not record %d attempt results", len(waiting))
                    for _, committed in waiting:
                        if not committed.done():
                            committed.set_exception(exc)
                else:
                    for _, committed in waiting:
                        if not committed.done():
                            committed.set_result(None)
            if self._closing and not self._pending_results:
                return

    def _take_pending_batch(self) -> list[tuple[Sequence[AttemptResult], asyncio.Future[None]]]:
        batch: list[tuple[Sequence[AttemptResult], asyncio.Future[None]]] = []
        taken_results = 0
        while self._pending_results and (not batch or taken_results < MAX_RESULTS_PER_COMMIT):
            results, committed = self._pending_results.pop(0)
            batch.append((results, committed))
            taken_results += len(results)
        return batch

    async def _commit_results(self, connection: Connection, results: list[AttemptResult]) -> None:
        subscription_ids = sorted({result.subscription_id for result in results})
        # Two round trips in a pipeline: BEGIN, lock, fence-and-finish; then log, cancel, COMMIT.
        async with connection.pipeline() as pipeline, connection.transaction():
            locking = await connection.execute(LOCK_SUBSCRIPTIONS_SQL, (_text_array(subscription_ids),))
            finishing = await connection.execute(
                FINISH_DELIVERIES_SQL,
                (
                    _int_array([result.delivery_id for result in results]),
                    _text_array([result.lease_owner for result in results]),
                    _text_array([STATE_BY_OUTCOME[result.outcome] for result in results]),
                    _float_array([result.retry_in_seconds or 0.0 for result in results]),
                    _int_array([result.status_code for result in results]),
                    _text_array([_truncate(result.error, ERROR_MAX_CHARS) for result in results]),
                    _text_array(["pending"] * len(results)),
                ),
            )
            await pipeline.sync()
            locked = await locking.fetchall()
            fenced_ids = {row[0] for row in await finishing.fetchall()}
            accepted: list[AttemptResult] = []
            for result in results:
                if result.delivery_id in fenced_ids:
                    fenced_ids.discard(result.delivery_id)  # one result per lease: a second one is ignored
                    accepted.append(result)
            if not accepted:
                return
            now = locked[0][4] if locked else 0.0
            counters = {row[0]: _SubscriptionCounters(row[1], row[2], row[3]) for row in locked}
            updates = _subscription_updates(accepted, counters, now, self._policy)
            await connection.execute(
                LOG_ATTEMPTS_AND_COUNTERS_SQL,
                (
                    _int_array([result.delivery_id for result in accepted]),
                    _text_array([result.subscription_id for result in accepted]),
                    _int_array([result.attempt_number for result in accepted]),
                    _float_array([result.started_at for result in accepted]),
                    _float_array([result.duration_ms for result in accepted]),
                    _int_array([result.status_code for result in accepted]),
                    _text_array([result.response_excerpt for result in accepted]),
                    _text_array([_truncate(result.error, ERROR_MAX_CHARS) for result in accepted]),
                    _text_array([_truncate(result.error_class, ERROR_CLASS_MAX_CHARS) for result in accepted]),
                    _text_array([result.outcome for result in accepted]),
                    _text_array([update[0] for update in updates]),
                    _int_array([update[1] for update in updates]),
                    _float_array([update[2] for update in updates]),
                    _float_array([update[3] for update in updates]),
                    _int_array([update[4] for update in updates]),
                    _text_array([update[5] for update in updates]),
                    _text_array([update[6] for update in updates]),
                ),
            )
            deleted_now = [update[0] for update in updates if update[6] is not None]
            if deleted_now:
                await connection.execute(CANCEL_PENDING_OF_SUBSCRIPTIONS_SQL, (_text_array(deleted_now),))

    # -- the rest of the interface ---------------------------------------------------------------------

    async def release(self, owner: str) -> int:
        """Hand back every delivery leased to `owner` (due now) and wake every dispatcher; returns how many."""

        async def hand_back(connection: Connection, _progress: _CommitProgress) -> int:
            async with connection.transaction():
                cursor = await connection.execute(RELEASE_SQL, (owner,))
                if cursor.rowcount:
                    await connection.execute(NOTIFY_SQL)
                return cursor.rowcount

        released = await self._run(hand_back, idempotent=True)
        if released:
            self.work_available.set()
        return released

    async def redeliver(self, delivery_id: int) -> int | None:
        """Queue a new delivery of the same event to the same live subscription; its id, or None."""

        async def insert(connection: Connection, progress: _CommitProgress) -> int | None:
            async with connection.transaction():
                cursor = await connection.execute(REDELIVER_SQL, (delivery_id,))
                row = await cursor.fetchone()
                if row is not None:
                    await connection.execute(NOTIFY_SQL)
                progress.commit_sent = True
            return None if row is None else int(row[0])

        new_id = await self._run(insert, idempotent=False)
        if new_id is not None:
            self.work_available.set()
        return new_id

    async def cancel_pending(self, subscription_id: str) -> int:
        """Cancel the pending deliveries of a subscription (after it was deleted); returns how many."""

        async def cancel(connection: Connection, _progress: _CommitProgress) -> int:
            async with connection.transaction():
                await connection.execute(LOCK_ONE_SUBSCRIPTION_SQL, (subscription_id,))
                cursor = await connection.execute(CANCEL_PENDING_SQL, (subscription_id,))
                return cursor.rowcount

        return await self._run(cancel, idempotent=True)

    async def prune(self, finished_before: float, batch_size: int) -> int:
        """Delete up to batch_size deliveries finished before the cutoff, their attempts, and orphaned events."""

        async def delete(connection: Connection, _progress: _CommitProgress) -> int:
            async with connection.transaction():
                cursor = await connection.execute(PRUNE_DELIVERIES_SQL, (finished_before, batch_size))
                pruned = cursor.rowcount
                event_ids = sorted({row[0] for row in await cursor.fetchall()})
                if event_ids:
                    await connection.execute(PRUNE_EMPTIED_EVENTS_SQL, (_int_array(event_ids),))
                await connection.execute(PRUNE_UNMATCHED_EVENTS_SQL, (finished_before, batch_size))
                return pruned

        return await self._run(delete, idempotent=True)

    # -- LISTEN ----------------------------------------------------------------------------------------

    async def _listen_forever(self) -> None:
        """Hold a LISTEN connection; every notification sets work_available. Reconnects with backoff."""
        backoff_seconds = LISTEN_BACKOFF_MIN_SECONDS
        while True:
            try:
                connection = await psycopg.AsyncConnection.connect(self._conninfo, **CONNECTION_KWARGS)
                async with connection:
                    await connection.execute(LISTEN_SQL)
                    self._listening.set()
                    # Whatever was notified while we were not listening is due now.
                    self.work_available.set()
                    backoff_seconds = LISTEN_BACKOFF_MIN_SECONDS
                    async for _notification in connection.notifies():
                        self.work_available.set()
            except Exception as exc:  # whatever broke the connection, the loop must go on listening
                logger.warning("LISTEN connection lost (%s: %s); reconnecting", type(exc).__name__, exc)
            self._listening.clear()
            await asyncio.sleep(backoff_seconds)
            backoff_seconds = min(backoff_seconds * 2, LISTEN_BACKOFF_MAX_SECONDS)


SubscriptionUpdate = tuple[str, int, float | None, float | None, int | None, str | None, str | None]


def _subscription_updates(
    accepted: list[AttemptResult],
    counters: dict[str, _SubscriptionCounters],
    now: float,
    policy: FailurePolicy,
) -> list[SubscriptionUpdate]:
    """Each subscription's new counters after these attempts, in the order they started.

    Returns (id, consecutive_failures, failing_since, last_attempt_at, last_status_code, last_error,
    deleted_reason) with deleted_reason set only for a live subscription removed by these attempts.
    """
    by_subscription: dict[str, list[AttemptResult]] = {}
    for result in accepted:
        by_subscription.setdefault(result.subscription_id, []).append(result)
    updates: list[SubscriptionUpdate] = []
    for subscription_id, results in by_subscription.items():
        current = counters.get(subscription_id)
        if current is None:  # the subscription row is gone altogether: nothing to count on
            continue
        results.sort(key=lambda result: result.started_at)
        failures, failing_since = current.consecutive_failures, current.failing_since
        gone = False
        for result in results:
            if result.outcome == "success":
                failures, failing_since = 0, None
            elif result.outcome in FAILURE_OUTCOMES:
                failures += 1
                if failing_since is None:
                    failing_since = float(result.started_at)
            else:
                gone = True
        last = results[-1]
        deleted_reason: str | None = None
        if not current.deleted:
            if gone:
                deleted_reason = "gone"
            elif (
                failing_since is not None
                and failures >= policy.threshold
                and now - failing_since >= policy.window_seconds
            ):
                deleted_reason = "too_many_failures"
        updates.append(
            (
                subscription_id,
                failures,
                failing_since,
                float(last.started_at),
                last.status_code,
                _truncate(last.error, ERROR_MAX_CHARS),
                deleted_reason,
            )
        )
    return updates
