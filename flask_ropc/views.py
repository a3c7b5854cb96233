"""The blueprint with our HTTP endpoints, and the checks made before Authlib.

Authlib parses a token request leniently: it reads ``grant_type``, ``scope``
and ``client_id`` from the query string and lets them win over the body,
takes the first of repeated parameters, accepts any content type, and turns
plain ``http://`` to a remote host into a 500. :func:`check_form_request`
rejects all of that with RFC 6749 §5.2 errors before Authlib sees the request.
"""

from __future__ import annotations

import json
import logging
import traceback
import typing as t
from importlib import resources

import flask
import sqlalchemy.exc
from authlib.common.security import is_secure_transport
from authlib.oauth2 import OAuth2Error
from authlib.oauth2.rfc6749 import InvalidRequestError
from werkzeug.exceptions import RequestEntityTooLarge
from werkzeug.routing import Rule

from .client_auth import parse_basic_authorization
from .errors import InvalidClientAuthError
from .errors import MethodNotAllowedError
from .errors import ServerError
from .errors import TemporarilyUnavailableError
from .errors import UnsupportedGrantTypeError
from .keys import SUPPORTED_ALGORITHMS

if t.TYPE_CHECKING:  # pragma: no cover
    from .extension import _State

log = logging.getLogger("flask_ropc")

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
    }
)

