"""``acr_values`` and ``max_age`` at the token endpoint: step-up on request.

The password grant has no authorization request in which a client could ask
for a stronger login (OpenID Connect's ``acr_values`` and ``max_age``). Our
extension accepts both as token-request parameters of the password and
refresh grants: when the login (or the refresh token's family) does not
satisfy them, the answer is ``mfa_required`` and the MFA grants finish the
job, so a client told ``insufficient_user_authentication`` by a resource
(RFC 9470) can get a token that passes it. ``acr_values`` is
space-separated; values we do not issue are ignored, and ``invalid_request``
answers a list with none we do. Imports ``step_up`` and leaves.
"""

from __future__ import annotations

import typing as t

from .config import Settings
from .errors import InvalidRequestError
from .step_up import StepUp

#: What a client is told when a second factor is needed and the app has none.
CANNOT_MEET = "The requested acr_values cannot be met."
#: What a refresh is told whose family's login is older than ``max_age``:
#: only a new password login is recent (a refresh never renews a login).
TOO_OLD = "The login is older than max_age; log in again."


def requested(form: t.Mapping[str, str], settings: Settings) -> StepUp | None:
    """The step-up a token request asks for, or ``None``.

    :raises InvalidRequestError: an empty or unsupported ``acr_values``, or a
        ``max_age`` that is not a non-negative integer.
    """
    if "acr_values" not in form and "max_age" not in form:
        return None  # the usual case, without Werkzeug's missing-key errors
    acr_values, max_age = form.get("acr_values"), form.get("max_age")
    values: tuple[str, ...] = ()
    if acr_values is not None:
        supported = (settings.acr_password, settings.acr_mfa)
        values = tuple(v for v in acr_values.split(" ") if v in supported)
        if not values:
            raise InvalidRequestError(
                "None of the 'acr_values' is supported; see acr_values_supported."
            )
    age = None
    if max_age is not None:
        # At most ten digits: no value this large is meant, none overflows.
        if not (max_age.isascii() and max_age.isdigit()) or len(max_age) > 10:
            raise InvalidRequestError("'max_age' must be a non-negative integer.")
        age = int(max_age)
    return StepUp(values, age)


def satisfied(
    step: StepUp | None, acr: str, auth_time: int, now: int, *, strongest: str
) -> bool:
    """Whether a login with ``acr`` at ``auth_time`` meets ``step``.

    ``strongest`` (``ROPC_ACR_MFA``) meets any requested value: the server
    may return a stronger ``acr`` than asked for, and asking an MFA login
    for a password one must not send the client round in circles.
    """
    if step is None:
        return True
    if step.acr and acr not in step.acr and acr != strongest:
        return False
    return not too_old(step, auth_time, now)


def too_old(step: StepUp | None, auth_time: int, now: int) -> bool:
    """Whether ``step`` has a ``max_age`` that a login at ``auth_time`` misses."""
    return (
        step is not None
        and step.max_age is not None
        and (now - auth_time > step.max_age)
    )


def needs_second_factor(step: StepUp | None, settings: Settings) -> bool:
    """Whether ``step`` names ``acr_values`` that a password alone cannot meet."""
    return step is not None and bool(step.acr) and settings.acr_password not in step.acr
