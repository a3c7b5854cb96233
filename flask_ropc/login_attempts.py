"""The password grant's place in the throttling budgets, and whose IP it is.

:func:`end_user_ip` decides which address a login is counted under;
:func:`begin_attempt` reserves its place (or refuses it, with the event and
the error the settings ask for). Split from :mod:`~flask_ropc.login` to keep
each on a page. Imports ``throttle``, ``state`` and leaves.
"""

from __future__ import annotations

import ipaddress
import logging

import flask

from . import signals
from .errors import InvalidGrantError
from .errors import ServerError
from .errors import Throttled
from .errors import ThrottledError
from .models import Client
from .state import State
from .throttle import Attempt
from .validation import INVALID_CREDENTIALS
from .validation import ThrottleRequest

log = logging.getLogger("flask_ropc")


def begin_attempt(
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


def end_user_ip(state: State, client: Client, request: flask.Request) -> str | None:
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
