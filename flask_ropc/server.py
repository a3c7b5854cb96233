"""The per-app Authlib authorization server and token issuance.

Authlib's Flask ``AuthorizationServer`` keeps its grants and generators on the
instance, so each app gets its own, built by :func:`build_server` inside
``init_app``.
"""

from __future__ import annotations

import dataclasses
import typing as t
from collections.abc import Callable
from collections.abc import Mapping

from authlib.integrations.flask_oauth2 import AuthorizationServer
from authlib.oauth2.rfc6749 import InvalidClientError

from . import client_auth
from . import hashing
from . import signals
from .errors import InvalidClientAuthError
from .models import Client
from .tokens import TokenGrant

if t.TYPE_CHECKING:  # pragma: no cover
    import sqlalchemy as sa

    from .extension import _State


class ROPCAuthorizationServer(AuthorizationServer):
    """Authlib's Flask server wired to our store, client auth and tokens.

    Internal: built by ``init_app``; its interface may change.
    """

    def __init__(self, state: _State) -> None:
        super().__init__()
        self.state = state
        self.register_client_auth_method(
            "client_secret_basic", client_auth.authenticate_basic
        )
        self.register_client_auth_method(
            "client_secret_post", client_auth.authenticate_post
        )
        self.register_client_auth_method("none", client_auth.authenticate_none)

    def grant_types(self) -> list[str]:
        """The ``grant_type`` values of the registered grants."""
        return [grant.GRANT_TYPE for grant, _ in self._token_grants]

    def query_client(self, client_id: str) -> Client | None:
        """Authlib hook: load a client by id."""
        return self.state.store.get_client(client_id)

    def save_token(self, token: Mapping[str, t.Any], request: t.Any) -> None:
        """Authlib hook, unused: :meth:`issue_tokens` stores tokens."""
        raise AssertionError("tokens are saved by issue_tokens")

    def authenticate_client(
        self, request: t.Any, methods: list[str], endpoint: str = "token"
    ) -> Client:
        """Authlib hook: authenticate with our methods and uniform errors.

        When no method applies (no credentials at all), Authlib raises its own
        ``invalid_client`` whose text lists our methods and whose status
        depends on them; we answer with the same error as any other failure.
        """
        try:
            client: Client = super().authenticate_client(request, methods, endpoint)
        except (InvalidClientError, InvalidClientAuthError) as error:
            signals.send(
                signals.client_authentication_failed,
                client_id=_presented_client_id(request),
                endpoint=endpoint,
            )
            if isinstance(error, InvalidClientAuthError):
                raise
            raise InvalidClientAuthError() from None
        return client

    def issue_tokens(
        self,
        *,
        client: Client,
        subject: str,
        scopes: tuple[str, ...],
        claims: Mapping[str, t.Any],
        grant_type: str,
        auth_time: int,
        refresh: RefreshPlan | None = None,
        also: Callable[[sa.Connection], None] | None = None,
    ) -> dict[str, t.Any]:
        """Create and store an access token (and a refresh token), atomically.

        ``also`` writes more in the same transaction (the throttle's
        settlement of a successful login).

        Returns the RFC 6749 §5.1 response fields. The access token lives for
        the client's own lifetime, else ``ROPC_ACCESS_TOKEN_LIFETIME``, for
        every grant (Authlib's refresh grant would fall back to an hour).

        :raises RefreshTokenReused: ``refresh.rotate_id`` names a refresh
            token that another request exchanged first (or, for a repeat
            exchange, one that may no longer be exchanged again); nothing
            was written.
        """
        state = self.state
        now = state.store.now()
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
            audience=state.audience_for(client),
            auth_time=auth_time,
        )
        issued = state.token_format_for(client)(grant)
        access = {
            "token_digest": issued.digest,
            "client_id": client.client_id,
            "subject": subject,
            "grant_type": grant_type,
            "scope": " ".join(scopes),
            "claims": claims,
            "issued_at": now,
            "expires_at": now + lifetime,
            "kid": issued.kid,
            "family_id": refresh.family_id if refresh else None,
        }
        body: dict[str, t.Any] = {
            "access_token": issued.value,
            "token_type": "Bearer",
            "expires_in": lifetime,
        }
        if scopes:
            body["scope"] = " ".join(scopes)
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
                "auth_time": auth_time,
                "issued_at": now,
                "expires_at": min(now + sliding, refresh.family_expires_at),
                "family_expires_at": refresh.family_expires_at,
            }
            body["refresh_token"] = refresh_value
        saved = state.store.save_grant(
            access=access,
            refresh=refresh_row,
            claim_refresh_id=refresh.rotate_id if refresh else None,
            repeat_since=refresh.repeat_since if refresh else None,
            also=also,
        )
        if not saved:
            raise RefreshTokenReused()
        return body


@dataclasses.dataclass(frozen=True)
class RefreshPlan:
    """The refresh token family a grant issues into.

    Internal: built by the grants.
    """

    family_id: str
    #: The family's original scope, kept by every rotation (RFC 6749 §6).
    scope: str
    family_expires_at: int
    #: The id of the refresh token being exchanged, if this is a rotation.
    rotate_id: int | None = None
    #: Set when that token was already exchanged: it may be exchanged again
    #: if that was at or after this time (``ROPC_REFRESH_TOKEN_REUSE_INTERVAL``).
    repeat_since: int | None = None


class RefreshTokenReused(Exception):
    """The refresh token was exchanged by another request first."""


def _presented_client_id(request: t.Any) -> str | None:
    """The client id a failed request claimed, if it looks like one."""
    try:
        basic = client_auth.parse_basic_authorization(
            request.headers.get("Authorization")
        )
    except InvalidClientAuthError:
        basic = None
    claimed = basic[0] if basic else request.form.get("client_id")
    if claimed and len(claimed) <= 64 and claimed.isascii() and claimed.isprintable():
        return str(claimed)
    return None


def build_server(state: _State) -> ROPCAuthorizationServer:
    """Create the authorization server for one app, with our grants."""
    from .endpoints import TokenIntrospection
    from .endpoints import TokenRevocation
    from .grants import PasswordGrant
    from .grants import RefreshGrant

    server = ROPCAuthorizationServer(state)
    server.register_grant(PasswordGrant)
    server.register_grant(RefreshGrant)
    server.register_endpoint(TokenIntrospection)
    server.register_endpoint(TokenRevocation)
    return server
