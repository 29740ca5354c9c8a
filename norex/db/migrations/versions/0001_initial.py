"""Customers, their servers, processed Stripe event ids and erasure tombstones.

Revision ID: 0001
Revises:
Create Date: 2025-01-01
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "customers",
        sa.Column("id", sa.String(34), nullable=False),
        sa.Column("email", sa.String(320), nullable=True),
        sa.Column("stripe_customer_id", sa.String(255), nullable=False),
        sa.Column("subscription_id", sa.String(255), nullable=True),
        sa.Column("status", sa.String(32), nullable=True),
        sa.Column("status_since", sa.BigInteger(), nullable=True),
        sa.Column("period_end", sa.BigInteger(), nullable=True),
        sa.Column("last_event_created", sa.BigInteger(), nullable=True),
        sa.Column("newest_event_created", sa.BigInteger(), nullable=True),
        sa.Column("email_event_created", sa.BigInteger(), nullable=True),
        sa.Column("desired", sa.String(8), nullable=False),
        sa.Column("erase_requested", sa.Boolean(), nullable=False),
        sa.Column("created_at", sa.BigInteger(), nullable=False),
        sa.CheckConstraint("desired IN ('present', 'absent')", name=op.f("ck_customers_desired")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_customers")),
        sa.UniqueConstraint("stripe_customer_id", name=op.f("uq_customers_stripe_customer_id")),
    )
    op.create_index(op.f("ix_customers_subscription_id"), "customers", ["subscription_id"])
    op.create_table(
        "servers",
        sa.Column("customer_id", sa.String(34), nullable=False),
        sa.Column("backend", sa.String(16), nullable=False),
        sa.Column("name", sa.String(64), nullable=False),
        sa.Column("ipv4", sa.String(15), nullable=True),
        sa.Column("ipv6", sa.String(45), nullable=True),
        sa.Column("public_key", sa.String(44), nullable=True),
        sa.Column("state", sa.String(16), nullable=False),
        sa.Column("updated_at", sa.BigInteger(), nullable=False),
        sa.CheckConstraint(
            "state IN ('creating', 'converging', 'ready', 'destroying', 'failed')", name=op.f("ck_servers_state")
        ),
        sa.ForeignKeyConstraint(
            ["customer_id"],
            ["customers.id"],
            name=op.f("fk_servers_customer_id_customers"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("customer_id", name=op.f("pk_servers")),
    )
    op.create_table(
        "processed_events",
        sa.Column("event_id", sa.String(255), nullable=False),
        sa.Column("received_at", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("event_id", name=op.f("pk_processed_events")),
    )
    op.create_index(op.f("ix_processed_events_received_at"), "processed_events", ["received_at"])
    op.create_table(
        "erased_customers",
        sa.Column("digest", sa.String(64), nullable=False),
        sa.Column("erased_at", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("digest", name=op.f("pk_erased_customers")),
    )
    op.create_index(op.f("ix_erased_customers_erased_at"), "erased_customers", ["erased_at"])


def downgrade() -> None:
    op.drop_table("erased_customers")
    op.drop_table("processed_events")
    op.drop_table("servers")
    op.drop_table("customers")
