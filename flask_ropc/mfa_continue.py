"""Auth0's MFA grants: a login whose password was right, finished with a code.

``grant_type=http://auth0.com/oauth/grant-type/mfa-otp`` (``mfa_token``,
``otp``) and ``.../mfa-recovery-code`` (``mfa_token``, ``recovery_code``).
:func:`check` runs every check and the app's ``@ropc.mfa_verifier``;
:func:`issue` consumes the ``mfa_token`` and stores the tokens in one
transaction (SQL), so of two continuations with a right code exactly one gets
tokens. The order of checks:

1. the client authenticated as for the password grant and may use this grant;
2. the ``mfa_token`` is live (unused, unexpired, fewer than
   ``ROPC_MFA_MAX_ATTEMPTS`` wrong codes) and was issued to this client;
   anything else is the same ``invalid_grant``;
3. a token bound to a DPoP key needs a proof by that key;
4. ``scope`` may only narrow; the user must still be active
   (``@ropc.subject_is_active``);
5. the per-user code budget (:mod:`~flask_ropc.mfa_throttle`) has room;
6. the verifier accepts the code; a wrong one counts against the token and
   the user.

Imports ``token_service``, ``login``, ``refresh`` (scope narrowing) and
``state``; no Authlib.
"""

from __future__ import annotations

import dataclasses
import logging
import typing as t

import flask

from . import hashing
from . import signals
from .auth_context import AuthContext
from .dpop import Proof
from .dpop_binding import require_bound_key
from .errors import InvalidGrantError
from .errors import InvalidRequestError
from .errors import Throttled
from .errors import ThrottledError
from .errors import UnauthorizedClientError
from .login import new_family
from .mfa_contract import GRANT_OF_FACTOR
from .mfa_contract import OTP
from .mfa_contract import RECOVERY_CODE
from .mfa_contract import MfaRequest
from .mfa_contract import MfaResult
from .mfa_throttle import MfaAttempt
from .models import Client
from .refresh import narrow_scopes
from .state import State
from .store import PendingMfa
from .token_service import announce_issued
from .token_service import issue_tokens
from .validation import RefreshRequest

if t.TYPE_CHECKING:  # pragma: no cover
    import sqlalchemy as sa

log = logging.getLogger("flask_ropc")

#: The form field that carries each factor's code (Auth0's names).
CODE_FIELD = {OTP: "otp", RECOVERY_CODE: "recovery_code"}
#: What a wrong code is told (Auth0's words for the OTP).
WRONG_CODE = {OTP: "Invalid otp_code.", RECOVERY_CODE: "Invalid recovery_code."}
#: The tokens' ``amr`` per factor (RFC 8176 has no value for a recovery
#: code: it counts as the second factor only).
AMR_OF_FACTOR = {OTP: ("pwd", "otp", "mfa"), RECOVERY_CODE: ("pwd", "mfa")}
#: Every mfa_token that is not live, or not this client's, is told the same.
INVALID_MFA_TOKEN = "The mfa_token is invalid or expired."

# Ours are 43 characters; codes are short. Longer input is refused unread.
_MAX_TOKEN, _MAX_CODE = 256, 128


class MfaTokenSpent(Exception):
    """Another continuation consumed the ``mfa_token`` first (internal)."""


@dataclasses.dataclass(frozen=True)
class MfaContinuation:
    """A continuation whose code was right, ready for tokens."""

    client: Client
    factor: str
    digest: str
    pending: PendingMfa
    scopes: tuple[str, ...]
    attempt: MfaAttempt | None
    result: MfaResult


