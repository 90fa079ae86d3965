"""Audit and feedback tables: audit_event, audit_criterion, issued_card, feedback.

Revision ID: 0001
Revises: (none)
Create Date: 2026-11-21
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "audit_event",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("recorded_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("recorded_on", sa.Date(), nullable=False),
        sa.Column("service_id", sa.String(length=64), nullable=False),
        sa.Column("hook", sa.String(length=32), nullable=False),
        sa.Column("hook_instance", sa.String(length=128), nullable=False),
        sa.Column("patient_hash", sa.String(length=64), nullable=False),
        sa.Column("outcome", sa.String(length=32), nullable=True),
        sa.Column("pathway", sa.String(length=32), nullable=True),
        sa.Column("policy_id", sa.String(length=64), nullable=True),
        sa.Column("policy_version", sa.String(length=32), nullable=True),
        sa.Column("card_count", sa.Integer(), nullable=False),
        sa.Column("prefetch_keys", sa.JSON(), nullable=False),
        sa.Column("fetched_keys", sa.JSON(), nullable=False),
        sa.Column("prefetch_used", sa.Integer(), nullable=False),
        sa.Column("fetched_count", sa.Integer(), nullable=False),
        sa.Column("fhir_requests", sa.Integer(), nullable=False),
        sa.Column("fetch_ms", sa.Float(), nullable=True),
        sa.Column("total_ms", sa.Float(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_audit_event")),
    )
    with op.batch_alter_table("audit_event", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_audit_event_patient_hash"), ["patient_hash"], unique=False
        )
        batch_op.create_index(
            batch_op.f("ix_audit_event_recorded_at"), ["recorded_at"], unique=False
        )
        batch_op.create_index(
            batch_op.f("ix_audit_event_recorded_on"), ["recorded_on"], unique=False
        )

    op.create_table(
        "feedback",
        sa.Column(
            "id",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            autoincrement=True,
            nullable=False,
        ),
        sa.Column("dedup_key", sa.String(length=64), nullable=False),
        sa.Column("service_id", sa.String(length=64), nullable=False),
        sa.Column("card_uuid", sa.String(length=64), nullable=False),
        sa.Column("outcome", sa.String(length=16), nullable=False),
        sa.Column("outcome_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("outcome_on", sa.Date(), nullable=False),
        sa.Column("received_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("accepted_suggestions", sa.JSON(), nullable=False),
        sa.Column("reason_system", sa.String(length=255), nullable=True),
        sa.Column("reason_code", sa.String(length=64), nullable=True),
        sa.Column("reason_display", sa.String(length=255), nullable=True),
        sa.Column("user_comment", sa.Text(), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_feedback")),
        sa.UniqueConstraint("dedup_key", name=op.f("uq_feedback_dedup_key")),
    )
    with op.batch_alter_table("feedback", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_feedback_card_uuid"), ["card_uuid"], unique=False)
        batch_op.create_index(batch_op.f("ix_feedback_outcome_on"), ["outcome_on"], unique=False)
        batch_op.create_index(batch_op.f("ix_feedback_received_at"), ["received_at"], unique=False)

    op.create_table(
        "audit_criterion",
        sa.Column("audit_id", sa.Uuid(), nullable=False),
        sa.Column("criterion_id", sa.String(length=64), nullable=False),
        sa.Column("result", sa.String(length=16), nullable=False),
        sa.Column("on_pathway", sa.Boolean(), nullable=False),
        sa.ForeignKeyConstraint(
            ["audit_id"],
            ["audit_event.id"],
            name=op.f("fk_audit_criterion_audit_id_audit_event"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("audit_id", "criterion_id", name=op.f("pk_audit_criterion")),
    )
    op.create_table(
        "issued_card",
        sa.Column("card_uuid", sa.String(length=64), nullable=False),
        sa.Column("audit_id", sa.Uuid(), nullable=False),
        sa.Column("service_id", sa.String(length=64), nullable=False),
        sa.Column("issued_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("suggestion_uuids", sa.JSON(), nullable=False),
        sa.Column("override_codes", sa.JSON(), nullable=False),
        sa.ForeignKeyConstraint(
            ["audit_id"],
            ["audit_event.id"],
            name=op.f("fk_issued_card_audit_id_audit_event"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("card_uuid", name=op.f("pk_issued_card")),
    )
    with op.batch_alter_table("issued_card", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_issued_card_audit_id"), ["audit_id"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("issued_card", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_issued_card_audit_id"))

    op.drop_table("issued_card")
    op.drop_table("audit_criterion")
    with op.batch_alter_table("feedback", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_feedback_received_at"))
        batch_op.drop_index(batch_op.f("ix_feedback_outcome_on"))
        batch_op.drop_index(batch_op.f("ix_feedback_card_uuid"))

    op.drop_table("feedback")
    with op.batch_alter_table("audit_event", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_audit_event_recorded_on"))
        batch_op.drop_index(batch_op.f("ix_audit_event_recorded_at"))
        batch_op.drop_index(batch_op.f("ix_audit_event_patient_hash"))

    op.drop_table("audit_event")
