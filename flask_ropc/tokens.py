"""Access tokens: what ``current_token`` is, and the pluggable token formats.

A :class:`TokenFormat` turns a grant into the string handed to the client
(:meth:`~TokenFormat.issue`) and a presented string back into an
:class:`AccessToken` (:meth:`~TokenFormat.load`). Every format stores a row
per token keyed by a digest, so that revocation, per-user sign-out and a
disabled client take effect at once whatever the format.
"""

from __future__ import annotations

import dataclasses
import json
import typing as t
from collections.abc import Mapping

from . import hashing

if t.TYPE_CHECKING:  # pragma: no cover
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


@dataclasses.dataclass(frozen=True)
class IssuedToken:
    """A freshly issued token: the string for the client, the key we store."""

    #: The token string sent to the client. Never stored or logged.
    value: str = dataclasses.field(repr=False)
    #: The digest under which the token's row is stored.
    digest: str


class TokenFormat(t.Protocol):
    """How access tokens are represented; see :class:`OpaqueTokenFormat`."""

    #: The format's name, as used in configuration.
    name: t.ClassVar[str]

    def issue(self, grant: TokenGrant) -> IssuedToken:
        """Create the token string for ``grant`` (storing is the caller's)."""

    def load(self, value: str) -> AccessToken | None:
        """Return the live token for ``value``, or ``None`` if it is unknown,
        malformed, expired, revoked, or its client is disabled."""


class OpaqueTokenFormat:
    """Random bearer strings (256 bits) looked up by their SHA-256 digest.

    IdentityServer calls these reference tokens: an API can only check them
    by asking us, so revocation is immediate everywhere.
    """

    name: t.ClassVar[str] = "reference"

    def __init__(self, store: Store) -> None:
        self._store = store

    def issue(self, grant: TokenGrant) -> IssuedToken:
        """Draw a new random token."""
        value = hashing.generate_token()
        return IssuedToken(value=value, digest=hashing.digest(value))

    def load(self, value: str) -> AccessToken | None:
        """Look the token up by digest and check that it is still live."""
        row = self._store.find_access_token(hashing.digest(value))
        if row is None or not row.client_enabled or row.revoked_at is not None:
            return None
        if row.expires_at <= self._store.now():
            return None
        return AccessToken(
            subject=row.subject,
            client_id=row.client_id,
            scopes=tuple(row.scope.split()),
            claims=json.loads(row.claims),
            issued_at=row.issued_at,
            expires_at=row.expires_at,
        )
