"""Issuing and loading tokens in either format, with their rows.

:func:`issue_tokens` creates an access token (JWT or reference) and, for
offline access, a refresh token, and stores both in one transaction;
:func:`load_access_token` turns a presented string back into an
:class:`~flask_ropc.tokens.AccessToken` if, and only if, it is live. Imports
``state``, ``jwt_tokens``, ``tokens``, ``store`` and leaves.
"""

from __future__ import annotations

import dataclasses
import functools
import json
import typing as t
from collections.abc import Callable
from collections.abc import Mapping

from werkzeug.http import http_date

from . import hashing
from . import signals
from .auth_context import AuthContext
from .auth_context import amr_column
from .auth_context import stored_amr
from .errors import RefreshTokenReused
from .jwt_tokens import issue_jwt
from .jwt_tokens import verify_jwt
from .models import RETIRED
from .models import Client
from .state import State
from .tokens import AccessToken
from .tokens import TokenFormat
from .tokens import TokenGrant
from .tokens import issue_reference
from .tokens import looks_like_jwt

if t.TYPE_CHECKING:  # pragma: no cover
    import sqlalchemy as sa


@dataclasses.dataclass(frozen=True)
class RefreshPlan:
    """The refresh token family a grant issues into."""

    family_id: str
    #: The family's original scope, kept by every rotation (RFC 6749 §6).
    scope: str
    family_expires_at: int
    #: The id of the refresh token being exchanged, if this is a rotation.
    rotate_id: int | None = None
    #: Set when that token was already exchanged: it may be exchanged again
    #: if that was at or after this time (``ROPC_REFRESH_TOKEN_REUSE_INTERVAL``).
    repeat_since: int | None = None
    #: The DPoP key the new refresh token is bound to (public clients).
    dpop_jkt: str | None = None


def token_format_for(state: State, client: Client) -> TokenFormat:
    """How ``client``'s access tokens are issued."""
    name = client.access_token_format or state.settings.access_token_format
    if name == "reference":
        return issue_reference
    return functools.partial(issue_jwt, keyring=state.keyring)


def issue_tokens(
    state: State,
    *,
    client: Client,
    subject: str,
    scopes: tuple[str, ...],
    claims: Mapping[str, t.Any],
    grant_type: str,
    auth_context: AuthContext,
    now: int,
    refresh: RefreshPlan | None = None,
    also: Callable[[sa.Connection], None] | None = None,
    dpop_jkt: str | None = None,
) -> dict[str, t.Any]:
    """Create and store an access token (and a refresh token), atomically.

    ``also`` writes more in the same transaction (the throttle's
    settlement of a successful login). With ``dpop_jkt`` the access token
    is DPoP-bound (RFC 9449 §5): ``cnf.jkt`` and ``token_type`` ``DPoP``.
    ``auth_context`` (how and when the user authenticated) goes into the
    JWT (``amr``, ``acr``, ``auth_time``) and onto both rows.

    Returns the RFC 6749 §5.1 response fields. The access token lives for
    the client's own lifetime, else ``ROPC_ACCESS_TOKEN_LIFETIME``, for
    every grant (Authlib's refresh grant would fall back to an hour).

    :raises RefreshTokenReused: ``refresh.rotate_id`` names a refresh
        token that another request exchanged first (or, for a repeat
        exchange, one that may no longer be exchanged again); nothing
        was written.
    """
    lifetime = client.access_token_lifetime or state.settings.access_token_lifetime
    grant = TokenGrant(
        client_id=client.client_id,
        subject=subject,
        scopes=scopes,
        claims=claims,
        grant_type=grant_type,
        issued_at=now,
        expires_at=now + lifetime,
        issuer=state.issuer(),
        audience=state.audience_for(client.audience),
        auth_context=auth_context,
        dpop_jkt=dpop_jkt,
    )
    issued = token_format_for(state, client)(grant)
    scope = " ".join(scopes)
    access = {
        "token_digest": issued.digest,
        "client_id": client.client_id,
        "subject": subject,
        "grant_type": grant_type,
        "scope": scope,
        "claims": claims,
        "issued_at": now,
        "expires_at": now + lifetime,
        "kid": issued.kid,
        "family_id": refresh.family_id if refresh else None,
        "dpop_jkt": dpop_jkt,
        "amr": amr_column(auth_context),
        "acr": auth_context.acr,
        "auth_time": auth_context.auth_time,
    }
    body: dict[str, t.Any] = {
        "access_token": issued.value,
        "token_type": "Bearer" if dpop_jkt is None else "DPoP",
        "expires_in": lifetime,
    }
    if scopes:
        body["scope"] = scope
    refresh_row = None
    if refresh is not None:
        sliding = (
            client.refresh_token_sliding_lifetime
            or state.settings.refresh_token_sliding_lifetime
        )
        refresh_value = hashing.generate_token()
        refresh_row = {
            "token_digest": hashing.digest(refresh_value),
            "family_id": refresh.family_id,
            "client_id": client.client_id,
            "subject": subject,
            "scope": refresh.scope,
            "claims": claims,
            "amr": amr_column(auth_context),
            "acr": auth_context.acr,
            "auth_time": auth_context.auth_time,
            "issued_at": now,
            "expires_at": min(now + sliding, refresh.family_expires_at),
            "family_expires_at": refresh.family_expires_at,
            "dpop_jkt": refresh.dpop_jkt,
        }
        body["refresh_token"] = refresh_value
    saved = state.store.tokens.save(
        access=access,
        refresh=refresh_row,
        claim_refresh_id=refresh.rotate_id if refresh else None,
        repeat_since=refresh.repeat_since if refresh else None,
        also=also,
    )
    if not saved:
        raise RefreshTokenReused()
    return body


