"""Flask-ROPC: DPoP (RFC 9449) client setting and token key bindings.

Revision ID: ropc_0003
Revises: ropc_0002
Create Date: 2026-12-03

Adds ``ropc_clients.dpop`` (``required``, ``allowed`` or ``off``; NULL reads
as ``allowed``) and ``dpop_jkt`` (the RFC 7638 thumbprint a token is bound
to) on ``ropc_access_tokens`` and ``ropc_refresh_tokens``. All nullable:
existing rows stay unbound. The jti replay cache uses ``ropc_throttle``.
``flask ropc migration`` copies this file into the app's own
``migrations/versions``; see docs/deploying.md, "Migrations".
"""

import sqlalchemy as sa
from alembic import op

revision = "ropc_0003"
down_revision = "ropc_0002"
branch_labels = None
depends_on = None
#: Which of Flask-ROPC's revisions this is, in the app's history too.
flask_ropc_revision = "0003"


def upgrade() -> None:
    """Add the client setting and the two bindings."""
    op.add_column("ropc_clients", sa.Column("dpop", sa.String(16), nullable=True))
    for table in ("ropc_access_tokens", "ropc_refresh_tokens"):
        op.add_column(table, sa.Column("dpop_jkt", sa.String(64), nullable=True))


def downgrade() -> None:
    """Drop them again (tokens then are Bearer tokens)."""
    for table in ("ropc_refresh_tokens", "ropc_access_tokens"):
        with op.batch_alter_table(table) as batch:
            batch.drop_column("dpop_jkt")
    with op.batch_alter_table("ropc_clients") as batch:
        batch.drop_column("dpop")
