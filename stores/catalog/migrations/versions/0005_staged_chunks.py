"""staged chunk records of a re-chunking (new collection until the switch, previous after)

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-21 17:00:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0005"
down_revision: str | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "staged_chunks",
        sa.Column("collection", sa.String(length=200), nullable=False),
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
        sa.PrimaryKeyConstraint("collection", "id"),
    )
    with op.batch_alter_table("staged_chunks", schema=None) as batch_op:
        batch_op.create_index(
            "ix_staged_chunks_version", ["collection", "version_id"], unique=False
        )


def downgrade() -> None:
    with op.batch_alter_table("staged_chunks", schema=None) as batch_op:
        batch_op.drop_index("ix_staged_chunks_version")
    op.drop_table("staged_chunks")
