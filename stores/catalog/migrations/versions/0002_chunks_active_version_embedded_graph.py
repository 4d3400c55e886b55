"""chunks, active version, embedded graph

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-21 11:00:45.238363
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:

    op.create_table(
        "graph_chunks",
        sa.Column("id", sa.String(length=36), nullable=False),
        sa.Column("tenant_id", sa.String(length=36), nullable=False),
        sa.Column("document_id", sa.String(length=36), nullable=False),
        sa.Column("version_id", sa.String(length=36), nullable=False),
        sa.Column("ordinal", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("graph_chunks", schema=None) as batch_op:
        batch_op.create_index(
            "ix_graph_chunks_doc", ["tenant_id", "document_id", "version_id"], unique=False
        )

    op.create_table(
        "graph_documents",
        sa.Column("id", sa.String(length=36), nullable=False),
        sa.Column("tenant_id", sa.String(length=36), nullable=False),
        sa.Column("title", sa.String(length=300), nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("graph_documents", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_graph_documents_tenant_id"), ["tenant_id"], unique=False
        )

    op.create_table(
        "graph_entities",
        sa.Column("tenant_id", sa.String(length=36), nullable=False),
        sa.Column("key", sa.String(length=300), nullable=False),
        sa.Column("name", sa.String(length=300), nullable=False),
        sa.Column("kind", sa.String(length=32), nullable=False),
        sa.PrimaryKeyConstraint("tenant_id", "key"),
    )
    op.create_table(
        "graph_relations",
        sa.Column("tenant_id", sa.String(length=36), nullable=False),
        sa.Column("source_key", sa.String(length=300), nullable=False),
        sa.Column("target_key", sa.String(length=300), nullable=False),
        sa.Column("weight", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("tenant_id", "source_key", "target_key"),
    )
    op.create_table(
        "graph_mentions",
        sa.Column("chunk_id", sa.String(length=36), nullable=False),
        sa.Column("entity_key", sa.String(length=300), nullable=False),
        sa.Column("tenant_id", sa.String(length=36), nullable=False),
        sa.ForeignKeyConstraint(["chunk_id"], ["graph_chunks.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("chunk_id", "entity_key"),
    )
    with op.batch_alter_table("graph_mentions", schema=None) as batch_op:
        batch_op.create_index("ix_graph_mentions_entity", ["tenant_id", "entity_key"], unique=False)

    op.create_table(
        "chunks",
        sa.Column("id", sa.String(length=36), nullable=False),
        sa.Column("tenant_id", sa.String(length=36), nullable=False),
        sa.Column("document_id", sa.String(length=36), nullable=False),
        sa.Column("version_id", sa.String(length=36), nullable=False),
        sa.Column("ordinal", sa.Integer(), nullable=False),
        sa.Column("text", sa.Text(), nullable=False),
        sa.Column("section_path", sa.JSON(), nullable=False),
        sa.Column("page_start", sa.Integer(), nullable=True),
        sa.Column("page_end", sa.Integer(), nullable=True),
        sa.Column("language", sa.String(length=8), nullable=False),
        sa.Column("token_count", sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(["version_id"], ["document_versions.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("chunks", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_chunks_document_id"), ["document_id"], unique=False)
        batch_op.create_index(batch_op.f("ix_chunks_tenant_id"), ["tenant_id"], unique=False)
        batch_op.create_index("ix_chunks_version", ["version_id", "ordinal"], unique=False)

    with op.batch_alter_table("documents", schema=None) as batch_op:
        batch_op.add_column(sa.Column("active_version", sa.Integer(), nullable=True))


def downgrade() -> None:

    with op.batch_alter_table("documents", schema=None) as batch_op:
        batch_op.drop_column("active_version")

    with op.batch_alter_table("chunks", schema=None) as batch_op:
        batch_op.drop_index("ix_chunks_version")
        batch_op.drop_index(batch_op.f("ix_chunks_tenant_id"))
        batch_op.drop_index(batch_op.f("ix_chunks_document_id"))

    op.drop_table("chunks")
    with op.batch_alter_table("graph_mentions", schema=None) as batch_op:
        batch_op.drop_index("ix_graph_mentions_entity")

    op.drop_table("graph_mentions")
    op.drop_table("graph_relations")
    op.drop_table("graph_entities")
    with op.batch_alter_table("graph_documents", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_graph_documents_tenant_id"))

    op.drop_table("graph_documents")
    with op.batch_alter_table("graph_chunks", schema=None) as batch_op:
        batch_op.drop_index("ix_graph_chunks_doc")

    op.drop_table("graph_chunks")
