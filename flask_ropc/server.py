"""Every Authlib server class we use, as thin adapters over our flows.

Authlib's Flask ``AuthorizationServer`` keeps its grants and generators on the
instance, so each app gets its own (:class:`ROPCAuthorizationServer`, built
in ``init_app``). The grant and endpoint classes here authenticate the client
the Authlib way, then hand over to :mod:`~flask_ropc.login`,
:mod:`~flask_ropc.refresh` and :mod:`~flask_ropc.token_endpoints`; what a
request has been found to be travels on the grant instance (Authlib makes one
per request) as a typed object, not as attributes on Authlib's request.

One of the three modules that import Authlib (with ``errors`` and
``resource``). Imports the flows, ``secret_upgrade``, ``state`` and leaves.
"""

from __future__ import annotations

import functools
import typing as t
from collections.abc import Mapping

import flask
from authlib.common.security import is_secure_transport
from authlib.integrations.flask_oauth2 import AuthorizationServer
from authlib.integrations.flask_oauth2.requests import FlaskOAuth2Payload
from authlib.integrations.flask_oauth2.requests import FlaskOAuth2Request
from authlib.oauth2.rfc6749 import InvalidClientError
from authlib.oauth2.rfc6749 import OAuth2Request
from authlib.oauth2.rfc6749.grants import BaseGrant
from authlib.oauth2.rfc6749.grants import RefreshTokenGrant
from authlib.oauth2.rfc6749.grants import ResourceOwnerPasswordCredentialsGrant
from authlib.oauth2.rfc6749.grants import TokenEndpointMixin
from authlib.oauth2.rfc6749.hooks import hooked
from authlib.oauth2.rfc7009 import RevocationEndpoint
from authlib.oauth2.rfc7662 import IntrospectionEndpoint

from . import client_auth
from . import dpop_binding
from . import hosts
from . import login
from . import mfa_challenge
from . import mfa_continue
from . import refresh
from . import secret_upgrade
from . import signals
from . import token_endpoints
from .context import current_g
from .context import current_request
from .dpop import Proof
from .errors import InvalidClientAuthError
from .mfa_contract import MFA_OTP_GRANT
from .mfa_contract import MFA_RECOVERY_CODE_GRANT
from .mfa_contract import OTP
from .mfa_contract import RECOVERY_CODE
from .models import Client
from .state import State
from .token_service import sunset_headers

#: Client authentication methods of the token endpoint: RFC 6749 §2.3.1's two
#: (Authlib enables only Basic by default) and §2.1's public clients.
TOKEN_ENDPOINT_AUTH_METHODS = ["client_secret_basic", "client_secret_post", "none"]

TokenResponse = tuple[int, dict[str, t.Any], list[tuple[str, str]]]


def request_is_secure(url: str) -> bool:
    """Whether ``url`` is HTTPS (or Authlib's insecure-transport switch is on)."""
    return bool(is_secure_transport(url))


class ROPCAuthorizationServer(AuthorizationServer):
    """Authlib's Flask server wired to our store, client auth and flows.

    Internal: built by ``init_app``; its interface may change.
    """

    def __init__(self, state: State) -> None:
        super().__init__()
        self.state = state
        for method, authenticate in (
            ("client_secret_basic", client_auth.authenticate_basic),
            ("client_secret_post", client_auth.authenticate_post),
        ):
            self.register_client_auth_method(
                method, functools.partial(authenticate, carried=self._rehash)
            )
        self.register_client_auth_method("none", client_auth.authenticate_none)
        self.register_grant(PasswordGrant)
        self.register_grant(RefreshGrant)
        self.register_grant(MfaOtpGrant)
        self.register_grant(MfaRecoveryCodeGrant)
        self.register_endpoint(TokenIntrospection)
        self.register_endpoint(TokenRevocation)

    def create_oauth2_request(self, request: t.Any) -> OAuth2Request:
        """Authlib hook: the current request, its URL built only if read."""
        return _OAuth2Request(current_request())

    def handle_error_response(self, request: t.Any, error: t.Any) -> t.Any:
        """Authlib hook: ``error`` as JSON, its code noted for the token event."""
        current_g().ropc_error = error.error
        return super().handle_error_response(request, error)

    def grant_types(self) -> list[str]:
        """The ``grant_type`` values of the registered grants."""
        return [grant.GRANT_TYPE for grant, _ in self._token_grants]

    def query_client(self, client_id: str) -> Client | None:
        """Authlib hook: load a client by id."""
        client, g = self.state.store.clients.get(client_id), current_g()
        if client is not None:  # (g taken either way: the same code, see #13)
            # The first client found is the one authenticated against; the
            # token endpoint's event names it (a known id: never user input).
            g.setdefault("ropc_client_id", client.client_id)
        return client

    def _rehash(self, client: Client, secret: str) -> None:
        # A carried-over IdentityServer digest matched: store ours instead.
        secret_upgrade.upgrade_carried_secret(self.state.store.clients, client, secret)

    def save_token(self, token: Mapping[str, t.Any], request: t.Any) -> None:
        """Authlib hook, unused: our flows store tokens."""
        raise AssertionError("tokens are saved by token_service.issue_tokens")

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
                client_id=client_auth.presented_client_id(
                    request.headers.get("Authorization"), request.form
                ),
                endpoint=endpoint,
            )
            if isinstance(error, InvalidClientAuthError):
                raise
            raise InvalidClientAuthError() from None
        return client


