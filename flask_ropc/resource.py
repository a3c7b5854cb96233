"""Protecting views with bearer tokens (RFC 6750), and ``current_token``.

Built on Authlib's Flask ``ResourceProtector``, with its non-standard answers
replaced:

* no credentials → 401 ``WWW-Authenticate: Bearer`` with no error code
  (RFC 6750 §3.1), where Authlib sends its own ``missing_authorization``;
* insufficient scope → 403 with ``error="insufficient_scope"`` and the needed
  ``scope`` in ``WWW-Authenticate`` (§3.1), which Authlib leaves out;
* a login too weak or too old for the view's ``acr``/``max_age`` → 401
  ``insufficient_user_authentication`` (RFC 9470, :mod:`~flask_ropc.step_up`);
* a store outage → 503 ``temporarily_unavailable`` instead of a 500, and
  missing tables a JSON 500 ``server_error`` (see :mod:`flask_ropc.guards`);
* a Host header Werkzeug cannot use → 400 ``invalid_request`` with its
  ``WWW-Authenticate`` (§3.1), where Werkzeug and Authlib answer with an HTML
  400 or a 500 (see :mod:`~flask_ropc.hosts`).

One of the three modules that import Authlib. Imports ``token_service``,
``step_up``, ``guards``, ``state`` and leaves (``hosts``).
"""

from __future__ import annotations

import functools
import re
import typing as t
from collections.abc import Callable

import flask
from authlib.integrations.flask_oauth2 import ResourceProtector
from authlib.integrations.flask_oauth2.errors import raise_http_exception
from authlib.integrations.flask_oauth2.requests import FlaskJsonPayload
from authlib.integrations.flask_oauth2.requests import FlaskJsonRequest
from authlib.integrations.flask_oauth2.signals import token_authenticated
from authlib.oauth2 import OAuth2Error
from authlib.oauth2.rfc6749.resource_protector import TokenValidator
from werkzeug.local import LocalProxy

from . import dpop_binding
from . import step_up
from .errors import InsufficientScopeError
from .errors import InvalidBearerRequestError
from .errors import InvalidBearerTokenError
from .errors import MissingTokenError
from .guards import DatabaseError
from .guards import failure_error
from .hosts import answers_bad_host
from .hosts import host_problem
from .state import get_state
from .token_service import load_access_token
from .tokens import AccessToken

F = t.TypeVar("F", bound=Callable[..., t.Any])

# RFC 6750 §2.1: b64token = 1*( ALPHA / DIGIT / "-" / "." / "_" / "~" / "+" /
# "/" ) *"="
_B64TOKEN = re.compile(r"[A-Za-z0-9\-._~+/]+=*")


class _BearerValidator(TokenValidator):
    """Looks tokens up through the current app's token format, then checks
    how they were presented (a DPoP-bound token needs the DPoP scheme)."""

    TOKEN_TYPE = "bearer"

    def authenticate_token(self, token_string: str) -> AccessToken | None:
        if not _B64TOKEN.fullmatch(token_string):
            return None
        state = get_state()
        token = load_access_token(state, token_string)
        if token is not None:
            dpop_binding.check_presentation(
                state, flask.request, self.TOKEN_TYPE, token_string, token
            )
        return token

    def validate_token(
        self,
        token: AccessToken | None,
        scopes: list[str] | None,
        request: t.Any,
        **kwargs: t.Any,
    ) -> None:
        if token is None and self.TOKEN_TYPE == "dpop":
            raise dpop_binding.invalid_token(
                get_state(), InvalidBearerTokenError.description
            )
        if token is None:
            raise InvalidBearerTokenError()
        required = [s for scope in scopes or () for s in scope.split()]
        if not set(required) <= set(token.scopes):
            raise InsufficientScopeError(required)


class _DPoPValidator(_BearerValidator):
    """``Authorization: DPoP`` (RFC 9449 §7.1): a bound token and its proof."""

    TOKEN_TYPE = "dpop"


