"""schedules: jitter, and the time the next slot fires (its slot plus its jitter)

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-03
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import mysql

revision: str = "0005"
down_revision: str | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

UTC_DATETIME = sa.DateTime().with_variant(mysql.DATETIME(fsp=6), "mysql", "mariadb")


def upgrade() -> None:
    with op.batch_alter_table("schedules") as batch:
        batch.add_column(sa.Column("jitter_s", sa.Double(), nullable=True))
        batch.add_column(sa.Column("next_fire_at", UTC_DATETIME, nullable=True))
    # Schedules from before jitter fire at their slot.
    op.execute("UPDATE schedules SET next_fire_at = next_run_at")
    with op.batch_alter_table("schedules") as batch:
        # Beat looks for due schedules by the time they fire, no longer by their slot.
        batch.drop_index("ix_schedules_enabled_next_run_at")
        batch.create_index("ix_schedules_enabled_next_fire_at", ["enabled", "next_fire_at"])


def downgrade() -> None:
    with op.batch_alter_table("schedules") as batch:
        batch.drop_index("ix_schedules_enabled_next_fire_at")
        batch.create_index("ix_schedules_enabled_next_run_at", ["enabled", "next_run_at"])
        batch.drop_column("next_fire_at")
        batch.drop_column("jitter_s")
