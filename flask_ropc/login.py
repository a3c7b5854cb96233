"""The password grant (RFC 6749 §4.3) as plain functions.

:func:`check` runs everything before the tokens: :func:`prepare` the grant
type, the scope, the credentials' shape and a place in the throttling
budgets; :func:`judge` the app's validator (the seam where a verdict other
than success or refusal would branch). :func:`issue` stores the tokens and
settles the throttle in the same transaction. Departures from Authlib's
grant, each for a reason:

* the order of checks is client authentication, grant type, scope, and only
  then the password, as IdentityServer does; Authlib checks the password
  before the scope, which gives a client that may not have a scope a password
  oracle;
* a disallowed scope is rejected (``invalid_scope``), not silently dropped;
* wrong credentials give ``invalid_grant`` (RFC 6749 §5.2), not Authlib's
  ``invalid_request``;
* the application's validator is called with a :class:`PasswordRequest` and
  may answer with claims, extra response fields or its own error.

Imports ``token_service``, ``throttle``, ``state`` and leaves; no Authlib.
"""

from __future__ import annotations

import dataclasses
import functools
import ipaddress
import logging
import secrets
import time
import typing as t

import flask

from . import signals
from .auth_context import password_context
from .errors import InvalidGrantError
from .errors import InvalidRequestError
from .errors import ServerError
from .errors import Throttled
from .errors import ThrottledError
from .errors import UnauthorizedClientError
from .errors import ValidatorError
from .errors import safe_description
from .models import Client
from .scopes import resolve_scopes
from .state import State
from .throttle import Attempt
from .token_service import RefreshPlan
from .token_service import announce_issued
from .token_service import issue_tokens
from .validation import INVALID_CREDENTIALS
from .validation import GrantResult
from .validation import PasswordRequest
from .validation import ThrottleRequest

log = logging.getLogger("flask_ropc")

GRANT_TYPE = "password"


@dataclasses.dataclass(frozen=True)
class PasswordLogin:
    """A password-grant request that passed every check, ready for tokens."""

    client: Client
    #: The ``username`` as sent (the throttle normalises it itself).
    username: str
    scopes: tuple[str, ...]
    #: The validator's successful verdict.
    result: GrantResult
    #: The throttle places still to settle in the token transaction, if any.
    attempt: Attempt | None
    #: The end user's IP, as events report it.
    client_ip: str | None


@dataclasses.dataclass(frozen=True)
class PendingLogin:
    """A password-grant request checked up to the validator, its throttle
    place reserved: what :func:`judge` decides on."""

    client: Client
    username: str
    password: str = dataclasses.field(repr=False)
    scopes: tuple[str, ...]
    attempt: Attempt | None
    client_ip: str | None
    request: flask.Request = dataclasses.field(repr=False)


def check(
    state: State, client: Client, form: t.Mapping[str, str], request: flask.Request
) -> PasswordLogin:
    """Check a password-grant request of an authenticated client:
    :func:`prepare`, then :func:`judge`.

    :raises OAuth2Error: the answer for the first problem found.
    """
    return judge(state, prepare(state, client, form, request))


def prepare(
    state: State, client: Client, form: t.Mapping[str, str], request: flask.Request
) -> PendingLogin:
    """Every check before the validator, and a place in the throttling
    budgets (reserved, committed).

    :raises OAuth2Error: the answer for the first problem found.
    """
    if not client.check_grant_type(GRANT_TYPE):
        raise UnauthorizedClientError(
            "The client is not allowed to use the password grant."
        )
    settings = state.settings
    scopes = resolve_scopes(
        form.get("scope"),
        client.scopes,
        offline_scope=settings.offline_access_scope,
        offline_allowed=client.offline_access,
    )
    username, password = _credentials(state, form)
    client_ip = _end_user_ip(state, client, request)
    attempt = _begin_attempt(state, username, client, client_ip, request)
    return PendingLogin(client, username, password, scopes, attempt, client_ip, request)


def judge(state: State, pending: PendingLogin) -> PasswordLogin:
    """Run the app's validator on a prepared login; settle a refusal.

    :raises OAuth2Error: the validator's refusal (or its own error).
    """
    client, username, attempt = pending.client, pending.username, pending.attempt
    settings, client_ip = state.settings, pending.client_ip
    password_request = PasswordRequest(
        username=username,
        password=pending.password,
        client=client,
        scopes=pending.scopes,
        request=pending.request,
    )
    throttle = state.throttle
    started = time.perf_counter()
    try:
        result = state.callbacks.run_validator(password_request)
    except Exception:
        _announce_validated(client, client_ip, started, None)
        # A crash says nothing about the password: give the place back.
        if throttle is not None:
            throttle.failed(attempt, counts=False)
        raise
    _announce_validated(client, client_ip, started, result)
    if not result.is_success:
        if throttle is not None:
            throttle.failed(attempt, counts=result.counts_as_failure)
        signals.send(
            signals.password_grant_failed,
            client_ip=client_ip,
            client_id=client.client_id,
            username=signals.username_for_event(username, settings.event_username),
            error=result.error_code,
            reason=result.reason,
        )
        if result.reason:
            log.info(
                "password grant refused for client %s: %s (%s)",
                client.client_id,
                result.error_code,
                result.reason,
            )
        raise _error_from(result)
    if throttle is not None and not throttle.settles_in_database:
        throttle.succeeded(attempt)
        attempt = None
    # Database counters are settled in the transaction that stores the
    # tokens (see issue): one commit per login.
    return PasswordLogin(client, username, pending.scopes, result, attempt, client_ip)


