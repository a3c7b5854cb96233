"""Flask-ROPC tables: clients, tokens, signing keys, throttle counters.

Revision ID: ropc_0001
Revises:
Create Date: 2026-11-25

The first of Flask-ROPC's revisions. ``flask ropc migration`` copies it
into the app's own ``migrations/versions``, with a revision id of its own and
the app's head as ``down_revision``; see docs/deploying.md, "Migrations".
"""

import sqlalchemy as sa
from alembic import op

revision = "ropc_0001"
down_revision = None
branch_labels = None
depends_on = None
#: Which of Flask-ROPC's revisions this is, in the app's history too.
flask_ropc_revision = "0001"


def upgrade() -> None:
    """Create Flask-ROPC's tables and indexes."""
    op.create_table(
        "ropc_clients",
        sa.Column(
            "id",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            autoincrement=True,
            nullable=False,
        ),
        sa.Column("client_id", sa.String(length=64), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("secret_digest", sa.String(length=64), nullable=True),
        sa.Column("token_endpoint_auth_method", sa.String(length=32), nullable=False),
        sa.Column("scopes", sa.Text(), nullable=False),
        sa.Column("grant_types", sa.Text(), nullable=False),
        sa.Column("access_token_lifetime", sa.Integer(), nullable=True),
        sa.Column("refresh_token_sliding_lifetime", sa.Integer(), nullable=True),
        sa.Column("refresh_token_absolute_lifetime", sa.Integer(), nullable=True),
        sa.Column("enabled", sa.Boolean(), nullable=False),
        sa.Column("access_token_format", sa.String(length=16), nullable=True),
        sa.Column("audience", sa.String(length=255), nullable=True),
        sa.Column("is_resource_server", sa.Boolean(), nullable=False),
        sa.Column("trusted_backend", sa.Boolean(), nullable=False),
        sa.Column("password_grant_count", sa.BigInteger(), nullable=False),
        sa.Column("sunset_at", sa.BigInteger(), nullable=True),
        sa.Column("deprecated_at", sa.BigInteger(), nullable=True),
        sa.Column("created_at", sa.BigInteger(), nullable=False),
        sa.Column("last_used_at", sa.BigInteger(), nullable=True),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("client_id"),
    )
    op.create_table(
        "ropc_signing_keys",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("kid", sa.String(length=64), nullable=False),
        sa.Column("alg", sa.String(length=16), nullable=False),
        sa.Column("private_jwk", sa.Text(), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("created_at", sa.BigInteger(), nullable=False),
        sa.Column("publish_until", sa.BigInteger(), nullable=True),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("kid"),
    )
    op.create_table(
        "ropc_throttle",
        sa.Column("key", sa.String(length=128), nullable=False),
        sa.Column("count", sa.BigInteger(), nullable=False),
        sa.Column("expires_at", sa.Float(), nullable=False),
        sa.PrimaryKeyConstraint("key"),
    )
    op.create_index(
        op.f("ix_ropc_throttle_expires_at"),
        "ropc_throttle",
        ["expires_at"],
        unique=False,
    )
    op.create_table(
        "ropc_access_tokens",
        sa.Column(
            "id",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            autoincrement=True,
            nullable=False,
        ),
        sa.Column("token_digest", sa.String(length=64), nullable=False),
        sa.Column("client_id", sa.String(length=64), nullable=False),
        sa.Column("subject", sa.String(length=255), nullable=False),
        sa.Column("grant_type", sa.String(length=64), nullable=False),
        sa.Column("scope", sa.Text(), nullable=False),
        sa.Column("claims", sa.Text(), nullable=False),
        sa.Column("issued_at", sa.BigInteger(), nullable=False),
        sa.Column("expires_at", sa.BigInteger(), nullable=False),
        sa.Column("revoked_at", sa.BigInteger(), nullable=True),
        sa.Column("kid", sa.String(length=64), nullable=True),
        sa.Column("family_id", sa.String(length=32), nullable=True),
        sa.ForeignKeyConstraint(
            ["client_id"], ["ropc_clients.client_id"], ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("token_digest"),
    )
    op.create_index(
        op.f("ix_ropc_access_tokens_client_id"),
        "ropc_access_tokens",
        ["client_id"],
        unique=False,
    )
    op.create_index(
        op.f("ix_ropc_access_tokens_expires_at"),
        "ropc_access_tokens",
        ["expires_at"],
        unique=False,
    )
    op.create_index(
        op.f("ix_ropc_access_tokens_family_id"),
        "ropc_access_tokens",
        ["family_id"],
        unique=False,
    )
    op.create_index(
        op.f("ix_ropc_access_tokens_revoked_at"),
        "ropc_access_tokens",
        ["revoked_at"],
        unique=False,
    )
    op.create_index(
        op.f("ix_ropc_access_tokens_subject"),
        "ropc_access_tokens",
        ["subject"],
        unique=False,
    )
    op.create_table(
        "ropc_refresh_tokens",
        sa.Column(
            "id",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            autoincrement=True,
            nullable=False,
        ),
        sa.Column("token_digest", sa.String(length=64), nullable=False),
        sa.Column("family_id", sa.String(length=32), nullable=False),
        sa.Column("client_id", sa.String(length=64), nullable=False),
        sa.Column("subject", sa.String(length=255), nullable=False),
        sa.Column("scope", sa.Text(), nullable=False),
        sa.Column("claims", sa.Text(), nullable=False),
        sa.Column("auth_time", sa.BigInteger(), nullable=False),
        sa.Column("issued_at", sa.BigInteger(), nullable=False),
        sa.Column("expires_at", sa.BigInteger(), nullable=False),
        sa.Column("family_expires_at", sa.BigInteger(), nullable=False),
        sa.Column("used_at", sa.BigInteger(), nullable=True),
        sa.Column("revoked_at", sa.BigInteger(), nullable=True),
        sa.ForeignKeyConstraint(
            ["client_id"], ["ropc_clients.client_id"], ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("token_digest"),
    )
    op.create_index(
        op.f("ix_ropc_refresh_tokens_client_id"),
        "ropc_refresh_tokens",
        ["client_id"],
        unique=False,
    )
    op.create_index(
        op.f("ix_ropc_refresh_tokens_expires_at"),
        "ropc_refresh_tokens",
        ["expires_at"],
        unique=False,
    )
    op.create_index(
        op.f("ix_ropc_refresh_tokens_family_id"),
        "ropc_refresh_tokens",
        ["family_id"],
        unique=False,
    )
    op.create_index(
        op.f("ix_ropc_refresh_tokens_revoked_at"),
        "ropc_refresh_tokens",
        ["revoked_at"],
        unique=False,
    )
    op.create_index(
        op.f("ix_ropc_refresh_tokens_subject"),
        "ropc_refresh_tokens",
        ["subject"],
        unique=False,
    )


def downgrade() -> None:
    """Drop Flask-ROPC's tables (and every client and token in them)."""
    op.drop_index(
        op.f("ix_ropc_refresh_tokens_subject"), table_name="ropc_refresh_tokens"
    )
    op.drop_index(
        op.f("ix_ropc_refresh_tokens_revoked_at"), table_name="ropc_refresh_tokens"
    )
    op.drop_index(
        op.f("ix_ropc_refresh_tokens_family_id"), table_name="ropc_refresh_tokens"
    )
    op.drop_index(
        op.f("ix_ropc_refresh_tokens_expires_at"), table_name="ropc_refresh_tokens"
    )
    op.drop_index(
        op.f("ix_ropc_refresh_tokens_client_id"), table_name="ropc_refresh_tokens"
    )
    op.drop_table("ropc_refresh_tokens")
    op.drop_index(
        op.f("ix_ropc_access_tokens_subject"), table_name="ropc_access_tokens"
    )
    op.drop_index(
        op.f("ix_ropc_access_tokens_revoked_at"), table_name="ropc_access_tokens"
    )
    op.drop_index(
        op.f("ix_ropc_access_tokens_family_id"), table_name="ropc_access_tokens"
    )
    op.drop_index(
        op.f("ix_ropc_access_tokens_expires_at"), table_name="ropc_access_tokens"
    )
    op.drop_index(
        op.f("ix_ropc_access_tokens_client_id"), table_name="ropc_access_tokens"
    )
    op.drop_table("ropc_access_tokens")
    op.drop_index(op.f("ix_ropc_throttle_expires_at"), table_name="ropc_throttle")
    op.drop_table("ropc_throttle")
    op.drop_table("ropc_signing_keys")
    op.drop_table("ropc_clients")
