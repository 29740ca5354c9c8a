"""Servers keep the latest verdict of the continuous audit: pass or fail, the failing checks, when, and how many
audits in a row failed (a first failure is re-converged; a second is reported to ops). No history.

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-03
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("servers") as batch:
        batch.add_column(sa.Column("audit_verdict", sa.String(8), nullable=True))
        batch.add_column(sa.Column("audit_failed", sa.String(512), nullable=True))
        batch.add_column(sa.Column("audit_at", sa.BigInteger(), nullable=True))
        batch.add_column(sa.Column("audit_failures", sa.Integer(), nullable=False, server_default="0"))


def downgrade() -> None:
    with op.batch_alter_table("servers") as batch:
        for column in ("audit_failures", "audit_at", "audit_failed", "audit_verdict"):
            batch.drop_column(column)
