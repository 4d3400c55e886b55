"""sorting (issue #17): the tenants' vocabularies, per-document decisions with the classifier's
features and labels, typed field values for filters, the decision events, and the embedded
graph store's document labels (OF_TYPE, FROM, TO)

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-10 12:00:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0008"
down_revision: str | None = "0007"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "sorting_entries",
        sa.Column("id", sa.String(length=36), nullable=False),
        sa.Column("tenant_id", sa.String(length=36), nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("key", sa.String(length=100), nullable=False),
        sa.Column("data", sa.JSON(), nullable=False),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.Column("updated_at", sa.DateTime(), nullable=False),
        sa.ForeignKeyConstraint(["tenant_id"], ["tenants.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("tenant_id", "kind", "key"),
    )
    op.create_table(
        "sorting_settings",
        sa.Column("tenant_id", sa.String(length=36), nullable=False),
        sa.Column("threshold", sa.Float(), nullable=True),
        sa.Column("enabled", sa.Boolean(), nullable=False),
        sa.Column("examples_version", sa.Integer(), nullable=False),
        sa.Column("updated_at", sa.DateTime(), nullable=False),
        sa.ForeignKeyConstraint(["tenant_id"], ["tenants.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("tenant_id"),
    )
    op.create_table(
        "sorting_documents",
        sa.Column("document_id", sa.String(length=36), nullable=False),
        sa.Column("tenant_id", sa.String(length=36), nullable=False),
        sa.Column("version_id", sa.String(length=36), nullable=True),
        sa.Column("state", sa.String(length=16), nullable=False),
        sa.Column("document_type", sa.String(length=100), nullable=True),
        sa.Column("issuer", sa.String(length=100), nullable=True),
        sa.Column("recipient", sa.String(length=100), nullable=True),
        sa.Column("tags", sa.JSON(), nullable=False),
        sa.Column("fields", sa.JSON(), nullable=False),
        sa.Column("confidence", sa.Float(), nullable=True),
        sa.Column("reason", sa.String(length=32), nullable=False),
        sa.Column("detail", sa.JSON(), nullable=False),
        sa.Column("features", sa.JSON(), nullable=False),
        sa.Column("label", sa.String(length=100), nullable=True),
        sa.Column("decided_by", sa.String(length=200), nullable=False),
        sa.Column("updated_at", sa.DateTime(), nullable=False),
        sa.ForeignKeyConstraint(["document_id"], ["documents.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("document_id"),
    )
    with op.batch_alter_table("sorting_documents", schema=None) as batch_op:
        batch_op.create_index(
            "ix_sorting_documents_state", ["tenant_id", "state", "updated_at"], unique=False
        )
        batch_op.create_index(
            "ix_sorting_documents_type", ["tenant_id", "document_type"], unique=False
        )
        batch_op.create_index("ix_sorting_documents_label", ["tenant_id", "label"], unique=False)
    op.create_table(
        "sorting_fields",
        sa.Column("document_id", sa.String(length=36), nullable=False),
        sa.Column("key", sa.String(length=100), nullable=False),
        sa.Column("num", sa.Float(), nullable=True),
        sa.Column("text", sa.String(length=500), nullable=True),
        sa.ForeignKeyConstraint(["document_id"], ["documents.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("document_id", "key"),
    )
    with op.batch_alter_table("sorting_fields", schema=None) as batch_op:
        batch_op.create_index("ix_sorting_fields_num", ["key", "num"], unique=False)
        batch_op.create_index("ix_sorting_fields_text", ["key", "text"], unique=False)
    op.create_table(
        "sorting_events",
        sa.Column("id", sa.String(length=36), nullable=False),
        sa.Column("tenant_id", sa.String(length=36), nullable=False),
        sa.Column("document_id", sa.String(length=36), nullable=False),
        sa.Column("at", sa.DateTime(), nullable=False),
        sa.Column("actor", sa.String(length=200), nullable=False),
        sa.Column("action", sa.String(length=32), nullable=False),
        sa.Column("confidence", sa.Float(), nullable=True),
        sa.Column("reason", sa.String(length=32), nullable=False),
        sa.Column("before", sa.JSON(), nullable=False),
        sa.Column("after", sa.JSON(), nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("sorting_events", schema=None) as batch_op:
        batch_op.create_index(
            "ix_sorting_events_document", ["tenant_id", "document_id", "at"], unique=False
        )
    op.create_table(
        "graph_document_labels",
        sa.Column("document_id", sa.String(length=36), nullable=False),
        sa.Column("relation", sa.String(length=16), nullable=False),
        sa.Column("key", sa.String(length=100), nullable=False),
        sa.Column("tenant_id", sa.String(length=36), nullable=False),
        sa.Column("name", sa.String(length=300), nullable=False),
        sa.PrimaryKeyConstraint("document_id", "relation", "key"),
    )
    with op.batch_alter_table("graph_document_labels", schema=None) as batch_op:
        batch_op.create_index(
            "ix_graph_document_labels_key", ["tenant_id", "relation", "key"], unique=False
        )


def downgrade() -> None:
    op.drop_table("graph_document_labels")
    op.drop_table("sorting_events")
    op.drop_table("sorting_fields")
    op.drop_table("sorting_documents")
    op.drop_table("sorting_settings")
    op.drop_table("sorting_entries")
