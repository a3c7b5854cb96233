"""Flask-ROPC: MFA continuation (pending logins and accepted TOTP steps).

Revision ID: ropc_0008
Revises: ropc_0007
Create Date: 2026-12-04

Adds ``ropc_mfa_tokens`` (an ``mfa_token`` per login whose password was
right and that needs a second factor, stored as a digest) and
``ropc_mfa_steps`` (the last accepted TOTP step per subject digest). New
tables only: nothing stored is changed. ``flask ropc migration`` copies this
file into the app's own ``migrations/versions``; see docs/deploying.md,
"Migrations".
"""

import sqlalchemy as sa
from alembic import op

revision = "ropc_0008"
down_revision = "ropc_0007"
branch_labels = None
depends_on = None
#: Which of Flask-ROPC's revisions this is, in the app's history too.
flask_ropc_revision = "0008"


def upgrade() -> None:
    """Create the two tables."""
    op.create_table(
        "ropc_mfa_tokens",
        sa.Column("token_digest", sa.String(64), primary_key=True),
        sa.Column(
            "client_id",
            sa.String(64),
            sa.ForeignKey("ropc_clients.client_id", ondelete="CASCADE"),
            nullable=False,
        ),
        sa.Column("subject", sa.String(255), nullable=False),
        sa.Column("scope", sa.Text, nullable=False),
        sa.Column("claims", sa.Text, nullable=False),
        sa.Column("extra", sa.Text, nullable=False),
        sa.Column("factors", sa.String(64), nullable=False),
        sa.Column("auth_time", sa.BigInteger, nullable=False),
        sa.Column("dpop_jkt", sa.String(64), nullable=True),
        sa.Column("failures", sa.Integer, nullable=False),
        sa.Column("expires_at", sa.BigInteger, nullable=False),
        sa.Column("consumed_at", sa.BigInteger, nullable=True),
    )
    op.create_index("ix_ropc_mfa_tokens_expires_at", "ropc_mfa_tokens", ["expires_at"])
    op.create_table(
        "ropc_mfa_steps",
        sa.Column("subject_digest", sa.String(64), primary_key=True),
        sa.Column("step", sa.BigInteger, nullable=False),
        sa.Column("updated_at", sa.BigInteger, nullable=False),
    )


def downgrade() -> None:
    """Drop them again (pending logins are lost: users log in again)."""
    op.drop_table("ropc_mfa_steps")
    op.drop_index("ix_ropc_mfa_tokens_expires_at", table_name="ropc_mfa_tokens")
    op.drop_table("ropc_mfa_tokens")
