"""The password grant: Authlib's grant with RFC 6749 corrected.

Departures from Authlib's ``ResourceOwnerPasswordCredentialsGrant``, each for
a reason named next to it:

* the order of checks is client authentication, grant type, scope, and only
  then the password, as IdentityServer does; Authlib checks the password
  before the scope, which gives a client that may not have a scope a password
  oracle;
* a disallowed scope is rejected (``invalid_scope``), not silently dropped;
* wrong credentials give ``invalid_grant`` (RFC 6749 §5.2), not Authlib's
  ``invalid_request``;
* the application's validator is called with a :class:`PasswordRequest` and
  may answer with claims, extra response fields or its own error.
"""

from __future__ import annotations

import dataclasses
import functools
import ipaddress
import json
import logging
import secrets
import typing as t

import flask
from authlib.oauth2.rfc6749 import InvalidGrantError
from authlib.oauth2.rfc6749 import InvalidRequestError
from authlib.oauth2.rfc6749 import InvalidScopeError
from authlib.oauth2.rfc6749 import UnauthorizedClientError
from authlib.oauth2.rfc6749.grants import RefreshTokenGrant
from authlib.oauth2.rfc6749.grants import ResourceOwnerPasswordCredentialsGrant
from authlib.oauth2.rfc6749.hooks import hooked
from werkzeug.http import http_date

from . import signals
from .errors import ThrottledError
from .errors import ValidatorError
from .errors import safe_description
from .models import Client
from .scopes import parse_scope
from .scopes import resolve_scopes
from .server import RefreshPlan
from .server import RefreshTokenReused
from .throttle import Attempt
from .throttle import Throttled
from .tokens import find_refresh_token
from .tokens import refresh_token_expired
from .validation import INVALID_CREDENTIALS
from .validation import GrantResult
from .validation import PasswordRequest
from .validation import RefreshRequest

log = logging.getLogger("flask_ropc")


class PasswordGrant(ResourceOwnerPasswordCredentialsGrant):
    """``grant_type=password`` calling the app's ``@ropc.password_validator``."""

    # Authlib enables only client_secret_basic by default; RFC 6749 §2.3.1
    # allows the body method and §2.1 public clients.
    TOKEN_ENDPOINT_AUTH_METHODS = ["client_secret_basic", "client_secret_post", "none"]

    def validate_token_request(self) -> None:
        """Check the request in IdentityServer's order, then ask the validator."""
        client = self.authenticate_token_endpoint_client()
        if not client.check_grant_type(self.GRANT_TYPE):
            raise UnauthorizedClientError(
                "The client is not allowed to use the password grant."
            )
        self.request.client = client
        state = self.server.state
        scopes = resolve_scopes(
            self.request.form.get("scope"),
            client.scopes,
            offline_scope=state.settings.offline_access_scope,
            offline_allowed=client.offline_access,
        )
        username, password = self._credentials()
        _apply_trusted_ip(client, state.settings.end_user_ip_header)
        attempt = self._begin_attempt(username, client)
        password_request = PasswordRequest(
            username=username,
            password=password,
            client=client,
            scopes=scopes,
            request=flask.request._get_current_object(),  # type: ignore[attr-defined]
        )
        throttle = state.throttle
        try:
            result = state.run_validator(password_request)
        except Exception:
            # A crash says nothing about the password: give the place back.
            if throttle is not None:
                throttle.failed(attempt, username, counts=False)
            raise
        if not result.is_success:
            if throttle is not None:
                throttle.failed(attempt, username, counts=result.counts_as_failure)
            signals.send(
                signals.password_grant_failed,
                client_id=client.client_id,
                username=signals.username_for_event(username),
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
            throttle.succeeded(attempt, username)
            attempt = None
        # Database counters are settled in the transaction that stores the
        # tokens (see create_token_response): one commit per login.
        self.request.ropc_settle = (attempt, username)
        self.request.user = result
        self.request.ropc_scopes = scopes

    def _begin_attempt(self, username: str, client: Client) -> Attempt | None:
        """Reserve a place in the throttling budgets, or refuse the attempt."""
        state = self.server.state
        if state.throttle is None:
            return None
        try:
            attempt: Attempt | None = state.throttle.begin(
                username, signals.client_ip(), client.client_id
            )
            return attempt
        except Throttled as throttled:
            signals.send(
                signals.throttled,
                client_id=client.client_id,
                username=signals.username_for_event(username),
                scope=throttled.scope,
                retry_after=throttled.retry_after,
            )
            if state.settings.throttle_response == "invalid_grant":
                # Keycloak-style: indistinguishable from a wrong password.
                raise InvalidGrantError(INVALID_CREDENTIALS) from None
            raise ThrottledError(throttled.retry_after) from None

    def _credentials(self) -> tuple[str, str]:
        form = self.request.form
        settings = self.server.state.settings
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

    @hooked  # type: ignore[untyped-decorator]
    def create_token_response(self) -> tuple[int, dict[str, t.Any], list[t.Any]]:
        """Issue the tokens and add the validator's extra fields.

        A refresh token comes with them when the client has offline access
        and asked for the offline scope; it starts a new family.
        """
        result: GrantResult = self.request.user
        client: Client = self.request.client
        scopes: tuple[str, ...] = self.request.ropc_scopes
        assert result.subject is not None
        state = self.server.state
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
            )
        attempt, username = self.request.ropc_settle
        throttle = state.throttle
        settle = None
        if throttle is not None and attempt is not None:
            settle = functools.partial(
                throttle.settle_in, attempt=attempt, username=username
            )
        try:
            body = self.server.issue_tokens(
                client=client,
                subject=result.subject,
                scopes=scopes,
                claims=result.claims,
                grant_type=self.GRANT_TYPE,
                auth_time=now,
                refresh=refresh,
                also=settle,
            )
        except Exception:
            # No token, but the password was right: it must not count as a
            # failure against the user (the grant's transaction rolled back).
            if throttle is not None and attempt is not None:
                throttle.succeeded(attempt, username)
            raise
        # GrantResult.success() already refused reserved names in extra.
        body.update(result.extra)
        _announce(self.GRANT_TYPE, client, result.subject, scopes, refresh)
        return 200, body, _headers_for(client, self.TOKEN_RESPONSE_HEADER)


