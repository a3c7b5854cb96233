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
back off exponentially nor let a success undo the failures. So we use only
its storage primitives (``incr``, ``get``, ``get_expiry``, ``clear``), and
implement the same four on our own database table for the default storage.

Every attempt *reserves* its place with one atomic increment before the
validator runs, and gives it back if it turns out not to count (a success
on the IP budget, a validator that says so). So under any concurrency no
more attempts reach the validator than a budget allows.
"""

from __future__ import annotations

import dataclasses
import hashlib
import ipaddress
import logging
import math
import typing as t
import unicodedata

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql
from sqlalchemy.dialects import sqlite

from .errors import TemporarilyUnavailableError

if t.TYPE_CHECKING:  # pragma: no cover
    from .config import Settings
    from .store import Store

log = logging.getLogger("flask_ropc")


class CounterStorage(t.Protocol):
    """The subset of a ``limits`` storage we use; ours implements it too."""

    def incr(self, key: str, expiry: int, amount: int = 1) -> int:
        """Add ``amount`` atomically; a new key expires after ``expiry`` s."""

    def get(self, key: str) -> int:
        """The counter's value, 0 if absent or expired."""

    def get_expiry(self, key: str) -> float:
        """Unix time at which the key expires (now if absent)."""

    def clear(self, key: str) -> None:
        """Delete the key."""


def throttle_table(metadata: sa.MetaData) -> sa.Table:
    """The ``ropc_throttle`` table of the database counter storage."""
    return sa.Table(
        "ropc_throttle",
        metadata,
        sa.Column("key", sa.String(128), primary_key=True),
        sa.Column("count", sa.BigInteger, nullable=False),
        sa.Column("expires_at", sa.Float, nullable=False, index=True),
    )


class DatabaseCounters:
    """Counters in the app's database, shared by every worker and the CLI.

    ``incr`` is one ``INSERT ... ON CONFLICT DO UPDATE ... RETURNING``
    statement, atomic on PostgreSQL and SQLite (3.35+) alike.
    """

    def __init__(self, store: Store, table: sa.Table) -> None:
        self._store = store
        self._table = table
        # Statements are built once: building SQLAlchemy constructs costs
        # more than running them, and they run several times per login.
        # Parameter names must differ from column names in UPDATE/INSERT.
        key: t.Any = sa.bindparam("k")
        now: t.Any = sa.bindparam("now")
        self._get = sa.select(table.c.key, table.c.count).where(
            table.c.key.in_(sa.bindparam("keys", expanding=True)),
            table.c.expires_at > now,
        )
        self._get_expiry = sa.select(table.c.expires_at).where(table.c.key == key)
        self._release = (
            table.update()
            .where(table.c.key == key, table.c.expires_at > now, table.c.count > 0)
            .values(count=table.c.count - 1)
        )
        self._clear = table.delete().where(
            table.c.key.in_(sa.bindparam("keys", expanding=True))
        )
        self._incr: dict[str, t.Any] = {}

    def _incr_statement(self, dialect: str) -> t.Any:
        statement = self._incr.get(dialect)
        if statement is None:
            table = self._table
            insert: t.Any = (
                postgresql.insert if dialect == "postgresql" else sqlite.insert
            )
            amount: t.Any = sa.bindparam("amount")
            now: t.Any = sa.bindparam("now")
            until: t.Any = sa.bindparam("until")
            expired = table.c.expires_at <= now
            statement = (
                insert(table)
                .values(key=sa.bindparam("k"), count=amount, expires_at=until)
                .on_conflict_do_update(
                    index_elements=[table.c.key],
                    set_={
                        "count": sa.case(
                            (expired, amount), else_=table.c.count + amount
                        ),
                        "expires_at": sa.case(
                            (expired, until), else_=table.c.expires_at
                        ),
                    },
                )
                .returning(table.c.count)
            )
            self._incr[dialect] = statement
        return statement

    def _now(self) -> float:
        return float(self._store._clock())

    def incr(self, key: str, expiry: int, amount: int = 1) -> int:
        """Add ``amount``; an absent or expired key restarts at ``amount``."""
        engine, now = self._store.engine, self._now()
        statement = self._incr_statement(engine.dialect.name)
        params = {"k": key, "amount": amount, "now": now, "until": now + expiry}
        with engine.begin() as conn:
            return int(conn.execute(statement, params).scalar_one())

    def get(self, key: str) -> int:
        """The live value of ``key``, or 0."""
        return self.get_many([key]).get(key, 0)

    def get_many(self, keys: list[str]) -> dict[str, int]:
        """The live values of ``keys`` in one query (absent ones omitted)."""
        with self._store.engine.connect() as conn:
            rows = conn.execute(self._get, {"keys": keys, "now": self._now()})
            return {key: int(count) for key, count in rows}

    def get_expiry(self, key: str) -> float:
        """When ``key`` expires; now if it does not exist."""
        with self._store.engine.connect() as conn:
            value = conn.execute(self._get_expiry, {"k": key}).scalar()
        return float(value) if value is not None else self._now()

    def release(self, key: str) -> None:
        """Take one back from a live, positive counter; else do nothing.

        A plain ``incr(key, window, -1)`` on an expired key would start a
        new window at -1: one extra attempt for the next window.
        """
        with self._store.engine.begin() as conn:
            conn.execute(self._release, {"k": key, "now": self._now()})

    def clear(self, key: str) -> None:
        """Delete ``key``."""
        self.clear_many([key])

    def clear_many(self, keys: list[str]) -> None:
        """Delete ``keys`` in one statement."""
        with self._store.engine.begin() as conn:
            conn.execute(self._clear, {"keys": keys})

    def purge_expired(self) -> int:
        """Delete expired counters (``flask ropc cleanup``); return how many."""
        with self._store.engine.begin() as conn:
            result = conn.execute(
                self._table.delete().where(self._table.c.expires_at <= self._now())
            )
        return int(result.rowcount)


