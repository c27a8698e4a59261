"""executions and plugin catalog

Revision ID: 0001
Revises:
Create Date: 2026-11-22
"""

from collections.abc import Sequence
from typing import Any

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import mysql

revision: str = "0001"
down_revision: str | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# Naive UTC with microseconds (MySQL's DATETIME defaults to whole seconds).
UTC_DATETIME = sa.DateTime().with_variant(mysql.DATETIME(fsp=6), "mysql", "mariadb")
STATUS = sa.Enum(
    "queued",
    "running",
    "retrying",
    "succeeded",
    "failed",
    "timed_out",
    "cancelled",
    name="executionstatus",
    native_enum=False,
    length=16,
)
MYSQL_TABLE: dict[str, Any] = {
    "mysql_charset": "utf8mb4",
    "mysql_collate": "utf8mb4_bin",
    "mysql_engine": "InnoDB",
}


def upgrade() -> None:
    op.create_table(
        "executions",
        sa.Column("id", sa.String(26), primary_key=True),
        sa.Column("plugin", sa.String(64), nullable=False),
        sa.Column("command", sa.String(64), nullable=False),
        sa.Column("params", sa.JSON(), nullable=False),
        sa.Column("queue", sa.String(64), nullable=False),
        sa.Column("status", STATUS, nullable=False),
        sa.Column("result", sa.JSON(), nullable=True),
        sa.Column("error", sa.JSON(), nullable=True),
        sa.Column("progress", sa.JSON(), nullable=True),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("max_retries", sa.Integer(), nullable=False),
        sa.Column("priority", sa.Integer(), nullable=False),
        sa.Column("timeout_s", sa.Double(), nullable=False),
        sa.Column("schedule_id", sa.String(26), nullable=True),
        sa.Column("idempotency_key", sa.String(255), nullable=True),
        sa.Column("worker", sa.String(255), nullable=True),
        sa.Column("created_at", UTC_DATETIME, nullable=False),
        sa.Column("started_at", UTC_DATETIME, nullable=True),
        sa.Column("finished_at", UTC_DATETIME, nullable=True),
        sa.Column("lease_expires_at", UTC_DATETIME, nullable=True),
        sa.UniqueConstraint("idempotency_key", name="uq_executions_idempotency_key"),
        **MYSQL_TABLE,
    )
    op.create_index("ix_executions_status_id", "executions", ["status", "id"])
    op.create_index("ix_executions_plugin_id", "executions", ["plugin", "id"])
    op.create_index("ix_executions_schedule_id_id", "executions", ["schedule_id", "id"])
    op.create_index("ix_executions_status_lease", "executions", ["status", "lease_expires_at"])
    op.create_table(
        "plugin_commands",
        sa.Column("plugin", sa.String(64), primary_key=True),
        sa.Column("command", sa.String(64), primary_key=True),
        sa.Column("description", sa.String(255), nullable=False),
        sa.Column("plugin_description", sa.String(255), nullable=False),
        sa.Column("params_schema", sa.JSON(), nullable=False),
        sa.Column("version", sa.String(64), nullable=False),
        sa.Column("queue", sa.String(64), nullable=False),
        sa.Column("result_type", sa.String(64), nullable=False),
        sa.Column("updated_at", UTC_DATETIME, nullable=False),
        **MYSQL_TABLE,
    )


def downgrade() -> None:
    op.drop_table("plugin_commands")
    op.drop_table("executions")
