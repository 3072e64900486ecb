"""Subscriptions: create, read, list and soft-delete."""

from __future__ import annotations

import dataclasses
import functools
from collections.abc import Sequence
from typing import Any

from sqlalchemy import Connection, Select, and_, bindparam, func, insert, select, update

from hookline.domain import Subscription, User
from hookline.store.database import Database
from hookline.store.schema import deliveries, subscriptions, users

# A subscription's columns in the order of Subscription's fields: rows become objects positionally (cheaper
# than by name, on the listing path).
_SUBSCRIPTION_COLUMNS = [subscriptions.c[field.name] for field in dataclasses.fields(Subscription)]
_SUBSCRIPTION_WIDTH = len(_SUBSCRIPTION_COLUMNS)

# Statements built once: the API runs them on every request, and building one costs more than running it.
_GET_QUERY = select(*_SUBSCRIPTION_COLUMNS).where(subscriptions.c.id == bindparam("subscription_id"))
_INSERT = insert(subscriptions)


@functools.cache
def _list_query(*, by_user: bool, include_deleted: bool, paged: bool) -> Select[Any]:
    conditions = [subscriptions.c.deployment_id == bindparam("deployment_id")]
    if by_user:
        conditions.append(subscriptions.c.user_id == bindparam("user_id"))
    if not include_deleted:
        conditions.append(subscriptions.c.deleted_at.is_(None))
    statement = (
        select(*_SUBSCRIPTION_COLUMNS, users.c.name, users.c.email)
        .join(users, users.c.id == subscriptions.c.user_id)
        .where(and_(*conditions))
        .order_by(subscriptions.c.created_at, subscriptions.c.id)
    )
    statement = statement.offset(bindparam("offset"))
    return statement.limit(bindparam("limit")) if paged else statement


def _subscription_and_owner(row: Sequence[Any]) -> tuple[Subscription, User]:
    subscription = Subscription(*row[:_SUBSCRIPTION_WIDTH])
    name, email = row[_SUBSCRIPTION_WIDTH:]
    return subscription, User(subscription.user_id, subscription.deployment_id, name, email)


async def create(db: Database, subscription: Subscription) -> None:
    """Store a new subscription."""
    values = {
        "id": subscription.id,
        "deployment_id": subscription.deployment_id,
        "user_id": subscription.user_id,
        "event_id": subscription.event_id,
        "trigger_url": subscription.trigger_url,
        "content_type": subscription.content_type,
        "secret": subscription.secret,
        "created_at": subscription.created_at,
    }
    await db.write(lambda conn: conn.execute(_INSERT, values))


async def get(db: Database, subscription_id: str) -> Subscription | None:
    """The subscription with this id (deleted ones included), or None."""

    def query(conn: Connection) -> Subscription | None:
        row = conn.execute(_GET_QUERY, {"subscription_id": subscription_id}).first()
        return Subscription(*row) if row else None

    return await db.read(query)


async def list_for(
    db: Database,
    deployment_id: int,
    *,
    user_id: int | None,
    limit: int | None,
    offset: int,
    include_deleted: bool = False,
) -> list[tuple[Subscription, User]]:
    """A deployment's subscriptions (one user's when user_id is given) with their owners, oldest first, one page."""
    statement = _list_query(by_user=user_id is not None, include_deleted=include_deleted, paged=limit is not None)
    parameters = {"deployment_id": deployment_id, "user_id": user_id, "limit": limit, "offset": offset}
    return await db.read(
        lambda conn: [_subscription_and_owner(row) for row in conn.execute(statement, parameters).all()]
    )


async def soft_delete(db: Database, subscription_id: str, reason: str, now: float) -> bool:
    """Mark a live subscription deleted (keeping when and why) and cancel its pending deliveries."""

    def change(conn: Connection) -> bool:
        result = conn.execute(
            update(subscriptions)
            .where(subscriptions.c.id == subscription_id, subscriptions.c.deleted_at.is_(None))
            .values(deleted_at=now, deleted_reason=reason)
        )
        if result.rowcount == 0:
            return False
        conn.execute(
            update(deliveries)
            .where(deliveries.c.subscription_id == subscription_id, deliveries.c.state == "pending")
            .values(state="cancelled", finished_at=now, lease_owner=None, last_error=f"subscription {reason}")
        )
        return True

    return await db.write(change)


async def count_for(db: Database, deployment_id: int, *, user_id: int | None) -> int:
    """How many live subscriptions a deployment (or one of its users) has."""
    conditions = [subscriptions.c.deployment_id == deployment_id, subscriptions.c.deleted_at.is_(None)]
    if user_id is not None:
        conditions.append(subscriptions.c.user_id == user_id)
    statement = select(func.count()).select_from(subscriptions).where(and_(*conditions))
    return await db.read(lambda conn: int(conn.execute(statement).scalar_one()))
