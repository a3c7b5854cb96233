"""Our database tables, and the :class:`Client` record read from them.

A leaf: imports only ``client_methods``, ``grant_types`` and ``mfa_tables``.
The tables are SQLAlchemy Core :class:`~sqlalchemy.Table` objects on the
app's ``db.metadata`` (so its migrations see them) or a metadata of our own.
Core rather than ORM classes because one set of tables must attach to any
metadata, and because the hot path's single-row statements would cost far
more through the ORM's unit of work than in SQL.
"""

from __future__ import annotations

import dataclasses
import typing as t

import sqlalchemy as sa

from .client_methods import AuthlibClientMethods
from .grant_types import GRANT_TYPES as GRANT_TYPES
from .mfa_tables import define_mfa_tables

#: Values of ``token_endpoint_auth_method`` (RFC 7591 §2).
AUTH_METHODS = ("client_secret_basic", "client_secret_post", "none")
#: What a confidential client accepts unless restricted: both secret methods.
SECRET_METHODS = AUTH_METHODS[:2]

#: Access token formats: signed RFC 9068 JWTs, or opaque reference tokens.
TOKEN_FORMATS = ("jwt", "reference")

#: A client's DPoP (RFC 9449) setting; NULL in the column is "allowed".
DPOP_MODES = ("required", "allowed", "off")
#: A client's DPoP nonce setting; ``default`` (stored as NULL) follows
#: ``ROPC_DPOP_NONCE``.
DPOP_NONCE_MODES = ("required", "off", "default")

#: States of a stored signing key; see :mod:`flask_ropc.keyring`.
PENDING, ACTIVE, PREVIOUS, RETIRED = "pending", "active", "previous", "retired"
KEY_STATUSES = (PENDING, ACTIVE, PREVIOUS, RETIRED)

# SQLite only auto-increments a column declared exactly INTEGER PRIMARY KEY.
_BigId = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


@dataclasses.dataclass(frozen=True)
class Tables:
    """The tables Flask-ROPC owns, all prefixed ``ropc_``."""

    clients: sa.Table
    access_tokens: sa.Table
    refresh_tokens: sa.Table
    signing_keys: sa.Table
    throttle: sa.Table
    #: Pending MFA logins and accepted TOTP steps (see ``mfa_tables``).
    mfa_tokens: sa.Table
    mfa_steps: sa.Table

    def all(self) -> list[sa.Table]:
        """Every table, in creation order (referenced tables first)."""
        return [
            self.clients,
            self.access_tokens,
            self.refresh_tokens,
            self.signing_keys,
            self.throttle,
            self.mfa_tokens,
            self.mfa_steps,
        ]


def tables_for(metadata: sa.MetaData) -> Tables:
    """Return our tables in ``metadata``, defining them on first use.

    Defining them twice on one metadata would raise, and several apps (or
    several tests) may share one Flask-SQLAlchemy ``db``; so the result is
    cached in ``metadata.info``.
    """
    cached = metadata.info.get("flask_ropc_tables")
    if cached is None:
        cached = _define(metadata)
        metadata.info["flask_ropc_tables"] = cached
    return t.cast(Tables, cached)


def new_tables() -> Tables:
    """Our tables on a metadata of their own (the embedded database)."""
    return tables_for(sa.MetaData())


