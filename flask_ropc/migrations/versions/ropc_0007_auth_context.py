"""Flask-ROPC: the authentication context of tokens (amr, acr, auth_time).

Revision ID: ropc_0007
Revises: ropc_0006
Create Date: 2026-12-04

Adds ``amr`` (space-separated RFC 8176 values), ``acr`` and ``auth_time``
to ``ropc_access_tokens``, and ``amr`` and ``acr`` to
``ropc_refresh_tokens`` (which has ``auth_time`` already). All nullable:
existing rows read as a password login (``pwd``, ``ROPC_ACR_PASSWORD``).
``flask ropc migration`` copies this file into the app's own
``migrations/versions``; see docs/deploying.md, "Migrations".
"""

import sqlalchemy as sa
from alembic import op

revision = "ropc_0007"
down_revision = "ropc_0006"
branch_labels = None
depends_on = None
#: Which of Flask-ROPC's revisions this is, in the app's history too.
flask_ropc_revision = "0007"


def upgrade() -> None:
    """Add the columns."""
    for table in ("ropc_access_tokens", "ropc_refresh_tokens"):
        op.add_column(table, sa.Column("amr", sa.String(255), nullable=True))
        op.add_column(table, sa.Column("acr", sa.String(255), nullable=True))
    op.add_column(
        "ropc_access_tokens", sa.Column("auth_time", sa.BigInteger(), nullable=True)
    )


def downgrade() -> None:
    """Drop them again (every token then reads as a password login)."""
    with op.batch_alter_table("ropc_access_tokens") as batch:
        batch.drop_column("auth_time")
    for table in ("ropc_refresh_tokens", "ropc_access_tokens"):
        with op.batch_alter_table(table) as batch:
            batch.drop_column("acr")
            batch.drop_column("amr")
