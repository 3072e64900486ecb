"""Subscriptions: create, read, list and soft-delete."""

from __future__ import annotations

from sqlalchemy import and_, func, insert, select, update
from sqlalchemy.engine import RowMapping
from sqlalchemy.ext.asyncio import AsyncEngine

from hookline.domain import Subscription
from hookline.store.schema import deliveries, subscriptions


def _subscription(row: RowMapping) -> Subscription:
    return Subscription(
        id=row["id"],
        deployment_id=row["deployment_id"],
        user_id=row["user_id"],
        event_id=row["event_id"],
        trigger_url=row["trigger_url"],
        content_type=row["content_type"],
        secret=row["secret"],
        created_at=row["created_at"],
        deleted_at=row["deleted_at"],
        deleted_reason=row["deleted_reason"],
        consecutive_failures=row["consecutive_failures"],
        failing_since=row["failing_since"],
        last_attempt_at=row["last_attempt_at"],
        last_status_code=row["last_status_code"],
        last_error=row["last_error"],
    )


async def create(engine: AsyncEngine, subscription: Subscription) -> None:
    """Store a new subscription."""
    async with engine.begin() as conn:
        await conn.execute(
            insert(subscriptions).values(
                id=subscription.id,
                deployment_id=subscription.deployment_id,
                user_id=subscription.user_id,
                event_id=subscription.event_id,
                trigger_url=subscription.trigger_url,
                content_type=subscription.content_type,
                secret=subscription.secret,
                created_at=subscription.created_at,
            )
        )


async def get(engine: AsyncEngine, subscription_id: str) -> Subscription | None:
    """The subscription with this id (deleted ones included), or None."""
    async with engine.connect() as conn:
        row = (
            (await conn.execute(select(subscriptions).where(subscriptions.c.id == subscription_id))).mappings().first()
        )
    return _subscription(row) if row else None


async def list_for(
    engine: AsyncEngine,
    deployment_id: int,
    *,
    user_id: int | None,
    limit: int | None,
    offset: int,
    include_deleted: bool = False,
) -> list[Subscription]:
    """A deployment's subscriptions (one user's when user_id is given), oldest first, one page."""
    conditions = [subscriptions.c.deployment_id == deployment_id]
    if user_id is not None:
        conditions.append(subscriptions.c.user_id == user_id)
    if not include_deleted:
        conditions.append(subscriptions.c.deleted_at.is_(None))
    query = (
        select(subscriptions)
        .where(and_(*conditions))
        .order_by(subscriptions.c.created_at, subscriptions.c.id)
        .offset(offset)
        .limit(limit)
    )
    async with engine.connect() as conn:
        rows = (await conn.execute(query)).mappings().all()
    return [_subscription(row) for row in rows]


async def count_for(engine: AsyncEngine, deployment_id: int, *, user_id: int | None) -> int:
    """How many live subscriptions a deployment (or one of its users) has."""
    conditions = [subscriptions.c.deployment_id == deployment_id, subscriptions.c.deleted_at.is_(None)]
    if user_id is not None:
        conditions.append(subscriptions.c.user_id == user_id)
    async with engine.connect() as conn:
        return int(
            (await conn.execute(select(func.count()).select_from(subscriptions).where(and_(*conditions)))).scalar_one()
        )


async def soft_delete(engine: AsyncEngine, subscription_id: str, reason: str, now: float) -> bool:
    """Mark a live subscription deleted (keeping when and why) and cancel its pending deliveries."""
    async with engine.begin() as conn:
        result = await conn.execute(
            update(subscriptions)
            .where(subscriptions.c.id == subscription_id, subscriptions.c.deleted_at.is_(None))
            .values(deleted_at=now, deleted_reason=reason)
        )
        if result.rowcount == 0:
            return False
        await conn.execute(
            update(deliveries)
            .where(deliveries.c.subscription_id == subscription_id, deliveries.c.state == "pending")
            .values(state="cancelled", finished_at=now, lease_owner=None, last_error=f"subscription {reason}")
        )
    return True
