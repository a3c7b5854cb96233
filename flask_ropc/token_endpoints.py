"""What token introspection (RFC 7662) and revocation (RFC 7009) do.

The Authlib endpoint classes in :mod:`flask_ropc.server` only adapt these
functions. Departures from Authlib's endpoints, each for a reason:

* an unknown ``token_type_hint`` is ignored, as both RFCs allow, instead of
  Authlib's 401 ``unsupported_token_type``;
* revoking another client's token answers 200 and revokes nothing (logged),
  as IdentityServer does, rather than telling the caller the token exists;
* introspection reports ``active: false`` for anything not live by the same
  rules as ``require_token`` (expired, revoked, disabled client, retired
  signing key, bad JWT signature).

Imports ``token_service``, ``state`` and leaves; no Authlib.
"""

from __future__ import annotations

import logging
import typing as t

from . import hashing
from . import signals
from .auth_context import stored_amr
from .errors import InvalidRequestError
from .models import Client
from .state import State
from .token_service import find_refresh_token
from .token_service import load_access_token
from .tokens import AccessToken
from .tokens import refresh_token_expired

log = logging.getLogger("flask_ropc")


def token_param(form: t.Mapping[str, str]) -> str:
    """The required ``token`` parameter; any hint is ignored (RFC 7662 §2.1,
    RFC 7009 §2.1 let us)."""
    token = form.get("token")
    if not token:
        raise InvalidRequestError("Missing 'token' in request.")
    return str(token)


def find_live_token(state: State, value: str) -> t.Any | None:
    """The live access token (an :class:`AccessToken`) or refresh token row
    for ``value``, or ``None``."""
    token = load_access_token(state, value, check_audience=False)
    if token is not None:
        return token
    row = find_refresh_token(state, value)
    if row is None or not row.client_enabled:
        return None
    if row.revoked_at is not None or row.used_at is not None:
        return None
    if refresh_token_expired(row, state.store.now()):
        return None
    return row


def may_introspect(token: t.Any, client: Client) -> bool:
    """A client may introspect its own tokens; a resource server any."""
    return bool(token.client_id == client.client_id or client.is_resource_server)


def introspection_payload(state: State, token: t.Any | None) -> dict[str, t.Any]:
    """RFC 7662 §2.2; ``{"active": false}`` for anything not live."""
    if token is None:
        return {"active": False}
    if not isinstance(token, AccessToken):
        return {
            "active": True,
            "scope": token.scope,
            "client_id": token.client_id,
            "sub": token.subject,
            "exp": token.expires_at,
            "iat": token.issued_at,
            "token_type": "refresh_token",
            "iss": state.issuer(),
            **_confirmation(token.dpop_jkt),
            **_context(stored_amr(token.amr), token.acr, token.auth_time, state),
        }
    return {
        "active": True,
        "scope": " ".join(token.scopes),
        "client_id": token.client_id,
        "sub": token.subject,
        "exp": token.expires_at,
        "iat": token.issued_at,
        "token_type": "Bearer" if token.dpop_jkt is None else "DPoP",
        "iss": state.issuer(),
        "aud": token.audience,
        **_confirmation(token.dpop_jkt),
        **_context(token.amr, token.acr, token.auth_time, state),
    }


def _context(
    amr: tuple[str, ...], acr: str | None, auth_time: int | None, state: State
) -> dict[str, t.Any]:
    """How the user authenticated (RFC 9470 §6.2): ``amr``, ``acr`` and,
    when known, ``auth_time``."""
    found = {"amr": list(amr), "acr": acr or state.settings.acr_password}
    return found if auth_time is None else {**found, "auth_time": auth_time}


def _confirmation(jkt: str | None) -> dict[str, t.Any]:
    """RFC 9449 §6.2: the ``cnf`` of a DPoP-bound token."""
    return {} if jkt is None else {"cnf": {"jkt": jkt}}


def find_revocable(state: State, client: Client, value: str) -> t.Any | None:
    """The stored access or refresh token row ``client`` may revoke, if any.

    Another client's token is left alone, and the answer is the same as for
    an unknown token.
    """
    digest = hashing.digest(value)
    tokens = state.store.tokens
    token = tokens.find_access(digest) or tokens.find_refresh(digest)
    if token is not None and token.client_id != client.client_id:
        log.warning(
            "client %s tried to revoke a token of client %s; ignored",
            client.client_id,
            token.client_id,
        )
        return None
    return token


def revoke(state: State, token: t.Any) -> None:
    """Revoke an access token, or a refresh token with its whole family."""
    tokens = state.store.tokens
    if hasattr(token, "family_expires_at"):
        tokens.revoke_family(token.family_id)
        token_type = "refresh_token"
    else:
        tokens.revoke_access(token.token_digest)
        token_type = "access_token"
    signals.send(
        signals.token_revoked,
        client_id=token.client_id,
        token_type=token_type,
        subject=token.subject,
    )