def _define(metadata: sa.MetaData) -> Tables:
    clients = sa.Table(
        "ropc_clients",
        metadata,
        sa.Column("id", _BigId, primary_key=True, autoincrement=True),
        sa.Column("client_id", sa.String(64), nullable=False, unique=True),
        sa.Column("name", sa.String(200), nullable=False),
        # Hex SHA-256 of the secret; NULL for public clients.
        sa.Column("secret_digest", sa.String(64), nullable=True),
        # The first method (for older readers); then all of them, NULL: _methods.
        sa.Column("token_endpoint_auth_method", sa.String(32), nullable=False),
        sa.Column("token_endpoint_auth_methods", sa.Text, nullable=True),
        # Space-separated, as in OAuth's own scope syntax.
        sa.Column("scopes", sa.Text, nullable=False, default=""),
        sa.Column("grant_types", sa.Text, nullable=False, default="password"),
        # NULL means the app's ROPC_ACCESS_TOKEN_LIFETIME.
        sa.Column("access_token_lifetime", sa.Integer, nullable=True),
        # NULL means ROPC_REFRESH_TOKEN_{SLIDING,ABSOLUTE}_LIFETIME.
        sa.Column("refresh_token_sliding_lifetime", sa.Integer, nullable=True),
        sa.Column("refresh_token_absolute_lifetime", sa.Integer, nullable=True),
        sa.Column("enabled", sa.Boolean, nullable=False, default=True),
        # "jwt" or "reference"; NULL means the app's ROPC_ACCESS_TOKEN_FORMAT.
        sa.Column("access_token_format", sa.String(16), nullable=True),
        # The JWT "aud"; NULL means the app's ROPC_AUDIENCE.
        sa.Column("audience", sa.String(255), nullable=True),
        # May introspect every client's tokens, not just its own (RFC 7662).
        sa.Column("is_resource_server", sa.Boolean, nullable=False, default=False),
        # A confidential backend whose end-user IP header is believed.
        sa.Column("trusted_backend", sa.Boolean, nullable=False, default=False),
        # Migration telemetry: successful password logins, and a sunset date
        # announced to the client in Deprecation/Sunset response headers.
        sa.Column("password_grant_count", sa.BigInteger, nullable=False, default=0),
        sa.Column("sunset_at", sa.BigInteger, nullable=True),
        sa.Column("deprecated_at", sa.BigInteger, nullable=True),
        sa.Column("dpop", sa.String(16), nullable=True),  # DPOP_MODES
        # "required" or "off"; NULL means the app's ROPC_DPOP_NONCE.
        sa.Column("dpop_nonce", sa.String(16), nullable=True),
        # Unix seconds: portable across SQLite and PostgreSQL, no time zones.
        sa.Column("created_at", sa.BigInteger, nullable=False),
        sa.Column("last_used_at", sa.BigInteger, nullable=True),
    )
    access_tokens = sa.Table(
        "ropc_access_tokens",
        metadata,
        sa.Column("id", _BigId, primary_key=True, autoincrement=True),
        # Hex SHA-256 of the token: a leaked table yields no usable token.
        sa.Column("token_digest", sa.String(64), nullable=False, unique=True),
        sa.Column(
            "client_id",
            sa.String(64),
            sa.ForeignKey("ropc_clients.client_id", ondelete="CASCADE"),
            nullable=False,
            index=True,
        ),
        sa.Column("subject", sa.String(255), nullable=False, index=True),
        sa.Column("grant_type", sa.String(64), nullable=False),
        sa.Column("scope", sa.Text, nullable=False, default=""),
        # JSON text of the validator's claims.
        sa.Column("claims", sa.Text, nullable=False, default="{}"),
        sa.Column("issued_at", sa.BigInteger, nullable=False),
        sa.Column("expires_at", sa.BigInteger, nullable=False, index=True),
        sa.Column("revoked_at", sa.BigInteger, nullable=True, index=True),
        # The signing key of a JWT, so that retiring a key stops its tokens.
        sa.Column("kid", sa.String(64), nullable=True),
        # The refresh token family that issued it, so that revoking the
        # family revokes its access tokens too.
        sa.Column("family_id", sa.String(32), nullable=True, index=True),
        # The DPoP key it is bound to (RFC 9449 cnf.jkt), if any.
        sa.Column("dpop_jkt", sa.String(64), nullable=True),
        # How and when the user authenticated (auth_context.py); NULL in
        # rows from before revision 0007, read as a password login.
        *_auth_context_columns(),
        sa.Column("auth_time", sa.BigInteger, nullable=True),
    )
    refresh_tokens = sa.Table(
        "ropc_refresh_tokens",
        metadata,
        sa.Column("id", _BigId, primary_key=True, autoincrement=True),
        sa.Column("token_digest", sa.String(64), nullable=False, unique=True),
        # The chain of rotations started by one password login.
        sa.Column("family_id", sa.String(32), nullable=False, index=True),
        sa.Column(
            "client_id",
            sa.String(64),
            sa.ForeignKey("ropc_clients.client_id", ondelete="CASCADE"),
            nullable=False,
            index=True,
        ),
        sa.Column("subject", sa.String(255), nullable=False, index=True),
        # The scope of the original grant: a rotated token keeps it
        # (RFC 6749 §6) even when a refresh asked for less.
        sa.Column("scope", sa.Text, nullable=False, default=""),
        sa.Column("claims", sa.Text, nullable=False, default="{}"),
        # When the user typed the password that started the family.
        sa.Column("auth_time", sa.BigInteger, nullable=False),
        sa.Column("issued_at", sa.BigInteger, nullable=False),
        # Sliding expiry of this token, never past family_expires_at.
        sa.Column("expires_at", sa.BigInteger, nullable=False, index=True),
        sa.Column("family_expires_at", sa.BigInteger, nullable=False),
        # Set when the token is exchanged: a second use is reuse.
        sa.Column("used_at", sa.BigInteger, nullable=True),
        sa.Column("revoked_at", sa.BigInteger, nullable=True, index=True),
        # A public client's DPoP key: refreshing needs a proof by it.
        sa.Column("dpop_jkt", sa.String(64), nullable=True),
        # The family's amr and acr (with auth_time above), kept by rotations.
        *_auth_context_columns(),
    )
    signing_keys = sa.Table(
        "ropc_signing_keys",
        metadata,
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("kid", sa.String(64), nullable=False, unique=True),
        sa.Column("alg", sa.String(16), nullable=False),
        # The private key as JWK JSON, encrypted under ROPC_KEY_ENCRYPTION_KEYS
        # or SECRET_KEY (see key_encryption.py; plain only by opt-out).
        sa.Column("private_jwk", sa.Text, nullable=False),
        # One of KEY_STATUSES.
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("created_at", sa.BigInteger, nullable=False),
        sa.Column("publish_until", sa.BigInteger, nullable=True),
    )
    # The database counter storage of brute-force throttling. Keys hold
    # digests, so usernames and IPs are not stored in the clear.
    throttle = sa.Table(
        "ropc_throttle",
        metadata,
        sa.Column("key", sa.String(128), primary_key=True),
        sa.Column("count", sa.BigInteger, nullable=False),
        sa.Column("expires_at", sa.Float, nullable=False, index=True),
    )
    mfa_tokens, mfa_steps = define_mfa_tables(metadata)
    return Tables(
        clients=clients,
        access_tokens=access_tokens,
        refresh_tokens=refresh_tokens,
        signing_keys=signing_keys,
        throttle=throttle,
        mfa_tokens=mfa_tokens,
        mfa_steps=mfa_steps,
    )


