"""Access tokens: what ``current_token`` is, and the pluggable token formats.

A :class:`TokenFormat` turns a grant into the string handed to the client;
:func:`load_access_token` turns a presented string back into an
:class:`AccessToken`. Every format stores a row per token keyed by the
SHA-256 digest of the token string, so that revocation, per-user sign-out and
a disabled client take effect at once whatever the format.
"""

from __future__ import annotations

import dataclasses
import json
import typing as t
from collections.abc import Mapping

from . import hashing

if t.TYPE_CHECKING:  # pragma: no cover
    from .keys import KeyRing
    from .store import Store


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
    #: When the user typed the password (Unix time), if known.
    auth_time: int | None = None


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


def load_access_token(
    value: str,
    store: Store,
    keyring: KeyRing,
    *,
    issuer: str,
    audience: str | None,
    default_audience: str,
) -> AccessToken | None:
    """Return the live access token for ``value``, or ``None``.

    A JWT must first verify (signature by a published key, ``typ``, ``iss``,
    ``aud``, lifetimes: see :func:`~flask_ropc.jwt_tokens.verify_jwt`). Then,
    for either format, the stored row must exist, not be revoked or expired,
    belong to an enabled client, and (for JWTs) not be signed by a retired
    key. Every check reads the database, so revocation, a disabled client and
    a retired key take effect at once on every instance.

    :param audience: the ``aud`` a JWT must carry; ``None`` accepts any
        (introspection reports it instead of judging it).
    :param default_audience: the audience of reference tokens whose client
        has none of its own.
    """
    from .jwt_tokens import verify_jwt
    from .keys import RETIRED

    now = store.now()
    claims = None
    if looks_like_jwt(value):
        claims = verify_jwt(value, keyring, issuer=issuer, audience=audience, now=now)
        if claims is None:
            return None
    row = store.find_access_token(hashing.digest(value))
    if row is None or not row.client_enabled or row.revoked_at is not None:
        return None
    if row.expires_at <= now or row.key_status == RETIRED:
        return None
    return AccessToken(
        subject=row.subject,
        client_id=row.client_id,
        scopes=tuple(row.scope.split()),
        claims=json.loads(row.claims),
        issued_at=row.issued_at,
        expires_at=row.expires_at,
        audience=str(
            claims["aud"] if claims else row.client_audience or default_audience
        ),
    )


def find_refresh_token(store: Store, value: str) -> t.Any | None:
    """The stored row of the refresh token ``value``, live or not.

    Ours are 43 characters; a string over 256 is not one of ours and is not
    even digested.
    """
    if len(value) > 256:
        return None
    return store.find_refresh_token(hashing.digest(value))


def refresh_token_expired(row: t.Any, now: int) -> bool:
    """Past its sliding expiry, or its family's absolute one."""
    return bool(row.expires_at <= now or row.family_expires_at <= now)
