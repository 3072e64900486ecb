"""Index a deployment's subscriptions in listing order, so an admin's page does not sort them all.

Revision ID: 0004
Revises: 0003
"""

from __future__ import annotations

from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_index("ix_subscriptions_listing", "subscriptions", ["deployment_id", "created_at", "id"])


def downgrade() -> None:
    op.drop_index("ix_subscriptions_listing", table_name="subscriptions")
