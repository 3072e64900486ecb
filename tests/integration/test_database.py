"""Database.write on both stores: concurrent writes commit together, and one that fails fails alone."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

import pytest
from sqlalchemy import Connection, text

from hookline.store.database import Database


def insert_deployment(slug: str) -> Callable[[Connection], None]:
    """A write that adds one deployment named `slug` (a repeated slug violates its unique constraint)."""

    def write(connection: Connection) -> None:
        connection.execute(
            text("INSERT INTO deployments (slug, name, standard_webhooks, created_at) VALUES (:slug, :slug, false, 0)"),
            {"slug": slug},
        )

    return write


async def test_concurrent_writes_commit_and_a_failing_one_fails_alone(database_url: str) -> None:
    database = Database(database_url)
    try:
        await database.write(insert_deployment("taken"))
        slugs = [f"team-{number}" for number in range(20)]
        writes = [database.write(insert_deployment(slug)) for slug in slugs[:10]]
        writes.append(database.write(insert_deployment("taken")))
        writes += [database.write(insert_deployment(slug)) for slug in slugs[10:]]

        outcomes = await asyncio.gather(*writes, return_exceptions=True)

        failures = [outcome for outcome in outcomes if isinstance(outcome, Exception)]
        assert len(failures) == 1
        assert "unique" in str(failures[0]).lower() or "duplicate" in str(failures[0]).lower()
        stored = await database.read(
            lambda connection: {row[0] for row in connection.execute(text("SELECT slug FROM deployments"))}
        )
        assert set(slugs) | {"taken"} <= stored
    finally:
        await database.dispose()


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
async def test_a_write_that_raises_after_changing_rows_leaves_nothing_behind(database_url: str) -> None:
    database = Database(database_url)

    def half_done(connection: Connection) -> None:
        insert_deployment("half")(connection)
        raise ValueError("changed my mind")

    try:
        results = await asyncio.gather(
            database.write(half_done),
            database.write(insert_deployment("whole")),
            return_exceptions=True,
        )
        assert isinstance(results[0], ValueError)
        assert results[1] is None
        stored = await database.read(
            lambda connection: {row[0] for row in connection.execute(text("SELECT slug FROM deployments"))}
        )
        assert "whole" in stored
        assert "half" not in stored
    finally:
        await database.dispose()
