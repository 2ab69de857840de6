"""seed the menu-service catalogue by stage (from the district report)

Revision ID: 0002_seed_menu
Revises: 6914b5d1b0c8
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0002_seed_menu"
down_revision: str | None = "6914b5d1b0c8"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

MENU = [
    ("startup_licences", "startup", "证照办理", "Licences", 1),
    ("startup_policy", "startup", "政策咨询", "Policy advice", 2),
    ("startup_market", "startup", "市场信息", "Market information", 3),
    ("startup_mediation", "startup", "矛盾调解", "Dispute mediation", 4),
    ("growth_financing", "growth", "融资渠道", "Financing channels", 1),
    ("growth_project_funds", "growth", "项目资金申报", "Project-fund applications", 2),
    ("leading_market", "leading", "市场优势项目", "Market-advantage projects", 1),
    ("leading_policy", "leading", "政策优势信息", "Policy-advantage information", 2),
]


def upgrade() -> None:
    table = sa.table(
        "menu_items",
        sa.column("code", sa.String),
        sa.column("stage", sa.String),
        sa.column("name_zh", sa.String),
        sa.column("name_en", sa.String),
        sa.column("position", sa.Integer),
        sa.column("active", sa.Boolean),
    )
    op.bulk_insert(
        table,
        [
            {"code": c, "stage": s, "name_zh": zh, "name_en": en, "position": p, "active": True}
            for c, s, zh, en, p in MENU
        ],
    )


def downgrade() -> None:
    op.execute(
        sa.text("DELETE FROM menu_items WHERE code IN :codes").bindparams(
            sa.bindparam("codes", [c for c, *_ in MENU], expanding=True)
        )
    )
