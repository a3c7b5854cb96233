"""Every exception Flask-ROPC defines, and the Authlib errors it raises.

A leaf: imports nothing of ours. It is one of the three modules that may
import Authlib; the others take Authlib's error classes from here.

.. code-block:: text

    ROPCError                      programmer or deployment mistakes
    ├── ConfigurationError         a bad ROPC_* value, a missing validator
    ├── ClientNotFoundError        the admin API was given an unknown client id
    ├── KeysChangedError           another key command changed the keys meanwhile
    ├── SecretChangedError         another rotation changed the secret meanwhile
    └── BreachLookupError          a breached-password range could not be read

    Throttled                      internal: an attempt refused before the validator
    RefreshTokenReused             internal: a refresh token was exchanged first

    authlib OAuth2Error            errors sent to OAuth clients as RFC 6749 JSON
    ├── (Authlib's own) InvalidRequestError, InvalidGrantError,
    │   InvalidScopeError, UnauthorizedClientError
    ├── ServerError                500 server_error (a validator raised)
    ├── TemporarilyUnavailableError  503 temporarily_unavailable (database down)
    ├── MethodNotAllowedError      405, the endpoint takes POST only
    ├── UnsupportedGrantTypeError  400 unsupported_grant_type, fixed text
    ├── ThrottledError             429 slow_down with Retry-After
    ├── InvalidClientAuthError     401 invalid_client with one uniform text
    ├── ValidatorError             whatever error a validator chose to return
    ├── MissingTokenError          401 with a bare Bearer challenge (RFC 6750)
    ├── InvalidBearerTokenError    401 invalid_token
    ├── InvalidBearerRequestError  400 invalid_request at a protected view
    ├── DPoPError                  400/401 invalid_dpop_proof, use_dpop_nonce...
    ├── InsufficientScopeError     403 insufficient_scope
    └── (step_up) InsufficientUserAuthenticationError  401, RFC 9470

Wire errors reuse Authlib's :class:`~authlib.oauth2.OAuth2Error` so that its
server renders them; messages never contain a secret, password or token.
"""

from __future__ import annotations

import logging
import typing as t

from authlib.oauth2 import OAuth2Error as OAuth2Error
from authlib.oauth2.base import invalid_error_characters
from authlib.oauth2.rfc6749 import InvalidGrantError as InvalidGrantError
from authlib.oauth2.rfc6749 import InvalidRequestError as InvalidRequestError
from authlib.oauth2.rfc6749 import InvalidScopeError as InvalidScopeError
from authlib.oauth2.rfc6749 import UnauthorizedClientError as UnauthorizedClientError

log = logging.getLogger("flask_ropc")


class ROPCError(Exception):
    """Base class for mistakes in how Flask-ROPC is used or configured."""


class ConfigurationError(ROPCError):
    """A configuration value or a registered callback is wrong.

    The message names the offending ``ROPC_*`` key or callback and says how to
    fix it.
    """


class ClientNotFoundError(ROPCError, LookupError):
    """No OAuth client has the given ``client_id``."""

    def __init__(self, client_id: str) -> None:
        super().__init__(f"no client with id {client_id!r}")
        #: The id that was looked up.
        self.client_id = client_id


class KeysChangedError(ROPCError):
    """Another key command changed the signing keys while this one ran."""


class SecretChangedError(ROPCError):
    """Another rotation changed a client's secret while this one ran.

    Nothing was changed: the secret the other rotation set is the one that
    works.
    """

    def __init__(self, client_id: str) -> None:
        super().__init__(
            f"the secret of client {client_id!r} was changed by another "
            "rotation at the same time; nothing was changed, and the secret "
            "that rotation printed is the one that works"
        )
        #: The client whose secret was being rotated.
        self.client_id = client_id


class BreachLookupError(ROPCError):
    """A breached-password lookup (:mod:`flask_ropc.breach`) failed.

    The range API timed out, answered with an error, redirected, or sent
    something that is not a range. The message says which, and never holds
    the password, its hash or the prefix sent.
    """


class Throttled(Exception):
    """An attempt was refused before the validator ran (internal)."""

    def __init__(self, retry_after: int, scope: str) -> None:
        super().__init__(f"throttled by the {scope} budget")
        #: Seconds the client should wait.
        self.retry_after = retry_after
        #: Which budget: ``"username"`` (the username from this network),
        #: ``"account"`` (the username from anywhere), ``"ip"``, ``"client"``,
        #: or ``"in_flight"`` (attempts still running fill the budget).
        self.scope = scope


