"""The ``mfa_required`` answer to a password login that needs a second factor.

When the validator returns :meth:`GrantResult.mfa_required
<flask_ropc.GrantResult.mfa_required>` (so only after a right password),
:func:`challenge` stores a pending login under a fresh ``mfa_token`` (256
random bits, kept only as a digest, bound to the client, subject, scopes,
claims, the password step's time and DPoP key) and answers in Auth0's format::

    403 {"error": "mfa_required", "error_description": "...",
         "mfa_token": "...", "mfa_requirements": {"challenge": [{"type": "otp"}]}}

The client continues with the MFA grants of :mod:`~flask_ropc.mfa_continue`.
:func:`challenge_refresh` does the same for a refresh whose ``acr_values``
or ``max_age`` the family's login does not meet. Imports ``login``,
``refresh``, ``state``, ``store`` and leaves; no Authlib.
"""

from __future__ import annotations

import json
import logging
import typing as t

from . import hashing
from . import signals
from .errors import ServerError
from .errors import UnauthorizedClientError
from .login import PasswordLogin
from .mfa_contract import GRANT_OF_FACTOR
from .mfa_contract import MFA_FACTORS
from .models import Client
from .refresh import RefreshExchange
from .state import NO_MFA_VERIFIER
from .state import State
from .store.mfa import new_row

log = logging.getLogger("flask_ropc")

#: The ``error_description`` of the challenge (Auth0's words).
MFA_REQUIRED = "Multifactor authentication required"


def challenge(
    state: State, login: PasswordLogin, *, dpop_jkt: str | None
) -> tuple[int, dict[str, t.Any]]:
    """Store the pending login; return the status and body of the answer.

    :raises ServerError: no ``@ropc.mfa_verifier`` is registered (fail
        closed: the login is refused, not let through on the password).
    :raises UnauthorizedClientError: the client may use none of the MFA
        grants the validator allowed.
    """
    result = login.result
    assert result.subject is not None
    return _open(
        state,
        login.client,
        subject=result.subject,
        scopes=login.scopes,
        claims=result.claims,
        extra=result.extra,
        factors=result.mfa_factors,
        client_ip=login.client_ip,
        dpop_jkt=dpop_jkt,
    )


def challenge_refresh(
    state: State, exchange: RefreshExchange, *, dpop_jkt: str | None
) -> tuple[int, dict[str, t.Any]]:
    """:func:`challenge` for a refresh whose ``acr_values`` its family's
    login does not meet (``token_step_up``).

    The refresh token is left as it was. The tokens the second factor brings
    start a family of their own, with the family's ``auth_time`` (the
    password step's): a refresh never renews a login.
    """
    row = exchange.row
    return _open(
        state,
        exchange.client,
        subject=row.subject,
        scopes=exchange.scopes,
        claims=json.loads(row.claims),
        extra={},
        factors=MFA_FACTORS,
        client_ip=None,
        dpop_jkt=dpop_jkt,
        auth_time=row.auth_time,
    )


def _open(
    state: State,
    client: Client,
    *,
    subject: str,
    scopes: tuple[str, ...],
    claims: t.Mapping[str, t.Any],
    extra: t.Mapping[str, t.Any],
    factors: tuple[str, ...],
    client_ip: str | None,
    dpop_jkt: str | None,
    auth_time: int | None = None,
) -> tuple[int, dict[str, t.Any]]:
    assert state.mfa_tokens is not None
    if state.callbacks.mfa_verifier is None:
        log.error("%s; the login is refused", NO_MFA_VERIFIER)
        raise ServerError()
    allowed = tuple(f for f in factors if client.check_grant_type(GRANT_OF_FACTOR[f]))
    if not allowed:
        log.warning(
            "client %s: a login needs MFA but the client may not use the MFA "
            "grants; allow them with flask ropc update-client --grant-type",
            client.client_id,
        )
        raise UnauthorizedClientError(
            "Multifactor authentication is required, but the client is not "
            "allowed an MFA grant."
        )
    settings = state.settings.mfa
    now = state.store.now()
    value = hashing.generate_token()
    row = new_row(
        hashing.digest(value),
        client_id=client.client_id,
        subject=subject,
        scopes=scopes,
        claims=claims,
        extra=extra,
        factors=allowed,
        auth_time=now if auth_time is None else auth_time,
        dpop_jkt=dpop_jkt,
        expires_at=now + settings.token_lifetime,
    )
    state.mfa_tokens.create(row, None)
    signals.send(
        signals.mfa_required,
        client_ip=client_ip,
        client_id=client.client_id,
        subject=subject,
        factors=allowed,
    )
    body = {
        "error": "mfa_required",
        "error_description": MFA_REQUIRED,
        "mfa_token": value,
        "mfa_requirements": {"challenge": [{"type": f} for f in allowed]},
    }
    return settings.required_status, body
