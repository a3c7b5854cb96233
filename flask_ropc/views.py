"""The blueprint with our HTTP endpoints, and the checks made before Authlib.

Authlib parses a token request leniently: it reads ``grant_type``, ``scope``
and ``client_id`` from the query string and lets them win over the body,
takes the first of repeated parameters, accepts any content type, and turns
plain ``http://`` to a remote host into a 500. :func:`check_form_request`
rejects all of that with RFC 6749 §5.2 errors before Authlib sees the request.

The views are closures over one app's state and server, made by
:func:`create_blueprint` in ``init_app``. The blueprint also checks the Host
of every request for one of our views (and for views decorated with
``require_token``) before routing's errors or the view see it: see
:mod:`~flask_ropc.hosts`. Imports ``server``, ``guards``, ``state`` and
leaves.
"""

from __future__ import annotations

import json
import typing as t
from importlib import resources

import flask
from werkzeug.exceptions import RequestEntityTooLarge
from werkzeug.routing import Rule

from . import context
from . import signals
from .client_auth import basic_credentials
from .config import Settings
from .dpop import ALGORITHMS as DPOP_ALGORITHMS
from .errors import InvalidRequestError
from .errors import MethodNotAllowedError
from .errors import OAuth2Error
from .errors import UnsupportedGrantTypeError
from .guards import DatabaseError
from .guards import failure_error
from .hosts import answers_bad_host
from .hosts import bad_host_answer
from .hosts import host_problem
from .hosts import transport_is_secure
from .hosts import view_for
from .keys import SUPPORTED_ALGORITHMS
from .server import ROPCAuthorizationServer
from .server import request_is_secure

View = t.Callable[[], flask.Response]

#: Parameters that must only ever travel in the request body. In a query
#: string they end up in access logs and proxies (CWE-598).
BODY_ONLY_PARAMETERS = frozenset(
    {
        "grant_type",
        "scope",
        "client_id",
        "client_secret",
        "username",
        "password",
        "refresh_token",
        "token",
        "token_type_hint",
        "mfa_token",
        "otp",
        "recovery_code",
    }
)

GET_METHODS = ("GET", "HEAD")


def _any_method(
    bp: flask.Blueprint, path: str, endpoint: str, view: t.Callable[[], t.Any]
) -> None:
    """Route ``path`` for *every* HTTP method, known or not.

    Flask's rules list their methods, and Werkzeug answers any other method
    (TRACE, PROPFIND, ...) with an HTML 405 before our view runs. A Werkzeug
    rule without a method list matches them all, so our view answers with
    the OAuth JSON error instead.
    """

    def register(state: t.Any) -> None:
        prefix = state.url_prefix or ""
        name = f"{state.name_prefix}.{state.name}.{endpoint}".lstrip(".")
        # merge_slashes off: Werkzeug would answer "//token" with an HTML
        # redirect, built from the Host before any check of ours could run.
        state.app.url_map.add(Rule(prefix + path, endpoint=name, merge_slashes=False))
        state.app.view_functions[name] = view

    bp.record(register)


def create_blueprint(server: ROPCAuthorizationServer) -> flask.Blueprint:
    """The ``ropc`` blueprint of one app, mounted at ``ROPC_URL_PREFIX``."""
    endpoints = _Endpoints(server)
    prefix = server.state.settings.url_prefix
    bp = flask.Blueprint("ropc", __name__, url_prefix=prefix or None)
    bp.before_app_request(endpoints.refuse_unusable_host)
    _any_method(bp, "/token", "token", endpoints.owned(endpoints.token))
    _any_method(bp, "/introspect", "introspect", endpoints.owned(endpoints.introspect))
    _any_method(bp, "/revoke", "revoke", endpoints.owned(endpoints.revoke))
    _any_method(bp, "/jwks", "jwks", endpoints.owned(endpoints.jwks))
    if server.state.settings.openapi_enabled:
        # Off, the path is not ours at all (the app's own 404).
        _any_method(bp, "/openapi.json", "openapi", endpoints.owned(endpoints.openapi))
    return bp


def create_discovery_blueprint(server: ROPCAuthorizationServer) -> flask.Blueprint:
    """The RFC 8414 metadata at the host root, where clients look for it."""
    endpoints = _Endpoints(server)
    bp = flask.Blueprint("ropc_discovery", __name__)
    for path in ("oauth-authorization-server", "openid-configuration"):
        _any_method(
            bp, f"/.well-known/{path}", path, endpoints.owned(endpoints.discovery)
        )
    return bp


