"""Flask-ROPC: a client may allow several token endpoint auth methods.

Revision ID: ropc_0002
Revises: ropc_0001
Create Date: 2026-12-01

Adds ``ropc_clients.token_endpoint_auth_methods`` (space-separated). Rows
keep NULL there, which reads as before for ``client_secret_post`` and
``none`` clients, and as both secret methods for ``client_secret_basic``
clients (the old default). ``flask ropc migration`` copies this file into
the app's own ``migrations/versions``; see docs/deploying.md, "Migrations".
"""

import sqlalchemy as sa
from alembic import op

revision = "ropc_0002"
down_revision = "ropc_0001"
branch_labels = None
depends_on = None
#: Which of Flask-ROPC's revisions this is, in the app's history too.
flask_ropc_revision = "0002"


def upgrade() -> None:
    """Add the list of allowed methods."""
    op.add_column(
        "ropc_clients",
        sa.Column("token_endpoint_auth_methods", sa.Text(), nullable=True),
    )


def downgrade() -> None:
    """Drop it again (clients then allow their first method only)."""
    with op.batch_alter_table("ropc_clients") as batch:
        batch.drop_column("token_endpoint_auth_methods")
