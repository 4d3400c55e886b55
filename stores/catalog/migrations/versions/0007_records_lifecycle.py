"""records lifecycle: trash, legal holds, retention policies, deletion certificates (the purge
state while a purge runs), the audit trail and per-tenant records settings

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-09 12:00:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0007"
down_revision: str | None = "0006"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "records_trash",
        sa.Column("document_id", sa.String(length=36), nullable=False),
        sa.Column("tenant_id", sa.String(length=36), nullable=False),
        sa.Column("trashed_at", sa.DateTime(), nullable=False),
        sa.Column("purge_after", sa.DateTime(), nullable=False),
        sa.Column("trashed_by", sa.String(length=200), nullable=False),
        sa.Column("reason", sa.String(length=500), nullable=False),
        sa.ForeignKeyConstraint(["document_id"], ["documents.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("document_id"),
    )
    with op.batch_alter_table("records_trash", schema=None) as batch_op:
        batch_op.create_index("ix_records_trash_due", ["purge_after"], unique=False)
        batch_op.create_index("ix_records_trash_tenant_id", ["tenant_id"], unique=False)

    op.create_table(
        "records_holds",
        sa.Column("id", sa.String(length=36), nullable=False),
        sa.Column("tenant_id", sa.String(length=36), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("placed_by", sa.String(length=200), nullable=False),
        sa.Column("selector", sa.JSON(), nullable=False),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.Column("released_at", sa.DateTime(), nullable=True),
        sa.Column("released_by", sa.String(length=200), nullable=True),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("records_holds", schema=None) as batch_op:
        batch_op.create_index("ix_records_holds_tenant", ["tenant_id", "released_at"], unique=False)

    op.create_table(
        "records_policies",
        sa.Column("id", sa.String(length=36), nullable=False),
        sa.Column("tenant_id", sa.String(length=36), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("selector", sa.JSON(), nullable=False),
        sa.Column("years", sa.Integer(), nullable=False),
        sa.Column("months", sa.Integer(), nullable=False),
        sa.Column("days", sa.Integer(), nullable=False),
        sa.Column("anchor", sa.String(length=32), nullable=False),
        sa.Column("action", sa.String(length=16), nullable=False),
        sa.Column("confirmed", sa.Boolean(), nullable=False),
        sa.Column("created_by", sa.String(length=200), nullable=False),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.Column("updated_at", sa.DateTime(), nullable=False),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("tenant_id", "name"),
    )

    op.create_table(
        "records_certificates",
        sa.Column("id", sa.String(length=36), nullable=False),
        sa.Column("tenant_id", sa.String(length=36), nullable=False),
        sa.Column("document_id", sa.String(length=36), nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("reason", sa.String(length=500), nullable=False),
        sa.Column("requested_by", sa.String(length=200), nullable=False),
        sa.Column("state", sa.String(length=16), nullable=False),
        sa.Column("job_id", sa.String(length=36), nullable=True),
        sa.Column("stores", sa.JSON(), nullable=False),
        sa.Column("originals", sa.JSON(), nullable=False),
        sa.Column("detail", sa.JSON(), nullable=False),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.Column("completed_at", sa.DateTime(), nullable=True),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("records_certificates", schema=None) as batch_op:
        batch_op.create_index("ix_records_certificates_doc", ["document_id", "state"], unique=False)
        batch_op.create_index(
            "ix_records_certificates_tenant", ["tenant_id", "created_at"], unique=False
        )

    op.create_table(
        "records_audit",
        sa.Column("id", sa.String(length=36), nullable=False),
        sa.Column("tenant_id", sa.String(length=36), nullable=False),
        sa.Column("at", sa.DateTime(), nullable=False),
        sa.Column("actor", sa.String(length=200), nullable=False),
        sa.Column("action", sa.String(length=64), nullable=False),
        sa.Column("target", sa.String(length=200), nullable=False),
        sa.Column("outcome", sa.String(length=16), nullable=False),
        sa.Column("detail", sa.JSON(), nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("records_audit", schema=None) as batch_op:
        batch_op.create_index("ix_records_audit_tenant", ["tenant_id", "at"], unique=False)

    op.create_table(
        "records_settings",
        sa.Column("tenant_id", sa.String(length=36), nullable=False),
        sa.Column("trash_days", sa.Integer(), nullable=False),
        sa.Column("updated_at", sa.DateTime(), nullable=False),
        sa.ForeignKeyConstraint(["tenant_id"], ["tenants.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("tenant_id"),
    )


def downgrade() -> None:
    op.drop_table("records_settings")
    with op.batch_alter_table("records_audit", schema=None) as batch_op:
        batch_op.drop_index("ix_records_audit_tenant")
    op.drop_table("records_audit")
    with op.batch_alter_table("records_certificates", schema=None) as batch_op:
        batch_op.drop_index("ix_records_certificates_tenant")
        batch_op.drop_index("ix_records_certificates_doc")
    op.drop_table("records_certificates")
    op.drop_table("records_policies")
    with op.batch_alter_table("records_holds", schema=None) as batch_op:
        batch_op.drop_index("ix_records_holds_tenant")
    op.drop_table("records_holds")
    with op.batch_alter_table("records_trash", schema=None) as batch_op:
        batch_op.drop_index("ix_records_trash_tenant_id")
        batch_op.drop_index("ix_records_trash_due")
    op.drop_table("records_trash")
