"""The length of a feedback item's free-text comment, kept whether or not its text is.

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-01
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("feedback", schema=None) as batch_op:
        batch_op.add_column(sa.Column("user_comment_chars", sa.Integer(), nullable=True))
    op.execute(
        "UPDATE feedback SET user_comment_chars = length(user_comment) "
        "WHERE user_comment IS NOT NULL"
    )


def downgrade() -> None:
    with op.batch_alter_table("feedback", schema=None) as batch_op:
        batch_op.drop_column("user_comment_chars")
