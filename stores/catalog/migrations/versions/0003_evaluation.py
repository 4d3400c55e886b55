"""evaluation: releases, runs, per-question results, promotion decisions

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-21 13:45:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "eval_releases",
        sa.Column("id", sa.String(length=40), nullable=False),
        sa.Column("name", sa.String(length=100), nullable=False),
        sa.Column("description", sa.Text(), nullable=False),
        sa.Column("config", sa.JSON(), nullable=False),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_table(
        "eval_runs",
        sa.Column("id", sa.String(length=36), nullable=False),
        sa.Column("release_id", sa.String(length=40), nullable=False),
        sa.Column("suite", sa.String(length=100), nullable=False),
        sa.Column("suite_id", sa.String(length=40), nullable=False),
        sa.Column("code_version", sa.String(length=100), nullable=False),
        sa.Column("state", sa.String(length=16), nullable=False),
        sa.Column("scores", sa.JSON(), nullable=False),
        sa.Column("info", sa.JSON(), nullable=False),
        sa.Column("started_at", sa.DateTime(), nullable=False),
        sa.Column("finished_at", sa.DateTime(), nullable=True),
        sa.ForeignKeyConstraint(["release_id"], ["eval_releases.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("eval_runs", schema=None) as batch_op:
        batch_op.create_index(
            "ix_eval_runs_release", ["release_id", "suite_id", "finished_at"], unique=False
        )
    op.create_table(
        "eval_results",
        sa.Column("run_id", sa.String(length=36), nullable=False),
        sa.Column("question_id", sa.String(length=200), nullable=False),
        sa.Column("ordinal", sa.Integer(), nullable=False),
        sa.Column("data", sa.JSON(), nullable=False),
        sa.ForeignKeyConstraint(["run_id"], ["eval_runs.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("run_id", "question_id"),
    )
    op.create_table(
        "eval_promotions",
        sa.Column("id", sa.String(length=36), nullable=False),
        sa.Column("release_id", sa.String(length=40), nullable=False),
        sa.Column("previous_id", sa.String(length=40), nullable=True),
        sa.Column("suite", sa.String(length=100), nullable=True),
        sa.Column("promoted", sa.Boolean(), nullable=False),
        sa.Column("reasons", sa.JSON(), nullable=False),
        sa.Column("evidence", sa.JSON(), nullable=False),
        sa.Column("decided_by", sa.String(length=100), nullable=False),
        sa.Column("decided_at", sa.DateTime(), nullable=False),
        sa.ForeignKeyConstraint(["release_id"], ["eval_releases.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("eval_promotions", schema=None) as batch_op:
        batch_op.create_index(
            "ix_eval_promotions_decided", ["promoted", "decided_at"], unique=False
        )


def downgrade() -> None:
    op.drop_table("eval_promotions")
    op.drop_table("eval_results")
    op.drop_table("eval_runs")
    op.drop_table("eval_releases")
