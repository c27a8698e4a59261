"""schedules, and the slot each scheduled execution fires for

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-22
"""

from collections.abc import Sequence
from typing import Any

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import mysql

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

UTC_DATETIME = sa.DateTime().with_variant(mysql.DATETIME(fsp=6), "mysql", "mariadb")
MYSQL_TABLE: dict[str, Any] = {
    "mysql_charset": "utf8mb4",
    "mysql_collate": "utf8mb4_bin",
    "mysql_engine": "InnoDB",
}


def upgrade() -> None:
    op.create_table(
        "schedules",
        sa.Column("id", sa.String(26), primary_key=True),
        sa.Column("name", sa.String(128), nullable=False),
        sa.Column("plugin", sa.String(64), nullable=False),
        sa.Column("command", sa.String(64), nullable=False),
        sa.Column("params", sa.JSON(), nullable=False),
        sa.Column("queue", sa.String(64), nullable=False),
        sa.Column("cron", sa.String(128), nullable=True),
        sa.Column("interval_s", sa.Double(), nullable=True),
        sa.Column("timezone", sa.String(64), nullable=False),
        sa.Column("enabled", sa.Boolean(), nullable=False),
        sa.Column("missed_policy", sa.String(16), nullable=False),
        sa.Column("overlap_policy", sa.String(16), nullable=False),
        sa.Column("priority", sa.Integer(), nullable=False),
        sa.Column("timeout_s", sa.Double(), nullable=True),
        sa.Column("max_retries", sa.Integer(), nullable=True),
        sa.Column("next_run_at", UTC_DATETIME, nullable=True),
        sa.Column("last_run_at", UTC_DATETIME, nullable=True),
        sa.Column("created_at", UTC_DATETIME, nullable=False),
        sa.Column("updated_at", UTC_DATETIME, nullable=False),
        sa.UniqueConstraint("name", name="uq_schedules_name"),
        **MYSQL_TABLE,
    )
    op.create_index("ix_schedules_enabled_next_run_at", "schedules", ["enabled", "next_run_at"])
    with op.batch_alter_table("executions") as batch:
        batch.add_column(sa.Column("slot_at", UTC_DATETIME, nullable=True))
        batch.create_unique_constraint("uq_executions_schedule_slot", ["schedule_id", "slot_at"])


def downgrade() -> None:
    with op.batch_alter_table("executions") as batch:
        batch.drop_constraint("uq_executions_schedule_slot", type_="unique")
        batch.drop_column("slot_at")
    op.drop_table("schedules")
