"""Devices: a customer's WireGuard peers (public key, name, tunnel addresses).

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-26
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "devices",
        sa.Column("customer_id", sa.String(34), nullable=False),
        sa.Column("name", sa.String(32), nullable=False),
        sa.Column("index", sa.Integer(), nullable=False),
        sa.Column("public_key", sa.String(44), nullable=False),
        sa.Column("ipv4", sa.String(15), nullable=False),
        sa.Column("ipv6", sa.String(45), nullable=False),
        sa.Column("created_at", sa.BigInteger(), nullable=False),
        sa.ForeignKeyConstraint(
            ["customer_id"], ["customers.id"], name=op.f("fk_devices_customer_id_customers"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("customer_id", "name", name=op.f("pk_devices")),
        sa.UniqueConstraint("customer_id", "index", name=op.f("uq_devices_customer_id")),
    )


def downgrade() -> None:
    op.drop_table("devices")
