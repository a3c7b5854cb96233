"""Checks of the configuration as a whole, made once the keys are read.

:func:`warn_unknown_keys` warns about a ``ROPC_*`` key nobody reads (almost
always a typo), naming the closest known key; :func:`check_bounds` rejects
durations no deployment means (a lifetime of 10**12 seconds) and pairs of
values that contradict each other (a sliding refresh lifetime longer than
the absolute one). :mod:`flask_ropc.config` calls both from
``Settings.from_config``. A leaf: imports ``errors`` only.
"""

from __future__ import annotations

import difflib
import typing as t
import warnings
from collections.abc import Iterable

from .errors import ConfigurationError

DAY = 24 * 3600
YEAR = 365 * DAY

#: The largest value of each duration key, in seconds. Access tokens and the
#: throttle's windows and locks: a year; refresh tokens: ten years (they are
#: revocable and rotate). Anything longer is a mistake (a value in
#: milliseconds, a stray digit).
UPPER_BOUNDS: dict[str, int] = {
    "ROPC_ACCESS_TOKEN_LIFETIME": YEAR,
    "ROPC_REFRESH_TOKEN_SLIDING_LIFETIME": 10 * YEAR,
    "ROPC_REFRESH_TOKEN_ABSOLUTE_LIFETIME": 10 * YEAR,
    "ROPC_JWKS_MAX_AGE": YEAR,
    "ROPC_THROTTLE_USERNAME_WINDOW": YEAR,
    "ROPC_THROTTLE_LOCKOUT_BASE": YEAR,
    "ROPC_THROTTLE_LOCKOUT_MAX": YEAR,
    "ROPC_THROTTLE_STRIKE_MEMORY": YEAR,
    "ROPC_THROTTLE_ACCOUNT_WINDOW": YEAR,
    "ROPC_THROTTLE_ACCOUNT_INTERVAL": YEAR,
    "ROPC_THROTTLE_IP_WINDOW": YEAR,
    "ROPC_THROTTLE_CLIENT_WINDOW": YEAR,
}

#: Pairs (smaller, larger): the first key's value may not exceed the second's.
ORDERED_PAIRS: tuple[tuple[str, str, str], ...] = (
    (
        "ROPC_REFRESH_TOKEN_SLIDING_LIFETIME",
        "ROPC_REFRESH_TOKEN_ABSOLUTE_LIFETIME",
        "no refresh token outlives the absolute lifetime, so a longer sliding "
        "one has no effect",
    ),
    (
        "ROPC_THROTTLE_LOCKOUT_BASE",
        "ROPC_THROTTLE_LOCKOUT_MAX",
        "the first lock would already be longer than the longest",
    ),
)


def warn_unknown_keys(config: t.Mapping[str, t.Any], known: Iterable[str]) -> None:
    """Warn (``UserWarning``) about every ``ROPC_*`` key not in ``known``."""
    names = sorted(known)
    for key in sorted(k for k in config if isinstance(k, str)):
        if not key.startswith("ROPC_") or key in names:
            continue
        close = difflib.get_close_matches(key, names, n=1)
        hint = f"; did you mean {close[0]}?" if close else ""
        warnings.warn(
            f"{key} is not a Flask-ROPC setting and is ignored{hint}",
            UserWarning,
            stacklevel=4,
        )


def check_bounds(config: t.Mapping[str, t.Any]) -> None:
    """Reject durations above :data:`UPPER_BOUNDS` and contradicting pairs.

    Run after each value's own check, so every value here is a number.

    :raises ConfigurationError: naming the key.
    """
    for key, bound in UPPER_BOUNDS.items():
        value = config[key]
        if value is not None and value > bound:
            raise ConfigurationError(
                f"{key} must be at most {bound} seconds "
                f"({_describe(bound)}), got {value!r}"
            )
    for smaller, larger, why in ORDERED_PAIRS:
        if config[smaller] > config[larger]:
            raise ConfigurationError(
                f"{smaller} ({config[smaller]!r}) must not exceed {larger} "
                f"({config[larger]!r}): {why}"
            )


def _describe(seconds: int) -> str:
    years = seconds // YEAR
    return "a year" if years == 1 else f"{years} years"
