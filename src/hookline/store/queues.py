"""Opens the delivery queue that fits a database URL."""

from __future__ import annotations

from hookline.store import urls
from hookline.store.queue import DeliveryQueue, FailurePolicy


def open_queue(database_url: str, policy: FailurePolicy) -> DeliveryQueue:
    """The SQLite or PostgreSQL queue for this URL (not yet opened: call `await queue.open()`)."""
    if urls.is_sqlite(database_url):
        from hookline.store.sqlite_queue import SqliteQueue

        return SqliteQueue(urls.sqlite_path(database_url), policy)
    from hookline.store.postgres_queue import PostgresQueue

    return PostgresQueue(urls.postgres_conninfo(database_url), policy)
