"""API keys, and an owner on executions and schedules

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-22
"""

from collections.abc import Sequence
from typing import Any

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import mysql

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

UTC_DATETIME = sa.DateTime().with_variant(mysql.DATETIME(fsp=6), "mysql", "mariadb")
MYSQL_TABLE: dict[str, Any] = {
    "mysql_charset": "utf8mb4",
    "mysql_collate": "utf8mb4_bin",
    "mysql_engine": "InnoDB",
}
# Rows from before keys existed belong to the bootstrap admin.
ADMIN = "admin"


def upgrade() -> None:
    op.create_table(
        "api_keys",
        sa.Column("id", sa.String(26), primary_key=True),
        sa.Column("name", sa.String(128), nullable=False),
        sa.Column("prefix", sa.String(16), nullable=False),
        sa.Column("key_hash", sa.String(64), nullable=False),
        sa.Column("created_at", UTC_DATETIME, nullable=False),
        sa.Column("revoked_at", UTC_DATETIME, nullable=True),
        sa.UniqueConstraint("key_hash", name="uq_api_keys_key_hash"),
        **MYSQL_TABLE,
    )
    with op.batch_alter_table("executions") as batch:
        batch.add_column(sa.Column("owner", sa.String(64), nullable=False, server_default=ADMIN))
        batch.drop_constraint("uq_executions_idempotency_key", type_="unique")
        batch.drop_index("ix_executions_status_id")
        batch.drop_index("ix_executions_plugin_id")
        batch.create_index("ix_executions_owner_id", ["owner", "id"])
        batch.create_index("ix_executions_owner_status_id", ["owner", "status", "id"])
        batch.create_index("ix_executions_owner_plugin_id", ["owner", "plugin", "id"])
        batch.create_unique_constraint("uq_executions_owner_idempotency_key", ["owner", "idempotency_key"])
    with op.batch_alter_table("schedules") as batch:
        batch.add_column(sa.Column("owner", sa.String(64), nullable=False, server_default=ADMIN))
        batch.drop_constraint("uq_schedules_name", type_="unique")
        batch.create_unique_constraint("uq_schedules_owner_name", ["owner", "name"])
    for table in ("executions", "schedules"):
        with op.batch_alter_table(table) as batch:
            batch.alter_column(
                "owner", server_default=None, existing_type=sa.String(64), existing_nullable=False
            )


def downgrade() -> None:
    with op.batch_alter_table("schedules") as batch:
        batch.drop_constraint("uq_schedules_owner_name", type_="unique")
        batch.create_unique_constraint("uq_schedules_name", ["name"])
        batch.drop_column("owner")
    with op.batch_alter_table("executions") as batch:
        batch.drop_constraint("uq_executions_owner_idempotency_key", type_="unique")
        batch.drop_index("ix_executions_owner_plugin_id")
        batch.drop_index("ix_executions_owner_status_id")
        batch.drop_index("ix_executions_owner_id")
        batch.create_index("ix_executions_plugin_id", ["plugin", "id"])
        batch.create_index("ix_executions_status_id", ["status", "id"])
        batch.create_unique_constraint("uq_executions_idempotency_key", ["idempotency_key"])
        batch.drop_column("owner")
    op.drop_table("api_keys")