class RefreshTokenReused(Exception):
    """The refresh token was exchanged by another request first (internal)."""


class ServerError(OAuth2Error):
    """500 ``server_error``: something failed on our side (RFC 6749 §5.2).

    The body never carries the exception text: it may hold user input.
    """

    error = "server_error"
    status_code = 500
    description = "The server encountered an unexpected error."


class TemporarilyUnavailableError(OAuth2Error):
    """503 ``temporarily_unavailable``: the database or another store is down."""

    error = "temporarily_unavailable"
    status_code = 503
    description = "The service is temporarily unavailable; try again later."

    def get_headers(self) -> list[tuple[str, str]]:
        headers: list[tuple[str, str]] = super().get_headers()
        headers.append(("Retry-After", "5"))
        return headers


class MethodNotAllowedError(OAuth2Error):
    """405 for a method an endpoint does not serve, with an ``Allow`` header."""

    error = "invalid_request"
    status_code = 405

    def __init__(self, allowed: t.Sequence[str]) -> None:
        super().__init__(description=f"This endpoint accepts {', '.join(allowed)}.")
        self.allowed = list(allowed)

    def get_headers(self) -> list[tuple[str, str]]:
        headers: list[tuple[str, str]] = super().get_headers()
        headers.append(("Allow", ", ".join(self.allowed)))
        return headers


class ThrottledError(OAuth2Error):
    """429 for a throttled password attempt, with ``Retry-After``.

    ``slow_down`` is the token-endpoint error RFC 8628 §3.5 registered for
    "wait longer before trying again"; RFC 6749 has no code for it. The
    description says which budget refused the attempt, truthfully: attempts
    still in flight are never called failures.
    """

    error = "slow_down"
    status_code = 429

    #: The description per budget (see :class:`Throttled`), ``{}`` the wait.
    DESCRIPTIONS: t.ClassVar[dict[str, str]] = {
        "username": "Too many failed attempts; try again in {} s.",
        "ip": "Too many failed attempts from this network; try again in {} s.",
        "client": "Too many failed attempts by this client; try again in {} s.",
        "account": "Too many failed attempts for this account; try again in {} s.",
        "in_flight": "Too many attempts in progress; try again in {} s.",
        "mfa": "Too many wrong codes for this account; try again in {} s.",
    }

    def __init__(self, retry_after: int, scope: str = "username") -> None:
        text = self.DESCRIPTIONS.get(scope, self.DESCRIPTIONS["username"])
        # Authlib checks a description's characters one by one, a tenth of a
        # refused attempt's CPU; ours are fixed (tests/test_throttle.py checks
        # them) but for a whole number.
        super().__init__()
        self.description = text.format(int(retry_after))
        self.args = (f"{self.error}: {self.description}",)  # as Authlib's
        #: Seconds to wait, also sent as ``Retry-After``.
        self.retry_after = retry_after

    def get_headers(self) -> list[tuple[str, str]]:
        headers: list[tuple[str, str]] = super().get_headers()
        headers.append(("Retry-After", str(self.retry_after)))
        return headers


class UnsupportedGrantTypeError(OAuth2Error):
    """400 ``unsupported_grant_type`` with a fixed description.

    Authlib's version sends no description and would quote the grant type.
    """

    error = "unsupported_grant_type"
    description = "This grant type is not supported by this endpoint."


class InvalidClientAuthError(OAuth2Error):
    """401 ``invalid_client`` with the same text for every cause.

    An unknown client, a wrong secret, a disabled client and a public client
    presenting a secret all look alike, so the endpoint is no oracle for which
    client ids exist. RFC 6749 §5.2 requires 401 with ``WWW-Authenticate``
    matching the scheme when the client used HTTP Basic; we always answer 401
    with ``WWW-Authenticate: Basic`` since a 401 must name a scheme (RFC 9110
    §15.5.2) and Basic is the one RFC 6749 §2.3.1 makes mandatory.
    """

    error = "invalid_client"
    status_code = 401
    description = "Client authentication failed."

    def get_headers(self) -> list[tuple[str, str]]:
        headers: list[tuple[str, str]] = super().get_headers()
        headers.append(("WWW-Authenticate", 'Basic realm="token", charset="UTF-8"'))
        return headers


