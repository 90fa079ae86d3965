"""Token ids seen (replay protection shared by every worker), the access audit and dashboard
sessions (revocable, shared by every worker).

Revision ID: 0002
Revises: 0001
Create Date: 2026-12-01
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
        "seen_token",
        sa.Column("token_key", sa.String(length=64), nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("token_key", name=op.f("pk_seen_token")),
    )
    with op.batch_alter_table("seen_token", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_seen_token_expires_at"), ["expires_at"], unique=False)

    op.create_table(
        "access_event",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("recorded_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("recorded_on", sa.Date(), nullable=False),
        sa.Column("service_id", sa.String(length=64), nullable=False),
        sa.Column("status", sa.Integer(), nullable=False),
        sa.Column("outcome", sa.String(length=64), nullable=False),
        sa.Column("issuer", sa.String(length=255), nullable=True),
        sa.Column("subject", sa.String(length=255), nullable=True),
        sa.Column("tenant", sa.String(length=128), nullable=True),
        sa.Column("ehr_user", sa.String(length=128), nullable=True),
        sa.Column("patient_hash", sa.String(length=64), nullable=True),
        sa.Column("request_id", sa.String(length=128), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_access_event")),
    )
    with op.batch_alter_table("access_event", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_access_event_patient_hash"), ["patient_hash"], unique=False
        )
        batch_op.create_index(
            batch_op.f("ix_access_event_recorded_at"), ["recorded_at"], unique=False
        )
        batch_op.create_index(
            batch_op.f("ix_access_event_recorded_on"), ["recorded_on"], unique=False
        )

    op.create_table(
        "analytics_session",
        sa.Column("session_hash", sa.String(length=64), nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("session_hash", name=op.f("pk_analytics_session")),
    )


def downgrade() -> None:
    op.drop_table("analytics_session")
    op.drop_table("access_event")
    op.drop_table("seen_token")