class RefreshGrant(RefreshTokenGrant):
    """``grant_type=refresh_token`` with one-time use and reuse detection.

    Authlib's grant does not rotate by default, revokes the old token even
    when it issues no new one, saves the new token before revoking the old
    (so two concurrent refreshes both succeed), answers a missing user with
    ``invalid_request`` and keeps access and refresh tokens in one row. Ours
    claims the presented token atomically while storing its successor (see
    :meth:`Store.save_grant`): of two concurrent exchanges exactly one wins,
    and the loser, like any later replay, is treated as reuse: the whole
    family is revoked (RFC 9700 §4.14.2).

    With ``ROPC_REFRESH_TOKEN_REUSE_INTERVAL`` a token may be exchanged again
    for a few seconds after its exchange, for a client whose response was
    lost, as long as its successor is unused; that includes the loser of two
    concurrent exchanges. The repeat revokes the earlier exchange's tokens,
    so a family never has two live branches, and a revoked token that comes
    back while its family still lives counts as reuse: if a thief made the
    repeat, the client's next refresh revokes the family.
    """

    TOKEN_ENDPOINT_AUTH_METHODS = PasswordGrant.TOKEN_ENDPOINT_AUTH_METHODS
    INCLUDE_NEW_REFRESH_TOKEN = True

    def validate_token_request(self) -> None:
        """Client, grant type, then the presented refresh token and scope."""
        client = self.authenticate_token_endpoint_client()
        if not client.check_grant_type(self.GRANT_TYPE):
            raise UnauthorizedClientError(
                "The client is not allowed to use refresh tokens."
            )
        self.request.client = client
        value = self.request.form.get("refresh_token")
        if not value:
            raise InvalidRequestError("Missing 'refresh_token' in request.")
        state = self.server.state
        row = find_refresh_token(state.store, value)
        # Another client's token is as unknown as a made-up one (RFC 6749
        # §10.4 binds refresh tokens to their client).
        if row is None or row.client_id != client.client_id:
            raise InvalidGrantError("The refresh token is invalid.")
        if row.revoked_at is not None:
            self._reused(row)
        now = state.store.now()
        repeat_since = None
        if row.used_at is not None:
            interval = state.settings.refresh_token_reuse_interval
            if not interval or row.used_at < now - interval:
                self._reused(row)
            repeat_since = now - interval
        if refresh_token_expired(row, now):
            raise InvalidGrantError("The refresh token has expired.")
        self.request.refresh_row = row
        self.request.ropc_repeat_since = repeat_since
        self.request.ropc_scopes = narrow_scopes(
            self.request.form.get("scope"),
            row.scope.split(),
            still_allowed=(*client.scopes, state.settings.offline_access_scope),
        )

    @hooked  # type: ignore[untyped-decorator]
    def create_token_response(self) -> tuple[int, dict[str, t.Any], list[t.Any]]:
        """Re-check the user, then rotate: new access and refresh token."""
        row = self.request.refresh_row
        client: Client = self.request.client
        scopes: tuple[str, ...] = self.request.ropc_scopes
        state = self.server.state
        refresh_request = RefreshRequest(
            subject=row.subject,
            client=client,
            scopes=scopes,
            claims=json.loads(row.claims),
            request=flask.request._get_current_object(),  # type: ignore[attr-defined]
        )
        if not state.run_subject_check(refresh_request):
            state.store.revoke_family(row.family_id)
            raise InvalidGrantError("The user is no longer active.")
        claims = state.run_refresh_claims(refresh_request)
        refresh = RefreshPlan(
            family_id=row.family_id,
            scope=row.scope,
            family_expires_at=row.family_expires_at,
            rotate_id=row.id,
            repeat_since=self.request.ropc_repeat_since,
        )
        interval = state.settings.refresh_token_reuse_interval
        while True:
            try:
                body = self.server.issue_tokens(
                    client=client,
                    subject=row.subject,
                    scopes=scopes,
                    claims=claims,
                    grant_type=self.GRANT_TYPE,
                    auth_time=row.auth_time,
                    refresh=refresh,
                )
                break
            except RefreshTokenReused:
                if not interval or refresh.repeat_since is not None:
                    self._reused(row)
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
        _announce(self.GRANT_TYPE, client, row.subject, scopes, refresh)
        return 200, body, _headers_for(client, self.TOKEN_RESPONSE_HEADER)

    def _reused(self, row: t.Any) -> t.NoReturn:
        """A used or revoked refresh token came back: revoke what is left of
        its family, then refuse.

        A revoked token's family is usually revoked already; then nothing is
        left, and nothing is reported again. It is not when a repeat
        exchange superseded the token (see the class docstring).
        """
        store = self.server.state.store
        # A read first: stale revoked tokens should not each cost a write.
        revocable = row.revoked_at is None or store.family_has_unrevoked_tokens(
            row.family_id
        )
        revoked = store.revoke_family(row.family_id) if revocable else 0
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


