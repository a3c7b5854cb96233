"""Token introspection (RFC 7662) and revocation (RFC 7009) on Authlib.

Departures from Authlib's endpoint classes, each for a reason:

* an unknown ``token_type_hint`` is ignored, as both RFCs allow, instead of
  Authlib's 401 ``unsupported_token_type``;
* revoking another client's token answers 200 and revokes nothing (logged),
  as IdentityServer does, rather than telling the caller the token exists;
* introspection reports ``active: false`` for anything not live by the same
  rules as ``require_token`` (expired, revoked, disabled client, retired
  signing key, bad JWT signature).
"""

from __future__ import annotations

import logging
import typing as t

from authlib.oauth2.rfc6749 import InvalidRequestError
from authlib.oauth2.rfc7009 import RevocationEndpoint
from authlib.oauth2.rfc7662 import IntrospectionEndpoint

from . import hashing
from . import signals
from .models import Client
from .tokens import AccessToken
from .tokens import find_refresh_token
from .tokens import refresh_token_expired

log = logging.getLogger("flask_ropc")


def _token_param(request: t.Any) -> str:
    token = request.form.get("token")
    if not token:
        raise InvalidRequestError("Missing 'token' in request.")
    return str(token)


class TokenIntrospection(IntrospectionEndpoint):
    """``POST {prefix}/introspect``: what a token is, for authenticated clients.

    Only confidential clients may introspect (RFC 7662 §2.1 asks for
    authorization); a client sees its own tokens unless it is marked as a
    resource server (``flask ropc update-client ID --resource-server``).
    """

    CLIENT_AUTH_METHODS = ["client_secret_basic", "client_secret_post"]

    def check_params(self, request: t.Any, client: Client) -> None:
        """Require ``token``; ignore any hint (RFC 7662 §2.1 lets us)."""
        _token_param(request)

    def query_token(self, token_string: str, token_type_hint: str | None) -> t.Any:
        """The live access or refresh token for ``token_string``, or ``None``."""
        state = self.server.state
        token = state.load_token(token_string, check_audience=False)
        if token is None:
            token = _live_refresh_token(state, token_string)
        return token

    def check_permission(
        self, token: AccessToken, client: Client, request: t.Any
    ) -> bool:
        """A client may introspect its own tokens; a resource server any."""
        return token.client_id == client.client_id or client.is_resource_server

    def create_introspection_payload(
        self, token: AccessToken | None
    ) -> dict[str, t.Any]:
        """RFC 7662 §2.2; ``{"active": false}`` for anything not live."""
        if token is None:
            return {"active": False}
        payload = self.introspect_token(token)
        payload["active"] = True
        return payload

    def introspect_token(self, token: t.Any) -> dict[str, t.Any]:
        """The claims RFC 7662 §2.2 lists, for a live token."""
        state = self.server.state
        if not isinstance(token, AccessToken):
            return {
                "scope": token.scope,
                "client_id": token.client_id,
                "sub": token.subject,
                "exp": token.expires_at,
                "iat": token.issued_at,
                "token_type": "refresh_token",
                "iss": state.issuer(),
            }
        payload: dict[str, t.Any] = {
            "scope": " ".join(token.scopes),
            "client_id": token.client_id,
            "sub": token.subject,
            "exp": token.expires_at,
            "iat": token.issued_at,
            "token_type": "Bearer",
            "iss": state.issuer(),
            "aud": token.audience,
        }
        return payload


class TokenRevocation(RevocationEndpoint):
    """``POST {prefix}/revoke``: a client revokes one of its own tokens.

    Public clients may revoke too (RFC 7009 §2.1 covers them). The answer is
    always 200 ``{}`` once the client has authenticated: for unknown tokens
    (§2.2) and for other clients' tokens (which are left alone). ``{}``
    rather than an empty body, because some client libraries (Node's
    ``simple-oauth2``) fail on a body that is not JSON.
    """

    CLIENT_AUTH_METHODS = ["client_secret_basic", "client_secret_post", "none"]

    def check_params(self, request: t.Any, client: Client) -> None:
        """Require ``token``; ignore any hint (RFC 7009 §2.1 lets us)."""
        _token_param(request)

    def authenticate_token(self, request: t.Any, client: Client) -> t.Any:
        """Find the token; ``None`` (nothing to do) if it is another client's."""
        self.check_params(request, client)
        token = self.query_token(
            request.form["token"], request.form.get("token_type_hint")
        )
        if token is not None and token.client_id != client.client_id:
            log.warning(
                "client %s tried to revoke a token of client %s; ignored",
                client.client_id,
                token.client_id,
            )
            return None
        return token

    def query_token(self, token_string: str, token_type_hint: str | None) -> t.Any:
        """The stored access or refresh token row for ``token_string``."""
        store = self.server.state.store
        digest = hashing.digest(token_string)
        return store.find_access_token(digest) or store.find_refresh_token(digest)

    def revoke_token(self, token: t.Any, request: t.Any) -> None:
        """Revoke an access token, or a refresh token with its whole family."""
        store = self.server.state.store
        if hasattr(token, "family_expires_at"):
            store.revoke_family(token.family_id)
            token_type = "refresh_token"
        else:
            store.revoke_access_token(token.token_digest)
            token_type = "access_token"
        signals.send(
            signals.token_revoked,
            client_id=token.client_id,
            token_type=token_type,
            subject=token.subject,
        )


def _live_refresh_token(state: t.Any, token_string: str) -> t.Any | None:
    """The refresh token row for ``token_string`` if it can still be used."""
    row = find_refresh_token(state.store, token_string)
    if row is None or not row.client_enabled:
        return None
    if row.revoked_at is not None or row.used_at is not None:
        return None
    if refresh_token_expired(row, state.store.now()):
        return None
    return row