class PasswordGrant(ResourceOwnerPasswordCredentialsGrant):
    """``grant_type=password``: :mod:`flask_ropc.login` behind Authlib."""

    TOKEN_ENDPOINT_AUTH_METHODS = TOKEN_ENDPOINT_AUTH_METHODS
    server: ROPCAuthorizationServer
    #: The checked request, set by :meth:`validate_token_request`.
    login: login.PasswordLogin
    #: Its DPoP proof, if it sent one (RFC 9449).
    proof: Proof | None

    def validate_token_request(self) -> None:
        """Authenticate the client, check its DPoP proof, then run every
        check of the login (a bad proof costs no password attempt).

        The steps before the validator share one pooled connection (one
        checkout, one pre-ping); the validator runs without it.
        """
        state = self.server.state
        with state.store.db.held():
            client, self.proof = _client_and_proof(self)
            pending = login.prepare(state, client, self.request.form, current_request())
        self.login = login.judge(state, pending)

    @hooked  # type: ignore[untyped-decorator]
    def create_token_response(self) -> TokenResponse:
        """Issue the tokens of the checked login, or, when the validator
        asked for a second factor, the ``mfa_required`` challenge."""
        state, jkt = self.server.state, dpop_binding.jkt(self.proof)
        headers = [*self.TOKEN_RESPONSE_HEADER, *sunset_headers(self.login.client)]
        if self.login.result.needs_mfa:
            status, body = mfa_challenge.challenge(state, self.login, dpop_jkt=jkt)
            return status, body, headers
        return 200, login.issue(state, self.login, dpop_jkt=jkt), headers


class RefreshGrant(RefreshTokenGrant):
    """``grant_type=refresh_token``: :mod:`flask_ropc.refresh` behind Authlib."""

    TOKEN_ENDPOINT_AUTH_METHODS = TOKEN_ENDPOINT_AUTH_METHODS
    INCLUDE_NEW_REFRESH_TOKEN = True
    server: ROPCAuthorizationServer
    #: The checked request, set by :meth:`validate_token_request`.
    exchange: refresh.RefreshExchange
    #: Its DPoP proof, if it sent one (RFC 9449).
    proof: Proof | None

    def validate_token_request(self) -> None:
        """Authenticate the client, check its DPoP proof, then the presented
        refresh token (and, for a public client, that the proof's key is
        the one the token is bound to), on one pooled connection (see
        :meth:`PasswordGrant.validate_token_request`)."""
        state = self.server.state
        with state.store.db.held():
            client, self.proof = _client_and_proof(self)
            self.exchange = refresh.check(state, client, self.request.form)
            dpop_binding.check_refresh(client, self.exchange.row, self.proof)

    @hooked  # type: ignore[untyped-decorator]
    def create_token_response(self) -> TokenResponse:
        """Rotate: a new access and refresh token; or, when the request's
        ``acr_values``/``max_age`` ask more of the login, ``mfa_required``."""
        if self.exchange.needs_mfa:
            status, challenge = mfa_challenge.challenge_refresh(
                self.server.state, self.exchange, dpop_jkt=dpop_binding.jkt(self.proof)
            )
            return status, challenge, list(self.TOKEN_RESPONSE_HEADER)
        body = refresh.issue(
            self.server.state,
            self.exchange,
            current_request(),
            dpop_jkt=dpop_binding.jkt(self.proof),
        )
        headers = [*self.TOKEN_RESPONSE_HEADER, *sunset_headers(self.exchange.client)]
        return 200, body, headers