def load_access_token(
    state: State, value: str, *, check_audience: bool = True
) -> AccessToken | None:
    """Return the live access token for ``value``, or ``None``.

    A JWT must first verify (signature by a published key, ``typ``, ``iss``,
    ``aud``, lifetimes: see :func:`~flask_ropc.jwt_tokens.verify_jwt`). Then,
    for either format, the stored row must exist, not be revoked or expired,
    belong to an enabled client, and (for JWTs) not be signed by a retired
    key. Every check reads the database, so revocation, a disabled client and
    a retired key take effect at once on every instance.

    JWTs must carry the app's default audience unless ``check_audience`` is
    false (introspection reports the audience instead of judging it).
    Reference tokens whose client has no audience of its own report the
    app's.
    """
    default_audience = state.audience_for(None)
    now = state.store.now()
    claims = None
    if looks_like_jwt(value):
        claims = verify_jwt(
            value,
            state.keyring,
            issuer=state.issuer(),
            audience=default_audience if check_audience else None,
            now=now,
        )
        if claims is None:
            return None
    row = state.store.tokens.find_access(hashing.digest(value))
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
        dpop_jkt=row.dpop_jkt,
        amr=stored_amr(row.amr),
        acr=row.acr or state.settings.acr_password,
        auth_time=_auth_time(row, claims),
    )


def _auth_time(row: t.Any, claims: Mapping[str, t.Any] | None) -> int | None:
    """When the user authenticated, for an access token's row.

    Rows stored before revision 0007 have none: a JWT of theirs carries it,
    and a reference token from a password login was issued at that time;
    only a reference token from an old refresh leaves it unknown.
    """
    if row.auth_time is not None:
        return int(row.auth_time)
    if claims is not None and isinstance(claims.get("auth_time"), int):
        return int(claims["auth_time"])
    return int(row.issued_at) if row.grant_type == "password" else None


def find_refresh_token(state: State, value: str) -> t.Any | None:
    """The stored row of the refresh token ``value``, live or not.

    Ours are 43 characters; a string over 256 is not one of ours and is not
    even digested.
    """
    if len(value) > 256:
        return None
    return state.store.tokens.find_refresh(hashing.digest(value))


def announce_issued(
    grant_type: str,
    client: Client,
    subject: str,
    scopes: tuple[str, ...],
    refresh: RefreshPlan | None,
    *,
    client_ip: str | None = None,
) -> None:
    """Send ``token_issued`` for a grant that just issued tokens."""
    signals.send(
        signals.token_issued,
        client_ip=client_ip,
        grant_type=grant_type,
        client_id=client.client_id,
        subject=subject,
        scopes=scopes,
        refresh_token_issued=refresh is not None,
    )


def sunset_headers(client: Client) -> list[tuple[str, str]]:
    """Token response headers announcing the client's sunset, if it has one.

    ``Deprecation`` (RFC 9745, the date the sunset was announced) and
    ``Sunset`` (RFC 8594) tell the client's own developers, not just our
    logs, that this client must move off the password grant.
    """
    if client.sunset_at is None:
        return []
    announced = client.deprecated_at or client.sunset_at
    return [("Deprecation", f"@{announced}"), ("Sunset", http_date(client.sunset_at))]
