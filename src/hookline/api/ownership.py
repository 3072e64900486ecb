"""Who may see or change a subscription: its owner, or an admin of its deployment."""

from __future__ import annotations

from hookline import errors
from hookline.domain import Principal, Subscription
from hookline.store import subscriptions
from hookline.store.database import Database


async def visible_subscription(
    db: Database, principal: Principal, subscription_id: str, *, allow_deleted: bool = False
) -> Subscription:
    """The subscription if this caller may act on it.

    Another deployment's subscription answers exactly like a missing one, so a token never learns of
    anything outside its deployment; another user's (for a non-admin) is refused as a permission error.
    """
    found = await subscriptions.get(db, subscription_id)
    if found is None or found.deployment_id != principal.deployment.id or (found.deleted_at and not allow_deleted):
        raise errors.InvalidRequest(f"subscription_id: no subscription {subscription_id!r}")
    if found.user_id != principal.user.id and not principal.is_admin:
        raise errors.InvalidPermission(f"subscription_id: subscription {subscription_id!r} belongs to another user")
    return found
