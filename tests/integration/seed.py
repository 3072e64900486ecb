"""Rows for integration tests: deployments, users and subscriptions written with SQLAlchemy Core, and reads
of what the store did (deliveries, attempts, subscriptions), on either database.

    seeder = Seeder(database_url)
    deployment_id = seeder.deployment()
    user_id = seeder.user(deployment_id)
    subscription_id = seeder.subscription(deployment_id, user_id, "create_task")
    ...
    seeder.close()
"""

from __future__ import annotations

import itertools
import time
from typing import Any

from sqlalchemy import func, select, update
from sqlalchemy.engine import RowMapping

from hookline import domain
from hookline.store import migrate, schema

RECEIVER_URL = "http://127.0.0.1:9/hook"  # the discard port: nothing is ever sent in store tests

_serial = itertools.count(1)


class Seeder:
    """Writes fixture rows and reads back store state through a synchronous SQLAlchemy engine."""

    def __init__(self, database_url: str) -> None:
        self.engine = migrate.sync_engine(database_url)

    def close(self) -> None:
        """Close the engine's connections."""
        self.engine.dispose()

    # Writing fixtures -------------------------------------------------------------------------------------

    def deployment(self, slug: str | None = None, *, standard_webhooks: bool = False) -> int:
        """A new deployment (tenant); its id."""
        slug = slug or f"deployment-{next(_serial)}"
        with self.engine.begin() as connection:
            result = connection.execute(
                schema.deployments.insert()
                .values(slug=slug, name=slug.title(), standard_webhooks=standard_webhooks, created_at=time.time())
                .returning(schema.deployments.c.id)
            )
            return int(result.scalar_one())

    def user(self, deployment_id: int, *, name: str | None = None) -> int:
        """A new user of the deployment; its id."""
        name = name or f"user-{next(_serial)}"
        with self.engine.begin() as connection:
            result = connection.execute(
                schema.users.insert()
                .values(deployment_id=deployment_id, name=name, email=f"{name}@example.test", created_at=time.time())
                .returning(schema.users.c.id)
            )
            return int(result.scalar_one())

    def subscription(
        self,
        deployment_id: int,
        user_id: int,
        event_id: str = "create_task",
        *,
        trigger_url: str = RECEIVER_URL,
        content_type: str = domain.CONTENT_TYPE_JSON,
        secret: str | None = None,
    ) -> str:
        """A new live subscription; its id."""
        subscription_id = domain.new_subscription_id()
        with self.engine.begin() as connection:
            connection.execute(
                schema.subscriptions.insert().values(
                    id=subscription_id,
                    deployment_id=deployment_id,
                    user_id=user_id,
                    event_id=event_id,
                    trigger_url=trigger_url,
                    content_type=content_type,
                    secret=secret,
                    created_at=time.time(),
                )
            )
        return subscription_id

    def delete_subscription(self, subscription_id: str, reason: domain.DeletedReason = "deleted") -> None:
        """Soft-delete a subscription the way the API does (without touching its deliveries)."""
        with self.engine.begin() as connection:
            connection.execute(
                update(schema.subscriptions)
                .where(schema.subscriptions.c.id == subscription_id)
                .values(deleted_at=time.time(), deleted_reason=reason)
            )

    # Reading what the store did ---------------------------------------------------------------------------

    def subscription_row(self, subscription_id: str) -> RowMapping:
        """The subscription's row."""
        with self.engine.connect() as connection:
            return (
                connection.execute(select(schema.subscriptions).where(schema.subscriptions.c.id == subscription_id))
                .mappings()
                .one()
            )

    def delivery(self, delivery_id: int) -> RowMapping | None:
        """The delivery's row, or None when there is none (pruned)."""
        with self.engine.connect() as connection:
            return (
                connection.execute(select(schema.deliveries).where(schema.deliveries.c.id == delivery_id))
                .mappings()
                .one_or_none()
            )

    def deliveries(self, **where: Any) -> list[RowMapping]:
        """Delivery rows matching column=value filters (e.g. subscription_id=..., state=...), oldest first."""
        query = select(schema.deliveries).order_by(schema.deliveries.c.id)
        for column, value in where.items():
            query = query.where(schema.deliveries.c[column] == value)
        with self.engine.connect() as connection:
            return list(connection.execute(query).mappings())

    def attempts(self, delivery_id: int) -> list[RowMapping]:
        """The attempt log of a delivery, in order."""
        query = (
            select(schema.attempts)
            .where(schema.attempts.c.delivery_id == delivery_id)
            .order_by(schema.attempts.c.attempt_number, schema.attempts.c.id)
        )
        with self.engine.connect() as connection:
            return list(connection.execute(query).mappings())

    def count(self, table_name: str) -> int:
        """How many rows a table holds."""
        table = schema.metadata.tables[table_name]
        with self.engine.connect() as connection:
            return int(connection.execute(select(func.count()).select_from(table)).scalar_one())
