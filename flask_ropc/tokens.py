"""Access tokens: what ``current_token`` is, and the pluggable token formats.

A :class:`TokenFormat` turns a grant into the string handed to the client;
:func:`flask_ropc.token_service.load_access_token` turns a presented string
back into an :class:`AccessToken`. Every format stores a row per token keyed
by the SHA-256 digest of the token string, so that revocation, per-user
sign-out and a disabled client take effect at once whatever the format.

A leaf: imports only :mod:`~flask_ropc.hashing` and
:mod:`~flask_ropc.auth_context`.
"""

from __future__ import annotations

import dataclasses
import typing as t
from collections.abc import Mapping

from . import hashing
from .auth_context import PASSWORD_AMR
from .auth_context import AuthContext


@dataclasses.dataclass(frozen=True)
class AccessToken:
    """A validated access token, as seen by a protected view.

    ``current_token`` is one of these inside a :meth:`ROPC.require_token`
    view. It never holds the token string itself.
    """

    #: The user's id (``sub``), as returned by the password validator.
    subject: str
    #: The client the token was issued to.
    client_id: str
    #: The granted scopes.
    scopes: tuple[str, ...]
    #: The validator's claims.
    claims: Mapping[str, t.Any]
    #: Unix time of issue.
    issued_at: int
    #: Unix time of expiry.
    expires_at: int
    #: The audience (``aud``) the token was issued for.
    audience: str = ""
    #: The thumbprint of the DPoP key it is bound to (``cnf.jkt``), if any.
    dpop_jkt: str | None = None
    #: How the user authenticated (RFC 8176 ``amr``), e.g. ``("pwd",)``.
    amr: tuple[str, ...] = PASSWORD_AMR
    #: The authentication context class (``acr``): ``ROPC_ACR_PASSWORD``,
    #: ``ROPC_ACR_MFA`` or another value a grant set.
    acr: str = ""
    #: When the user authenticated (Unix seconds); ``None`` only for a
    #: reference token from a refresh stored before this was recorded.
    auth_time: int | None = None

    def has_scope(self, scope: str) -> bool:
        """Whether ``scope`` was granted."""
        return scope in self.scopes


@dataclasses.dataclass(frozen=True)
class TokenGrant:
    """Everything a format needs to issue one access token."""

    client_id: str
    subject: str
    scopes: tuple[str, ...]
    claims: Mapping[str, t.Any]
    grant_type: str
    issued_at: int
    expires_at: int
    #: The ``iss`` of the token.
    issuer: str
    #: The ``aud`` of the token.
    audience: str
    #: How and when the user authenticated (``amr``, ``acr``, ``auth_time``).
    auth_context: AuthContext | None = None
    #: The DPoP key thumbprint to bind the token to (``cnf.jkt``), if any.
    dpop_jkt: str | None = None


@dataclasses.dataclass(frozen=True)
class IssuedToken:
    """A freshly issued token: the string for the client, the key we store."""

    #: The token string sent to the client. Never stored or logged.
    value: str = dataclasses.field(repr=False)
    #: The digest under which the token's row is stored.
    digest: str
    #: The signing key's id, for JWTs.
    kid: str | None = None


class TokenFormat(t.Protocol):
    """How access tokens are represented: ``reference`` or ``jwt``."""

    def __call__(self, grant: TokenGrant) -> IssuedToken:
        """Create the token string for ``grant`` (storing is the caller's)."""


def issue_reference(grant: TokenGrant) -> IssuedToken:
    """An opaque bearer string (256 bits), looked up by its SHA-256 digest.

    IdentityServer calls these reference tokens: an API can only check them
    by asking us (introspection), so revocation is immediate everywhere.
    """
    value = hashing.generate_token()
    return IssuedToken(value=value, digest=hashing.digest(value))


def looks_like_jwt(value: str) -> bool:
    """Whether ``value`` has the three-part shape of a compact JWS.

    Reference tokens are base64url without dots, so the shapes never overlap.
    """
    return value.count(".") == 2


def refresh_token_expired(row: t.Any, now: int) -> bool:
    """Past its sliding expiry, or its family's absolute one."""
    return bool(row.expires_at <= now or row.family_expires_at <= now)
