"""Breached-password checks for the app's validator (optional).

The validator sees the plaintext password, so it is where a password that
leaked after it was set can be caught (NIST SP 800-63B §5.1.1.2 asks for the
check when passwords are set; breaches keep coming). After your validator
has verified the password, hand its verdict to :meth:`BreachCheck.review`::

    from flask_ropc.breach import BreachCheck

    breach = BreachCheck(policy="block")

    @ropc.password_validator
    def check(req):
        user = find_user(req.username)
        if user is None or not user.check_password(req.password):
            return None
        return breach.review(req, GrantResult.success(user.id))

Only a correct password is ever looked up, so the HTTP call cannot be
amplified by guessing. The lookup is Have I Been Pwned's k-anonymity range
API (:mod:`flask_ropc.breach_range`): five hex characters of the SHA-1
leave the process, never the password or its hash, and neither is logged,
cached or put in an event.

Imports ``breach_range``, ``signals`` and leaves; not ``extension``.
"""

from __future__ import annotations

import logging
import threading
import time
import typing as t
from collections.abc import Callable
from collections.abc import Mapping

from . import signals
from .breach_range import DEFAULT_BASE_URL as DEFAULT_BASE_URL
from .breach_range import RangeCache
from .breach_range import RangeLookup
from .breach_range import Transport as Transport
from .breach_range import urllib_transport as urllib_transport
from .errors import BreachLookupError as BreachLookupError
from .errors import ConfigurationError
from .validation import INVALID_CREDENTIALS
from .validation import GrantResult
from .validation import PasswordRequest
from .validation import normalise_result

log = logging.getLogger("flask_ropc")

#: What :meth:`BreachCheck.review` does with a breached password.
POLICIES = ("block", "step_up", "flag")

#: Seconds between two warnings about failed lookups (an outage would
#: otherwise log one line per login).
WARN_INTERVAL = 60.0

#: The internal ``reason`` of a blocked login, for events and logs.
BREACHED = "breached_password"
#: The internal ``reason`` when ``fail="closed"`` blocked an unchecked login.
LOOKUP_FAILED = "breach_check_failed"


