"""A running Hookline process: the store, the queue, the sender and (optionally) the dispatcher and pruner."""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
import time
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass, field

from hookline.catalogue import Catalogue
from hookline.config import Settings
from hookline.delivery.dispatcher import Dispatcher
from hookline.delivery.retry import RetryPolicy
from hookline.delivery.sender import Sender
from hookline.delivery.service import build_address_policy, build_retry_policy
from hookline.delivery.ssrf import AddressPolicy
from hookline.domain import NewEvent, StoredEvent
from hookline.store import migrate, urls
from hookline.store.database import Database
from hookline.store.queue import DeliveryQueue, FailurePolicy
from hookline.store.queues import open_queue
from hookline.store.sqlite_queue import SqliteQueue, acquire_dispatcher_lock

log = logging.getLogger("hookline")

PRUNE_PAUSE_SECONDS = 0.05
GC_THRESHOLDS = (50_000, 50, 100)


@dataclass
class Runtime:
    """The long-lived parts of one process, started and stopped together."""

    settings: Settings
    catalogue: Catalogue
    db: Database
    queue: DeliveryQueue
    sender: Sender
    address_policy: AddressPolicy
    retry_policy: RetryPolicy
    dispatcher: Dispatcher | None = None
    background: list[asyncio.Task[None]] = field(default_factory=list)

    async def ingest(self, events: Sequence[NewEvent]) -> list[StoredEvent]:
        """Store events and their deliveries durably; through this process's dispatcher when it runs one."""
        window = self.settings.idempotency_window_seconds
        if self.dispatcher is not None:
            return await self.dispatcher.ingest(events, window)
        return await self.queue.ingest(events, window)


@contextlib.asynccontextmanager
async def running(settings: Settings, *, with_dispatcher: bool) -> AsyncIterator[Runtime]:
    """Start everything a process needs (the dispatcher and pruner too when asked), and stop it all after."""
    lock: contextlib.AbstractContextManager[object] = contextlib.nullcontext()
    if with_dispatcher and urls.is_sqlite(settings.database_url):
        lock = acquire_dispatcher_lock(urls.sqlite_path(settings.database_url))
    with lock:
        db = Database(settings.database_url)
        queue = open_queue(
            settings.database_url, FailurePolicy(settings.failure_threshold, settings.failure_window_seconds)
        )
        address_policy = build_address_policy(settings)
        sender = Sender(settings, address_policy)
        await queue.open()
        await sender.open()
        runtime = Runtime(
            settings=settings,
            catalogue=settings.build_catalogue(),
            db=db,
            queue=queue,
            sender=sender,
            address_policy=address_policy,
            retry_policy=build_retry_policy(settings),
        )
        try:
            if with_dispatcher:
                if isinstance(queue, SqliteQueue):  # we hold the lock: no other dispatcher owns a lease
                    released = await queue.release_all()
                    if released:
                        log.info("released %d deliveries leased before a restart", released)
                runtime.dispatcher = Dispatcher(queue, sender, settings, retry_policy=runtime.retry_policy)
                runtime.background.append(asyncio.create_task(runtime.dispatcher.run(), name="dispatcher"))
                runtime.background.append(asyncio.create_task(prune_forever(queue, settings), name="pruner"))
            tune_gc()
            yield runtime
        finally:
            if runtime.dispatcher is not None:
                await runtime.dispatcher.stop()
            for task in runtime.background:
                task.cancel()
            for task in runtime.background:
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await task
            await sender.close()
            await queue.close()
            await db.dispose()


def tune_gc() -> None:
    """Freeze start-up objects and raise the GC thresholds: removes 10-16 ms loop stalls under load."""
    gc.collect()
    gc.freeze()
    gc.set_threshold(*GC_THRESHOLDS)


async def prune_once(queue: DeliveryQueue, settings: Settings) -> int:
    """Delete finished deliveries (and their attempts) older than the retention, in bounded batches."""
    cutoff = await queue.now() - settings.retention_days * 86400
    total = 0
    while True:
        deleted = await queue.prune(cutoff, settings.prune_batch_size)
        total += deleted
        if deleted < settings.prune_batch_size:
            return total
        await asyncio.sleep(PRUNE_PAUSE_SECONDS)


async def prune_forever(queue: DeliveryQueue, settings: Settings) -> None:
    """Prune on an interval for as long as the process runs."""
    while True:
        started = time.monotonic()
        try:
            deleted = await prune_once(queue, settings)
            if deleted:
                log.info("pruned %d finished deliveries older than %s days", deleted, settings.retention_days)
        except Exception:
            log.exception("pruning failed; will try again")
        await asyncio.sleep(max(1.0, settings.prune_interval_seconds - (time.monotonic() - started)))


def ensure_migrated(settings: Settings) -> None:
    """Apply the migrations (creating the SQLite file when needed)."""
    migrate.upgrade(settings.database_url)
