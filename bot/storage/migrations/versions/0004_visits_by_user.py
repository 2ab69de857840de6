"""index live visits by user (/my, /liaison)

Revision ID: 0004_visits_by_user
Revises: 0003_report_indexes
Create Date: 2026-11-25 15:05:00.000000

"""

from typing import Sequence, Union

from alembic import op
import sqlalchemy as sa


# revision identifiers, used by Alembic.
revision: str = "0004_visits_by_user"
down_revision: Union[str, Sequence[str], None] = "0003_report_indexes"
branch_labels: Union[str, Sequence[str], None] = None
depends_on: Union[str, Sequence[str], None] = None


def upgrade() -> None:
    """Upgrade schema."""
    with op.batch_alter_table("visits", schema=None) as batch_op:
        batch_op.create_index(
            "ix_visits_live_user",
            ["user_id", "visited_at"],
            unique=False,
            sqlite_where=sa.text("withdrawn_at IS NULL"),
            postgresql_where=sa.text("withdrawn_at IS NULL"),
        )


def downgrade() -> None:
    """Downgrade schema."""
    with op.batch_alter_table("visits", schema=None) as batch_op:
        batch_op.drop_index(
            "ix_visits_live_user",
            sqlite_where=sa.text("withdrawn_at IS NULL"),
            postgresql_where=sa.text("withdrawn_at IS NULL"),
        )
