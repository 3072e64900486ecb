"""Database URLs: what users write, and what SQLAlchemy and the drivers want."""

from __future__ import annotations

from pathlib import Path

from hookline import errors


def is_sqlite(database_url: str) -> bool:
    """Whether the URL names an SQLite file."""
    return database_url.startswith("sqlite")


def sqlite_path(database_url: str) -> Path:
    """The file an sqlite:///path URL names (relative to the working directory)."""
    if not database_url.startswith("sqlite:///"):
        raise errors.InvalidRequest(f"database_url: expected sqlite:///PATH, got {database_url!r}")
    raw = database_url.split("?", 1)[0][len("sqlite:///") :]
    if not raw or raw == ":memory:":
        raise errors.InvalidRequest("database_url: an SQLite store needs a file path (sqlite:///hookline.db)")
    return Path(raw)


def async_url(database_url: str) -> str:
    """The SQLAlchemy async URL of a PostgreSQL store (postgresql+psycopg); SQLite is reached synchronously."""
    return "postgresql+psycopg://" + _postgres_rest(database_url)


def sync_url(database_url: str) -> str:
    """The SQLAlchemy sync URL (for alembic): sqlite (stdlib) or postgresql+psycopg."""
    if is_sqlite(database_url):
        return f"sqlite:///{sqlite_path(database_url)}"
    return "postgresql+psycopg://" + _postgres_rest(database_url)


def postgres_conninfo(database_url: str) -> str:
    """The libpq URL psycopg takes directly."""
    return "postgresql://" + _postgres_rest(database_url)


def _postgres_rest(database_url: str) -> str:
    for prefix in ("postgresql+psycopg://", "postgresql://", "postgres://"):
        if database_url.startswith(prefix):
            return database_url[len(prefix) :]
    raise errors.InvalidRequest(
        f"database_url: expected sqlite:///PATH or postgresql://USER@HOST:PORT/DB, got {database_url!r}"
    )
