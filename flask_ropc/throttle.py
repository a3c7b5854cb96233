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
from sqlalchemy.dialects.postgresql.base import PGDialect
from sqlalchemy.dialects.sqlite.base import SQLiteDialect

from .errors import TemporarilyUnavailableError
from .locking import in_lock_order
from .locking import locking_select

if t.TYPE_CHECKING:  # pragma: no cover
    from .config import Settings
    from .store import Store

log = logging.getLogger("flask_ropc")

#: PostgreSQL's "C" collation orders strings as Python sorts them (by code
#: point), which is how DatabaseCounters.incr_many lists its rows; the
#: database's default collation may order them otherwise.
PYTHON_ORDER = "C"


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

    On PostgreSQL, every statement or transaction that writes several
    counters locks their rows in one global order, ascending by key: the
    upsert lists its rows sorted, and updates and deletes lock their rows
    with ``SELECT ... ORDER BY key FOR UPDATE`` first. Otherwise two
    concurrent attempts on the same username could each hold one row the
    other needs, and PostgreSQL would abort one of them as a deadlock (a
    503 for that login). SQLite locks the whole database, so it has no such
    cycle and skips the ordering.
    """

    def __init__(self, store: Store, table: sa.Table) -> None:
        self._store = store
        self._table = table
        # Statements are built once: building SQLAlchemy constructs costs
        # more than running them, and they run several times per login.
        # Parameter names must differ from column names in UPDATE/INSERT.
        key: t.Any = sa.bindparam("k")
        self._get_expiry = sa.select(table.c.expires_at).where(table.c.key == key)
        self._by_keys: dict[tuple[str, str, int], t.Any] = {}
        self._incr: dict[tuple[str, int], t.Any] = {}

    def _keys_statement(
        self, kind: str, keys: t.Sequence[str]
    ) -> tuple[t.Any, dict[str, t.Any]]:
        """A ``get``, ``lock``, ``release`` or ``clear`` statement for ``keys``,
        with params.

        ``key IN (:key0, :key1, ...)`` with one bound parameter per key, built
        once per kind and size: an ``expanding`` parameter would be
        re-rendered on every call, which costs more than the query.
        """
        dialect = self._store.engine.dialect.name
        statement = self._by_keys.get((dialect, kind, len(keys)))
        if statement is None:
            table = self._table
            now: t.Any = sa.bindparam("now")
            matches = table.c.key.in_(
                [sa.bindparam(f"key{n}") for n in range(len(keys))]
            )
            if kind == "get":
                statement = sa.select(table.c.key, table.c.count).where(
                    matches, table.c.expires_at > now
                )
            elif kind == "lock":
                statement = locking_select(
                    table.c.key, (matches,), collation=PYTHON_ORDER
                )
            elif kind == "release":
                live = (matches, table.c.expires_at > now, table.c.count > 0)
                statement = (
                    table.update()
                    .where(*self._in_key_order(dialect, live))
                    .values(count=table.c.count - 1)
                )
            else:
                statement = table.delete().where(
                    *self._in_key_order(dialect, (matches,))
                )
            self._by_keys[(dialect, kind, len(keys))] = statement
        params: dict[str, t.Any] = {f"key{n}": key for n, key in enumerate(keys)}
        if kind in ("get", "release"):
            params["now"] = self._now()
        return statement, params

    def _in_key_order(
        self, dialect: str, where: tuple[t.Any, ...]
    ) -> tuple[t.Any, ...]:
        """``where`` that first locks its rows in key order (see locking.py)."""
        key = self._table.c.key
        return in_lock_order(dialect, key, where, collation=PYTHON_ORDER)

    def _incr_statement(self, dialect: str, size: int) -> t.Any:
        """``INSERT ... ON CONFLICT DO UPDATE ... RETURNING`` for ``size`` keys.

        One statement reserves every budget of an attempt: one round trip
        and one commit, however many budgets there are.
        """
        statement = self._incr.get((dialect, size))
        if statement is None:
            table = self._table
            insert: t.Any = (
                postgresql.insert if dialect == "postgresql" else sqlite.insert
            )
            now: t.Any = sa.bindparam("now")
            amount: t.Any = sa.bindparam("amount")
            rows = [
                {
                    "key": sa.bindparam(f"k{n}"),
                    "count": amount,
                    "expires_at": sa.bindparam(f"until{n}"),
                }
                for n in range(size)
            ]
            statement = insert(table).values(rows)
            expired = table.c.expires_at <= now
            statement = statement.on_conflict_do_update(
                index_elements=[table.c.key],
                set_={
                    "count": sa.case(
                        (expired, statement.excluded.count),
                        else_=table.c.count + statement.excluded.count,
                    ),
                    "expires_at": sa.case(
                        (expired, statement.excluded.expires_at),
                        else_=table.c.expires_at,
                    ),
                },
            ).returning(table.c.key, table.c.count, table.c.expires_at)
            # SQLAlchemy does not cache the compilation of multi-row VALUES
            # (it would recompile on every call, ~0.25 ms); the same SQL as
            # text is compiled once and cached like any other statement.
            # The driver-neutral dialect renders no driver casts (which
            # text() would misread as bind names).
            named = (PGDialect if dialect == "postgresql" else SQLiteDialect)(
                paramstyle="named"
            )
            statement = sa.text(str(statement.compile(dialect=named))).columns(
                table.c.key, table.c.count, table.c.expires_at
            )
            self._incr[(dialect, size)] = statement
        return statement

    def _now(self) -> float:
        return float(self._store._clock())

    def incr(self, key: str, expiry: int, amount: int = 1) -> int:
        """Add ``amount``; an absent or expired key restarts at ``amount``."""
        return self.incr_many([(key, expiry)], amount)[0][0]

    def incr_many(
        self, items: t.Sequence[tuple[str, int]], amount: int = 1
    ) -> list[tuple[int, float]]:
        """:meth:`incr` for several ``(key, expiry)`` pairs in one statement.

        Returns ``(count, expires_at)`` for each key, in the order given.
        Keys must be distinct.
        """
        engine, now = self._store.engine, self._now()
        statement = self._incr_statement(engine.dialect.name, len(items))
        params: dict[str, t.Any] = {"amount": amount, "now": now}
        # Rows listed in key order are locked in key order (class docstring).
        for n, (key, expiry) in enumerate(sorted(items)):
            params[f"k{n}"] = key
            params[f"until{n}"] = now + expiry
        # One statement is atomic on its own: in autocommit it needs no BEGIN
        # and COMMIT round trips (see Store.autocommit).
        with self._store.autocommit() as conn:
            rows = conn.execute(statement, params)
            # RETURNING promises no order: match rows to keys.
            found = {key: (int(count), float(until)) for key, count, until in rows}
        return [found[key] for key, _ in items]

    def get(self, key: str, conn: sa.Connection | None = None) -> int:
        """The live value of ``key``, or 0; read through ``conn`` if given."""
        return self.get_many([key], conn).get(key, 0)

    def get_many(
        self, keys: list[str], conn: sa.Connection | None = None
    ) -> dict[str, int]:
        """The live values of ``keys`` in one query (absent ones omitted).

        Read through ``conn`` if given: a caller that holds a connection
        must not wait for a second one, or enough such callers at once
        would exhaust the pool.
        """
        if conn is not None:
            rows = conn.execute(*self._keys_statement("get", keys))
            return {key: int(count) for key, count in rows}
        with self._store.autocommit() as own:
            return self.get_many(keys, own)

    def get_expiry(self, key: str) -> float:
        """When ``key`` expires; now if it does not exist."""
        with self._store.autocommit() as conn:
            value = conn.execute(self._get_expiry, {"k": key}).scalar()
        return float(value) if value is not None else self._now()

    def release(self, key: str) -> None:
        """Take one back from a live, positive counter; else do nothing.

        A plain ``incr(key, window, -1)`` on an expired key would start a
        new window at -1: one extra attempt for the next window.
        """
        self.release_many([key])

    def release_many(self, keys: list[str]) -> None:
        """:meth:`release` for several keys in one statement."""
        with self._store.autocommit() as conn:  # one statement: autocommit suffices
            conn.execute(*self._keys_statement("release", keys))

    def clear(self, key: str) -> None:
        """Delete ``key``."""
        self.clear_many([key])

    def clear_many(self, keys: list[str]) -> None:
        """Delete ``keys`` in one statement."""
        with self._store.autocommit() as conn:  # one statement: autocommit suffices
            conn.execute(*self._keys_statement("clear", keys))

    def settle(self, conn: sa.Connection, release: list[str], clear: list[str]) -> None:
        """Clear ``clear`` and release ``release`` inside the caller's transaction.

        The password grant calls this in the transaction that stores the
        tokens, so a successful login commits once.

        On PostgreSQL the two statements below would lock the username's
        rows before the IP's, against the order every other writer uses
        (class docstring); so every row is first locked in key order, and
        only the rows so locked are then changed. A row that appeared after
        that lock (a concurrent failure starting a new count) is left
        alone: waiting for it could close a circle.
        """
        if release and conn.dialect.name == "postgresql":
            statement, params = self._keys_statement("lock", [*clear, *release])
            locked = set(conn.execute(statement, params).scalars())
            clear = [key for key in clear if key in locked]
            release = [key for key in release if key in locked]
        if clear:
            conn.execute(*self._keys_statement("clear", clear))
        if release:
            conn.execute(*self._keys_statement("release", release))

    def purge_expired(self) -> int:
        """Delete expired counters (``flask ropc cleanup``); return how many."""
        dialect = self._store.engine.dialect.name
        expired = (self._table.c.expires_at <= self._now(),)
        with self._store.engine.begin() as conn:
            result = conn.execute(
                self._table.delete().where(*self._in_key_order(dialect, expired))
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
        counts = self._incr_many(reserved)
        outcomes = zip(budgets, counts, strict=True)
        for (key, limit, _, scope), (count, expires_at) in outcomes:
            if count <= limit:
                continue
            self._release(reserved)
            if scope == "username":
                retry = max(self._remaining(lock_key), s.throttle_lockout_base)
            elif expires_at is not None:
                retry = max(1, math.ceil(expires_at - self._now()))
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
        """Two counters, in one query where the storage can (ours can)."""
        get_many = getattr(self.counters, "get_many", None)
        if get_many is not None:
            values = get_many([first, second])
            return values.get(first, 0), values.get(second, 0)
        # Read in this order for limits storages (see _begin).
        return self.counters.get(first), self.counters.get(second)

    def _incr_many(
        self, items: list[tuple[str, int]]
    ) -> list[tuple[int, float | None]]:
        """Reserve a place under each key: one statement where the storage can."""
        incr_many = getattr(self.counters, "incr_many", None)
        if incr_many is not None:
            return list(incr_many(items))
        return [(self.counters.incr(key, window), None) for key, window in items]

    def _release(self, reserved: list[tuple[str, int]]) -> None:
        if not reserved:
            return
        release_many = getattr(self.counters, "release_many", None)
        if release_many is not None:
            release_many([key for key, _ in reserved])
            return
        for key, window in reserved:
            if self.counters.get(key) > 0:
                # limits storages have no conditional decrement; the window
                # between the check and the decrement is microseconds, and
                # the worst case is one extra attempt in the next window.
                # By keyword: before limits 5 the third parameter was
                # elastic_expiry, and -1 there would add one.
                self.counters.incr(key, window, amount=-1)

    def _remaining(self, key: str) -> int:
        remaining = self.counters.get_expiry(key) - self._now()
        return max(1, math.ceil(remaining))

    def _now(self) -> float:
        clock = getattr(self.counters, "_now", None)
        if clock is not None:
            return float(clock())
        import time

        return time.time()

    @property
    def settles_in_database(self) -> bool:
        """Whether :meth:`settle_in` can join the grant's own transaction.

        True for the default counters, which live in the same database as
        the tokens; a Redis or memory storage settles with
        :meth:`succeeded` instead.
        """
        return isinstance(self.counters, DatabaseCounters)

    def succeeded(self, attempt: Attempt | None, username: str) -> None:
        """A right password: reset the username, give back IP/client places."""
        if attempt is None:
            return

        def settle() -> None:
            if isinstance(self.counters, DatabaseCounters):
                with self.counters._store.engine.begin() as conn:
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
        keys = self._user_clear_keys(username, level)
        clear_many = getattr(self.counters, "clear_many", None)
        if clear_many is not None:
            clear_many(keys)
            return
        for key in keys:
            self.counters.clear(key)

    def unlock(self, username: str) -> None:
        """Forget every failure and lock of ``username``."""
        self._clear_user(username, 0)