class _Endpoints:
    """The view functions of one app, bound to its server and state."""

    def __init__(self, server: ROPCAuthorizationServer) -> None:
        self.server = server
        self.state = server.state

    def _error(self, error: OAuth2Error) -> flask.Response:
        """``error`` as Authlib renders OAuth errors: JSON, no-store headers."""
        response: flask.Response = self.server.handle_error_response(None, error)
        return response

    def owned(self, view: View) -> View:
        """``view`` marked as ours for :meth:`refuse_unusable_host`."""

        def ours() -> flask.Response:
            return view()

        return answers_bad_host(
            ours, lambda problem: self._error(InvalidRequestError(problem))
        )

    def refuse_unusable_host(self) -> t.Any:
        """Before every request of the app: answer a request for one of our
        views whose host Werkzeug cannot use, or let it through.

        Routing has already run (and may have failed on the host); the view
        has not. Other views are left to the app.
        """
        request = context.current_request()
        answer = bad_host_answer(view_for(context.current_app(), request))
        if answer is None:
            return None
        needs_host = self.state.settings.issuer is None
        problem = host_problem(request, needs_host=needs_host)
        return None if problem is None else answer(problem)

    def token(self) -> flask.Response:
        """``POST {prefix}/token``: RFC 6749 §3.2."""
        return signals.report_token_request(
            lambda: self._guarded("token endpoint", self._issue_token)
        )

    def introspect(self) -> flask.Response:
        """``POST {prefix}/introspect``: RFC 7662."""
        return self._guarded(
            "introspection endpoint",
            lambda: self.server.create_endpoint_response("introspection"),
        )

    def revoke(self) -> flask.Response:
        """``POST {prefix}/revoke``: RFC 7009."""
        return self._guarded(
            "revocation endpoint",
            lambda: self.server.create_endpoint_response("revocation"),
        )

    def _issue_token(self) -> flask.Response:
        grant_type = context.current_request().form.get("grant_type")
        if not grant_type:
            raise InvalidRequestError("Missing 'grant_type' in request.")
        if grant_type not in self.server.grant_types():
            # Authlib's own error echoes the grant type, which may hold
            # characters an error_description must not; and it sends no
            # description at all.
            raise UnsupportedGrantTypeError()
        context.current_g().ropc_grant_type = grant_type  # for token_request_handled
        return t.cast(flask.Response, self.server.create_token_response())

    def _guarded(self, name: str, handle: View) -> flask.Response:
        """Check the request, run ``handle``, and turn every failure into JSON."""
        try:
            request, settings = context.current_request(), self.state.settings
            check_form_request(request, settings, allowed_methods=("POST",))
            return handle()
        except OAuth2Error as error:
            return self._error(error)
        except Exception as error:
            return self._error(failure_error(error, f"at the {name}"))

    def jwks(self) -> flask.Response:
        """``GET {prefix}/jwks``: the public halves of our published keys."""
        if flask.request.method not in GET_METHODS:
            return self._error(MethodNotAllowedError(GET_METHODS))
        try:
            published = self.state.keyring.published_keys()
        except Exception as error:  # also a stored key no secret decrypts
            return self._error(failure_error(error, "at the JWKS endpoint"))
        response = flask.jsonify({"keys": [key.public_jwk() for key in published]})
        if not published:
            # Never let a cache keep "no keys" for max-age seconds: an API
            # that fetched it would reject our first tokens meanwhile.
            response.headers["Cache-Control"] = "no-store"
            return response
        response.cache_control.public = True
        response.cache_control.max_age = self.state.settings.jwks_max_age
        return response

    def openapi(self) -> flask.Response:
        """``GET {prefix}/openapi.json``: our OpenAPI 3.1 description, if on.

        The shipped document describes the endpoints under the default
        prefix; the served copy points its server URL at this app's issuer
        and prefix.
        """
        settings = self.state.settings
        if flask.request.method not in GET_METHODS:
            return self._error(MethodNotAllowedError(GET_METHODS))
        document = json.loads(
            resources.files("flask_ropc").joinpath("openapi.json").read_text("utf-8")
        )
        document["servers"] = [{"url": self.state.issuer() + settings.url_prefix}]
        return flask.jsonify(document)

    def discovery(self) -> flask.Response:
        """RFC 8414 authorization server metadata (also served as OpenID's)."""
        if flask.request.method not in GET_METHODS:
            return self._error(MethodNotAllowedError(GET_METHODS))
        try:
            scopes = self.state.store.clients.all_scopes()
        except DatabaseError as error:
            return self._error(failure_error(error, "at the discovery endpoint"))
        issuer, settings = self.state.issuer(), self.state.settings
        base = issuer + settings.url_prefix
        client_auth = ["client_secret_basic", "client_secret_post"]
        metadata = {
            "issuer": issuer,
            "token_endpoint": f"{base}/token",
            "jwks_uri": f"{base}/jwks",
            "introspection_endpoint": f"{base}/introspect",
            "revocation_endpoint": f"{base}/revoke",
            "grant_types_supported": self.server.grant_types(),
            # No authorization endpoint: the password grant needs none. RFC
            # 8414 still requires a non-empty list; "none" (OAuth 2.0
            # Multiple Response Type Encoding Practices §4) is the response
            # type that returns nothing, so no client expects a flow here.
            "response_types_supported": ["none"],
            "token_endpoint_auth_methods_supported": [*client_auth, "none"],
            "introspection_endpoint_auth_methods_supported": client_auth,
            "revocation_endpoint_auth_methods_supported": [*client_auth, "none"],
            "scopes_supported": scopes,
            "token_endpoint_auth_signing_alg_values_supported": [],
            "id_token_signing_alg_values_supported": [],
            "access_token_signing_alg_values_supported": list(SUPPORTED_ALGORITHMS),
            "dpop_signing_alg_values_supported": list(DPOP_ALGORITHMS),
            # The acr values our tokens carry (OpenID Connect Discovery names
            # the field), for clients answering RFC 9470 challenges.
            "acr_values_supported": [settings.acr_password, settings.acr_mfa],
        }
        response = flask.jsonify(metadata)
        response.cache_control.public = True
        response.cache_control.max_age = settings.jwks_max_age
        return response


