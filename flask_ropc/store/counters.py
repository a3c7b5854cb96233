"""Where throttling counters live: our own table, or any ``limits`` storage.

:class:`Counters` is the one batched protocol :mod:`flask_ropc.throttle`
counts through. :class:`DatabaseCounters` implements it on the
``ropc_throttle`` table, :class:`LimitsCounters` on a ``limits`` storage
(Redis, memory; in :mod:`.limits_storage`). Imports :mod:`.database`,
:mod:`.locking`, :mod:`.counter_statements` and leaves.

Why the ``limits`` library only for storage: its rate limiters neither back
off exponentially nor let a success undo the failures, so the throttle uses
its storage primitives (``incr``, ``get``, ``get_expiry``, ``clear``), and the
same operations are implemented here on our own table for the default.
"""

from __future__ import annotations

import typing as t

import sqlalchemy as sa

from .counter_statements import PYTHON_ORDER
from .counter_statements import incr
from .counter_statements import incr_params
from .counter_statements import reserve
from .counter_statements import settle
from .database import Database
from .locking import in_lock_order
from .locking import locking_select


class Reserved(t.NamedTuple):
    """What :meth:`Counters.reserve` read and counted."""

    #: The live values read (absent ones may be omitted).
    seen: dict[str, int]
    #: ``incr_many``'s answer, or ``None`` when ``proceed`` refused.
    counts: list[tuple[int, float | None]] | None
    #: When the keys read expire, where the storage said so with the read.
    expiries: dict[str, float]


