"""The delivery log as the API reads it: deliveries with their attempts."""

from __future__ import annotations

from collections import defaultdict

from sqlalchemy import Connection, select
from sqlalchemy.engine import RowMapping

from hookline.domain import Attempt, Delivery
from hookline.store.database import Database
from hookline.store.schema import attempts, deliveries, events

_DELIVERY_COLUMNS = (
    deliveries.c.id,
    deliveries.c.subscription_id,
    deliveries.c.event_row_id,
    deliveries.c.state,
    deliveries.c.attempts,
    deliveries.c.next_attempt_at,
    deliveries.c.created_at,
    deliveries.c.finished_at,
    deliveries.c.last_status_code,
    deliveries.c.last_error,
    deliveries.c.redelivery_of,
    deliveries.c.deployment_id,
    events.c.event_id,
    events.c.object_id,
)


def _with_attempts(conn: Connection, rows: list[RowMapping]) -> list[Delivery]:
    ids = [row["id"] for row in rows]
    by_delivery: dict[int, list[Attempt]] = defaultdict(list)
    if ids:
        attempt_rows = conn.execute(
            select(attempts).where(attempts.c.delivery_id.in_(ids)).order_by(attempts.c.delivery_id, attempts.c.id)
        ).mappings()
        for a in attempt_rows:
            by_delivery[a["delivery_id"]].append(
                Attempt(
                    a["attempt_number"],
                    a["started_at"],
                    a["duration_ms"],
                    a["status_code"],
                    a["response_excerpt"],
                    a["error"],
                    a["error_class"],
                    a["outcome"],
                )
            )
    return [
        Delivery(
            id=row["id"],
            subscription_id=row["subscription_id"],
            event_row_id=row["event_row_id"],
            event_id=row["event_id"],
            object_id=row["object_id"],
            state=row["state"],
            attempts=row["attempts"],
            next_attempt_at=row["next_attempt_at"] if row["state"] == "pending" else None,
            created_at=row["created_at"],
            finished_at=row["finished_at"],
            last_status_code=row["last_status_code"],
            last_error=row["last_error"],
            redelivery_of=row["redelivery_of"],
            attempt_log=tuple(by_delivery[row["id"]]),
        )
        for row in rows
    ]


async def list_for_subscription(db: Database, subscription_id: str, *, limit: int, offset: int) -> list[Delivery]:
    """One page of a subscription's deliveries, newest first, each with its attempts."""
    statement = (
        select(*_DELIVERY_COLUMNS)
        .join(events, events.c.id == deliveries.c.event_row_id)
        .where(deliveries.c.subscription_id == subscription_id)
        .order_by(deliveries.c.id.desc())
        .offset(offset)
        .limit(limit)
    )
    return await db.read(lambda conn: _with_attempts(conn, list(conn.execute(statement).mappings())))


async def get(db: Database, delivery_id: int) -> Delivery | None:
    """One delivery with its attempts, or None."""
    statement = (
        select(*_DELIVERY_COLUMNS)
        .join(events, events.c.id == deliveries.c.event_row_id)
        .where(deliveries.c.id == delivery_id)
    )
    found = await db.read(lambda conn: _with_attempts(conn, list(conn.execute(statement).mappings())))
    return found[0] if found else None
