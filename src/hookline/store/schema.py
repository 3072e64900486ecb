"""The tables, as SQLAlchemy Core metadata; valid on SQLite and PostgreSQL alike.

Times are stored as seconds since the epoch (float), which both databases compare and index cheaply
and which the delivery hot path can bind without conversion.
"""

from __future__ import annotations

from sqlalchemy import (
    BigInteger,
    Boolean,
    Column,
    Float,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    UniqueConstraint,
    text,
)

# SQLite only makes INTEGER PRIMARY KEY an alias of the rowid (auto-increment); PostgreSQL wants BIGINT.
BigId = BigInteger().with_variant(Integer(), "sqlite")

# What is kept of an error text and of its class (the queues truncate to these before writing).
ERROR_MAX_CHARS = 300
ERROR_CLASS_MAX_CHARS = 64

metadata = MetaData(
    naming_convention={
        "ix": "ix_%(table_name)s_%(column_0_N_name)s",
        "uq": "uq_%(table_name)s_%(column_0_N_name)s",
        "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
        "pk": "pk_%(table_name)s",
    }
)

deployments = Table(
    "deployments",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("slug", String(64), nullable=False, unique=True),
    Column("name", String(200), nullable=False),
    Column("standard_webhooks", Boolean, nullable=False, server_default=text("false")),
    Column("created_at", Float, nullable=False),
)

users = Table(
    "users",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("deployment_id", Integer, ForeignKey("deployments.id"), nullable=False),
    Column("name", String(200), nullable=False),
    Column("email", String(320), nullable=False),
    Column("created_at", Float, nullable=False),
    UniqueConstraint("deployment_id", "email"),
)

oauth_clients = Table(
    "oauth_clients",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("client_id", String(64), nullable=False, unique=True),
    Column("secret_hash", String(128), nullable=False),
    Column("name", String(200), nullable=False),
    Column("deployment_id", Integer, ForeignKey("deployments.id"), nullable=False),
    Column("user_id", Integer, ForeignKey("users.id"), nullable=False),
    Column("is_admin", Boolean, nullable=False, server_default=text("false")),
    Column("max_scopes", String(500), nullable=False),
    Column("created_at", Float, nullable=False),
)

api_tokens = Table(
    "api_tokens",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("token_hash", String(64), nullable=False, unique=True),
    Column("user_id", Integer, ForeignKey("users.id"), nullable=False),
    Column("deployment_id", Integer, ForeignKey("deployments.id"), nullable=False),
    Column("scopes", String(500), nullable=False),
    Column("is_admin", Boolean, nullable=False, server_default=text("false")),
    Column("oauth_client_id", Integer, ForeignKey("oauth_clients.id"), nullable=True),
    # "api": handed to a client; "panel": minted by the control panel for a sign-in, revoked at sign-out.
    Column("purpose", String(16), nullable=False, server_default=text("'api'")),
    Column("expires_at", Float, nullable=True),
    Column("revoked_at", Float, nullable=True),
    Column("created_at", Float, nullable=False),
)

subscriptions = Table(
    "subscriptions",
    metadata,
    Column("id", String(24), primary_key=True),
    Column("deployment_id", Integer, ForeignKey("deployments.id"), nullable=False),
    Column("user_id", Integer, ForeignKey("users.id"), nullable=False),
    Column("event_id", String(64), nullable=False),
    Column("trigger_url", String(2048), nullable=False),
    Column("content_type", String(64), nullable=False),
    Column("secret", String(256), nullable=True),
    Column("created_at", Float, nullable=False),
    Column("deleted_at", Float, nullable=True),
    Column("deleted_reason", String(32), nullable=True),
    Column("consecutive_failures", Integer, nullable=False, server_default=text("0")),
    Column("failing_since", Float, nullable=True),
    Column("last_attempt_at", Float, nullable=True),
    Column("last_status_code", Integer, nullable=True),
    Column("last_error", String(ERROR_MAX_CHARS), nullable=True),
    Index("ix_subscriptions_fanout", "deployment_id", "event_id", "deleted_at"),
    Index("ix_subscriptions_owner", "deployment_id", "user_id", "created_at"),
    Index("ix_subscriptions_listing", "deployment_id", "created_at", "id"),
)

events = Table(
    "events",
    metadata,
    Column("id", BigId, primary_key=True, autoincrement=True),
    Column("deployment_id", Integer, ForeignKey("deployments.id"), nullable=False),
    Column("event_id", String(64), nullable=False),
    Column("object_id", String(64), nullable=False),
    Column("resource_url", String(2048), nullable=True),
    Column("user_ids", Text, nullable=True),
    Column("idempotency_key", String(200), nullable=True),
    Column("created_at", Float, nullable=False),
    UniqueConstraint("deployment_id", "idempotency_key"),
    Index("ix_events_created_at", "created_at"),
)

deliveries = Table(
    "deliveries",
    metadata,
    Column("id", BigId, primary_key=True, autoincrement=True),
    Column("event_row_id", BigId, ForeignKey("events.id"), nullable=False),
    Column("subscription_id", String(24), ForeignKey("subscriptions.id"), nullable=False),
    Column("deployment_id", Integer, nullable=False),
    Column("state", String(16), nullable=False),
    Column("attempts", Integer, nullable=False, server_default=text("0")),
    Column("retries_allowed", Boolean, nullable=False, server_default=text("true")),
    Column("next_attempt_at", Float, nullable=True),
    Column("lease_owner", String(64), nullable=True),
    Column("created_at", Float, nullable=False),
    Column("finished_at", Float, nullable=True),
    Column("last_status_code", Integer, nullable=True),
    Column("last_error", String(ERROR_MAX_CHARS), nullable=True),
    Column("redelivery_of", BigId, nullable=True),
    # The queue: pending rows by due time. A claim pushes next_attempt_at to the lease's expiry,
    # so a leased row is simply "not due" until its lease runs out (then it is claimed again).
    Index(
        "ix_deliveries_due",
        "next_attempt_at",
        sqlite_where=text("state = 'pending'"),
        postgresql_where=text("state = 'pending'"),
    ),
    Index("ix_deliveries_subscription", "subscription_id", "id"),
    # Pruning deletes events; without this the foreign-key check scans deliveries once per event.
    Index("ix_deliveries_event_row_id", "event_row_id"),
    Index(
        "ix_deliveries_finished",
        "finished_at",
        sqlite_where=text("state <> 'pending'"),
        postgresql_where=text("state <> 'pending'"),
    ),
)

attempts = Table(
    "attempts",
    metadata,
    Column("id", BigId, primary_key=True, autoincrement=True),
    Column("delivery_id", BigId, ForeignKey("deliveries.id"), nullable=False),
    Column("subscription_id", String(24), nullable=False),
    Column("attempt_number", Integer, nullable=False),
    Column("started_at", Float, nullable=False),
    Column("duration_ms", Float, nullable=False),
    Column("status_code", Integer, nullable=True),
    Column("response_excerpt", Text, nullable=True),
    Column("error", String(ERROR_MAX_CHARS), nullable=True),
    Column("error_class", String(ERROR_CLASS_MAX_CHARS), nullable=True),
    Column("outcome", String(16), nullable=False),
    Index("ix_attempts_delivery", "delivery_id"),
)
