"""The attributes our metrics give each event: closed sets only.

Split from ``metrics`` (which subscribes the instruments) so that both stay
short. Every value comes from a closed set, so an attacker cannot grow the
number of time series: a client id is one the store knows (every subscribed
signal names an authenticated client, or a client found by the id sent),
else ``unknown``; grant types, error codes, throttle budgets, token types,
MFA factors and failure reasons outside their sets become ``other``. Never
usernames, subjects, IP addresses, jti, kids or family ids.

A leaf: imports only ``grant_types``.
"""

from __future__ import annotations

import typing as t
from collections.abc import Callable
from collections.abc import Mapping

from .grant_types import GRANT_TYPES
from .grant_types import MFA_FACTORS

#: Error codes a ``result`` attribute may name; any other becomes ``other``.
#: RFC 6749 §5.2, ours (``server_error``, ``temporarily_unavailable``,
#: ``slow_down`` when throttled), and the extension codes of MFA (Auth0's
#: ``mfa_required``), DPoP (RFC 9449) and resource indicators (RFC 8707).
ERROR_CODES = frozenset(
    {
        "invalid_request",
        "invalid_client",
        "invalid_grant",
        "unauthorized_client",
        "unsupported_grant_type",
        "invalid_scope",
        "access_denied",
        "server_error",
        "temporarily_unavailable",
        "slow_down",
        "mfa_required",
        "invalid_dpop_proof",
        "use_dpop_nonce",
        "invalid_target",
    }
)
#: ``oauth.grant_type``: the grants we implement (the MFA ones included).
GRANT_TYPE_VALUES = frozenset(GRANT_TYPES)
#: ``throttled``'s budgets; ``mfa`` is the per-user budget of second-factor
#: codes.
THROTTLE_SCOPES = frozenset({"username", "account", "ip", "client", "in_flight", "mfa"})
TOKEN_TYPES = frozenset({"access_token", "refresh_token"})
#: ``mfa_required``: the password was right and a second factor is needed.
VALIDATION_RESULTS = frozenset(
    {"success", "invalid_credentials", "refused", "exception", "mfa_required"}
)
#: ``flask_ropc.mfa.factor``: the factors we know.
MFA_FACTOR_VALUES = frozenset(MFA_FACTORS)
#: ``mfa_failed`` reasons: those of ``TotpVerifier`` and ``MfaResult.failure``
#: and the continuation's own (``inactive``, ``already_used``); an app's own
#: reason becomes ``other``, since it may hold anything.
MFA_FAILURE_REASONS = frozenset(
    {
        "invalid_code",
        "replayed",
        "malformed_code",
        "no_secret",
        "unsupported_factor",
        "inactive",
        "already_used",
    }
)

Attributes = Callable[[Mapping[str, t.Any]], dict[str, str]]


def one_of(value: object, allowed: frozenset[str]) -> str:
    """``value`` if it is in ``allowed``, else ``other``."""
    return value if isinstance(value, str) and value in allowed else "other"


def client_attribute(payload: Mapping[str, t.Any]) -> dict[str, str]:
    """``oauth.client_id``: the event's client, or ``unknown`` without one."""
    value = payload.get("client_id")
    return {"oauth.client_id": value if isinstance(value, str) and value else "unknown"}


def token_request(payload: Mapping[str, t.Any]) -> dict[str, str]:
    """Grant type (one we implement, else ``other``) and result."""
    error = payload.get("error")
    return {
        **client_attribute(payload),
        "oauth.grant_type": one_of(payload.get("grant_type"), GRANT_TYPE_VALUES),
        "result": "success" if error is None else one_of(error, ERROR_CODES),
    }


def validation_result(payload: Mapping[str, t.Any]) -> dict[str, str]:
    """``success``, ``mfa_required``, ``invalid_credentials`` (``None`` or
    that reason), ``refused`` (another error of the validator's) or
    ``exception``."""
    result = payload.get("result")
    if result == "failure":
        wrong = payload.get("reason") == "invalid_credentials"
        result = "invalid_credentials" if wrong else "refused"
    return {"result": one_of(result, VALIDATION_RESULTS)}


def validation(payload: Mapping[str, t.Any]) -> dict[str, str]:
    """The client and :func:`validation_result`."""
    return {**client_attribute(payload), **validation_result(payload)}


def throttle_refusal(payload: Mapping[str, t.Any]) -> dict[str, str]:
    """The client and which budget refused."""
    scope = one_of(payload.get("scope"), THROTTLE_SCOPES)
    return {**client_attribute(payload), "flask_ropc.throttle.scope": scope}


def revocation(payload: Mapping[str, t.Any]) -> dict[str, str]:
    """The client and the token type."""
    token_type = one_of(payload.get("token_type"), TOKEN_TYPES)
    return {**client_attribute(payload), "oauth.token_type": token_type}


def fixed_result(result: str) -> Attributes:
    """The client and a ``result`` the signal itself stands for."""
    return lambda payload: {**client_attribute(payload), "result": result}


def mfa_outcome(outcome: str) -> Attributes:
    """The client, ``outcome`` and, when the event names one, the factor
    (``mfa_required`` and ``mfa_locked`` name none) and a failure's reason."""

    def attributes(payload: Mapping[str, t.Any]) -> dict[str, str]:
        found = {**client_attribute(payload), "flask_ropc.mfa.outcome": outcome}
        if "factor" in payload:
            factor = one_of(payload["factor"], MFA_FACTOR_VALUES)
            found["flask_ropc.mfa.factor"] = factor
        if "reason" in payload:
            reason = one_of(payload["reason"], MFA_FAILURE_REASONS)
            found["flask_ropc.mfa.reason"] = reason
        return found

    return attributes
