"""Brute-force and credential-stuffing protection for the password grant.

RFC 6749 §4.3.2 says the token endpoint "MUST protect the endpoint against
brute force attacks"; RFC 6819 §4.4.3.6 lists account lockout and tar pits.
Three budgets are checked *before* the validator runs, so a throttled guess
costs no password hash:

* per username (case-folded and trimmed): ``ROPC_THROTTLE_USERNAME_LIMIT``
  failures per ``ROPC_THROTTLE_USERNAME_WINDOW``; reaching the limit locks the
  username for a back-off that doubles with each lock (from
  ``ROPC_THROTTLE_LOCKOUT_BASE`` up to ``ROPC_THROTTLE_LOCKOUT_MAX``), like
  Keycloak's temporary lockout. A success resets it.
* per client IP address (IPv6: per /64), with a higher limit, against
  stuffing across many usernames;
* optionally per client.

Counters are kept for every submitted username, existing or not, so a lock
looks the same for both and tells an attacker nothing.

Why hand-rolled on top of counters: the ``limits`` library (Flask-Limiter's)
gives us atomic counters in Redis and memory, but its rate limiters neither
back off exponentially nor let a success undo the failures. So we count
through :class:`~flask_ropc.store.counters.Counters`, which our own table and
every ``limits`` storage implement.

Every attempt *reserves* its place with one atomic increment before the
validator runs, and gives it back if it turns out not to count (a success
on the IP budget, a validator that says so). So under any concurrency no
more attempts reach the validator than a budget allows.

Imports :mod:`~flask_ropc.store` (the counters), ``config`` and leaves.
"""

from __future__ import annotations

import dataclasses
import logging
import math
import typing as t

from . import hashing
from .config import Settings
from .errors import TemporarilyUnavailableError
from .errors import Throttled
from .normalise import ip_bucket
from .normalise import normalise_username
from .store.counters import Counters
from .store.counters import DatabaseCounters

if t.TYPE_CHECKING:  # pragma: no cover
    import sqlalchemy as sa

log = logging.getLogger("flask_ropc")


def _digest(value: str) -> str:
    # Keys hold digests, so usernames and IPs are not stored in the clear.
    return hashing.digest(value)[:40]


@dataclasses.dataclass
class Attempt:
    """The places one attempt reserved, to settle once the validator answered."""

    username_key: str
    level: int
    username_count: int
    reserved: list[tuple[str, int]] = dataclasses.field(default_factory=list)


