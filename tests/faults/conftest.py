"""Fault-test fixtures: a fresh PostgreSQL database, a fast receiver, and processes that never outlive a test."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.conftest import drop_postgres_database, fresh_postgres_url
from tests.faults.cluster import Processes
from tests.faults.receiver import FastReceiver


@pytest.fixture
def store(postgres_template: str) -> Iterator[str]:
    """A fresh migrated PostgreSQL database for this test."""
    url = fresh_postgres_url(postgres_template)
    yield url
    drop_postgres_database(url)


@pytest.fixture
def processes() -> Iterator[Processes]:
    """Tracks the hookline processes a test starts and stops whatever is left at its end."""
    started = Processes()
    yield started
    started.stop_all()


@pytest.fixture
def fast_receiver() -> Iterator[FastReceiver]:
    """A fast recording receiver that answers at once."""
    receiver = FastReceiver()
    yield receiver
    receiver.close()