def check(
    state: State,
    client: Client,
    factor: str,
    form: t.Mapping[str, str],
    request: flask.Request,
    *,
    proof: Proof | None,
) -> MfaContinuation:
    """Every check of a continuation, then the app's verifier.

    :raises OAuth2Error: the answer for the first problem found.
    """
    if not client.check_grant_type(GRANT_OF_FACTOR[factor]):
        raise UnauthorizedClientError("The client is not allowed to use this grant.")
    token, code = form.get("mfa_token"), form.get(CODE_FIELD[factor])
    if not token:
        raise InvalidRequestError("Missing 'mfa_token' in request.")
    if not code:
        raise InvalidRequestError(f"Missing '{CODE_FIELD[factor]}' in request.")
    if len(token) > _MAX_TOKEN or len(code) > _MAX_CODE:
        raise InvalidRequestError("A parameter is too long.")
    assert state.mfa_tokens is not None
    settings, now = state.settings.mfa, state.store.now()
    digest = hashing.digest(token)
    pending = state.mfa_tokens.find(digest, now, settings.max_attempts)
    if pending is None or pending.client_id != client.client_id:
        raise InvalidGrantError(INVALID_MFA_TOKEN)
    if factor not in pending.factors:
        raise InvalidGrantError("This factor may not be used for this login.")
    # RFC 9449 §5: the password step's key, as for a bound refresh token.
    require_bound_key(pending.dpop_jkt, proof, "mfa_token")
    scopes = narrow_scopes(
        form.get("scope"),
        list(pending.scopes),
        still_allowed=(*client.scopes, state.settings.offline_access_scope),
    )
    active = RefreshRequest(pending.subject, client, scopes, pending.claims, request)
    if not state.callbacks.run_subject_check(active):
        state.mfa_tokens.consume(digest, now, settings.max_attempts)
        _failed(client, pending, factor, "inactive", dead=True)
        raise InvalidGrantError("The user is no longer active.")
    attempt = _reserve(state, client, pending.subject)
    throttle, tokens = state.mfa_throttle, state.mfa_tokens
    # The token's own count goes first, atomically: concurrent codes under
    # one token cannot get more than ROPC_MFA_MAX_ATTEMPTS verified.
    failures = tokens.fail(digest, now, settings.max_attempts)
    if failures is None:
        if throttle is not None:
            throttle.settle(attempt, counts=False)
        raise InvalidGrantError(INVALID_MFA_TOKEN)
    steps = state.mfa_steps
    assert steps is not None
    mfa_request = MfaRequest(
        pending.subject, factor, code, client, scopes, pending.claims, steps, request
    )
    try:
        result = state.callbacks.run_mfa_verifier(mfa_request)
    except Exception:
        tokens.forgive(digest)
        if throttle is not None:
            throttle.settle(attempt, counts=False)
        raise
    if result.ok:
        tokens.forgive(digest)
    else:
        if throttle is not None:
            throttle.settle(attempt, counts=True)
        dead = failures >= settings.max_attempts
        _failed(client, pending, factor, result.reason or "invalid_code", dead=dead)
        if dead:
            signals.send(
                signals.mfa_locked, client_id=client.client_id, subject=pending.subject
            )
        raise InvalidGrantError(WRONG_CODE[factor])
    return MfaContinuation(client, factor, digest, pending, scopes, attempt, result)


def issue(
    state: State, continuation: MfaContinuation, *, dpop_jkt: str | None
) -> dict[str, t.Any]:
    """Consume the ``mfa_token`` and issue the tokens, atomically (SQL).

    :raises InvalidGrantError: another continuation consumed it first.
    """
    client, pending = continuation.client, continuation.pending
    tokens, max_attempts = state.mfa_tokens, state.settings.mfa.max_attempts
    assert tokens is not None
    now = state.store.now()
    digest, grant_type = continuation.digest, GRANT_OF_FACTOR[continuation.factor]

    def consume(conn: sa.Connection) -> None:
        if not tokens.consume_in(conn, digest, now, max_attempts):
            raise MfaTokenSpent()

    also = consume if tokens.consumes_in_database else None
    refresh = new_family(state, client, continuation.scopes, now, dpop_jkt)
    try:
        if also is None and not tokens.consume(digest, now, max_attempts):
            raise MfaTokenSpent()
        body = issue_tokens(
            state,
            client=client,
            subject=pending.subject,
            scopes=continuation.scopes,
            claims=pending.claims,
            grant_type=grant_type,
            auth_context=AuthContext(
                amr=AMR_OF_FACTOR[continuation.factor],
                acr=state.settings.acr_mfa,
                auth_time=pending.auth_time,
            ),
            now=now,
            refresh=refresh,
            also=also,
            dpop_jkt=dpop_jkt,
        )
    except MfaTokenSpent:
        _failed(client, pending, continuation.factor, "already_used", dead=True)
        raise InvalidGrantError(INVALID_MFA_TOKEN) from None
    finally:
        if state.mfa_throttle is not None:
            state.mfa_throttle.settle(continuation.attempt, counts=False)
    body.update(pending.extra)
    if continuation.result.recovery_code is not None:
        body["recovery_code"] = continuation.result.recovery_code
    signals.send(
        signals.mfa_succeeded,
        client_id=client.client_id,
        subject=pending.subject,
        factor=continuation.factor,
    )
    if continuation.factor == RECOVERY_CODE:
        signals.send(
            signals.recovery_code_used,
            client_id=client.client_id,
            subject=pending.subject,
        )
    announce_issued(grant_type, client, pending.subject, continuation.scopes, refresh)
    return body


def _reserve(state: State, client: Client, subject: str) -> MfaAttempt | None:
    """A place in the user's code budget, or 429 ``slow_down``."""
    if state.mfa_throttle is None:
        return None
    try:
        return state.mfa_throttle.begin(subject)
    except Throttled as throttled:
        signals.send(
            signals.throttled,
            client_id=client.client_id,
            username=None,
            subject=subject,
            scope="mfa",
            retry_after=throttled.retry_after,
        )
        raise ThrottledError(throttled.retry_after, "mfa") from None


def _failed(
    client: Client, pending: PendingMfa, factor: str, reason: str, *, dead: bool
) -> None:
    log.info("MFA continuation refused for client %s: %s", client.client_id, reason)
    signals.send(
        signals.mfa_failed,
        client_id=client.client_id,
        subject=pending.subject,
        factor=factor,
        reason=reason,
        token_dead=dead,
    )
