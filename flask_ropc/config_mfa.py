"""The ``ROPC_MFA_*`` settings of MFA continuation, checked.

Kept apart from :mod:`flask_ropc.config` (which holds them as
``Settings.mfa``) so that each module reads on a page. Imports
``config_values`` and ``errors``.
"""

from __future__ import annotations

import dataclasses
import typing as t

from .config_values import positive_int
from .errors import ConfigurationError


@dataclasses.dataclass(frozen=True)
class MfaSettings:
    """How long an ``mfa_token`` lives and how many codes may be tried."""

    #: Seconds an ``mfa_token`` is valid (at most 600).
    token_lifetime: int
    #: Wrong codes one ``mfa_token`` survives; then it is dead (at most 10).
    max_attempts: int
    #: Wrong codes per user across every ``mfa_token`` in a window...
    failure_limit: int
    failure_window: int
    #: ...after which one more code per this many seconds.
    slow_interval: int
    #: The HTTP status of the ``mfa_required`` answer (403, as Auth0, or 400).
    required_status: int


def mfa_settings(config: t.Mapping[str, t.Any]) -> MfaSettings:
    """Read and check the ``ROPC_MFA_*`` keys.

    :raises ConfigurationError: a value of the wrong type or out of range.
    """
    status = config["ROPC_MFA_REQUIRED_STATUS"]
    if status not in (400, 403) or isinstance(status, bool):
        raise ConfigurationError(
            f"ROPC_MFA_REQUIRED_STATUS must be 403 or 400, got {status!r}"
        )
    return MfaSettings(
        token_lifetime=_at_most(config, "ROPC_MFA_TOKEN_LIFETIME", 600),
        max_attempts=_at_most(config, "ROPC_MFA_MAX_ATTEMPTS", 10),
        failure_limit=_at_most(config, "ROPC_MFA_FAILURE_LIMIT", 1000),
        failure_window=_at_most(config, "ROPC_MFA_FAILURE_WINDOW", 86400),
        slow_interval=_at_most(config, "ROPC_MFA_SLOW_INTERVAL", 86400),
        required_status=status,
    )


def _at_most(config: t.Mapping[str, t.Any], key: str, limit: int) -> int:
    # An mfa_token is a second chance at a login: bounded, like a code's life.
    value = positive_int(config, key)
    if value > limit:
        raise ConfigurationError(f"{key} may be at most {limit}, got {value!r}")
    return value
