"""The assessment app's shared session store: review_app_session.

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-01
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "review_app_session",
        sa.Column("id_hash", sa.String(length=64), nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("payload", sa.LargeBinary(), nullable=False),
        sa.PrimaryKeyConstraint("id_hash", name=op.f("pk_review_app_session")),
    )
    op.create_index(op.f("ix_review_app_session_expires_at"), "review_app_session", ["expires_at"])


def downgrade() -> None:
    op.drop_index(op.f("ix_review_app_session_expires_at"), table_name="review_app_session")
    op.drop_table("review_app_session")
