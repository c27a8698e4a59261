"""executions: retry_of, the execution a re-driven one runs again

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-07
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0006"
down_revision: str | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("executions") as batch:
        batch.add_column(sa.Column("retry_of", sa.String(26), nullable=True))
        # What re-ran an execution: found by its original's id.
        batch.create_index("ix_executions_retry_of", ["retry_of"])


def downgrade() -> None:
    with op.batch_alter_table("executions") as batch:
        batch.drop_index("ix_executions_retry_of")
        batch.drop_column("retry_of")
