"""Brute-force and credential-stuffing protection for the password grant.

RFC 6749 §4.3.2 says the token endpoint "MUST protect the endpoint against
brute force attacks"; RFC 6819 §4.4.3.6 lists account lockout and tar pits.
Budgets are checked *before* the validator runs, so a throttled guess costs
no password hash. Modelled on Auth0's brute-force protection:

* per (username, source network) pair: ``ROPC_THROTTLE_USERNAME_LIMIT``
  failures per ``ROPC_THROTTLE_USERNAME_WINDOW``; reaching the limit locks
  *that pair* for a back-off that doubles with each lock (from
  ``ROPC_THROTTLE_LOCKOUT_BASE`` up to ``ROPC_THROTTLE_LOCKOUT_MAX``). The
  real user on another network still gets in, so no attacker can keep an
  account locked. A success clears only its own pair: other sources see
  nothing of it.
* per username across every source: past ``ROPC_THROTTLE_ACCOUNT_LIMIT``
  failures (and attempts in flight) per ``ROPC_THROTTLE_ACCOUNT_WINDOW``
  (distributed stuffing), the account is slowed to one attempt per
  ``ROPC_THROTTLE_ACCOUNT_INTERVAL`` from anywhere, never locked; only an
  attempt that passed every other budget takes that place.
* per source network (an IPv4 address, an IPv6 /64), a higher limit against
  stuffing across many usernames; optionally per client.

Usernames are counted in a normalised form and addresses by network (see
:mod:`~flask_ropc.normalise`). Counters are kept for every submitted
username, existing or not, so throttling tells an attacker nothing.

Every attempt *reserves* its place with one atomic increment before the
validator runs, and gives it back if it does not count (a success, a crash, a
validator that says so). So under any concurrency no more attempts reach the
validator than a budget allows. Attempts still in flight are counted apart
from failures, so a refusal never calls them failures.

Windows slide (see :mod:`~flask_ropc.throttle_window`; ``limits``' own
sliding windows cannot give a reserved place back, hence our own keys).

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
from .store.database import is_missing_schema
from .throttle_window import Window

if t.TYPE_CHECKING:  # pragma: no cover
    import sqlalchemy as sa

log = logging.getLogger("flask_ropc")

#: How long an in-flight mark outlives a worker that died mid-attempt.
IN_FLIGHT_SECONDS = 60


def _digest(value: str) -> str:
    # Keys hold digests, so usernames and IPs are not stored in the clear;
    # 128 bits, so that the longest key fits the table's 128 characters.
    return hashing.digest(value)[:32]


@dataclasses.dataclass(frozen=True)
class Attempt:
    """What one attempt reserved, to settle once the validator answered."""

    #: The pair's failure counters start so; then ``:level:window``.
    pair_fails: str
    #: The pair's fixed window then, and its lock level (see :meth:`_lock`).
    window_index: int
    level: int
    lock_key: str
    strikes_key: str
    #: The pair's count (failures and attempts in flight) with this one.
    pair_estimate: int
    #: ``(key, expiry)`` of every place to give back when this does not count.
    reserved: tuple[tuple[str, int], ...]
    #: The budgets' in-flight marks, given back whatever the outcome.
    in_flight: tuple[tuple[str, int], ...]
    #: Whether the app exempted this source (see ``@ropc.throttle_exempt``).
    exempt: bool

    def pair_keys(self, up_to_level: int) -> list[str]:
        """Every key of the pair whose lock level is at most ``up_to_level``."""
        keys = [self.lock_key, self.strikes_key]
        for level in range(up_to_level + 1):
            for index in (self.window_index, self.window_index - 1):
                keys.append(f"{self.pair_fails}:{level}:{index}")
        return keys


class Throttle:
    """Checks and records password attempts against the budgets.

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

    def _user_prefix(self, username: str) -> str:
        """Every key of one username starts with this (see :meth:`unlock`)."""
        return self._key("u", _digest(normalise_username(username))) + ":"

    def guard(self, action: t.Callable[[], t.Any]) -> t.Any:
        """Run a storage call; apply ``ROPC_THROTTLE_ON_STORAGE_ERROR``."""
        try:
            return action()
        except Throttled:
            raise
        except Exception as error:
            if is_missing_schema(error):
                raise  # not an outage: a 500 naming the fix (see guards)
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
        self, username: str, client_ip: str, client_id: str, *, exempt: bool = False
    ) -> Attempt | None:
        """Reserve one attempt, or raise :class:`Throttled`.

        ``exempt`` (a network the app trusts) skips the pair and network
        budgets; the account's slow-down and the client budget still apply.
        Returns ``None`` when the storage failed and the policy is ``open``.
        """
        begin = lambda: self._begin(username, client_ip, client_id, exempt)  # noqa: E731
        return t.cast("Attempt | None", self.guard(begin))

    def _begin(
        self, username: str, client_ip: str, client_id: str, exempt: bool
    ) -> Attempt:
        s, now = self.settings, self.counters.now()
        network = _digest(ip_bucket(client_ip))
        user = self._user_prefix(username)
        pair = f"{user}p:{network}"
        lock_key, strikes_key = f"{pair}:lock", f"{pair}:strikes"
        account = Window.at(
            f"{user}fails", s.throttle_account_limit, s.throttle_account_window, now
        )

        def pair_window(level: int) -> Window:
            # A lock raises the level: counting starts afresh under new keys,
            # while an attempt that read the old level before the lock counts
            # against the old, already full, ones.
            base = f"{pair}:fails:{level}"
            limit = s.throttle_username_limit
            return Window.at(base, limit, s.throttle_username_window, now)

        ip_key, client_key = self._key("ip", network), f"client:{client_id}"
        budgets = []
        if not exempt:
            ip = Window.at(ip_key, s.throttle_ip_limit, s.throttle_ip_window, now)
            budgets.append(("ip", ip))
        if s.throttle_client_limit:
            limit, seconds = s.throttle_client_limit, s.throttle_client_window
            client = Window.at(self._key(client_key), limit, seconds, now)
            budgets.append(("client", client))
        # One step reads the lock, level and previous windows and reserves at
        # level 0; a lock refuses, another level reserves again. Whoever locks
        # does so before raising the level: who sees the level sees the lock.
        shared = [strikes_key, lock_key, account.previous]
        shared += [window.previous for _, window in budgets]
        level = 0
        while True:
            mine = list(budgets)
            if not exempt:
                mine.insert(0, ("username", pair_window(level)))
            reads = [*shared, *(w.previous for n, w in mine if n == "username")]
            reserved = [window.reservation for _, window in mine]
            reserved.append(account.reservation)
            # A budget counts failures and attempts in flight together (the
            # reservation); its in-flight mark tells the two apart.
            in_flight = [(f"{w.base}:run", IN_FLIGHT_SECONDS) for _, w in mine]
            given_back = [*reserved, *in_flight]

            def proceed(seen: dict[str, int], level: int = level) -> bool:
                locked = seen.get(lock_key, 0) > 0
                return exempt or (not locked and seen.get(strikes_key, 0) == level)

            seen, reply, until = self.counters.reserve(reads, given_back, proceed)
            if reply is not None:
                break
            if seen.get(lock_key, 0) > 0:
                raise Throttled(self._remaining(lock_key, until), "username")
            level = seen.get(strikes_key, 0)  # after a lock: rare
        budgets, level = mine, seen.get(strikes_key, 0) if exempt else level
        counts = [count for count, _ in reply]
        for n, (scope, window) in enumerate(budgets):
            estimate = window.estimate(counts[n], seen.get(window.previous, 0))
            if estimate <= window.limit:
                continue
            self.counters.release_many(given_back)
            if estimate - counts[len(reserved) + n] < window.limit:
                # Attempts still running fill the budget: none failed.
                raise Throttled(1, "in_flight")
            if scope == "username":
                raise Throttled(s.throttle_lockout_base, "username")
            raise Throttled(max(1, math.ceil(window.ends_in)), scope)
        on_account = counts[len(budgets)]
        if account.estimate(on_account, seen.get(account.previous, 0)) > account.limit:
            # Slowed: one attempt per interval, from anywhere. Only an
            # attempt that passed every other budget competes for it, so a
            # source refused anyway cannot hold it.
            slot = (f"{user}slot", s.throttle_account_interval)
            if self.counters.incr_many([slot])[0][0] > 1:
                self.counters.release_many(given_back)
                raise Throttled(self._remaining(slot[0]), "account")
        pair_estimate = 0
        if not exempt:
            pair_estimate = budgets[0][1].estimate(
                counts[0], seen.get(budgets[0][1].previous, 0)
            )
        return Attempt(
            pair_fails=f"{pair}:fails",
            window_index=int(now // s.throttle_username_window),
            level=level,
            lock_key=lock_key,
            strikes_key=strikes_key,
            pair_estimate=pair_estimate,
            reserved=tuple(reserved),
            in_flight=tuple(in_flight),
            exempt=exempt,
        )

    def _remaining(self, key: str, known: t.Mapping[str, float] = {}) -> int:  # noqa: B006
        expiry = known.get(key) or self.counters.get_expiry(key)
        remaining = expiry - self.counters.now()
        return max(1, math.ceil(remaining))

    @property
    def settles_in_database(self) -> bool:
        """Whether :meth:`settle_in` can join the grant's own transaction.

        True for the default counters, which live in the same database as
        the tokens; a Redis or memory storage settles with
        :meth:`succeeded` instead.
        """
        return self.counters.settles_in_database

    def _success_changes(
        self, attempt: Attempt, level: int
    ) -> tuple[list[tuple[str, int]], list[str]]:
        """``(release, clear)`` of a success: the network and client places and
        the in-flight mark go back; the pair (up to ``level``) starts afresh."""
        release = list(attempt.reserved if attempt.exempt else attempt.reserved[1:])
        release.extend(attempt.in_flight)
        clear = [] if attempt.exempt else attempt.pair_keys(level)
        return release, clear

    def _level_now(self, attempt: Attempt, conn: sa.Connection | None = None) -> int:
        """The pair's lock level: another attempt may have raised it since."""
        if attempt.exempt or attempt.level == 0:
            # Spares the common success a read. A lock imposed meanwhile can
            # only leave attempts in flight under the new level; they expire.
            return attempt.level
        if conn is not None:
            assert isinstance(self.counters, DatabaseCounters)
            return max(attempt.level, self.counters.get(attempt.strikes_key, conn))
        return max(attempt.level, self.counters.get(attempt.strikes_key))

    def succeeded(self, attempt: Attempt | None) -> None:
        """A right password: give back the places, forget the pair's failures."""
        if attempt is None:
            return

        def settle() -> None:
            if isinstance(self.counters, DatabaseCounters):
                with self.counters.transaction() as conn:
                    self.settle_in(conn, attempt)
                return
            release, clear = self._success_changes(attempt, self._level_now(attempt))
            self.counters.clear_many(clear)
            self.counters.release_many(release)

        self.guard(settle)

    def settle_in(self, conn: sa.Connection, attempt: Attempt) -> None:
        """:meth:`succeeded` for database counters, inside ``conn``'s transaction.

        Storage errors propagate: the caller's transaction fails with them.
        """
        assert isinstance(self.counters, DatabaseCounters)
        release, clear = self._success_changes(attempt, self._level_now(attempt, conn))
        keys = [key for key, _ in release]
        self.counters.settle(conn, release=keys, clear=clear)

    def failed(self, attempt: Attempt | None, *, counts: bool) -> None:
        """A refused password; ``counts=False`` gives every place back."""
        if attempt is None:
            return
        flying = list(attempt.in_flight)
        if not counts:
            self.guard(lambda: self.counters.release_many([*attempt.reserved, *flying]))
            return

        def record() -> None:
            if flying:
                self.counters.release_many(flying)
            limit = self.settings.throttle_username_limit
            if not attempt.exempt and attempt.pair_estimate >= limit:
                self._lock(attempt)

        self.guard(record)

    def _lock(self, attempt: Attempt) -> None:
        s = self.settings
        level = self.counters.get(attempt.strikes_key)
        backoff = min(s.throttle_lockout_base * 2**level, s.throttle_lockout_max)
        # Lock first, then raise the level (see _begin).
        self.counters.incr(attempt.lock_key, backoff)
        self.counters.incr(attempt.strikes_key, s.throttle_strike_memory)
        log.warning(
            "username locked for %d s from one network after %d failed attempts "
            "(lock #%d of this pair)",
            backoff,
            s.throttle_username_limit,
            level + 1,
        )

    def unlock(self, username: str) -> int:
        """Forget every failure, lock and slow-down of ``username``, from
        every network; return how many live counters that cleared."""
        return self.counters.clear_prefix(self._user_prefix(username))
