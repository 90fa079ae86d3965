"""Refused calls counted per client per minute rather than one access_event row each.

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-07
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "access_refusal",
        sa.Column("minute", sa.DateTime(timezone=True), nullable=False),
        sa.Column("service_id", sa.String(length=64), nullable=False),
        sa.Column("status", sa.Integer(), nullable=False),
        sa.Column("outcome", sa.String(length=64), nullable=False),
        sa.Column("address_hash", sa.String(length=64), nullable=False),
        sa.Column("issuer", sa.String(length=255), nullable=False),
        sa.Column("recorded_on", sa.Date(), nullable=False),
        sa.Column("calls", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint(
            "minute",
            "service_id",
            "status",
            "outcome",
            "address_hash",
            "issuer",
            name=op.f("pk_access_refusal"),
        ),
    )
    with op.batch_alter_table("access_refusal", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_access_refusal_recorded_on"), ["recorded_on"], unique=False
        )


def downgrade() -> None:
    op.drop_table("access_refusal")