def check_form_request(
    request: flask.Request, settings: Settings, allowed_methods: t.Sequence[str]
) -> None:
    """Reject what RFC 6749 forbids and Authlib lets through.

    Shared by the token, introspection and revocation endpoints.

    :raises OAuth2Error: the first problem found.
    """
    if request.method not in allowed_methods:
        raise MethodNotAllowedError(allowed_methods)
    if not transport_is_secure(request, request_is_secure):
        raise InvalidRequestError(
            "HTTPS is required. Behind a TLS-terminating proxy, wrap the app "
            "in werkzeug.middleware.proxy_fix.ProxyFix."
        )
    if request.mimetype != "application/x-www-form-urlencoded":
        raise InvalidRequestError(
            "The body must be application/x-www-form-urlencoded (RFC 6749 3.2)."
        )
    if any(name in BODY_ONLY_PARAMETERS for name in request.args):
        raise InvalidRequestError(
            "OAuth parameters must be sent in the request body, "
            "not in the query string."
        )
    form = _read_form(request, settings.max_body_size)
    for name in form:
        if len(form.getlist(name)) > 1:
            raise InvalidRequestError(
                f"The '{_printable(name)}' parameter is repeated (RFC 6749 3.2)."
            )
    basic = basic_credentials(request.headers.get("Authorization"))
    if basic is not None:
        # RFC 6749 §2.3: a client MUST NOT use more than one authentication
        # method per request. A body client_id that merely repeats the Basic
        # one (form-decoded or as sent) is tolerated, since common client
        # libraries send it.
        body_id = form.get("client_id")
        other_id = body_id not in (None, basic.client_id, basic.raw_client_id)
        if "client_secret" in form or other_id:
            raise InvalidRequestError(
                "The client used more than one authentication method."
            )


def _read_form(request: flask.Request, limit: int) -> t.Any:
    """Parse the form body, refusing one over ``limit`` bytes or not UTF-8.

    Werkzeug's ``max_content_length`` silently truncates a chunked body of
    unknown length, which would drop parameters after the cut; so the body is
    read in full (up to one byte past the limit) and measured first.
    """
    if request.content_length is not None and request.content_length > limit:
        raise InvalidRequestError("The request body is too large.")
    request.max_content_length = limit + 1
    try:
        data = request.get_data(cache=True)
    except RequestEntityTooLarge:
        raise InvalidRequestError("The request body is too large.") from None
    if len(data) > limit:
        raise InvalidRequestError("The request body is too large.")
    try:
        data.decode("utf-8")
    except UnicodeDecodeError:
        raise InvalidRequestError("The request body is not valid UTF-8.") from None
    return request.form


def _printable(name: str) -> str:
    """A parameter name fit for an error description, or a placeholder."""
    if name.isascii() and name.isprintable() and len(name) <= 40:
        if '"' not in name and "\\" not in name:
            return name
    return "?"