class MfaOtpGrant(BaseGrant, TokenEndpointMixin):
    """Auth0's ``mfa-otp`` grant: :mod:`flask_ropc.mfa_continue` behind Authlib."""

    GRANT_TYPE = MFA_OTP_GRANT
    #: The factor this grant's code is.
    FACTOR = OTP
    TOKEN_ENDPOINT_AUTH_METHODS = TOKEN_ENDPOINT_AUTH_METHODS
    server: ROPCAuthorizationServer
    #: The checked request, set by :meth:`validate_token_request`.
    continuation: mfa_continue.MfaContinuation
    #: Its DPoP proof, if it sent one (RFC 9449).
    proof: Proof | None

    def validate_token_request(self) -> None:
        """Authenticate the client exactly as the password grant does, check
        its DPoP proof, then the ``mfa_token`` and the code (the verifier
        runs without a held connection)."""
        state = self.server.state
        with state.store.db.held():
            client, self.proof = _client_and_proof(self)
        self.continuation = mfa_continue.check(
            state,
            client,
            self.FACTOR,
            self.request.form,
            current_request(),
            proof=self.proof,
        )

    @hooked  # type: ignore[untyped-decorator]
    def create_token_response(self) -> TokenResponse:
        """Consume the ``mfa_token`` and issue the tokens."""
        continuation = self.continuation
        body = mfa_continue.issue(
            self.server.state, continuation, dpop_jkt=dpop_binding.jkt(self.proof)
        )
        headers = [*self.TOKEN_RESPONSE_HEADER, *sunset_headers(continuation.client)]
        return 200, body, headers


class MfaRecoveryCodeGrant(MfaOtpGrant):
    """Auth0's ``mfa-recovery-code`` grant (``recovery_code`` for ``otp``)."""

    GRANT_TYPE = MFA_RECOVERY_CODE_GRANT
    FACTOR = RECOVERY_CODE


class TokenIntrospection(IntrospectionEndpoint):
    """``POST {prefix}/introspect``: what a token is, for authenticated clients.

    Only confidential clients may introspect (RFC 7662 §2.1 asks for
    authorization); a client sees its own tokens unless it is marked as a
    resource server (``flask ropc update-client ID --resource-server``).
    """

    CLIENT_AUTH_METHODS = ["client_secret_basic", "client_secret_post"]
    server: ROPCAuthorizationServer

    def check_params(self, request: t.Any, client: Client) -> None:
        """Require ``token``; ignore any hint."""
        token_endpoints.token_param(request.form)

    def query_token(self, token_string: str, token_type_hint: str | None) -> t.Any:
        """The live access or refresh token for ``token_string``, or ``None``."""
        return token_endpoints.find_live_token(self.server.state, token_string)

    def check_permission(self, token: t.Any, client: Client, request: t.Any) -> bool:
        """A client may introspect its own tokens; a resource server any."""
        return token_endpoints.may_introspect(token, client)

    def create_introspection_payload(self, token: t.Any | None) -> dict[str, t.Any]:
        """RFC 7662 §2.2; ``{"active": false}`` for anything not live."""
        return token_endpoints.introspection_payload(self.server.state, token)


class TokenRevocation(RevocationEndpoint):
    """``POST {prefix}/revoke``: a client revokes one of its own tokens.

    Public clients may revoke too (RFC 7009 §2.1 covers them). The answer is
    always 200 ``{}`` once the client has authenticated: for unknown tokens
    (§2.2) and for other clients' tokens (which are left alone). ``{}``
    rather than an empty body, because some client libraries (Node's
    ``simple-oauth2``) fail on a body that is not JSON.
    """

    CLIENT_AUTH_METHODS = TOKEN_ENDPOINT_AUTH_METHODS
    server: ROPCAuthorizationServer

    def authenticate_token(self, request: t.Any, client: Client) -> t.Any:
        """Find the token; ``None`` (nothing to do) if it is another client's."""
        value = token_endpoints.token_param(request.form)
        return token_endpoints.find_revocable(self.server.state, client, value)

    def revoke_token(self, token: t.Any, request: t.Any) -> None:
        """Revoke an access token, or a refresh token with its whole family."""
        token_endpoints.revoke(self.server.state, token)


class _OAuth2Request(FlaskOAuth2Request):
    """Authlib's Flask request, ``uri`` made lazily (nothing of ours reads it);
    Authlib's HTTPS check runs on the origin, which answers as the URL does."""

    def __init__(self, request: flask.Request) -> None:
        url = hosts.origin(request.scheme, request.host) or ""
        OAuth2Request.__init__(self, request.method, url)  # ``headers or {}``
        self.headers, self._request = request.headers, request  # ^ counts them
        self.payload = FlaskOAuth2Payload(request)

    @property
    def uri(self) -> str:
        return str(self._request.url)  # Werkzeug rebuilds it per request

    @uri.setter
    def uri(self, origin: str) -> None:
        pass  # OAuth2Request.__init__ stores the origin it checked


def _client_and_proof(grant: t.Any) -> tuple[Client, Proof | None]:
    """The first steps of each of our grants: authenticate the client the
    Authlib way, then check its DPoP proof (before anything costs a guess)."""
    client: Client = grant.authenticate_token_endpoint_client()
    grant.request.client = client
    proof = dpop_binding.token_request_proof(
        grant.server.state, client, current_request()
    )
    return client, proof
