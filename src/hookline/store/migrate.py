"""Applies the alembic migrations to a database."""

from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.config import Config
from sqlalchemy import create_engine, event
from sqlalchemy.engine import Engine

from hookline.store import urls

MIGRATIONS_DIR = Path(__file__).parent / "migrations"
SQLITE_BUSY_TIMEOUT_MS = 10_000


def alembic_config() -> Config:
    """An alembic Config pointing at the packaged migrations."""
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    return config


def sync_engine(database_url: str, *, pool_size: int = 5) -> Engine:
    """A synchronous engine (migrations, admin work, the API's SQLite reads); SQLite in WAL mode with a busy timeout."""
    if urls.is_sqlite(database_url):
        path = urls.sqlite_path(database_url)
        path.parent.mkdir(parents=True, exist_ok=True)
        engine = create_engine(urls.sync_url(database_url), pool_size=pool_size, max_overflow=pool_size)
        event.listen(engine, "connect", sqlite_pragmas)
        return engine
    return create_engine(urls.sync_url(database_url), pool_pre_ping=True)


def sqlite_pragmas(dbapi_connection: object, _record: object) -> None:
    """Per-connection SQLite settings: WAL, a busy timeout, foreign keys."""
    cursor = dbapi_connection.cursor()  # type: ignore[attr-defined]
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT_MS}")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.close()


def upgrade(database_url: str, revision: str = "head") -> None:
    """Bring the database's schema up to `revision` (the newest by default)."""
    engine = sync_engine(database_url)
    try:
        with engine.begin() as connection:
            config = alembic_config()
            config.attributes["connection"] = connection
            command.upgrade(config, revision)
    finally:
        engine.dispose()
