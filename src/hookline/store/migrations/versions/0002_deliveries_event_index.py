"""Index deliveries by event, so pruning events and idempotent look-ups stay fast on large stores.

Revision ID: 0002
Revises: 0001
"""

from __future__ import annotations

from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_index("ix_deliveries_event_row_id", "deliveries", ["event_row_id"])


def downgrade() -> None:
    op.drop_index("ix_deliveries_event_row_id", table_name="deliveries")
