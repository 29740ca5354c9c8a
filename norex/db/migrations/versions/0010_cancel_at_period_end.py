"""Customers keep whether their subscription ends at the period's end (cancelled, not yet over): the billing page
shows "ends on ..." or "renews on ..." from what the control plane holds. A current value, no history.

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-03
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # A plain ADD COLUMN: a batch (copy and drop) of customers would cascade-delete every device on SQLite.
    op.add_column("customers", sa.Column("cancel_at_period_end", sa.Boolean(), nullable=False, server_default="0"))


def downgrade() -> None:
    with op.batch_alter_table("customers") as batch:
        batch.drop_column("cancel_at_period_end")
