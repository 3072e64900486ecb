"""Deployments, users, API tokens and OAuth clients."""

from __future__ import annotations

import hashlib
import hmac
import secrets
import time

from sqlalchemy import Connection, bindparam, func, insert, select, update
from sqlalchemy.engine import RowMapping

from hookline import errors
from hookline.domain import Deployment, Principal, User
from hookline.store.database import Database
from hookline.store.schema import api_tokens, deployments, oauth_clients, users

TOKEN_PREFIX = "hlt_"  # noqa: S105 (a prefix, not a password)
CLIENT_ID_PREFIX = "hlc_"
CLIENT_SECRET_PREFIX = "hls_"  # noqa: S105 (a prefix, not a password)


def hash_secret(secret: str) -> str:
    """The stored form of a token or client secret (SHA-256; they are 256-bit random, so no slow hash is needed)."""
    return hashlib.sha256(secret.encode("utf-8")).hexdigest()


def _deployment(row: RowMapping) -> Deployment:
    return Deployment(row["id"], row["slug"], row["name"], bool(row["standard_webhooks"]))


def _user(row: RowMapping) -> User:
    return User(row["id"], row["deployment_id"], row["name"], row["email"])


async def count_deployments(db: Database) -> int:
    """How many deployments the store holds."""
    return await db.read(lambda conn: int(conn.execute(select(func.count()).select_from(deployments)).scalar_one()))


async def create_deployment(db: Database, slug: str, name: str, *, standard_webhooks: bool = False) -> Deployment:
    """Create a deployment (tenant); its slug must be unused."""

    def change(conn: Connection) -> Deployment:
        if conn.execute(select(deployments.c.id).where(deployments.c.slug == slug)).first() is not None:
            raise errors.Duplicate(f"deployment: {slug!r} already exists")
        new_id = conn.execute(
            insert(deployments)
            .values(slug=slug, name=name, standard_webhooks=standard_webhooks, created_at=time.time())
            .returning(deployments.c.id)
        ).scalar_one()
        return Deployment(int(new_id), slug, name, standard_webhooks)

    return await db.write(change)


async def get_deployment(db: Database, slug: str) -> Deployment | None:
    """The deployment with this slug, or None."""

    def query(conn: Connection) -> Deployment | None:
        row = conn.execute(select(deployments).where(deployments.c.slug == slug)).mappings().first()
        return _deployment(row) if row else None

    return await db.read(query)


async def get_deployment_by_id(db: Database, deployment_id: int) -> Deployment | None:
    """The deployment with this id, or None."""

    def query(conn: Connection) -> Deployment | None:
        row = conn.execute(select(deployments).where(deployments.c.id == deployment_id)).mappings().first()
        return _deployment(row) if row else None

    return await db.read(query)


async def create_user(db: Database, deployment_id: int, name: str, email: str) -> User:
    """Create a user in a deployment; the email must be unused there."""

    def change(conn: Connection) -> User:
        taken = conn.execute(
            select(users.c.id).where(users.c.deployment_id == deployment_id, users.c.email == email)
        ).first()
        if taken is not None:
            raise errors.Duplicate(f"email: a user with {email!r} already exists in this deployment")
        new_id = conn.execute(
            insert(users)
            .values(deployment_id=deployment_id, name=name, email=email, created_at=time.time())
            .returning(users.c.id)
        ).scalar_one()
        return User(int(new_id), deployment_id, name, email)

    return await db.write(change)


async def find_user(db: Database, deployment_id: int, email_or_id: str) -> User | None:
    """A deployment's user by email or numeric id."""
    condition = users.c.id == int(email_or_id) if email_or_id.isdigit() else users.c.email == email_or_id

    def query(conn: Connection) -> User | None:
        row = conn.execute(select(users).where(users.c.deployment_id == deployment_id, condition)).mappings().first()
        return _user(row) if row else None

    return await db.read(query)


async def users_by_id(db: Database, user_ids: set[int]) -> dict[int, User]:
    """The users with these ids."""
    if not user_ids:
        return {}

    def query(conn: Connection) -> dict[int, User]:
        rows = conn.execute(_USERS_BY_ID_QUERY, {"user_ids": sorted(user_ids)}).mappings().all()
        return {row["id"]: _user(row) for row in rows}

    return await db.read(query)


async def get_user(db: Database, user_id: int) -> User | None:
    """The user with this id, or None."""
    found = await users_by_id(db, {user_id})
    return found.get(user_id)


