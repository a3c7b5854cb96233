"""Audit events as blinker signals, the way Flask and Flask-Login send theirs.

Subscribe with ``token_issued.connect(func)`` (or ``connect_via(app)``);
``func(app, **payload)`` receives the app as sender and keyword arguments.
Every payload carries ``request_id`` (the request's ``X-Request-ID`` header
if it is sane, else a fresh UUID) and ``client_ip``. No payload ever holds a
password, a client secret or a token.

A leaf: imports only ``hashing`` and ``normalise``.

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
========================================  ==========================================
"""

from __future__ import annotations

import re
import typing as t
import uuid

import flask
from blinker import Namespace

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

_REQUEST_ID = re.compile(r"[A-Za-z0-9._:-]{1,128}")


def request_id() -> str:
    """The current request's id: a sane ``X-Request-ID`` header, else a UUID.

    Kept in ``flask.g`` so that every event of one request shares it.
    """
    existing: str | None = flask.g.get("ropc_request_id")
    if existing is not None:
        return existing
    header = flask.request.headers.get("X-Request-ID", "")
    value = header if _REQUEST_ID.fullmatch(header) else uuid.uuid4().hex
    flask.g.ropc_request_id = value
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
    app = flask.current_app._get_current_object()  # type: ignore[attr-defined]
    ip = client_ip or flask.request.remote_addr
    signal.send(app, request_id=request_id(), client_ip=ip, **payload)
