"""What every endpoint does with a failure: outage mapping and redaction.

:data:`UNAVAILABLE_ERRORS` are the failures that mean "try again later"
(503); anything else is our bug (500). :func:`log_exception` logs a failure
with every credential of the current request blanked out. Imports ``store``
(for its error classes) and leaves.
"""

from __future__ import annotations

import logging
import traceback

import flask

from .client_auth import basic_credentials
from .errors import InvalidClientAuthError
from .store import UNAVAILABLE_ERRORS as UNAVAILABLE_ERRORS

log = logging.getLogger("flask_ropc")


def log_exception(message: str) -> None:
    """Log the exception being handled without any secret it may contain.

    Exception texts can quote user input (a validator raising
    ``ValueError(password)``, a driver error echoing parameters), so every
    credential from the current request is replaced before logging.
    """
    text = "".join(traceback.format_exc())
    for secret in request_secrets(flask.request):
        text = text.replace(secret, "[redacted]")
    log.error("%s\n%s", message, text)


def request_secrets(request: flask.Request) -> list[str]:
    """Every credential the current request carries, longest first."""
    found: list[str] = []
    try:
        form = request.form
    except Exception:  # a body we could not parse holds nothing we read
        form = None
    if form is not None:
        for name in ("password", "client_secret", "refresh_token", "token"):
            found.extend(value for value in form.getlist(name) if value)
    header = request.headers.get("Authorization", "")
    if header:
        found.append(header.partition(" ")[2])
        try:
            basic = basic_credentials(header)
        except InvalidClientAuthError:
            basic = None
        if basic is not None:
            found.extend((basic.secret, basic.raw_secret))
    # Longest first, so a secret that contains another is replaced whole.
    return sorted({s for s in found if len(s) >= 4}, key=len, reverse=True)
