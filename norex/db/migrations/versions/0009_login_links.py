"""The dashboard's one-time login links: the SHA-256 of each token, the email it went to, its expiry (15 min).

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-03
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "login_links",
        sa.Column("token_hash", sa.String(64), nullable=False),
        sa.Column("email", sa.String(512), nullable=False),
        sa.Column("expires_at", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("token_hash", name="pk_login_links"),
    )
    op.create_index("ix_login_links_expires_at", "login_links", ["expires_at"])


def downgrade() -> None:
    op.drop_index("ix_login_links_expires_at", table_name="login_links")
    op.drop_table("login_links")
