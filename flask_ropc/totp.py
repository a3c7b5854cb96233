"""TOTP (RFC 6238) codes for ``@ropc.mfa_verifier``, with replay rejection.

::

    from flask_ropc.totp import TotpVerifier

    totp = TotpVerifier(lambda req: users[req.subject].totp_secret)

    @ropc.mfa_verifier
    def verify(req):
        if req.factor == "otp":
            return totp(req)
        return recovery_codes.use(req.subject, req.code)

A code is accepted for its own 30-second step and one step either side
(RFC 6238 §5.2's "one time step" of network delay), and once accepted it is
refused for the rest of its window: the last accepted step of each subject is
remembered (in ``ropc_mfa_steps`` unless an own :class:`StepLedger` is
given), and only a later step is accepted after it, so neither the same code
under a second ``mfa_token`` nor an older one still inside the window works.

Needs ``pyotp`` (``pip install flask-ropc[mfa]``); the package does not
import this module. The secret stays with the app: this module reads it from
``secret_for`` per request and keeps nothing.
"""

from __future__ import annotations

import hmac
import time
import typing as t
from collections.abc import Callable

import pyotp

from .mfa_contract import OTP
from .mfa_contract import MfaRequest
from .mfa_contract import MfaResult
from .mfa_contract import StepLedger


class TotpVerifier:
    """Checks ``otp`` codes against a base32 TOTP secret per user.

    :param secret_for: returns the user's base32 secret for a request, or
        ``None`` if the user has none (the code is then wrong).
    :param digits: the code length (6 or 8).
    :param interval: the time step in seconds.
    :param valid_window: steps accepted either side of the current one.
    :param steps: where accepted steps are remembered; default the
        request's (``ropc_mfa_steps``).
    :param clock: the current Unix time; for tests.
    """

    def __init__(
        self,
        secret_for: Callable[[MfaRequest], str | None],
        *,
        digits: int = 6,
        interval: int = 30,
        valid_window: int = 1,
        steps: StepLedger | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        if digits not in (6, 8) or interval <= 0 or not 0 <= valid_window <= 3:
            raise ValueError("TotpVerifier: digits 6 or 8, interval > 0, window 0-3")
        self._secret_for = secret_for
        self._digits = digits
        self._interval = interval
        self._window = valid_window
        self._steps = steps
        self._clock = clock

    def matching_step(self, secret: str, code: str, now: float) -> int | None:
        """The time step within the window whose code ``code`` is, if any.

        Every step of the window is computed and compared in constant time,
        so the answer's timing does not say which step matched.
        """
        totp = pyotp.TOTP(secret, digits=self._digits, interval=self._interval)
        current = int(now // self._interval)
        found = None
        for step in range(current - self._window, current + self._window + 1):
            if hmac.compare_digest(totp.generate_otp(step), code) and found is None:
                found = step
        return found

    def __call__(self, request: MfaRequest) -> MfaResult:
        """Verify ``request.code``; a matched step is accepted only once."""
        if request.factor != OTP:
            return MfaResult.failure("unsupported_factor")
        code = request.code.strip()
        if len(code) != self._digits or not code.isdigit() or not code.isascii():
            return MfaResult.failure("malformed_code")
        secret = self._secret_for(request)
        if not secret:
            return MfaResult.failure("no_secret")
        step = self.matching_step(secret, code, self._clock())
        if step is None:
            return MfaResult.failure("invalid_code")
        ledger: t.Any = self._steps or request.steps
        if not ledger.accept(request.subject, step):
            return MfaResult.failure("replayed")
        return MfaResult.success()
