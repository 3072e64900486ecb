"""How the API and CLI reach the database off the delivery hot path: SQLAlchemy Core, one hop per store call.

Store functions are written as plain synchronous functions over a SQLAlchemy `Connection` and run through
`Database.read` / `Database.write`. On PostgreSQL they run through the async psycopg engine with
`AsyncConnection.run_sync`. On SQLite, with the stdlib driver: reads run inline on the event loop (an indexed, paged
read takes tens of microseconds, less than a hop to a thread and back, and WAL readers never wait for the writer),
and writes run on one writer thread, since a commit waits for fsync. Through aiosqlite, which hops to its thread for
every cursor operation, the same read took about 0.6 ms, and the reader threads' GIL contention halved the API's rate.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
from collections.abc import Callable
from typing import TypeVar

from sqlalchemy import Connection
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

from hookline.store import migrate, urls

T = TypeVar("T")

SQLITE_CONNECTIONS = 4
POSTGRES_POOL_SIZE = 10


class Database:
    """A database for the API's and CLI's queries."""

    def __init__(self, database_url: str) -> None:
        self.database_url = database_url
        self._async_engine: AsyncEngine | None = None
        self._executor: concurrent.futures.ThreadPoolExecutor | None = None
        if urls.is_sqlite(database_url):
            self._sync_engine = migrate.sync_engine(database_url, pool_size=SQLITE_CONNECTIONS)
            self._executor = concurrent.futures.ThreadPoolExecutor(1, thread_name_prefix="hookline-db-writer")
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
            return self._run_sync(work, transaction=False)
        assert self._executor is not None  # set for SQLite in __init__
        return await asyncio.get_running_loop().run_in_executor(self._executor, self._run_sync, work, transaction)

    def _run_sync(self, work: Callable[[Connection], T], transaction: bool) -> T:
        if transaction:
            with self._sync_engine.begin() as connection:
                return work(connection)
        with self._sync_engine.connect() as connection:
            return work(connection)

    async def dispose(self) -> None:
        """Close every connection (and the SQLite writer thread)."""
        if self._async_engine is not None:
            await self._async_engine.dispose()
            return
        assert self._executor is not None
        self._executor.shutdown(wait=True)
        self._sync_engine.dispose()