def _auth_context_columns() -> tuple[sa.Column[t.Any], ...]:
    # Space-separated RFC 8176 values, and the acr URI.
    return (
        sa.Column("amr", sa.String(255), nullable=True),
        sa.Column("acr", sa.String(255), nullable=True),
    )


def _methods(row: t.Any) -> tuple[str, ...]:
    # Rows from before the list: basic (the old default) allows both.
    if row.token_endpoint_auth_methods:
        return tuple(row.token_endpoint_auth_methods.split())
    legacy = row.token_endpoint_auth_method
    return SECRET_METHODS if legacy == "client_secret_basic" else (legacy,)


@dataclasses.dataclass(frozen=True)
class Client(AuthlibClientMethods):
    """An OAuth client as stored, read-only.

    Implements the methods of Authlib's ``ClientMixin`` that the token
    endpoint calls, so Authlib can work with it directly. Edit clients through
    the ``flask ropc`` CLI or :attr:`ROPC.clients <flask_ropc.ROPC.clients>`.
    """

    #: The public identifier clients send as ``client_id``.
    client_id: str
    #: A human-readable name, e.g. ``"Mobile app"``.
    name: str
    #: The first of :attr:`token_endpoint_auth_methods` (compatibility).
    token_endpoint_auth_method: str
    #: The scopes this client may request.
    scopes: tuple[str, ...]
    #: The grant types this client may use.
    grant_types: tuple[str, ...]
    #: Access token lifetime in seconds, or ``None`` for the app default.
    access_token_lifetime: int | None
    #: Refresh token sliding lifetime in seconds, or ``None`` for the default.
    refresh_token_sliding_lifetime: int | None
    #: Refresh token family (absolute) lifetime, or ``None`` for the default.
    refresh_token_absolute_lifetime: int | None
    #: Disabled clients fail authentication.
    enabled: bool
    #: ``"jwt"``, ``"reference"``, or ``None`` for the app default.
    access_token_format: str | None
    #: The JWT audience, or ``None`` for the app default.
    audience: str | None
    #: Whether it may introspect other clients' tokens.
    is_resource_server: bool
    #: Whether its end-user IP header is trusted (a confidential backend).
    trusted_backend: bool
    #: Successful password-grant logins so far.
    password_grant_count: int
    #: Unix time after which the client is to stop using the password grant.
    sunset_at: int | None
    #: Unix time the sunset was announced.
    deprecated_at: int | None
    #: Unix time of creation.
    created_at: int
    #: Unix time of the last token issued, or ``None``.
    last_used_at: int | None
    #: ``client_secret_basic`` and/or ``client_secret_post``, or ``none``.
    token_endpoint_auth_methods: tuple[str, ...]
    #: DPoP: ``required``, ``allowed`` (a proof, if sent, binds) or ``off``.
    dpop: str = "allowed"
    #: DPoP nonces: ``required``, ``off`` or ``default`` (``ROPC_DPOP_NONCE``).
    dpop_nonce: str = "default"
    #: Hex SHA-256 of the secret, ``None`` for public clients. Not the secret.
    secret_digest: str | None = dataclasses.field(default=None, repr=False)

    @classmethod
    def from_row(cls, row: t.Any) -> Client:
        """Build a client from a row of the ``ropc_clients`` table."""
        return cls(
            client_id=row.client_id,
            name=row.name,
            token_endpoint_auth_method=row.token_endpoint_auth_method,
            scopes=tuple(row.scopes.split()),
            grant_types=tuple(row.grant_types.split()),
            access_token_lifetime=row.access_token_lifetime,
            refresh_token_sliding_lifetime=row.refresh_token_sliding_lifetime,
            refresh_token_absolute_lifetime=row.refresh_token_absolute_lifetime,
            enabled=bool(row.enabled),
            access_token_format=row.access_token_format,
            audience=row.audience,
            is_resource_server=bool(row.is_resource_server),
            trusted_backend=bool(row.trusted_backend),
            password_grant_count=int(row.password_grant_count or 0),
            sunset_at=row.sunset_at,
            deprecated_at=row.deprecated_at,
            created_at=row.created_at,
            last_used_at=row.last_used_at,
            secret_digest=row.secret_digest,
            token_endpoint_auth_methods=_methods(row),
            dpop=getattr(row, "dpop", None) or "allowed",
            dpop_nonce=getattr(row, "dpop_nonce", None) or "default",
        )

    @property
    def offline_access(self) -> bool:
        """Whether the client may get refresh tokens (``refresh_token`` grant)."""
        return "refresh_token" in self.grant_types

    @property
    def is_public(self) -> bool:
        """A public client has no secret and authenticates with ``none``."""
        return self.token_endpoint_auth_method == "none"

    def to_dict(self) -> dict[str, t.Any]:
        """The client's settings as JSON-ready data, without the digest."""
        data = dataclasses.asdict(self)
        del data["secret_digest"]
        data["scopes"] = list(self.scopes)
        data["grant_types"] = list(self.grant_types)
        data["token_endpoint_auth_methods"] = list(self.token_endpoint_auth_methods)
        data["public"] = self.is_public
        data["offline_access"] = self.offline_access
        return data
