"""Devices get an opaque id and a label of up to 64 characters; servers get the agent certificate's pin.

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-02

The devices table is made anew (its primary key changes from (customer_id, name) to id): its rows are read,
the table dropped and made again with the same constraint names, and the rows written back, each with a new id.
"""

from __future__ import annotations

import secrets

import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None

COLUMNS = ("customer_id", "name", "index", "public_key", "ipv4", "ipv6", "created_at")


def _devices_table(with_id: bool) -> None:
    key = [sa.Column("id", sa.String(14), nullable=False)] if with_id else []
    name_length = 64 if with_id else 32
    op.create_table(
        "devices",
        *key,
        sa.Column("customer_id", sa.String(34), nullable=False),
        sa.Column("name", sa.String(name_length), nullable=False),
        sa.Column("index", sa.Integer(), nullable=False),
        sa.Column("public_key", sa.String(44), nullable=False),
        sa.Column("ipv4", sa.String(15), nullable=False),
        sa.Column("ipv6", sa.String(45), nullable=False),
        sa.Column("created_at", sa.BigInteger(), nullable=False),
        sa.ForeignKeyConstraint(
            ["customer_id"], ["customers.id"], name="fk_devices_customer_id_customers", ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint(*(["id"] if with_id else ["customer_id", "name"]), name="pk_devices"),
        *(
            [
                sa.UniqueConstraint("customer_id", "index", name="uq_devices_customer_index"),
                sa.UniqueConstraint("customer_id", "name", name="uq_devices_customer_name"),
            ]
            if with_id
            else [sa.UniqueConstraint("customer_id", "index", name="uq_devices_customer_id")]
        ),
    )


def _move(with_id: bool) -> None:
    bind = op.get_bind()
    old = sa.table("devices", *(sa.column(c) for c in COLUMNS))
    rows = [dict(r._mapping) for r in bind.execute(sa.select(old))]
    op.drop_table("devices")
    _devices_table(with_id)
    if not rows:
        return
    columns = (("id",) if with_id else ()) + COLUMNS
    new = sa.table("devices", *(sa.column(c) for c in columns))
    for row in rows:
        if with_id:
            row["id"] = "d-" + secrets.token_hex(6)
        else:
            row["name"] = row["name"][:32]
    bind.execute(new.insert(), rows)


def upgrade() -> None:
    _move(with_id=True)
    with op.batch_alter_table("servers") as batch:
        batch.add_column(sa.Column("agent_pin", sa.String(64), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("servers") as batch:
        batch.drop_column("agent_pin")
    _move(with_id=False)