class BearerProtector(ResourceProtector):
    """Authlib's protector with RFC 6750's error answers, accepting DPoP
    (RFC 9449) too.

    Internal: use :meth:`ROPC.require_token`.
    """

    def __init__(self) -> None:
        super().__init__()
        self.register_token_validator(_BearerValidator())
        self.register_token_validator(_DPoPValidator())

    def raise_error_response(self, error: OAuth2Error) -> t.NoReturn:
        """Authlib's error response, with the other scheme's challenge too."""
        headers = [*error.get_headers(), *dpop_binding.extra_challenges(error)]
        body = flask.json.dumps(dict(error.get_body()))
        raise_http_exception(error.status_code, body, headers)
        raise AssertionError("unreachable")  # pragma: no cover

    def parse_request_authorization(self, request: t.Any) -> tuple[TokenValidator, str]:
        """Find the bearer or DPoP token in the ``Authorization`` header.

        A missing header or another scheme (say Basic) means the request
        carries no bearer credentials at all.
        """
        header = request.headers.get("Authorization") or ""
        scheme, _, token = header.strip().partition(" ")
        if scheme.lower() not in ("bearer", "dpop"):
            raise MissingTokenError()
        validator: TokenValidator = self.get_token_validator(scheme.lower())
        return validator, token.strip()

    def protect(
        self,
        scope: str | t.Sequence[str] | None,
        acr: str | t.Sequence[str] | None = None,
        max_age: int | None = None,
    ) -> Callable[[F], F]:
        """A decorator requiring a live token with every scope in ``scope``
        and, with ``acr`` or ``max_age``, a strong or recent enough login
        (see :mod:`~flask_ropc.step_up`).

        :raises TypeError: a wrong type of ``acr`` or ``max_age``.
        :raises ValueError: an empty ``acr`` or a negative ``max_age``.
        """
        if isinstance(scope, str):
            scopes = scope.split()
        else:
            scopes = [s for item in scope or () for s in item.split()]
        step = step_up.requirement(acr, max_age)

        def decorator(view: F) -> F:
            @functools.wraps(view)
            def wrapper(*args: t.Any, **kwargs: t.Any) -> t.Any:
                self.authenticate(scopes, step)
                return flask.current_app.ensure_sync(view)(*args, **kwargs)

            # The blueprint's host check answers for us, even when routing
            # failed on the host and this wrapper never runs.
            return t.cast(F, answers_bad_host(wrapper, self._refuse_host))

        return decorator

    def acquire_token(self, scopes: t.Any = None, **kwargs: t.Any) -> t.Any:
        """Authlib's ``acquire_token``, on a request whose ``uri`` is built
        only when read (nothing does; Werkzeug rebuilds it per request)."""
        kwargs["scopes"] = scopes
        for claim, value in kwargs.items():
            if isinstance(value, str):
                kwargs[claim] = [value]
        token = self.validate_request(request=_JsonRequest(flask.request), **kwargs)
        token_authenticated.send(self, token=token)
        flask.g.authlib_server_oauth2_token = token
        return token

    def _refuse_host(self, problem: str) -> None:
        """Raise the 400 ``invalid_request`` for an unusable host."""
        self.raise_error_response(InvalidBearerRequestError(problem))

    def authenticate(
        self, scopes: list[str], step: step_up.StepUp | None = None
    ) -> AccessToken:
        """Validate the current request's token or raise an HTTP error."""
        # Again here for views whose decorators hid the mark (no
        # functools.wraps, a decorated MethodView method): Authlib reads
        # request.url, which raises on such a host.
        needs_host = get_state().settings.issuer is None
        problem = host_problem(flask.request, needs_host=needs_host)
        if problem is not None:
            self._refuse_host(problem)
        try:
            # Authlib ORs list items and ANDs words within one item: one item
            # holding every required scope means "all of them".
            token: AccessToken = self.acquire_token([" ".join(scopes)])
            if step is not None:
                # Live and scoped: only then does the login's strength count.
                step_up.check(step, token, get_state().store.now())
        except OAuth2Error as error:
            self.raise_error_response(error)
        except DatabaseError as error:
            self.raise_error_response(
                failure_error(error, "while checking a bearer token")
            )
        flask.g.ropc_token = token
        return token


class _JsonRequest(FlaskJsonRequest):
    """Authlib's Flask request for resource servers, ``uri`` made if read."""

    def __init__(self, request: flask.Request) -> None:
        self._request = request
        self.method, self.headers = request.method, request.headers
        self.payload = FlaskJsonPayload(request)

    @property
    def uri(self) -> str:
        """The request's URL."""
        return str(self._request.url)


def _current_token() -> AccessToken | None:
    token: AccessToken | None = flask.g.get("ropc_token")
    return token


#: The :class:`~flask_ropc.tokens.AccessToken` of the current request inside a
#: view decorated with :meth:`ROPC.require_token`; ``None`` elsewhere.
current_token: AccessToken = t.cast(AccessToken, LocalProxy(_current_token))