def issue(
    state: State, login: PasswordLogin, *, dpop_jkt: str | None = None
) -> dict[str, t.Any]:
    """Issue the tokens of a checked login, with the validator's extra fields.

    A refresh token comes with them when the client has offline access
    and asked for the offline scope; it starts a new family. ``dpop_jkt``
    (a verified proof's key) binds the access token, and a public client's
    refresh token (RFC 9449 §5).
    """
    client, result, scopes = login.client, login.result, login.scopes
    assert result.subject is not None
    now = state.store.now()
    refresh = None
    if client.offline_access and state.settings.offline_access_scope in scopes:
        absolute = (
            client.refresh_token_absolute_lifetime
            or state.settings.refresh_token_absolute_lifetime
        )
        refresh = RefreshPlan(
            family_id=secrets.token_hex(16),
            scope=" ".join(scopes),
            family_expires_at=now + absolute,
            dpop_jkt=dpop_jkt if client.is_public else None,
        )
    throttle, attempt = state.throttle, login.attempt
    settle = None
    if throttle is not None and attempt is not None:
        settle = functools.partial(throttle.settle_in, attempt=attempt)
    try:
        body = issue_tokens(
            state,
            client=client,
            subject=result.subject,
            scopes=scopes,
            claims=result.claims,
            grant_type=GRANT_TYPE,
            auth_context=password_context(state.settings.acr_password, now),
            now=now,
            refresh=refresh,
            also=settle,
            dpop_jkt=dpop_jkt,
        )
    except Exception:
        # No token, but the password was right: it must not count as a
        # failure against the user (the grant's transaction rolled back).
        if throttle is not None and attempt is not None:
            throttle.succeeded(attempt)
        raise
    # GrantResult.success() already refused reserved names in extra.
    body.update(result.extra)
    announce_issued(
        GRANT_TYPE, client, result.subject, scopes, refresh, client_ip=login.client_ip
    )
    return body


def _credentials(state: State, form: t.Mapping[str, str]) -> tuple[str, str]:
    settings = state.settings
    username = form.get("username")
    password = form.get("password")
    # An empty value is as missing as an absent one (RFC 6749 §4.3.2
    # makes both REQUIRED).
    if not username:
        raise InvalidRequestError("Missing 'username' in request.")
    if not password:
        raise InvalidRequestError("Missing 'password' in request.")
    if len(username) > settings.max_username_length:
        raise InvalidRequestError("The 'username' parameter is too long.")
    if len(password) > settings.max_password_length:
        raise InvalidRequestError("The 'password' parameter is too long.")
    return username, password


def _begin_attempt(
    state: State,
    username: str,
    client: Client,
    client_ip: str | None,
    request: flask.Request,
) -> Attempt | None:
    """Reserve a place in the throttling budgets, or refuse the attempt."""
    if state.throttle is None:
        return None
    if client_ip is None:
        # Without an address there is no network budget and no pair to lock:
        # an attacker would get the username's whole account budget. Refuse
        # (fail closed) and say how to fix the deployment.
        log.error(
            "password attempt without a client IP address (REMOTE_ADDR is empty, "
            "e.g. a unix socket): refused. Behind a proxy, wrap the app in "
            "werkzeug.middleware.proxy_fix.ProxyFix so that Flask sees the "
            "client's address, or set ROPC_THROTTLE_ENABLED = False."
        )
        raise ServerError()
    exempt = state.callbacks.run_throttle_exempt(
        ThrottleRequest(client_ip, client, username, request)
    )
    try:
        return state.throttle.begin(
            username, client_ip, client.client_id, exempt=exempt
        )
    except Throttled as throttled:
        signals.send(
            signals.throttled,
            client_ip=client_ip,
            client_id=client.client_id,
            username=signals.username_for_event(
                username, state.settings.event_username
            ),
            scope=throttled.scope,
            retry_after=throttled.retry_after,
        )
        if (
            state.settings.throttle_response == "invalid_grant"
            and throttled.scope != "in_flight"
        ):
            # Keycloak-style: indistinguishable from a wrong password. Never
            # for attempts in flight: no password was found wrong.
            raise InvalidGrantError(INVALID_CREDENTIALS) from None
        raise ThrottledError(throttled.retry_after, throttled.scope) from None


def _end_user_ip(state: State, client: Client, request: flask.Request) -> str | None:
    """The IP address throttling and events count this login under.

    A trusted backend may name its end user's IP. Only clients marked
    ``trusted_backend`` (confidential by construction): otherwise every user
    behind one backend server would share its IP and lock each other out.
    From any other client the header is ignored, so it cannot be used to
    dodge the per-IP budget.
    """
    if client.trusted_backend:
        value = request.headers.get(state.settings.end_user_ip_header, "").strip()
        try:
            return str(ipaddress.ip_address(value))
        except ValueError:
            pass
    return request.remote_addr or None


def _announce_validated(
    client: Client, client_ip: str | None, started: float, result: GrantResult | None
) -> None:
    """Send ``password_validated``: the verdict (``None``: the validator
    raised) and how long the validator took, for metrics."""
    if not signals.password_validated.receivers:
        return
    outcome = "exception"
    if result is not None:
        outcome = "success" if result.is_success else "failure"
    signals.send(
        signals.password_validated,
        client_ip=client_ip,
        client_id=client.client_id,
        result=outcome,
        error=None if result is None else result.error_code,
        reason=None if result is None else result.reason,
        duration=time.perf_counter() - started,
    )


def _error_from(result: GrantResult) -> ValidatorError:
    assert result.error_code is not None
    return ValidatorError(
        error=result.error_code,
        description=safe_description(result.error_description),
        extra=result.extra,
        status_code=result.status_code,
    )
