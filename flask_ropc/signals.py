"""Audit events as blinker signals, the way Flask and Flask-Login send theirs.

Subscribe with ``token_issued.connect(func)`` (or ``connect_via(app)``);
``func(app, **payload)`` receives the app as sender and keyword arguments.
Every payload carries ``request_id`` (the request's ``X-Request-ID`` header
if it is sane, else a fresh UUID) and ``client_ip``. No payload ever holds a
password, a client secret or a token.

A leaf: imports only ``context``, ``hashing`` and ``normalise``.

========================================  ==========================================
signal                                    payload (besides request_id, client_ip)
========================================  ==========================================
``token_issued``                          ``grant_type``, ``client_id``, ``subject``,
                                          ``scopes``, ``refresh_token_issued``
``password_grant_failed``                 ``client_id``, ``username``, ``error``,
                                          ``reason``
``throttled``                             ``client_id``, ``username``, ``scope``
                                          (which budget), ``retry_after``
``client_authentication_failed``          ``client_id`` (as presented, or None),
                                          ``endpoint``
``refresh_token_reused``                  ``client_id``, ``subject``, ``family_id``
``refresh_token_repeated``                ``client_id``, ``subject``, ``family_id``
``token_revoked``                         ``client_id``, ``token_type``, ``subject``
``password_breached``                     ``client_id``, ``subject``, ``policy``,
                                          ``lookup_failed``
``password_validated``                    ``client_id``, ``result``, ``error``,
                                          ``reason``, ``duration``
``token_request_handled``                 ``grant_type``, ``client_id``, ``status``,
                                          ``error``
``mfa_required``                          ``client_id``, ``subject``, ``factors``
``mfa_succeeded``                         ``client_id``, ``subject``, ``factor``
``mfa_failed``                            ``client_id``, ``subject``, ``factor``,
                                          ``reason``, ``token_dead``
``mfa_locked``                            ``client_id``, ``subject``
``recovery_code_used``                    ``client_id``, ``subject``
========================================  ==========================================
"""

from __future__ import annotations

import re
import typing as t
import uuid
from collections.abc import Callable

import flask
from blinker import Namespace

from . import context
from . import hashing
from .normalise import normalise_username

_signals = Namespace()

#: A token was issued by the password or refresh grant.
token_issued = _signals.signal("ropc.token-issued")
#: A password grant request was refused after client authentication.
password_grant_failed = _signals.signal("ropc.password-grant-failed")
#: A password attempt was refused by brute-force throttling.
throttled = _signals.signal("ropc.throttled")
#: A client failed to authenticate at one of our endpoints.
client_authentication_failed = _signals.signal("ropc.client-authentication-failed")
#: A rotated refresh token was presented again; its family was revoked.
refresh_token_reused = _signals.signal("ropc.refresh-token-reused")
#: A refresh token was exchanged again within the reuse interval; the tokens
#: of its earlier exchange were revoked.
refresh_token_repeated = _signals.signal("ropc.refresh-token-repeated")
#: A token was revoked through the revocation endpoint.
token_revoked = _signals.signal("ropc.token-revoked")
#: A correct password was found in a breach corpus by
#: :class:`flask_ropc.breach.BreachCheck` (or, with ``fail="closed"``, could
#: not be checked); sent whatever the policy. Never carries the password,
#: its hash or its breach count.
password_breached = _signals.signal("ropc.password-breached")
#: The app's password validator ran (it returned, or it raised).
password_validated = _signals.signal("ropc.password-validated")
#: The token endpoint answered a request, whatever the grant or the outcome;
#: sent once per request.
token_request_handled = _signals.signal("ropc.token-request-handled")
#: A right password needs a second factor: an ``mfa_token`` was issued.
mfa_required = _signals.signal("ropc.mfa-required")
#: An MFA continuation succeeded (tokens follow).
mfa_succeeded = _signals.signal("ropc.mfa-succeeded")
#: An MFA continuation was refused after its checks (wrong code, a replay,
#: an inactive user, a token used twice); never carries the code.
mfa_failed = _signals.signal("ropc.mfa-failed")
#: An ``mfa_token`` reached ``ROPC_MFA_MAX_ATTEMPTS`` wrong codes: it is dead.
mfa_locked = _signals.signal("ropc.mfa-locked")
#: A recovery code was accepted (the user should get new ones).
recovery_code_used = _signals.signal("ropc.recovery-code-used")

_REQUEST_ID = re.compile(r"[A-Za-z0-9._:-]{1,128}")


def request_id() -> str:
    """The current request's id: a sane ``X-Request-ID`` header, else a UUID.

    Kept in ``flask.g`` so that every event of one request shares it.
    """
    g = context.current_g()
    existing: str | None = g.get("ropc_request_id")
    if existing is not None:
        return existing
    header = context.current_request().headers.get("X-Request-ID", "")
    value = header if _REQUEST_ID.fullmatch(header) else uuid.uuid4().hex
    g.ropc_request_id = value
    return value


def username_for_event(username: str, mode: str) -> str:
    """The username as audit events carry it (``ROPC_EVENT_USERNAME``).

    ``mode`` ``hash``: the SHA-256 of the normalised name, enough to
    correlate attempts without spreading usernames into log stores;
    ``plain``: the normalised name.
    """
    normalised = normalise_username(username)
    if mode == "plain":
        return normalised
    return hashing.digest(normalised)


def send(signal: t.Any, client_ip: str | None = None, **payload: t.Any) -> None:
    """Send ``signal`` from the current app with the common fields added.

    ``client_ip`` is the end user's address when the caller knows better
    than Flask (a trusted backend named it); else the request's remote
    address (``ProxyFix`` applied).
    """
    if not signal.receivers:
        return
    ip = client_ip or context.current_request().remote_addr
    signal.send(context.current_app(), request_id=request_id(), client_ip=ip, **payload)


def report_token_request(answer: Callable[[], flask.Response]) -> flask.Response:
    """Run the token endpoint's ``answer`` and send ``token_request_handled``.

    Every answer of the view passes here once, early refusals as well as the
    grants' own. The grant type and client were noted in ``flask.g`` on the
    way (``ropc_grant_type``: only one the server accepts; ``ropc_client_id``:
    only a client found in the store; ``ropc_error``: the code of the OAuth
    error answered), so the event carries no value a caller made up.
    """
    # An app context outlives the request inside a caller's ``with
    # app.app_context()``: start this request's notes afresh.
    g = context.current_g()
    g.pop("ropc_grant_type", None)
    g.pop("ropc_client_id", None)
    # Any endpoint's error notes its code (server.handle_error_response):
    # only what this request answers counts.
    g.pop("ropc_error", None)
    response = answer()
    if token_request_handled.receivers:
        error = None
        if response.status_code >= 400:
            error = g.get("ropc_error")
            if error is None:  # an answer that is no OAuth error (mfa_required)
                body = response.get_json(silent=True)
                error = body.get("error") if isinstance(body, dict) else None
        send(
            token_request_handled,
            grant_type=g.get("ropc_grant_type"),
            client_id=g.get("ropc_client_id"),
            status=response.status_code,
            error=error,
        )
    return response