#: Database errors that mean "the database is unreachable right now" rather
#: than "our code is wrong": they become 503, everything else 500.
UNAVAILABLE_ERRORS = (
    sqlalchemy.exc.OperationalError,
    sqlalchemy.exc.InterfaceError,
    sqlalchemy.exc.TimeoutError,
    sqlalchemy.exc.DisconnectionError,
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
        state.app.url_map.add(Rule(prefix + path, endpoint=name))
        state.app.view_functions[name] = view

    bp.record(register)


def create_blueprint(url_prefix: str) -> flask.Blueprint:
    """The ``ropc`` blueprint, mounted at ``url_prefix``."""
    bp = flask.Blueprint("ropc", __name__, url_prefix=url_prefix or None)
    _any_method(bp, "/token", "token", token_endpoint)
    _any_method(bp, "/introspect", "introspect", introspection_endpoint)
    _any_method(bp, "/revoke", "revoke", revocation_endpoint)
    _any_method(bp, "/jwks", "jwks", jwks_endpoint)
    _any_method(bp, "/openapi.json", "openapi", openapi_endpoint)
    return bp


def create_discovery_blueprint() -> flask.Blueprint:
    """The RFC 8414 metadata at the host root, where clients look for it."""
    bp = flask.Blueprint("ropc_discovery", __name__)
    for path in ("oauth-authorization-server", "openid-configuration"):
        _any_method(bp, f"/.well-known/{path}", path, discovery_endpoint)
    return bp


def _error_response(error: OAuth2Error) -> flask.Response:
    """``error`` as Authlib renders OAuth errors: JSON, no-store headers."""
    from .extension import get_state

    response: flask.Response = get_state().server.handle_error_response(None, error)
    return response


def token_endpoint() -> flask.Response:
    """``POST {prefix}/token``: RFC 6749 §3.2."""
    return _guarded("token endpoint", _issue_token)


def introspection_endpoint() -> flask.Response:
    """``POST {prefix}/introspect``: RFC 7662."""
    return _guarded(
        "introspection endpoint",
        lambda state: state.server.create_endpoint_response("introspection"),
    )


def revocation_endpoint() -> flask.Response:
    """``POST {prefix}/revoke``: RFC 7009."""
    return _guarded(
        "revocation endpoint",
        lambda state: state.server.create_endpoint_response("revocation"),
    )


def _issue_token(state: _State) -> flask.Response:
    grant_type = flask.request.form.get("grant_type")
    if not grant_type:
        raise InvalidRequestError("Missing 'grant_type' in request.")
    if grant_type not in state.server.grant_types():
        # Authlib's own error echoes the grant type, which may hold
        # characters an error_description must not; and it sends no
        # description at all.
        raise UnsupportedGrantTypeError()
    response: flask.Response = state.server.create_token_response()
    return response


def _guarded(name: str, handle: t.Callable[[_State], flask.Response]) -> flask.Response:
    """Check the request, run ``handle``, and turn every failure into JSON."""
    from .extension import get_state

    state = get_state()
    try:
        check_form_request(flask.request, state, allowed_methods=("POST",))
        return handle(state)
    except OAuth2Error as error:
        return _error_response(error)
    except UNAVAILABLE_ERRORS:
        log_exception(f"database unavailable at the {name}")
        return _error_response(TemporarilyUnavailableError())
    except Exception:
        log_exception(f"unexpected error at the {name}")
        return _error_response(ServerError())


def jwks_endpoint() -> flask.Response:
    """``GET {prefix}/jwks``: the public halves of our published keys."""
    from .extension import get_state

    if flask.request.method not in GET_METHODS:
        return _error_response(MethodNotAllowedError(GET_METHODS))
    state = get_state()
    try:
        keys = [key.public_jwk() for key in state.keyring.published_keys()]
    except UNAVAILABLE_ERRORS:
        log_exception("database unavailable at the JWKS endpoint")
        return _error_response(TemporarilyUnavailableError())
    response = flask.jsonify({"keys": keys})
    response.cache_control.public = True
    response.cache_control.max_age = state.settings.jwks_max_age
    return response


def openapi_endpoint() -> flask.Response:
    """``GET {prefix}/openapi.json``: our OpenAPI 3.1 description, if enabled.

    The shipped document describes the endpoints under the default prefix;
    the served copy points its server URL at this app's issuer and prefix.
    """
    from .extension import get_state

    state = get_state()
    if not state.settings.openapi_enabled:
        flask.abort(404)
    if flask.request.method not in GET_METHODS:
        return _error_response(MethodNotAllowedError(GET_METHODS))
    document = json.loads(
        resources.files("flask_ropc").joinpath("openapi.json").read_text("utf-8")
    )
    document["servers"] = [{"url": state.issuer() + state.settings.url_prefix}]
    return flask.jsonify(document)


def discovery_endpoint() -> flask.Response:
    """RFC 8414 authorization server metadata (also served as OpenID's)."""
    from .extension import get_state

    if flask.request.method not in GET_METHODS:
        return _error_response(MethodNotAllowedError(GET_METHODS))
    state = get_state()
    try:
        scopes = state.store.all_scopes()
    except UNAVAILABLE_ERRORS:
        log_exception("database unavailable at the discovery endpoint")
        return _error_response(TemporarilyUnavailableError())
    issuer = state.issuer()
    base = issuer + state.settings.url_prefix
    client_auth = ["client_secret_basic", "client_secret_post"]
    metadata = {
        "issuer": issuer,
        "token_endpoint": f"{base}/token",
        "jwks_uri": f"{base}/jwks",
        "introspection_endpoint": f"{base}/introspect",
        "revocation_endpoint": f"{base}/revoke",
        "grant_types_supported": state.server.grant_types(),
        # No authorization endpoint: the password grant needs none.
        "response_types_supported": [],
        "token_endpoint_auth_methods_supported": [*client_auth, "none"],
        "introspection_endpoint_auth_methods_supported": client_auth,
        "revocation_endpoint_auth_methods_supported": [*client_auth, "none"],
        "scopes_supported": scopes,
        "token_endpoint_auth_signing_alg_values_supported": [],
        "id_token_signing_alg_values_supported": [],
        "access_token_signing_alg_values_supported": list(SUPPORTED_ALGORITHMS),
    }
    response = flask.jsonify(metadata)
    response.cache_control.public = True
    response.cache_control.max_age = state.settings.jwks_max_age
    return response


def check_form_request(
    request: flask.Request, state: _State, allowed_methods: t.Sequence[str]
) -> None:
    """Reject what RFC 6749 forbids and Authlib lets through.

    Shared by the token, introspection and revocation endpoints.

    :raises OAuth2Error: the first problem found.
    """
    if request.method not in allowed_methods:
        raise MethodNotAllowedError(allowed_methods)
    if not is_secure_transport(request.url):
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
    form = _read_form(request, state.settings.max_body_size)
    for name in form:
        if len(form.getlist(name)) > 1:
            raise InvalidRequestError(
                f"The '{_printable(name)}' parameter is repeated (RFC 6749 3.2)."
            )
    basic = parse_basic_authorization(request.headers.get("Authorization"))
    if basic is not None:
        # RFC 6749 §2.3: a client MUST NOT use more than one authentication
        # method per request. A body client_id that merely repeats the Basic
        # one is tolerated, since common client libraries send it.
        body_id = form.get("client_id")
        if "client_secret" in form or (body_id is not None and body_id != basic[0]):
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


def log_exception(message: str) -> None:
    """Log the exception being handled without any secret it may contain.

    Exception texts can quote user input (a validator raising
    ``ValueError(password)``, a driver error echoing parameters), so every
    credential from the current request is replaced before logging.
    """
    text = "".join(traceback.format_exc())
    for secret in request_secrets(flask.request):
        text = text.replace(secret, "[redacted]")
    log.error("%s\n%s", message, text)


def request_secrets(request: flask.Request) -> list[str]:
    """Every credential the current request carries, longest first."""
    found: list[str] = []
    try:
        form = request.form
    except Exception:  # a body we could not parse holds nothing we read
        form = None
    if form is not None:
        for name in ("password", "client_secret", "refresh_token", "token"):
            found.extend(value for value in form.getlist(name) if value)
    header = request.headers.get("Authorization", "")
    if header:
        found.append(header.partition(" ")[2])
        try:
            basic = parse_basic_authorization(header)
        except InvalidClientAuthError:
            basic = None
        if basic is not None and basic[1]:
            found.append(basic[1])
    # Longest first, so a secret that contains another is replaced whole.
    return sorted({s for s in found if len(s) >= 4}, key=len, reverse=True)
