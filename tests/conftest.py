"""Shared fixtures: real SQLite files and real PostgreSQL databases, one fresh store per test."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from hookline.store import migrate

POSTGRES_URL_ENV = "HOOKLINE_TEST_POSTGRES_URL"
DEFAULT_POSTGRES_URL = "postgresql://postgres@127.0.0.1:5432/test"


def postgres_admin_url() -> str:
    """The PostgreSQL server the tests use (any database on it; per-test databases are made beside it)."""
    return os.environ.get(POSTGRES_URL_ENV, DEFAULT_POSTGRES_URL)


def _with_database(url: str, name: str) -> str:
    base, _, _ = url.rpartition("/")
    return f"{base}/{name}"


def _postgres_unavailable_reason() -> str | None:
    try:
        import psycopg

        with psycopg.connect(postgres_admin_url(), connect_timeout=3):
            return None
    except Exception as exc:  # any failure to connect means "no server here"
        return f"no PostgreSQL at {postgres_admin_url()} ({type(exc).__name__}: {exc}); set {POSTGRES_URL_ENV}"


@pytest.fixture(scope="session")
def postgres_template() -> Iterator[str]:
    """A migrated template database; each test copies it (CREATE DATABASE ... TEMPLATE is fast)."""
    reason = _postgres_unavailable_reason()
    if reason is not None:
        if os.environ.get("CI") == "true":
            pytest.fail(f"CI=true but PostgreSQL is unavailable: {reason}")
        pytest.skip(reason)
    import psycopg

    name = f"hl_tpl_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(postgres_admin_url(), autocommit=True) as admin:
        admin.execute(f'CREATE DATABASE "{name}"')
    migrate.upgrade(_with_database(postgres_admin_url(), name))
    yield name
    with psycopg.connect(postgres_admin_url(), autocommit=True) as admin:
        admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def fresh_postgres_url(template: str) -> str:
    """A new database copied from the migrated template; the caller drops it."""
    import psycopg

    name = f"hl_t_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(postgres_admin_url(), autocommit=True) as admin:
        admin.execute(f'CREATE DATABASE "{name}" TEMPLATE "{template}"')
    return _with_database(postgres_admin_url(), name)


def drop_postgres_database(url: str) -> None:
    """Drop a per-test database, disconnecting anyone still on it."""
    import psycopg

    name = url.rpartition("/")[2]
    with psycopg.connect(postgres_admin_url(), autocommit=True) as admin:
        admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture
def sqlite_url(tmp_path: Path) -> str:
    """A migrated SQLite store in a fresh file."""
    url = f"sqlite:///{tmp_path / 'hookline.db'}"
    migrate.upgrade(url)
    return url


@pytest.fixture
def postgres_url(request: pytest.FixtureRequest) -> Iterator[str]:
    """A migrated PostgreSQL store in a fresh database."""
    template: str = request.getfixturevalue("postgres_template")
    url = fresh_postgres_url(template)
    yield url
    drop_postgres_database(url)


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def database_url(request: pytest.FixtureRequest) -> str:
    """A fresh migrated store, once on SQLite and once on PostgreSQL."""
    fixture_name = "sqlite_url" if request.param == "sqlite" else "postgres_url"
    url: str = request.getfixturevalue(fixture_name)
    return url
