"""The async SQLAlchemy engine the API and CLI use for everything off the delivery hot path."""

from __future__ import annotations

from sqlalchemy import event
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

from hookline.store import migrate, urls


def create_engine(database_url: str) -> AsyncEngine:
    """An async engine: aiosqlite with WAL and a busy timeout, or psycopg with a pre-pinged pool."""
    if urls.is_sqlite(database_url):
        engine = create_async_engine(urls.async_url(database_url))
        event.listen(engine.sync_engine, "connect", migrate.sqlite_pragmas)
        return engine
    return create_async_engine(urls.async_url(database_url), pool_pre_ping=True, pool_size=10, max_overflow=10)
