"""commands: every slash command and CLI call, hash-chained (DESIGN.md §6).

Revision ID: 0001_commands
Revises:
Create Date: 2026-11-30
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0001_commands"
down_revision: str | Sequence[str] | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "commands",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("actor", sa.Text(), nullable=False),
        sa.Column("source", sa.String(length=16), nullable=False),
        sa.Column("channel", sa.Text(), nullable=False),
        sa.Column("text", sa.Text(), nullable=False),
        sa.Column("cluster", sa.Text(), nullable=True),
        sa.Column("outcome", sa.String(length=16), nullable=False),
        sa.Column("detail", sa.Text(), nullable=False),
        sa.Column("duration_ms", sa.Integer(), nullable=False),
        sa.Column("extra", sa.JSON(), nullable=False),
        sa.Column("prev_hash", sa.String(length=64), nullable=False),
        sa.Column("row_hash", sa.String(length=64), nullable=False),
        sa.CheckConstraint("source IN ('slack', 'cli')", name=op.f("ck_commands_source")),
        sa.CheckConstraint(
            "outcome IN ('ok', 'error', 'refused', 'rejected')", name=op.f("ck_commands_outcome")
        ),
        sa.CheckConstraint("duration_ms >= 0", name=op.f("ck_commands_duration_ms")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_commands")),
        sa.UniqueConstraint("prev_hash", name=op.f("uq_commands_prev_hash")),
    )
    op.create_index("ix_commands_created_at", "commands", ["created_at"])
    op.create_index("ix_commands_cluster_created_at", "commands", ["cluster", "created_at"])


def downgrade() -> None:
    op.drop_index("ix_commands_cluster_created_at", table_name="commands")
    op.drop_index("ix_commands_created_at", table_name="commands")
    op.drop_table("commands")
