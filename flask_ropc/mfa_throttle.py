"""The per-user budget of MFA codes, across every ``mfa_token``.

Each ``mfa_token`` dies after ``ROPC_MFA_MAX_ATTEMPTS`` wrong codes, but an
attacker who has the password can mint new tokens at will; so wrong codes are
also counted per subject, on the throttle's counters (database or Redis):
past ``ROPC_MFA_FAILURE_LIMIT`` per ``ROPC_MFA_FAILURE_WINDOW`` (a sliding
window), one more code per ``ROPC_MFA_SLOW_INTERVAL`` from anywhere. A six-
digit code then takes years to guess, while the real user is slowed, never
locked out. As for passwords, the place is reserved before the verifier runs
and given back when the code was right (or the verifier crashed).

Imports ``throttle`` (its counters and storage-error policy), ``config``
and leaves.
"""

from __future__ import annotations

import dataclasses
import math

from . import hashing
from .config_mfa import MfaSettings
from .errors import Throttled
from .throttle import Throttle
from .throttle_window import Window


@dataclasses.dataclass(frozen=True)
class MfaAttempt:
    """The place one code reserved."""

    reservation: tuple[str, int]


class MfaThrottle:
    """Checks and records MFA codes against the per-subject budget.

    :param throttle: the password throttle, whose counters, key prefix and
        ``ROPC_THROTTLE_ON_STORAGE_ERROR`` policy this shares.
    :param settings: the ``ROPC_MFA_*`` settings.
    """

    def __init__(self, throttle: Throttle, settings: MfaSettings) -> None:
        self._throttle = throttle
        self._settings = settings

    def _base(self, subject: str) -> str:
        # A digest: subjects are not stored in the clear.
        return f"{self._throttle.prefix}:mfa:{hashing.digest(subject)[:32]}"

    def begin(self, subject: str) -> MfaAttempt | None:
        """Reserve a place for one code, or raise :class:`Throttled` (scope
        ``mfa``). ``None`` when the storage failed and the policy is open."""
        attempt: MfaAttempt | None = self._throttle.guard(lambda: self._begin(subject))
        return attempt

    def _begin(self, subject: str) -> MfaAttempt:
        s, counters = self._settings, self._throttle.counters
        base = self._base(subject)
        window = Window.at(
            f"{base}:fails", s.failure_limit, s.failure_window, counters.now()
        )
        seen, counts, _ = counters.reserve(
            [window.previous], [window.reservation], lambda seen: True
        )
        assert counts is not None
        estimate = window.estimate(counts[0][0], seen.get(window.previous, 0))
        if estimate > window.limit:
            # Slowed: one code per interval, whoever sends it.
            slot = f"{base}:slot"
            if counters.incr_many([(slot, s.slow_interval)])[0][0] > 1:
                counters.release_many([window.reservation])
                remaining = counters.get_expiry(slot) - counters.now()
                raise Throttled(max(1, math.ceil(remaining)), "mfa")
        return MfaAttempt(window.reservation)

    def settle(self, attempt: MfaAttempt | None, *, counts: bool) -> None:
        """A verdict: a wrong code keeps its place (``counts``); a right
        one, or a crash, gives it back."""
        if attempt is None or counts:
            return
        counters = self._throttle.counters
        self._throttle.guard(lambda: counters.release_many([attempt.reservation]))

    def unlock(self, subject: str) -> int:
        """Forget the wrong codes and the slow-down of ``subject``; return how
        many live counters that cleared."""
        # The ":" keeps one digest from being a prefix of another's keys.
        return self._throttle.counters.clear_prefix(self._base(subject) + ":")
