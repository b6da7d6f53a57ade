"""Confirmed CSV uploads of briefs, keyed by their plan's id: a plan queues its jobs once, even
when two confirmations of it race (the second insert fails on the primary key).

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-06
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

JSON = sa.JSON().with_variant(postgresql.JSONB(), "postgresql")
TIME = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "brief_uploads",
        sa.Column("plan_id", sa.String(length=32), nullable=False),
        sa.Column("brand_id", sa.String(length=64), nullable=False),
        sa.Column("user_id", sa.Integer(), nullable=True),
        sa.Column("template", sa.Unicode(length=200), nullable=False),
        sa.Column("file", sa.Unicode(length=200), nullable=False),
        sa.Column("sha256", sa.String(length=64), nullable=False),
        sa.Column("jobs", JSON, nullable=False),
        sa.Column("created_at", TIME, nullable=False),
        sa.ForeignKeyConstraint(
            ["brand_id"], ["brands.id"], name=op.f("fk_brief_uploads_brand_id_brands"), ondelete="CASCADE"
        ),
        sa.ForeignKeyConstraint(
            ["user_id"], ["users.id"], name=op.f("fk_brief_uploads_user_id_users"), ondelete="SET NULL"
        ),
        sa.PrimaryKeyConstraint("plan_id", name=op.f("pk_brief_uploads")),
    )
    op.create_index(op.f("ix_brief_uploads_brand_id"), "brief_uploads", ["brand_id"], unique=False)


def downgrade() -> None:
    op.drop_index(op.f("ix_brief_uploads_brand_id"), table_name="brief_uploads")
    op.drop_table("brief_uploads")