def normalise_username(username: str) -> str:
    """The form usernames are counted under: NFKC, trimmed and case-folded.

    ``" Ann "``, ``"ann"`` and the full-width ``"ａｎｎ"`` share one budget,
    so changing case, adding spaces or using look-alike compatibility
    characters does not buy an attacker more guesses.
    """
    return unicodedata.normalize("NFKC", username).strip().casefold()


def ip_bucket(address: str) -> str:
    """The unit an IP address is counted under: itself, or its /64 for IPv6.

    One IPv6 subscriber usually holds a whole /64, so counting single
    addresses would hand an attacker 2**64 fresh budgets.
    """
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return address
    if ip.version == 6:
        return str(ipaddress.ip_network(f"{ip}/64", strict=False))
    return str(ip)


def _digest(value: str) -> str:
    # Keys hold digests, so usernames and IPs are not stored in the clear.
    return hashlib.sha256(value.encode("utf-8", "surrogatepass")).hexdigest()[:40]


class Throttled(Exception):
    """An attempt was refused before the validator ran."""

    def __init__(self, retry_after: int, scope: str) -> None:
        super().__init__(f"throttled by the {scope} budget")
        #: Seconds the client should wait.
        self.retry_after = retry_after
        #: Which budget: ``"username"``, ``"ip"`` or ``"client"``.
        self.scope = scope


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

    def __init__(
        self, counters: CounterStorage, settings: Settings, prefix: str
    ) -> None:
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
        reserved: list[tuple[str, int]] = []
        try:
            fails_key = f"{fails_prefix}:{level}"
            count = self._reserve(
                fails_key,
                s.throttle_username_limit,
                s.throttle_username_window,
                reserved,
                "username",
                retry=lambda: max(self._remaining(lock_key), s.throttle_lockout_base),
            )
            if client_ip:
                self._reserve(
                    self._key("ip", _digest(ip_bucket(client_ip))),
                    s.throttle_ip_limit,
                    s.throttle_ip_window,
                    reserved,
                    "ip",
                )
            if s.throttle_client_limit:
                self._reserve(
                    self._key("client", client_id),
                    s.throttle_client_limit,
                    s.throttle_client_window,
                    reserved,
                    "client",
                )
        except Throttled:
            self._release(reserved)
            raise
        return Attempt(
            username_key=fails_key, level=level, username_count=count, reserved=reserved
        )

    def _get_pair(self, first: str, second: str) -> tuple[int, int]:
        """Two counters, in one query where the storage can (ours can)."""
        get_many = getattr(self.counters, "get_many", None)
        if get_many is not None:
            values = get_many([first, second])
            return values.get(first, 0), values.get(second, 0)
        # Read in this order for limits storages (see _begin).
        return self.counters.get(first), self.counters.get(second)

    def _reserve(
        self,
        key: str,
        limit: int,
        window: int,
        reserved: list[tuple[str, int]],
        scope: str,
        retry: t.Callable[[], int] | None = None,
    ) -> int:
        count = self.counters.incr(key, window)
        reserved.append((key, window))
        if count > limit:
            raise Throttled(retry() if retry else self._remaining(key), scope)
        return count

    def _release(self, reserved: list[tuple[str, int]]) -> None:
        release = getattr(self.counters, "release", None)
        for key, window in reserved:
            if release is not None:
                release(key)
            elif self.counters.get(key) > 0:
                # limits storages have no conditional decrement; the window
                # between the check and the decrement is microseconds, and
                # the worst case is one extra attempt in the next window.
                self.counters.incr(key, window, -1)

    def _remaining(self, key: str) -> int:
        remaining = self.counters.get_expiry(key) - self._now()
        return max(1, math.ceil(remaining))

    def _now(self) -> float:
        clock = getattr(self.counters, "_now", None)
        if clock is not None:
            return float(clock())
        import time

        return time.time()

    def succeeded(self, attempt: Attempt | None, username: str) -> None:
        """A right password: reset the username, give back IP/client places."""
        if attempt is None:
            return

        def settle() -> None:
            self._release(attempt.reserved[1:])
            self._clear_user(username, attempt.level)

        self._guard(settle)

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

    def _clear_user(self, username: str, up_to_level: int) -> None:
        lock_key, strikes_key, fails_prefix = self._user_keys(username)
        level = up_to_level
        if up_to_level > 0 or not hasattr(self.counters, "clear_many"):
            level = max(up_to_level, self.counters.get(strikes_key))
        keys = [f"{fails_prefix}:{n}" for n in range(level + 1)]
        keys += [lock_key, strikes_key]
        clear_many = getattr(self.counters, "clear_many", None)
        if clear_many is not None:
            clear_many(keys)
            return
        for key in keys:
            self.counters.clear(key)

    def unlock(self, username: str) -> None:
        """Forget every failure and lock of ``username``."""
        self._clear_user(username, 0)
