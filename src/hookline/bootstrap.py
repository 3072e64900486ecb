"""First start: an empty store gets a default deployment, an admin user and a one-time admin token."""

from __future__ import annotations

from dataclasses import dataclass

from hookline.store import accounts
from hookline.store.database import Database

DEFAULT_DEPLOYMENT_SLUG = "default"
DEFAULT_DEPLOYMENT_NAME = "Default deployment"
ADMIN_NAME = "Administrator"
ADMIN_EMAIL = "admin@localhost"
ADMIN_SCOPES = "read(all) write(all)"


@dataclass(frozen=True, slots=True)
class Bootstrapped:
    """What first start created."""

    deployment_slug: str
    admin_email: str
    admin_token: str


async def bootstrap_if_empty(db: Database) -> Bootstrapped | None:
    """Create the default deployment, its admin and an admin token when the store has no deployment yet."""
    if await accounts.count_deployments(db) > 0:
        return None
    deployment = await accounts.create_deployment(db, DEFAULT_DEPLOYMENT_SLUG, DEFAULT_DEPLOYMENT_NAME)
    admin = await accounts.create_user(db, deployment.id, ADMIN_NAME, ADMIN_EMAIL)
    token = await accounts.create_token(db, admin, scopes=ADMIN_SCOPES, is_admin=True, expires_at=None)
    return Bootstrapped(deployment.slug, admin.email, token)
