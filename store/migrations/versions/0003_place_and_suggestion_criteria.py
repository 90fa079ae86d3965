"""Place of each evaluation (registered practice and its place) and which criterion each
card suggestion confirms.

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-01
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("audit_event", schema=None) as batch_op:
        batch_op.add_column(sa.Column("practice_code", sa.String(length=16), nullable=True))
        batch_op.add_column(sa.Column("place", sa.String(length=64), nullable=True))
    with op.batch_alter_table("issued_card", schema=None) as batch_op:
        batch_op.add_column(sa.Column("suggestion_criteria", sa.JSON(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("issued_card", schema=None) as batch_op:
        batch_op.drop_column("suggestion_criteria")
    with op.batch_alter_table("audit_event", schema=None) as batch_op:
        batch_op.drop_column("place")
        batch_op.drop_column("practice_code")
