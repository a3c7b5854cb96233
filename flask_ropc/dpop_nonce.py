"""Stateless DPoP nonces (RFC 9449 §8, §9): an HMAC of the time step.

A nonce is the HMAC-SHA256 of the current time step (:data:`STEP` seconds)
under a server secret, so every instance that shares the secret (derived
from ``ROPC_DPOP_NONCE_SECRET``, else ``SECRET_KEY``) issues and accepts the
same nonces without storing anything. The current step and the
:data:`ACCEPTED_STEPS` ``- 1`` before it are accepted, so a nonce stays good
for two to three minutes and a client that just got one never meets a
rollover it cannot survive. Duende's nonce is a protected timestamp and
node-oidc-provider's an HKDF of the step; this is the same idea.

A leaf: imports only the standard library.
"""

from __future__ import annotations

import base64
import hashlib
import hmac

#: Seconds per nonce.
STEP = 60
#: How many steps' nonces are accepted (the current one included).
ACCEPTED_STEPS = 3

_CONTEXT = b"flask-ropc dpop nonce v1"


class NonceSource:
    """Issues and checks the nonces of one secret.

    :param secret: shared by every instance of the deployment.
    """

    def __init__(self, secret: str | bytes) -> None:
        raw = secret.encode() if isinstance(secret, str) else secret
        # A key of its own, so that nonces reveal nothing about SECRET_KEY.
        self._key = hmac.new(raw, _CONTEXT, hashlib.sha256).digest()

    def _for_step(self, step: int) -> str:
        mac = hmac.new(self._key, step.to_bytes(8, "big", signed=True), "sha256")
        return base64.urlsafe_b64encode(mac.digest()[:24]).decode()

    def current(self, now: float) -> str:
        """The nonce to hand out at ``now``."""
        return self._for_step(int(now) // STEP)

    def is_valid(self, nonce: str, now: float) -> bool:
        """Whether ``nonce`` is the current one or one of the last few."""
        step = int(now) // STEP
        supplied = nonce.encode("utf-8", "replace")
        found = False
        for back in range(ACCEPTED_STEPS):
            # Every candidate is compared, in constant time each.
            expected = self._for_step(step - back).encode()
            found |= hmac.compare_digest(expected, supplied)
        return found
