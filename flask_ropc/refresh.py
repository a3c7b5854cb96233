"""The refresh grant (RFC 6749 §6) with one-time use and reuse detection.

Authlib's grant does not rotate by default, revokes the old token even when
it issues no new one, saves the new token before revoking the old (so two
concurrent refreshes both succeed), answers a missing user with
``invalid_request`` and keeps access and refresh tokens in one row. Ours
claims the presented token atomically while storing its successor (see
:meth:`TokenStore.save <flask_ropc.store.tokens.TokenStore.save>`): of two
concurrent exchanges exactly one wins, and the loser, like any later replay,
is treated as reuse: the whole family is revoked (RFC 9700 §4.14.2).

With ``ROPC_REFRESH_TOKEN_REUSE_INTERVAL`` a token may be exchanged again for
a few seconds after its exchange, for a client whose response was lost, as
long as its successor is unused; that includes the loser of two concurrent
exchanges. The repeat revokes the earlier exchange's tokens, so a family
never has two live branches, and a revoked token that comes back while its
family still lives counts as reuse: if a thief made the repeat, the client's
next refresh revokes the family.

Imports ``token_service``, ``state`` and leaves; no Authlib.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import typing as t

import flask

from . import signals
from .auth_context import stored_context
from .errors import InvalidGrantError
from .errors import InvalidRequestError
from .errors import InvalidScopeError
from .errors import RefreshTokenReused
from .errors import UnauthorizedClientError
from .models import Client
from .scopes import parse_scope
from .state import State
from .token_service import RefreshPlan
from .token_service import announce_issued
from .token_service import find_refresh_token
from .token_service import issue_tokens
from .token_step_up import CANNOT_MEET
from .token_step_up import TOO_OLD
from .token_step_up import requested
from .token_step_up import satisfied
from .token_step_up import too_old
from .tokens import refresh_token_expired
from .validation import RefreshRequest

log = logging.getLogger("flask_ropc")

GRANT_TYPE = "refresh_token"


@dataclasses.dataclass(frozen=True)
class RefreshExchange:
    """A refresh request that passed every check, ready for rotation."""

    client: Client
    #: The stored row of the presented refresh token.
    row: t.Any
    scopes: tuple[str, ...]
    #: Set for a repeat exchange within the reuse interval (see module).
    repeat_since: int | None
    #: The request's ``acr_values``/``max_age`` ask more than the family's
    #: login: answer ``mfa_required`` instead of rotating.
    needs_mfa: bool = False


def check(state: State, client: Client, form: t.Mapping[str, str]) -> RefreshExchange:
    """Check the grant type, the presented refresh token and the scope.

    :raises OAuth2Error: the answer for the first problem found.
    """
    if not client.check_grant_type(GRANT_TYPE):
        raise UnauthorizedClientError(
            "The client is not allowed to use refresh tokens."
        )
    value = form.get("refresh_token")
    if not value:
        raise InvalidRequestError("Missing 'refresh_token' in request.")
    row = find_refresh_token(state, value)
    # Another client's token is as unknown as a made-up one (RFC 6749
    # §10.4 binds refresh tokens to their client).
    if row is None or row.client_id != client.client_id:
        raise InvalidGrantError("The refresh token is invalid.")
    if row.revoked_at is not None:
        reused(state, row)
    now = state.store.now()
    repeat_since = None
    if row.used_at is not None:
        interval = state.settings.refresh_token_reuse_interval
        if not interval or row.used_at < now - interval:
            reused(state, row)
        repeat_since = now - interval
    if refresh_token_expired(row, now):
        raise InvalidGrantError("The refresh token has expired.")
    scopes = narrow_scopes(
        form.get("scope"),
        row.scope.split(),
        still_allowed=(*client.scopes, state.settings.offline_access_scope),
    )
    settings = state.settings
    step = requested(form, settings)
    if too_old(step, row.auth_time, now):
        raise InvalidGrantError(TOO_OLD)
    acr = row.acr or settings.acr_password
    if satisfied(step, acr, row.auth_time, now, strongest=settings.acr_mfa):
        return RefreshExchange(client, row, scopes, repeat_since)
    if state.callbacks.mfa_verifier is None:
        raise InvalidRequestError(CANNOT_MEET)
    return RefreshExchange(client, row, scopes, repeat_since, needs_mfa=True)


def issue(
    state: State,
    exchange: RefreshExchange,
    request: flask.Request,
    *,
    dpop_jkt: str | None = None,
) -> dict[str, t.Any]:
    """Re-check the user, then rotate: a new access and refresh token.

    ``dpop_jkt`` (the refresh request's proof key) binds the new access
    token, and a public client's new refresh token (RFC 9449 §5).
    """
    client, row, scopes = exchange.client, exchange.row, exchange.scopes
    refresh_request = RefreshRequest(
        subject=row.subject,
        client=client,
        scopes=scopes,
        claims=json.loads(row.claims),
        request=request,
    )
    if not state.callbacks.run_subject_check(refresh_request):
        state.store.tokens.revoke_family(row.family_id)
        raise InvalidGrantError("The user is no longer active.")
    claims = state.callbacks.run_refresh_claims(refresh_request)
    refresh = RefreshPlan(
        family_id=row.family_id,
        scope=row.scope,
        family_expires_at=row.family_expires_at,
        rotate_id=row.id,
        repeat_since=exchange.repeat_since,
        dpop_jkt=dpop_jkt if client.is_public else None,
    )
    # The family's context: a refresh never upgrades (nor refreshes) it.
    context = stored_context(
        row.amr, row.acr, row.auth_time, password_acr=state.settings.acr_password
    )
    interval = state.settings.refresh_token_reuse_interval
    while True:
        try:
            body = issue_tokens(
                state,
                client=client,
                subject=row.subject,
                scopes=scopes,
                claims=claims,
                grant_type=GRANT_TYPE,
                auth_context=context,
                now=state.store.now(),
                refresh=refresh,
                dpop_jkt=dpop_jkt,
            )
            break
        except RefreshTokenReused:
            if not interval or refresh.repeat_since is not None:
                reused(state, row)
            # Another request exchanged the token after we read it: most
            # likely the client's own first try, still in flight when it
            # timed out and retried. Within the interval, exchange again.
            repeat_since = state.store.now() - interval
            refresh = dataclasses.replace(refresh, repeat_since=repeat_since)
    if refresh.repeat_since is not None:
        log.info(
            "refresh token of client %s, subject %s exchanged again within "
            "ROPC_REFRESH_TOKEN_REUSE_INTERVAL: revoked the tokens of its "
            "earlier exchange (family %s)",
            client.client_id,
            row.subject,
            row.family_id,
        )
        signals.send(
            signals.refresh_token_repeated,
            client_id=client.client_id,
            subject=row.subject,
            family_id=row.family_id,
        )
    announce_issued(GRANT_TYPE, client, row.subject, scopes, refresh)
    return body


def reused(state: State, row: t.Any) -> t.NoReturn:
    """A used or revoked refresh token came back: revoke what is left of its
    family, then refuse.

    A revoked token's family is usually revoked already; then nothing is
    left, and nothing is reported again. It is not when a repeat exchange
    superseded the token (see the module docstring).
    """
    tokens = state.store.tokens
    # A read first: stale revoked tokens should not each cost a write.
    revocable = row.revoked_at is None or tokens.family_has_unrevoked_tokens(
        row.family_id
    )
    revoked = tokens.revoke_family(row.family_id) if revocable else 0
    if revoked:
        log.warning(
            "refresh token reuse detected for client %s, subject %s: "
            "revoked family %s (%d tokens)",
            row.client_id,
            row.subject,
            row.family_id,
            revoked,
        )
        signals.send(
            signals.refresh_token_reused,
            client_id=row.client_id,
            subject=row.subject,
            family_id=row.family_id,
        )
    raise InvalidGrantError("The refresh token is invalid.")


def narrow_scopes(
    requested: str | None, original: list[str], still_allowed: t.Iterable[str]
) -> tuple[str, ...]:
    """The scopes of a refreshed access token: the original or fewer, and
    only those the client is still allowed.

    RFC 6749 §6: a requested scope MUST NOT include any scope not originally
    granted; ``invalid_scope`` otherwise. A scope taken from the client since
    the login is dropped when none is requested, and refused when asked for:
    removing a scope from a client takes effect at its next refresh, not
    when its refresh tokens run out.
    """
    allowed = set(still_allowed)
    if requested is None or not requested.strip(" "):
        return tuple(scope for scope in original if scope in allowed)
    granted = parse_scope(requested)
    if not set(granted) <= set(original):
        raise InvalidScopeError("The requested scope exceeds the original grant.")
    if not set(granted) <= allowed:
        raise InvalidScopeError("The requested scope is not allowed for this client.")
    return granted
