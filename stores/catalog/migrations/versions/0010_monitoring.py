"""monitoring (issue #27): answer traces with feedback, the documents each trace cites, trace
retention per tenant, experiments (shadow and canary releases) and drift reports

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-14 12:00:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0010"
down_revision: str | None = "0009"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "traces",
        sa.Column("id", sa.String(length=36), nullable=False),
        sa.Column("tenant_id", sa.String(length=36), nullable=False),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.Column("route", sa.String(length=16), nullable=False),
        sa.Column("caller", sa.String(length=120), nullable=False),
        sa.Column("release_id", sa.String(length=40), nullable=True),
        sa.Column("arm", sa.String(length=16), nullable=False),
        sa.Column("experiment_id", sa.String(length=36), nullable=True),
        sa.Column("parent_id", sa.String(length=36), nullable=True),
        sa.Column("question", sa.Text(), nullable=False),
        sa.Column("language", sa.String(length=8), nullable=False),
        sa.Column("refused", sa.Boolean(), nullable=False),
        sa.Column("latency_ms", sa.Float(), nullable=False),
        sa.Column("top_score", sa.Float(), nullable=True),
        sa.Column("citations_dropped", sa.Integer(), nullable=False),
        sa.Column("rating", sa.Integer(), nullable=True),
        sa.Column("feedback_reason", sa.Text(), nullable=False),
        sa.Column("corrected_answer", sa.Text(), nullable=True),
        sa.Column("rated_at", sa.DateTime(), nullable=True),
        sa.Column("data", sa.JSON(), nullable=False),
        sa.ForeignKeyConstraint(["tenant_id"], ["tenants.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("traces", schema=None) as batch_op:
        batch_op.create_index("ix_traces_tenant_created", ["tenant_id", "created_at"])
        batch_op.create_index("ix_traces_tenant_release", ["tenant_id", "release_id", "created_at"])
        batch_op.create_index("ix_traces_experiment", ["experiment_id", "arm"])
        batch_op.create_index("ix_traces_parent", ["parent_id"])
    op.create_table(
        "trace_documents",
        sa.Column("trace_id", sa.String(length=36), nullable=False),
        sa.Column("document_id", sa.String(length=36), nullable=False),
        sa.ForeignKeyConstraint(["trace_id"], ["traces.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("trace_id", "document_id"),
    )
    with op.batch_alter_table("trace_documents", schema=None) as batch_op:
        batch_op.create_index("ix_trace_documents_document", ["document_id"])
    op.create_table(
        "trace_settings",
        sa.Column("tenant_id", sa.String(length=36), nullable=False),
        sa.Column("retention_days", sa.Integer(), nullable=False),
        sa.Column("updated_at", sa.DateTime(), nullable=False),
        sa.ForeignKeyConstraint(["tenant_id"], ["tenants.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("tenant_id"),
    )
    op.create_table(
        "experiments",
        sa.Column("id", sa.String(length=36), nullable=False),
        sa.Column("tenant_id", sa.String(length=36), nullable=False),
        sa.Column("release_id", sa.String(length=40), nullable=False),
        sa.Column("champion_id", sa.String(length=40), nullable=True),
        sa.Column("mode", sa.String(length=16), nullable=False),
        sa.Column("share", sa.Float(), nullable=False),
        sa.Column("state", sa.String(length=16), nullable=False),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("evidence", sa.JSON(), nullable=False),
        sa.Column("canary_since", sa.DateTime(), nullable=True),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.Column("updated_at", sa.DateTime(), nullable=False),
        sa.ForeignKeyConstraint(["tenant_id"], ["tenants.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("experiments", schema=None) as batch_op:
        batch_op.create_index("ix_experiments_tenant_state", ["tenant_id", "state"])
    op.create_table(
        "monitor_reports",
        sa.Column("id", sa.String(length=36), nullable=False),
        sa.Column("tenant_id", sa.String(length=36), nullable=False),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.Column("alerts", sa.Integer(), nullable=False),
        sa.Column("data", sa.JSON(), nullable=False),
        sa.ForeignKeyConstraint(["tenant_id"], ["tenants.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("monitor_reports", schema=None) as batch_op:
        batch_op.create_index("ix_monitor_reports_tenant", ["tenant_id", "created_at"])


def downgrade() -> None:
    op.drop_table("monitor_reports")
    op.drop_table("experiments")
    op.drop_table("trace_settings")
    op.drop_table("trace_documents")
    op.drop_table("traces")
