"""Failed dashboard sign-ins (the sign-in throttle, shared by every worker and pod).

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-01
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "analytics_login_failure",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("address_hash", sa.String(length=64), nullable=False),
        sa.Column("failed_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_analytics_login_failure")),
    )
    with op.batch_alter_table("analytics_login_failure", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_analytics_login_failure_address_hash"), ["address_hash"], unique=False
        )
        batch_op.create_index(
            batch_op.f("ix_analytics_login_failure_failed_at"), ["failed_at"], unique=False
        )


def downgrade() -> None:
    op.drop_table("analytics_login_failure")