def _announce(
    grant_type: str,
    client: Client,
    subject: str,
    scopes: tuple[str, ...],
    refresh: RefreshPlan | None,
) -> None:
    signals.send(
        signals.token_issued,
        grant_type=grant_type,
        client_id=client.client_id,
        subject=subject,
        scopes=scopes,
        refresh_token_issued=refresh is not None,
    )


def _headers_for(client: Client, headers: list[t.Any]) -> list[t.Any]:
    """Token response headers, with the client's sunset announced if set.

    ``Deprecation`` (RFC 9745, the date the sunset was announced) and
    ``Sunset`` (RFC 8594) tell the client's own developers, not just our
    logs, that this client must move off the password grant.
    """
    if client.sunset_at is None:
        return headers
    announced = client.deprecated_at or client.sunset_at
    return [
        *headers,
        ("Deprecation", f"@{announced}"),
        ("Sunset", http_date(client.sunset_at)),
    ]


def _apply_trusted_ip(client: Client, header: str) -> None:
    """Let a trusted backend name its end user's IP for throttling and events.

    Only for clients marked ``trusted_backend`` (confidential by
    construction): otherwise every user behind one backend server would share
    its IP and lock each other out. From any other client the header is
    ignored, so it cannot be used to dodge the per-IP budget.
    """
    if not client.trusted_backend:
        return
    value = flask.request.headers.get(header, "").strip()
    try:
        flask.g.ropc_client_ip = str(ipaddress.ip_address(value))
    except ValueError:
        return


def _error_from(result: GrantResult) -> ValidatorError:
    assert result.error_code is not None
    return ValidatorError(
        error=result.error_code,
        description=safe_description(result.error_description),
        extra=result.extra,
        status_code=result.status_code,
    )
