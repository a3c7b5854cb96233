"""The two tables of MFA continuation: pending logins and accepted TOTP steps.

A leaf (SQLAlchemy only), defined on the same metadata as the other tables by
:func:`flask_ropc.models.tables_for`. Kept apart from ``models`` so that the
core tables read on one page.
"""

from __future__ import annotations

import sqlalchemy as sa


def define_mfa_tables(metadata: sa.MetaData) -> tuple[sa.Table, sa.Table]:
    """``(ropc_mfa_tokens, ropc_mfa_steps)`` on ``metadata`` (after
    ``ropc_clients``, which the first references)."""
    mfa_tokens = sa.Table(
        "ropc_mfa_tokens",
        metadata,
        # Hex SHA-256 of the mfa_token: a leaked table yields no usable one.
        sa.Column("token_digest", sa.String(64), primary_key=True),
        sa.Column(
            "client_id",
            sa.String(64),
            sa.ForeignKey("ropc_clients.client_id", ondelete="CASCADE"),
            nullable=False,
        ),
        sa.Column("subject", sa.String(255), nullable=False),
        # The scopes granted at the password step (space-separated).
        sa.Column("scope", sa.Text, nullable=False, default=""),
        # JSON text of the validator's claims and extra response fields.
        sa.Column("claims", sa.Text, nullable=False, default="{}"),
        sa.Column("extra", sa.Text, nullable=False, default="{}"),
        # The factors the validator allowed, space-separated.
        sa.Column("factors", sa.String(64), nullable=False),
        # When the password was verified: the tokens' auth_time.
        sa.Column("auth_time", sa.BigInteger, nullable=False),
        # The password step's DPoP key (RFC 9449): the continuation needs it.
        sa.Column("dpop_jkt", sa.String(64), nullable=True),
        # Wrong codes so far; at ROPC_MFA_MAX_ATTEMPTS the token is dead.
        sa.Column("failures", sa.Integer, nullable=False, default=0),
        sa.Column("expires_at", sa.BigInteger, nullable=False, index=True),
        # Set by the one continuation that succeeds (single use).
        sa.Column("consumed_at", sa.BigInteger, nullable=True),
    )
    mfa_steps = sa.Table(
        "ropc_mfa_steps",
        metadata,
        # Hex SHA-256 of the subject: user ids are not stored in the clear.
        sa.Column("subject_digest", sa.String(64), primary_key=True),
        # The last accepted TOTP time step (RFC 6238 T): replays are refused.
        sa.Column("step", sa.BigInteger, nullable=False),
        sa.Column("updated_at", sa.BigInteger, nullable=False),
    )
    return mfa_tokens, mfa_steps
