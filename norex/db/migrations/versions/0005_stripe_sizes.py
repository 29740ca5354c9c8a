"""customers.email fits what Stripe allows (512 characters); failed_events counts events that cannot be stored.

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-02
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("customers") as batch:
        batch.alter_column("email", type_=sa.String(512), existing_type=sa.String(320), existing_nullable=True)
    op.create_table(
        "failed_events",
        sa.Column("event_type", sa.String(64), nullable=False),
        sa.Column("count", sa.Integer(), nullable=False),
        sa.Column("error", sa.String(64), nullable=False),
        sa.Column("last_failed_at", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("event_type", name=op.f("pk_failed_events")),
    )
    op.create_index(op.f("ix_failed_events_last_failed_at"), "failed_events", ["last_failed_at"])


def downgrade() -> None:
    op.drop_index(op.f("ix_failed_events_last_failed_at"), table_name="failed_events")
    op.drop_table("failed_events")
    with op.batch_alter_table("customers") as batch:
        batch.alter_column("email", type_=sa.String(320), existing_type=sa.String(512), existing_nullable=True)
