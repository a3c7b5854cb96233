"""Flask-ROPC: per-client DPoP nonce setting.

Revision ID: ropc_0006
Revises: ropc_0003
Create Date: 2026-12-03

Adds ``ropc_clients.dpop_nonce`` (``required`` or ``off``; NULL follows the
app's ``ROPC_DPOP_NONCE``). Nullable: existing clients keep following the
app's setting. ``flask ropc migration`` copies this file into the app's own
``migrations/versions``; see docs/deploying.md, "Migrations".
"""

import sqlalchemy as sa
from alembic import op

revision = "ropc_0006"
down_revision = "ropc_0003"
branch_labels = None
depends_on = None
#: Which of Flask-ROPC's revisions this is, in the app's history too.
flask_ropc_revision = "0006"


def upgrade() -> None:
    """Add the client setting."""
    op.add_column("ropc_clients", sa.Column("dpop_nonce", sa.String(16), nullable=True))


def downgrade() -> None:
    """Drop it again (every client then follows ROPC_DPOP_NONCE)."""
    with op.batch_alter_table("ropc_clients") as batch:
        batch.drop_column("dpop_nonce")