async def create_token(
    db: Database,
    user: User,
    *,
    scopes: str,
    is_admin: bool,
    expires_at: float | None,
    oauth_client_id: int | None = None,
    purpose: str = "api",
) -> str:
    """Issue a bearer token for a user; returns the token itself (only its hash is stored)."""
    token = TOKEN_PREFIX + secrets.token_urlsafe(32)
    values = {
        "token_hash": hash_secret(token),
        "user_id": user.id,
        "deployment_id": user.deployment_id,
        "scopes": scopes,
        "is_admin": is_admin,
        "oauth_client_id": oauth_client_id,
        "purpose": purpose,
        "expires_at": expires_at,
        "created_at": time.time(),
    }
    await db.write(lambda conn: conn.execute(_INSERT_TOKEN, values))
    return token


_PRINCIPAL_QUERY = (
    select(
        api_tokens.c.id.label("token_id"),
        api_tokens.c.scopes,
        api_tokens.c.is_admin,
        api_tokens.c.expires_at,
        api_tokens.c.revoked_at,
        users.c.id.label("user_id"),
        users.c.name.label("user_name"),
        users.c.email,
        deployments.c.id.label("deployment_id"),
        deployments.c.slug,
        deployments.c.name.label("deployment_name"),
        deployments.c.standard_webhooks,
    )
    .join(users, users.c.id == api_tokens.c.user_id)
    .join(deployments, deployments.c.id == api_tokens.c.deployment_id)
    .where(api_tokens.c.token_hash == bindparam("token_hash"))
)  # built once: every authenticated request runs it, and building a statement costs more than running it
_INSERT_TOKEN = insert(api_tokens)
_USERS_BY_ID_QUERY = select(users).where(users.c.id.in_(bindparam("user_ids", expanding=True)))


async def principal_for_token(db: Database, token: str) -> Principal | None:
    """Who a bearer token speaks for (expired ones included: the caller checks expires_at), or None."""
    token_hash = hash_secret(token)

    def query(conn: Connection) -> RowMapping | None:
        return conn.execute(_PRINCIPAL_QUERY, {"token_hash": token_hash}).mappings().first()

    row = await db.read(query)
    if row is None or row["revoked_at"] is not None:
        return None
    deployment = Deployment(row["deployment_id"], row["slug"], row["deployment_name"], bool(row["standard_webhooks"]))
    user = User(row["user_id"], row["deployment_id"], row["user_name"], row["email"])
    scopes = tuple(part for part in row["scopes"].replace(",", " ").split() if part)
    return Principal(user, deployment, scopes, bool(row["is_admin"]), row["expires_at"], row["token_id"])


async def revoke_token(
    db: Database, token: str, *, oauth_client_id: int | None = None, purpose: str | None = None
) -> bool:
    """Revoke a token (only if it was issued to this OAuth client / for this purpose, when given)."""
    conditions = [api_tokens.c.token_hash == hash_secret(token), api_tokens.c.revoked_at.is_(None)]
    if oauth_client_id is not None:
        conditions.append(api_tokens.c.oauth_client_id == oauth_client_id)
    if purpose is not None:
        conditions.append(api_tokens.c.purpose == purpose)
    statement = update(api_tokens).where(*conditions).values(revoked_at=time.time())
    return await db.write(lambda conn: bool(conn.execute(statement).rowcount))


async def create_oauth_client(
    db: Database, user: User, name: str, *, is_admin: bool, max_scopes: str
) -> tuple[str, str]:
    """Register a service application acting as `user`; returns (client_id, client_secret)."""
    client_id = CLIENT_ID_PREFIX + secrets.token_hex(12)
    client_secret = CLIENT_SECRET_PREFIX + secrets.token_urlsafe(32)
    statement = insert(oauth_clients).values(
        client_id=client_id,
        secret_hash=hash_secret(client_secret),
        name=name,
        deployment_id=user.deployment_id,
        user_id=user.id,
        is_admin=is_admin,
        max_scopes=max_scopes,
        created_at=time.time(),
    )
    await db.write(lambda conn: conn.execute(statement))
    return client_id, client_secret


async def authenticate_client(db: Database, client_id: str, client_secret: str) -> RowMapping | None:
    """The OAuth client row when the id and secret match, else None."""
    row = await db.read(
        lambda conn: (
            conn.execute(select(oauth_clients).where(oauth_clients.c.client_id == client_id)).mappings().first()
        )
    )
    if row is None or not hmac.compare_digest(row["secret_hash"], hash_secret(client_secret)):
        return None
    return row