class Counters(t.Protocol):
    """Atomic expiring counters, in batches where the storage can."""

    #: Whether a success is settled inside the grant's transaction
    #: (:meth:`DatabaseCounters.settle`) rather than on its own.
    settles_in_database: bool

    def now(self) -> float:
        """The current Unix time, as the counters' expiries count it."""

    def get(self, key: str) -> int:
        """The counter's value, 0 if absent or expired."""

    def get_many(self, keys: t.Sequence[str]) -> dict[str, int]:
        """The live values of ``keys``; absent ones may be omitted."""

    def get_expiry(self, key: str) -> float:
        """Unix time at which the key expires (now if absent)."""

    def incr(self, key: str, expiry: int, amount: int = 1) -> int:
        """Add ``amount`` atomically; a new key expires after ``expiry`` s."""

    def incr_many(
        self, items: t.Sequence[tuple[str, int]], amount: int = 1
    ) -> list[tuple[int, float | None]]:
        """:meth:`incr` for ``(key, expiry)`` pairs: ``(count, expires_at)``
        each (``expires_at`` ``None`` where the storage does not say)."""

    def reserve(
        self,
        reads: t.Sequence[str],
        items: t.Sequence[tuple[str, int]],
        proceed: t.Callable[[dict[str, int]], bool],
    ) -> Reserved:
        """:meth:`get_many` of ``reads``, then :meth:`incr_many` of ``items``
        unless ``proceed(seen)`` is false."""

    def release_many(self, items: t.Sequence[tuple[str, int]]) -> None:
        """Take one back from each live, positive counter of ``(key, expiry)``."""

    def clear_many(self, keys: t.Sequence[str]) -> None:
        """Delete ``keys``."""

    def clear_prefix(self, prefix: str) -> int:
        """Delete every key that starts with ``prefix``; return how many of
        them were live (not yet expired)."""


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

    #: Settles a success inside the grant's own transaction (see settle).
    settles_in_database = True

    def __init__(self, database: Database, table: sa.Table) -> None:
        self._db = database
        self._table = table
        # Statements are built once: building SQLAlchemy constructs costs
        # more than running them, and they run several times per login.
        # Parameter names must differ from column names in UPDATE/INSERT.
        key: t.Any = sa.bindparam("k")
        self._get_expiry = sa.select(table.c.expires_at).where(table.c.key == key)
        self._by_keys: dict[tuple[str, str, int], t.Any] = {}
        self._incr: dict[tuple[str, int], t.Any] = {}
        self._pg_statements: dict[tuple[str, int, int], t.Any] = {}

    def _pg(self, kind: str, first: int, second: int) -> t.Any:
        """A PostgreSQL one-round-trip statement (see :mod:`.counter_statements`),
        built once per kind and sizes."""
        statement = self._pg_statements.get((kind, first, second))
        if statement is None:
            if kind == "settle":
                statement = settle(self._table, first, second)
            else:
                upsert = self._incr_statement("postgresql", second)
                statement = reserve(self._table, first, upsert.element.text)
            self._pg_statements[(kind, first, second)] = statement
        return statement

    def _keys_statement(
        self, kind: str, keys: t.Sequence[str]
    ) -> tuple[t.Any, dict[str, t.Any]]:
        """A ``get``, ``lock``, ``release`` or ``clear`` statement for ``keys``,
        with params.

        ``key IN (:key0, :key1, ...)`` with one bound parameter per key, built
        once per kind and size: an ``expanding`` parameter would be
        re-rendered on every call, which costs more than the query.
        """
        dialect = self._db.dialect
        statement = self._by_keys.get((dialect, kind, len(keys)))
        if statement is None:
            table = self._table
            now: t.Any = sa.bindparam("now")
            matches = table.c.key.in_(
                [sa.bindparam(f"key{n}") for n in range(len(keys))]
            )
            if kind in ("get", "read"):
                columns = [table.c.key, table.c.count]
                if kind == "read":
                    columns.append(table.c.expires_at)
                statement = sa.select(*columns).where(matches, table.c.expires_at > now)
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
            params["now"] = self.now()
        return statement, params

    def _in_key_order(
        self, dialect: str, where: tuple[t.Any, ...]
    ) -> tuple[t.Any, ...]:
        """``where`` that first locks its rows in key order (see locking.py)."""
        key = self._table.c.key
        return in_lock_order(dialect, key, where, collation=PYTHON_ORDER)

    def _incr_statement(self, dialect: str, size: int) -> t.Any:
        """The upsert of ``size`` keys (see :func:`.counter_statements.incr`)."""
        statement = self._incr.get((dialect, size))
        if statement is None:
            statement = incr(self._table, dialect, size)
            self._incr[(dialect, size)] = statement
        return statement

    def now(self) -> float:
        """The current Unix time, from the database's clock."""
        return float(self._db.clock())

    def incr_many(
        self, items: t.Sequence[tuple[str, int]], amount: int = 1
    ) -> list[tuple[int, float | None]]:
        """:meth:`incr` for several ``(key, expiry)`` pairs in one statement.

        Returns ``(count, expires_at)`` for each key, in the order given.
        Keys must be distinct.
        """
        statement = self._incr_statement(self._db.dialect, len(items))
        params = incr_params(items, self.now(), amount)
        # One statement is atomic on its own: in autocommit it needs no BEGIN
        # and COMMIT round trips (see Database.autocommit).
        with self._db.autocommit() as conn:
            rows = self._db.run(conn, statement, params)
            # RETURNING promises no order: match rows to keys.
            found = {key: (int(count), float(until)) for key, count, until in rows}
        return [found[key] for key, _ in items]

    def reserve(
        self,
        reads: t.Sequence[str],
        items: t.Sequence[tuple[str, int]],
        proceed: t.Callable[[dict[str, int]], bool],
    ) -> Reserved:
        """Read ``reads``, then :meth:`incr_many` ``items`` if ``proceed``
        says so. On PostgreSQL one statement (one round trip; the read sees
        the rows as they were before), whose increments a refusal gives back.
        """
        now = self.now()
        params: dict[str, t.Any] = {"now": now}
        params.update({f"key{n}": key for n, key in enumerate(reads)})
        seen, expiries, found = {}, {}, {}
        if self._db.dialect != "postgresql":
            statement, _ = self._keys_statement("read", reads)
            with self._db.autocommit() as conn:
                for key, count, until in self._db.run(conn, statement, params):
                    seen[key], expiries[key] = int(count), float(until)
            if not proceed(seen):
                return Reserved(seen, None, expiries)
            return Reserved(seen, self.incr_many(items), expiries)
        params.update(incr_params(items, now, 1))
        statement = self._pg("reserve", len(reads), len(items))
        with self._db.autocommit() as conn:
            for part, key, count, until in self._db.run(conn, statement, params):
                if part:
                    seen[key], expiries[key] = int(count), float(until)
                else:
                    found[key] = (int(count), float(until))
        if not proceed(seen):
            self.release_many(items)
            return Reserved(seen, None, expiries)
        return Reserved(seen, [found[key] for key, _ in items], expiries)

    def get(self, key: str, conn: sa.Connection | None = None) -> int:
        """The live value of ``key``, or 0; read through ``conn`` if given."""
        return self.get_many([key], conn).get(key, 0)

    def incr(self, key: str, expiry: int, amount: int = 1) -> int:
        """Add ``amount``; an absent or expired key restarts at ``amount``."""
        return self.incr_many([(key, expiry)], amount)[0][0]

    def get_many(
        self, keys: t.Sequence[str], conn: sa.Connection | None = None
    ) -> dict[str, int]:
        """The live values of ``keys`` in one query (absent ones omitted).

        Read through ``conn`` if given: a caller that holds a connection
        must not wait for a second one, or enough such callers at once
        would exhaust the pool.
        """
        if conn is not None:
            rows = self._db.run(conn, *self._keys_statement("get", keys))
            return {key: int(count) for key, count in rows}
        with self._db.autocommit() as own:
            return self.get_many(keys, own)

    def get_expiry(self, key: str) -> float:
        """When ``key`` expires; now if it does not exist."""
        with self._db.autocommit() as conn:
            value = conn.execute(self._get_expiry, {"k": key}).scalar()
        return float(value) if value is not None else self.now()

    def release_many(self, items: t.Sequence[tuple[str, int]]) -> None:
        """Take one back from each live, positive counter, in one statement.

        A plain ``incr(key, window, -1)`` on an expired key would start a
        new window at -1: one extra attempt for the next window.
        """
        keys = [key for key, _ in items]
        with self._db.autocommit() as conn:  # one statement: autocommit suffices
            self._db.run(conn, *self._keys_statement("release", keys))

    def clear_many(self, keys: t.Sequence[str]) -> None:
        """Delete ``keys`` in one statement."""
        with self._db.autocommit() as conn:  # one statement: autocommit suffices
            self._db.run(conn, *self._keys_statement("clear", keys))

    def transaction(self) -> t.ContextManager[sa.Connection]:
        """A transaction on the counters' database, for :meth:`settle`."""
        return self._db.begin()

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
            statement = self._pg("settle", len(clear), len(release))
            params: dict[str, t.Any] = {"now": self.now()}
            params.update({f"c{n}": key for n, key in enumerate(clear)})
            params.update({f"r{n}": key for n, key in enumerate(release)})
            self._db.run(conn, statement, params)
            return
        if clear:
            self._db.run(conn, *self._keys_statement("clear", clear))
        if release:
            self._db.run(conn, *self._keys_statement("release", release))

    def clear_prefix(self, prefix: str) -> int:
        """Delete every counter whose key starts with ``prefix``; return how
        many were live (expired rows waiting for ``cleanup`` do not count)."""
        table = self._table
        matches = (table.c.key.startswith(prefix, autoescape=True),)
        now = self.now()
        with self._db.begin() as conn:
            expiries = conn.execute(
                table.delete()
                .where(*self._in_key_order(self._db.dialect, matches))
                .returning(table.c.expires_at)
            ).scalars()
            return sum(1 for expires_at in expiries if expires_at > now)

    def purge_expired(self) -> int:
        """Delete expired counters (``flask ropc cleanup``); return how many."""
        dialect = self._db.dialect
        expired = (self._table.c.expires_at <= self.now(),)
        with self._db.begin() as conn:
            result = conn.execute(
                self._table.delete().where(*self._in_key_order(dialect, expired))
            )
        return int(result.rowcount)