class Throttle:
    """Checks and records password attempts against the three budgets.

    :param counters: where counters live (shared by all workers).
    :param settings: the app's settings (limits, windows, back-off).
    :param prefix: prepended to every key (e.g. per test run in Redis).
    """

    def __init__(self, counters: Counters, settings: Settings, prefix: str) -> None:
        self.counters = counters
        self.settings = settings
        self.prefix = prefix

    def _key(self, *parts: str) -> str:
        return ":".join((self.prefix, *parts))

    def _user_keys(self, username: str) -> tuple[str, str, str]:
        user = _digest(normalise_username(username))
        return (
            self._key("lock", user),
            self._key("strikes", user),
            self._key("fails", user),
        )

    def _guard(self, action: t.Callable[[], t.Any]) -> t.Any:
        """Run a storage call; apply ``ROPC_THROTTLE_ON_STORAGE_ERROR``."""
        try:
            return action()
        except Throttled:
            raise
        except Exception:
            if self.settings.throttle_on_storage_error == "open":
                log.exception(
                    "throttling storage failed; ROPC_THROTTLE_ON_STORAGE_ERROR=open "
                    "lets this attempt through UNTHROTTLED"
                )
                return None
            log.exception(
                "throttling storage failed; refusing password attempts with 503 "
                "(ROPC_THROTTLE_ON_STORAGE_ERROR=closed)"
            )
            raise TemporarilyUnavailableError() from None

    def begin(
        self, username: str, client_ip: str | None, client_id: str
    ) -> Attempt | None:
        """Reserve one attempt, or raise :class:`Throttled`.

        Returns ``None`` when the storage failed and the policy is ``open``.
        """
        result: Attempt | None = self._guard(
            lambda: self._begin(username, client_ip, client_id)
        )
        return result

    def _begin(self, username: str, client_ip: str | None, client_id: str) -> Attempt:
        s = self.settings
        lock_key, strikes_key, fails_prefix = self._user_keys(username)
        # The lock level is read *before* the lock itself: whoever imposes a
        # lock sets it before raising the level, so an attempt that sees the
        # new level also sees the lock, and one that saw the old level counts
        # against the old, already full, budget.
        level, locked = self._get_pair(strikes_key, lock_key)
        if locked > 0:
            raise Throttled(self._remaining(lock_key), "username")
        fails_key = f"{fails_prefix}:{level}"
        # (key, limit, window, scope), username first: Attempt needs its count.
        budgets = [
            (
                fails_key,
                s.throttle_username_limit,
                s.throttle_username_window,
                "username",
            )
        ]
        if client_ip:
            ip_key = self._key("ip", _digest(ip_bucket(client_ip)))
            budgets.append((ip_key, s.throttle_ip_limit, s.throttle_ip_window, "ip"))
        if s.throttle_client_limit:
            budgets.append(
                (
                    self._key("client", client_id),
                    s.throttle_client_limit,
                    s.throttle_client_window,
                    "client",
                )
            )
        reserved = [(key, window) for key, _, window, _ in budgets]
        counts = self.counters.incr_many(reserved)
        outcomes = zip(budgets, counts, strict=True)
        for (key, limit, _, scope), (count, expires_at) in outcomes:
            if count <= limit:
                continue
            self._release(reserved)
            if scope == "username":
                retry = max(self._remaining(lock_key), s.throttle_lockout_base)
            elif expires_at is not None:
                retry = max(1, math.ceil(expires_at - self.counters.now()))
            else:
                retry = self._remaining(key)
            raise Throttled(retry, scope)
        return Attempt(
            username_key=fails_key,
            level=level,
            username_count=counts[0][0],
            reserved=reserved,
        )

    def _get_pair(self, first: str, second: str) -> tuple[int, int]:
        """Two counters, read in this order (see _begin); one query for ours."""
        values = self.counters.get_many([first, second])
        return values.get(first, 0), values.get(second, 0)

    def _release(self, reserved: list[tuple[str, int]]) -> None:
        if reserved:
            self.counters.release_many(reserved)

    def _remaining(self, key: str) -> int:
        remaining = self.counters.get_expiry(key) - self.counters.now()
        return max(1, math.ceil(remaining))

    @property
    def settles_in_database(self) -> bool:
        """Whether :meth:`settle_in` can join the grant's own transaction.

        True for the default counters, which live in the same database as
        the tokens; a Redis or memory storage settles with
        :meth:`succeeded` instead.
        """
        return self.counters.settles_in_database

    def succeeded(self, attempt: Attempt | None, username: str) -> None:
        """A right password: reset the username, give back IP/client places."""
        if attempt is None:
            return

        def settle() -> None:
            if isinstance(self.counters, DatabaseCounters):
                with self.counters.transaction() as conn:
                    self.settle_in(conn, attempt, username)
                return
            self._clear_user(username, attempt.level)
            self._release(attempt.reserved[1:])

        self._guard(settle)

    def settle_in(self, conn: sa.Connection, attempt: Attempt, username: str) -> None:
        """:meth:`succeeded` for database counters, inside ``conn``'s transaction.

        Storage errors propagate: the caller's transaction fails with them.
        """
        assert isinstance(self.counters, DatabaseCounters)
        level = attempt.level
        if level > 0:
            # Another attempt may have raised the level since this one began.
            strikes = self.counters.get(self._user_keys(username)[1], conn)
            level = max(level, strikes)
        self.counters.settle(
            conn,
            release=[key for key, _ in attempt.reserved[1:]],
            clear=self._user_clear_keys(username, level),
        )

    def failed(self, attempt: Attempt | None, username: str, *, counts: bool) -> None:
        """A refused password; ``counts=False`` gives every place back."""
        if attempt is None:
            return
        if not counts:
            self._guard(lambda: self._release(attempt.reserved))
            return
        if attempt.username_count >= self.settings.throttle_username_limit:
            self._guard(lambda: self._lock(username))

    def _lock(self, username: str) -> None:
        s = self.settings
        lock_key, strikes_key, _ = self._user_keys(username)
        level = self.counters.get(strikes_key)
        backoff = min(s.throttle_lockout_base * 2**level, s.throttle_lockout_max)
        # Lock first, then raise the level (see _begin).
        self.counters.incr(lock_key, backoff)
        self.counters.incr(strikes_key, s.throttle_strike_memory)
        log.warning(
            "username locked for %d s after %d failed attempts (lock #%d)",
            backoff,
            s.throttle_username_limit,
            level + 1,
        )

    def _user_clear_keys(self, username: str, level: int) -> list[str]:
        """Every key of ``username`` whose lock level is at most ``level``."""
        lock_key, strikes_key, fails_prefix = self._user_keys(username)
        keys = [f"{fails_prefix}:{n}" for n in range(level + 1)]
        return [*keys, lock_key, strikes_key]

    def _clear_user(self, username: str, up_to_level: int) -> None:
        _, strikes_key, _ = self._user_keys(username)
        level = max(up_to_level, self.counters.get(strikes_key))
        self.counters.clear_many(self._user_clear_keys(username, level))

    def unlock(self, username: str) -> None:
        """Forget every failure and lock of ``username``."""
        self._clear_user(username, 0)