class ValidatorError(OAuth2Error):
    """An error chosen by the application's password validator.

    Carries the validator's extra response fields, which may not overwrite the
    standard ``error``, ``error_description`` and ``error_uri``.
    """

    def __init__(
        self,
        error: str,
        description: str | None,
        extra: t.Mapping[str, t.Any],
        status_code: int,
    ) -> None:
        super().__init__(description=description, error=error, status_code=status_code)
        self.extra = dict(extra)

    def get_body(self) -> list[tuple[str, t.Any]]:
        body: list[tuple[str, t.Any]] = super().get_body()
        body.extend(self.extra.items())
        return body


_SWAPS = {ord('"'): "'", ord("\\"): "/"}


def safe_description(text: str | None) -> str | None:
    """Make ``text`` fit RFC 6749 §5.2's ``error_description`` character set.

    Authlib's :class:`OAuth2Error` raises :class:`ValueError` for a description
    containing ``"``, ``\\`` or any non-ASCII character, which would turn a
    validator's friendly message into a 500. We replace those characters
    instead (``"`` becomes ``'``, ``\\`` becomes ``/``, anything else ``?``)
    and log a warning so the application can fix its text.
    """
    if not text:
        return text
    if not invalid_error_characters(text):
        return text
    swapped = text.translate(_SWAPS)
    replaced = "".join(c if 0x20 <= ord(c) <= 0x7E else "?" for c in swapped)
    log.warning(
        "error_description contained characters RFC 6749 forbids; "
        "they were replaced: %r",
        replaced,
    )
    return replaced


class MissingTokenError(OAuth2Error):
    """401 for a request without bearer credentials: no error code (§3.1)."""

    error = "missing_token"  # never sent; RFC 6750 §3.1 says send no code
    status_code = 401

    def get_body(self) -> list[tuple[str, t.Any]]:
        return []

    def get_headers(self) -> list[tuple[str, str]]:
        return [*super().get_headers(), ("WWW-Authenticate", "Bearer")]


class InvalidBearerTokenError(OAuth2Error):
    """401 ``invalid_token``: unknown, expired, revoked or malformed."""

    error = "invalid_token"
    status_code = 401
    description = "The access token is invalid, expired or revoked."

    def get_headers(self) -> list[tuple[str, str]]:
        challenge = (
            f'Bearer error="invalid_token", error_description="{self.description}"'
        )
        return [*super().get_headers(), ("WWW-Authenticate", challenge)]


class InvalidBearerRequestError(OAuth2Error):
    """400 ``invalid_request`` at a protected view: a malformed request
    (RFC 6750 §3.1), such as a Host header Werkzeug cannot use."""

    error = "invalid_request"
    status_code = 400

    def get_headers(self) -> list[tuple[str, str]]:
        headers: list[tuple[str, str]] = super().get_headers()
        challenge = 'Bearer error="invalid_request"'
        if self.description:
            challenge += f', error_description="{self.description}"'
        headers.append(("WWW-Authenticate", challenge))
        return headers


class InsufficientScopeError(OAuth2Error):
    """403 ``insufficient_scope``, naming the scope needed."""

    error = "insufficient_scope"
    status_code = 403
    description = "The access token lacks the scope this resource requires."

    def __init__(self, required: t.Sequence[str]) -> None:
        super().__init__()
        self.required = " ".join(required)

    def get_headers(self) -> list[tuple[str, str]]:
        challenge = f'Bearer error="insufficient_scope", scope="{self.required}"'
        return [*super().get_headers(), ("WWW-Authenticate", challenge)]


class DPoPError(OAuth2Error):
    """An RFC 9449 error (``invalid_dpop_proof``, ``use_dpop_nonce``...) with
    its own headers (``DPoP-Nonce``, ``WWW-Authenticate: DPoP``)."""

    def __init__(self, error: str, text: str, status: int, headers: t.Any) -> None:
        super().__init__(description=text, error=error, status_code=status)
        self.headers: list[tuple[str, str]] = headers

    def get_headers(self) -> list[tuple[str, str]]:
        return [*super().get_headers(), *self.headers]
