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
import logging
import secrets
import time
import typing as t

import flask

from . import signals
from .auth_context import password_context
from .errors import InvalidRequestError
from .errors import UnauthorizedClientError
from .errors import ValidatorError
from .errors import safe_description
from .grant_types import MFA_FACTORS
from .login_attempts import begin_attempt
from .login_attempts import end_user_ip
from .models import Client
from .scopes import resolve_scopes
from .state import State
from .step_up import StepUp
from .throttle import Attempt
from .token_service import RefreshPlan
from .token_service import announce_issued
from .token_service import issue_tokens
from .token_step_up import CANNOT_MEET
from .token_step_up import needs_second_factor
from .token_step_up import requested
from .token_step_up import satisfied
from .validation import GrantResult
from .validation import PasswordRequest

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
    #: The request's ``acr_values``/``max_age``, if any (``token_step_up``).
    step_up: StepUp | None = None


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
    step_up = requested(form, settings)
    if needs_second_factor(step_up, settings) and state.callbacks.mfa_verifier is None:
        # Before the place is reserved: nothing to settle, no oracle.
        raise InvalidRequestError(CANNOT_MEET)
    client_ip = end_user_ip(state, client, request)
    attempt = begin_attempt(state, username, client, client_ip, request)
    return PendingLogin(
        client, username, password, scopes, attempt, client_ip, request, step_up
    )


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
    step_up = pending.step_up
    if result.is_success and step_up is not None:
        # A password login is as recent as can be: only acr_values can
        # fail. The clock is read only when there is something to check.
        now = state.store.now()
        if not satisfied(
            step_up, settings.acr_password, now, now, strongest=settings.acr_mfa
        ):
            result = _stepped_up(state, result)
    if result.needs_mfa:
        # The password was right: settle as a success now. The tokens
        # follow only after the second factor (mfa_challenge).
        if throttle is not None:
            throttle.succeeded(attempt)
        return PasswordLogin(client, username, pending.scopes, result, None, client_ip)
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
    refresh = new_family(state, client, scopes, now, dpop_jkt)
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


def new_family(
    state: State,
    client: Client,
    scopes: tuple[str, ...],
    now: int,
    dpop_jkt: str | None,
) -> RefreshPlan | None:
    """The refresh token family a login starts: when the client has offline
    access and the offline scope was granted; a public client's is bound to
    its DPoP key."""
    if not (client.offline_access and state.settings.offline_access_scope in scopes):
        return None
    absolute = (
        client.refresh_token_absolute_lifetime
        or state.settings.refresh_token_absolute_lifetime
    )
    return RefreshPlan(
        family_id=secrets.token_hex(16),
        scope=" ".join(scopes),
        family_expires_at=now + absolute,
        dpop_jkt=dpop_jkt if client.is_public else None,
    )


def _stepped_up(state: State, result: GrantResult) -> GrantResult:
    """A success the request's ``acr_values`` asks more of: a second factor
    (:func:`prepare` made sure the app has a verifier to ask)."""
    assert result.subject is not None
    return GrantResult.mfa_required(
        result.subject, MFA_FACTORS, result.claims, result.extra
    )


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
        outcome = "mfa_required" if result.needs_mfa else outcome
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
