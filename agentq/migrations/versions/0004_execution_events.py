"""execution events: the log of status changes, progress and plugin log lines

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-22
"""

from collections.abc import Sequence
from typing import Any

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import mysql

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

UTC_DATETIME = sa.DateTime().with_variant(mysql.DATETIME(fsp=6), "mysql", "mariadb")
MYSQL_TABLE: dict[str, Any] = {
    "mysql_charset": "utf8mb4",
    "mysql_collate": "utf8mb4_bin",
    "mysql_engine": "InnoDB",
}
KIND = sa.Enum("status", "progress", "log", name="eventkind", native_enum=False, length=16)


def upgrade() -> None:
    op.create_table(
        "execution_events",
        sa.Column("execution_id", sa.String(26), nullable=False),
        sa.Column("seq", sa.Integer(), nullable=False, autoincrement=False),
        sa.Column("at", UTC_DATETIME, nullable=False),
        sa.Column("kind", KIND, nullable=False),
        sa.Column("data", sa.JSON(), nullable=False),
        sa.PrimaryKeyConstraint("execution_id", "seq", name="pk_execution_events"),
        **MYSQL_TABLE,
    )
    # Executions from before the log start it at 0; their next event is seq 1.
    with op.batch_alter_table("executions") as batch:
        batch.add_column(sa.Column("last_event_seq", sa.Integer(), nullable=False, server_default="0"))
        batch.add_column(sa.Column("log_lines", sa.Integer(), nullable=False, server_default="0"))


def downgrade() -> None:
    with op.batch_alter_table("executions") as batch:
        batch.drop_column("log_lines")
        batch.drop_column("last_event_seq")
    op.drop_table("execution_events")
