"""How the API and CLI reach the database off the delivery hot path: SQLAlchemy Core, one hop per store call.

Store functions are written as plain synchronous functions over a SQLAlchemy `Connection` and run through
`Database.read` / `Database.write`. On PostgreSQL they run through the async psycopg engine with
`AsyncConnection.run_sync`. On SQLite, with the stdlib driver: reads run inline on the event loop (an indexed, paged
read takes tens of microseconds, less than a hop to a thread and back, and WAL readers never wait for the writer),
and writes run on one writer thread with group commit (the writes that queued up while the previous commit ran
go into one transaction, without savepoints; if one of them fails, each runs again alone), since a commit waits for
fsync. Through aiosqlite, which hops to its thread for every cursor operation, the same read took about 0.6 ms, and
reader threads' GIL contention halved the API's rate.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import queue
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

from sqlalchemy import Connection
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

from hookline.store import migrate, urls

T = TypeVar("T")

SQLITE_CONNECTIONS = 4
WRITE_BATCH_MAX = 256


@dataclass(frozen=True, slots=True)
class _WriteJob(Generic[T]):
    work: Callable[[Connection], T]
    result: concurrent.futures.Future[T]


POSTGRES_POOL_SIZE = 10


class Database:
    """A database for the API's and CLI's queries."""

    def __init__(self, database_url: str) -> None:
        self.database_url = database_url
        self._async_engine: AsyncEngine | None = None
        if urls.is_sqlite(database_url):
            self._sync_engine = migrate.sync_engine(database_url, pool_size=SQLITE_CONNECTIONS)
            self._writes: queue.SimpleQueue[_WriteJob[Any] | None] = queue.SimpleQueue()
            self._writer = threading.Thread(target=self._write_forever, name="hookline-db-writer", daemon=True)
            self._writer.start()
        else:
            self._async_engine = create_async_engine(
                urls.async_url(database_url), pool_pre_ping=True, pool_size=POSTGRES_POOL_SIZE, max_overflow=10
            )

    async def read(self, query: Callable[[Connection], T]) -> T:
        """Run `query(connection)` and answer what it returns."""
        return await self._run(query, transaction=False)

    async def write(self, change: Callable[[Connection], T]) -> T:
        """Run `change(connection)` in a transaction that commits when it returns (and rolls back if it raises)."""
        return await self._run(change, transaction=True)

    async def _run(self, work: Callable[[Connection], T], *, transaction: bool) -> T:
        if self._async_engine is not None:
            context = self._async_engine.begin() if transaction else self._async_engine.connect()
            async with context as async_connection:
                return await async_connection.run_sync(work)
        if not transaction:
            with self._sync_engine.connect() as connection:
                return work(connection)
        job: _WriteJob[T] = _WriteJob(work, concurrent.futures.Future())
        self._writes.put(job)
        return await asyncio.wrap_future(job.result)

    def _write_forever(self) -> None:
        while True:
            first = self._writes.get()
            if first is None:
                return
            batch = [first]
            while len(batch) < WRITE_BATCH_MAX:
                try:
                    job = self._writes.get_nowait()
                except queue.Empty:
                    break
                if job is None:
                    self._writes.put(None)  # stop after this batch
                    break
                batch.append(job)
            self._commit(batch)

    def _commit(self, batch: list[_WriteJob[Any]]) -> None:
        """Run the batch in one transaction; if anything in it fails, run each job again in its own."""
        try:
            with self._sync_engine.begin() as connection:
                values = [job.work(connection) for job in batch]
        except Exception as exc:  # rolled back, all of it: no savepoints to pay for on the usual, clean path
            if len(batch) == 1:
                batch[0].result.set_exception(exc)
                return
            for job in batch:  # one job's error (or a failed commit) then fails only that job
                self._commit([job])
            return
        for job, value in zip(batch, values, strict=True):
            job.result.set_result(value)

    async def dispose(self) -> None:
        """Close every connection (and the SQLite writer thread)."""
        if self._async_engine is not None:
            await self._async_engine.dispose()
            return
        self._writes.put(None)
        await asyncio.to_thread(self._writer.join)
        self._sync_engine.dispose()