class BreachCheck:
    """Look a verified password up in a breach corpus and apply a policy.

    :param policy: ``"block"``: refuse the login with the wrong-password
        answer (``invalid_grant``, ``"invalid username or password"``), so
        the response does not confirm that the password was right;
        ``"step_up"``: answer ``mfa_required``, so the user gets in with a
        second factor (needs ``GrantResult.mfa_required``, the MFA
        continuation); ``"flag"``: issue the tokens. Every policy sends
        :data:`flask_ropc.signals.password_breached`.
    :param fail: ``"open"`` (default): when the range cannot be fetched or
        read, let the login through unchanged (and log a warning, at most
        one a minute);
        ``"closed"``: treat the password as breached (``block`` then refuses
        with the plain answer, ``step_up`` demands the second factor).
    :param min_count: how many appearances make a password breached.
    :param timeout: seconds allowed for one range request (default 2).
    :param base_url: the range API, ``{base_url}/range/{PREFIX}``; a mirror
        for air-gapped installs.
    :param transport: a :class:`~flask_ropc.breach_range.Transport` callable
        that fetches a URL; default :func:`urllib_transport`.
    :param cache_ttl: seconds a prefix's answer is reused (0: never).
    :param cache_size: how many prefixes' answers are kept (about 40 KB
        each); the least recently used goes first.
    :param clock: the cache's and the warnings' clock, ``time.monotonic``
        unless given.
    :param user_agent: the ``User-Agent`` header HIBP asks callers to send.
    :param block_result: ``block``'s answer for a confirmed breach instead
        of the wrong-password one, e.g. ``GrantResult.error(
        "password_leaked", "Change your password to sign in.")``; it tells
        whoever sent the password that it was right.
    :param factors: ``step_up``'s factors for ``GrantResult.mfa_required``.
    :param flag_claims: ``flag``'s claims added to the tokens, e.g.
        ``{"pwd_breached": True}`` for your API to ask for a change.
    :raises ConfigurationError: for a value out of range.
    """

    def __init__(
        self,
        policy: str = "block",
        *,
        fail: str = "open",
        min_count: int = 1,
        timeout: float = 2.0,
        base_url: str = DEFAULT_BASE_URL,
        transport: Transport | None = None,
        cache_ttl: float = 3600.0,
        cache_size: int = 256,
        clock: Callable[[], float] = time.monotonic,
        user_agent: str = "Flask-ROPC breached-password check",
        block_result: GrantResult | None = None,
        factors: t.Sequence[str] = ("otp", "recovery-code"),
        flag_claims: Mapping[str, t.Any] | None = None,
    ) -> None:
        if policy not in POLICIES:
            raise ConfigurationError(
                f"BreachCheck policy must be one of {', '.join(POLICIES)}, "
                f"not {policy!r}"
            )
        if fail not in ("open", "closed"):
            raise ConfigurationError(
                f"BreachCheck fail must be 'open' or 'closed', not {fail!r}"
            )
        if isinstance(min_count, bool) or not isinstance(min_count, int):
            raise ConfigurationError("BreachCheck min_count must be an int")
        if min_count < 1:
            raise ConfigurationError("BreachCheck min_count must be at least 1")
        if not 0 < timeout <= 30:
            raise ConfigurationError("BreachCheck timeout must be in (0, 30] seconds")
        if not base_url.startswith(("https://", "http://")):
            raise ConfigurationError(
                "BreachCheck base_url must be an http(s) URL, such as "
                f"{DEFAULT_BASE_URL!r}"
            )
        if cache_ttl < 0 or cache_size < 0:
            raise ConfigurationError(
                "BreachCheck cache_ttl and cache_size must not be negative"
            )
        if block_result is not None and block_result.is_success:
            raise ConfigurationError("BreachCheck block_result must be an error")
        #: The policy applied to a breached password.
        self.policy = policy
        #: ``"open"`` or ``"closed"``: what a failed lookup means.
        self.fail = fail
        #: Appearances from which a password counts as breached.
        self.min_count = min_count
        self._block_result = block_result
        self._factors = tuple(factors)
        self._flag_claims = dict(flag_claims or {})
        self._cache = RangeCache(cache_ttl, cache_size, clock)
        self._clock = clock
        self._warn_lock = threading.Lock()
        self._warned_at: float | None = None
        self._unlogged = 0
        self._lookup = RangeLookup(
            base_url=base_url,
            timeout=timeout,
            transport=transport or urllib_transport,
            cache=self._cache,
            user_agent=user_agent,
        )

    def __repr__(self) -> str:
        return f"BreachCheck(policy={self.policy!r}, fail={self.fail!r})"

    def count(self, password: str) -> int:
        """How often ``password`` appears in the breach corpus (0: never).

        For checks of your own, e.g. when a user sets a new password.

        :raises BreachLookupError: the range could not be fetched or read.
        """
        return self._lookup.count(password)

    def review(self, req: PasswordRequest, result: object) -> GrantResult:
        """The validator's verdict, with the breach policy applied.

        Call it with a *verified* login: ``result`` is what the validator
        would return (a :class:`~flask_ropc.GrantResult`, a subject string,
        or ``None``). Anything but a success comes back unchanged and
        nothing is looked up.

        :param req: the :class:`~flask_ropc.PasswordRequest` being validated.
        :param result: the validator's verdict for it.
        """
        verdict = normalise_result(result)
        if not verdict.is_success:
            return verdict
        assert verdict.subject is not None
        try:
            breached = self._lookup.count(req.password) >= self.min_count
            lookup_failed = False
        except BreachLookupError as error:
            self._warn(req.client.client_id, error)
            if self.fail == "open":
                return verdict
            breached, lookup_failed = True, True
        if not breached:
            return verdict
        signals.send(
            signals.password_breached,
            client_id=req.client.client_id,
            subject=verdict.subject,
            policy=self.policy,
            lookup_failed=lookup_failed,
        )
        return self._apply(verdict, lookup_failed)

    def _warn(self, client_id: str, error: BreachLookupError) -> None:
        """Log a failed lookup; during an outage, once a minute at most."""
        now = self._clock()
        with self._warn_lock:
            if self._warned_at is not None and now - self._warned_at < WARN_INTERVAL:
                self._unlogged += 1
                return
            unlogged, self._unlogged, self._warned_at = self._unlogged, 0, now
        outcome = (
            "login allowed (fail='open')"
            if self.fail == "open"
            else "password treated as breached (fail='closed')"
        )
        since = f" ({unlogged} more since the last warning)" if unlogged else ""
        log.warning(
            "breached-password check for client %s failed, %s: %s%s",
            client_id,
            outcome,
            error,
            since,
        )

    def _apply(self, verdict: GrantResult, lookup_failed: bool) -> GrantResult:
        assert verdict.subject is not None
        if self.policy == "block":
            if self._block_result is not None and not lookup_failed:
                return self._block_result
            # Exactly the wrong-password answer, and it counts towards
            # throttling like one: credential stuffing *is* breached
            # passwords, and a budget that skipped them would be an oracle.
            return GrantResult.error(
                "invalid_grant",
                INVALID_CREDENTIALS,
                reason=LOOKUP_FAILED if lookup_failed else BREACHED,
            )
        if self.policy == "step_up":
            # The tokens come after the second factor, with the success's
            # claims and extra fields.
            return GrantResult.mfa_required(
                verdict.subject,
                factors=self._factors,
                claims=verdict.claims,
                extra=verdict.extra,
            )
        if not self._flag_claims:
            return verdict
        return GrantResult.success(
            verdict.subject, {**verdict.claims, **self._flag_claims}, verdict.extra
        )
