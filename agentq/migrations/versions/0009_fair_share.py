"""fair share: concurrency limits (per key, plugin, concurrency key) and delayed runs

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-07
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import mysql

revision: str = "0009"
down_revision: str | None = "0008"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

UTC_DATETIME = sa.DateTime().with_variant(mysql.DATETIME(fsp=6), "mysql", "mariadb")


def upgrade() -> None:
    with op.batch_alter_table("executions") as batch:
        batch.add_column(sa.Column("concurrency_key", sa.String(128), nullable=True))
        batch.add_column(sa.Column("run_at", UTC_DATETIME, nullable=True))
        batch.add_column(sa.Column("held", sa.String(16), nullable=True))
        batch.add_column(sa.Column("waiting_on", sa.JSON(), nullable=True))
        batch.add_column(sa.Column("admitted", sa.Boolean(), nullable=False, server_default="0"))
        batch.create_index("ix_executions_held_run_at", ["held", "run_at"])
        batch.create_index("ix_executions_held_plugin", ["held", "plugin", "owner", "priority", "id"])
    with op.batch_alter_table("schedules") as batch:
        batch.add_column(sa.Column("concurrency_key", sa.String(128), nullable=True))
    with op.batch_alter_table("api_keys") as batch:
        batch.add_column(sa.Column("max_running", sa.Integer(), nullable=True))
    with op.batch_alter_table("plugin_commands") as batch:
        batch.add_column(sa.Column("max_concurrency", sa.Integer(), nullable=True))
    op.create_table(
        "concurrency_limits",
        sa.Column("owner", sa.String(64), primary_key=True),
        sa.Column("name", sa.String(128), primary_key=True),
        sa.Column("max_running", sa.Integer(), nullable=False),
        sa.Column("updated_at", UTC_DATETIME, nullable=False),
    )
    op.create_table(
        "admissions",
        sa.Column("scope", sa.String(255), primary_key=True),
        sa.Column("execution_id", sa.String(26), primary_key=True),
        sa.Column("owner", sa.String(64), nullable=False),
    )
    op.create_index("ix_admissions_execution_id", "admissions", ["execution_id"])
    gate = op.create_table(
        "admission_gate",
        sa.Column("id", sa.Integer(), primary_key=True, autoincrement=False),
        sa.Column("turns", sa.BigInteger(), nullable=False),
    )
    op.bulk_insert(gate, [{"id": 1, "turns": 0}])


def downgrade() -> None:
    op.drop_table("admission_gate")
    op.drop_index("ix_admissions_execution_id", "admissions")
    op.drop_table("admissions")
    op.drop_table("concurrency_limits")
    with op.batch_alter_table("plugin_commands") as batch:
        batch.drop_column("max_concurrency")
    with op.batch_alter_table("api_keys") as batch:
        batch.drop_column("max_running")
    with op.batch_alter_table("schedules") as batch:
        batch.drop_column("concurrency_key")
    with op.batch_alter_table("executions") as batch:
        batch.drop_index("ix_executions_held_plugin")
        batch.drop_index("ix_executions_held_run_at")
        for column in ("admitted", "waiting_on", "held", "run_at", "concurrency_key"):
            batch.drop_column(column)
