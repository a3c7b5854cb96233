"""Step-up authentication (RFC 9470) at ``require_token``.

``@ropc.require_token("api", acr=..., max_age=...)`` asks more of a live,
scoped token: an ``acr`` among those given, an ``auth_time`` at most
``max_age`` seconds ago, or both. A token short of that is answered with 401
``insufficient_user_authentication`` and a challenge naming what the
resource requires (RFC 9470 §3), in the ``DPoP`` form for a DPoP-bound
token, so that the client can send its user through a stronger or a fresh
login and try again.

The requirement is checked when the view is decorated (:func:`requirement`),
so a typo fails at import, not at the first request. Imports
``dpop_binding`` (its challenge's ``algs``), ``tokens`` and leaves; the
error class lives here, next to the one check that raises it.
"""

from __future__ import annotations

import dataclasses
import typing as t

from .auth_context import is_acr_value
from .dpop_binding import ALGS
from .errors import DPoPError
from .errors import OAuth2Error
from .tokens import AccessToken

#: The RFC 9470 §3 error code.
INSUFFICIENT = "insufficient_user_authentication"

#: The ``error_description`` per unmet requirement.
WEAKER = "A different authentication level is required."
OLDER = "More recent authentication is required."


@dataclasses.dataclass(frozen=True)
class StepUp:
    """What a protected view requires of the user's authentication."""

    #: Acceptable ``acr`` values, in order of preference; ``()``: any.
    acr: tuple[str, ...] = ()
    #: The longest time since ``auth_time``, in seconds; ``None``: any.
    max_age: int | None = None

    def challenge_params(self) -> str:
        """The ``acr_values`` and ``max_age`` auth-params of the challenge."""
        params = []
        if self.acr:
            params.append(f'acr_values="{" ".join(self.acr)}"')
        if self.max_age is not None:
            params.append(f'max_age="{self.max_age}"')
        return ", ".join(params)


def requirement(
    acr: str | t.Sequence[str] | None, max_age: int | None
) -> StepUp | None:
    """The checked ``acr``/``max_age`` of ``require_token``, or ``None``.

    :raises TypeError: ``acr`` is not a string or a sequence of strings, or
        ``max_age`` not an integer.
    :raises ValueError: ``acr`` is empty or holds a value that cannot be an
        ``acr`` (whitespace, quotes), or ``max_age`` is negative.
    """
    if acr is None and max_age is None:
        return None
    values: tuple[str, ...] = ()
    if acr is not None:
        values = (acr,) if isinstance(acr, str) else tuple(_iterable(acr))
        if not all(isinstance(value, str) for value in values):
            raise TypeError("require_token(acr=...) takes a string or strings")
        if not values or not all(value and is_acr_value(value) for value in values):
            raise ValueError(
                "require_token(acr=...) needs one or more non-empty acr values "
                f"without whitespace or quotes, got {acr!r}"
            )
    if max_age is not None:
        # bool is an int subclass; max_age=True is a mistake, not "1 second".
        if isinstance(max_age, bool) or not isinstance(max_age, int):
            raise TypeError(
                f"require_token(max_age=...) takes an integer, got {max_age!r}"
            )
        if max_age < 0:
            raise ValueError(
                f"require_token(max_age=...) must not be negative, got {max_age}"
            )
    return StepUp(values, max_age)


def _iterable(acr: t.Any) -> t.Iterable[t.Any]:
    if not isinstance(acr, t.Iterable) or isinstance(acr, bytes):
        raise TypeError(
            f"require_token(acr=...) takes a string or strings, got {acr!r}"
        )
    return acr


def check(step: StepUp, token: AccessToken, now: int) -> None:
    """Refuse ``token`` unless its authentication meets ``step``.

    A token whose ``auth_time`` is unknown (a reference token refreshed
    before it was stored) cannot prove it is recent enough.

    :raises OAuth2Error: 401 ``insufficient_user_authentication``.
    """
    if step.acr and token.acr not in step.acr:
        raise _error(token, WEAKER, step)
    if step.max_age is not None and (
        token.auth_time is None or now - token.auth_time > step.max_age
    ):
        raise _error(token, OLDER, step)


class InsufficientUserAuthenticationError(OAuth2Error):
    """401 ``insufficient_user_authentication`` (RFC 9470 §3) with a
    ``Bearer`` challenge naming the ``acr_values`` and ``max_age`` needed."""

    error = INSUFFICIENT
    status_code = 401

    def __init__(self, description: str, params: str) -> None:
        super().__init__(description=description)
        #: The challenge's ``acr_values``/``max_age`` auth-params.
        self.params = params

    def get_headers(self) -> list[tuple[str, str]]:
        challenge = (
            f'Bearer error="{INSUFFICIENT}", error_description="{self.description}"'
        )
        return [
            *super().get_headers(),
            ("WWW-Authenticate", f"{challenge}, {self.params}"),
        ]


def _error(token: AccessToken, description: str, step: StepUp) -> OAuth2Error:
    """The answer in the scheme the token was presented with: a DPoP-bound
    token only ever reaches this check as ``DPoP``."""
    params = step.challenge_params()
    if token.dpop_jkt is None:
        return InsufficientUserAuthenticationError(description, params)
    challenge = f'DPoP error="{INSUFFICIENT}", error_description="{description}"'
    headers = [("WWW-Authenticate", f'{challenge}, {params}, algs="{ALGS}"')]
    return DPoPError(INSUFFICIENT, description, 401, headers)
