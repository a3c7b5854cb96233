"""The DPoP ``jti`` replay cache (RFC 9449 §11.1), shared by every instance.

:meth:`ReplayCache.first_use` records a proof's key (a digest of its ``htu``
and ``jti``) until it expires and says whether it was new, atomically: of
two requests with the same proof, on any workers or machines, exactly one
gets ``True``. :class:`SQLReplayCache` keeps the keys in the ``ropc_throttle``
table (an expiring key-value table already: ``flask ropc cleanup`` deletes
expired rows, and no schema change is needed); :class:`RedisReplayCache` uses
``SET key NX EX`` on the throttle's Redis, chosen when
``ROPC_RATELIMIT_STORAGE_URI`` names one. Both survive a restart.

Imports :mod:`.database`, :mod:`.limits_storage` and leaves.
"""

from __future__ import annotations

import typing as t

import sqlalchemy as sa
from limits.storage import RedisStorage
from limits.storage import storage_from_string

from .database import Database
from .database import upsert_insert
from .limits_storage import storage_options


class ReplayCache(t.Protocol):
    """Where the ``jti`` of accepted proofs are remembered."""

    def first_use(self, key: str, now: int, ttl: int) -> bool:
        """Record ``key`` for ``ttl`` s; ``False`` if it is recorded already."""


class SQLReplayCache:
    """Replay keys as rows of ``ropc_throttle`` (``count`` 1).

    One ``INSERT ... ON CONFLICT DO UPDATE ... WHERE expires_at <= now
    RETURNING key``: a new key is inserted, an expired one taken over, a live
    one left alone (no row returned: a replay). One statement: atomic on
    both databases.
    """

    def __init__(self, database: Database, table: sa.Table) -> None:
        self._db = database
        self._table = table
        self._statements: dict[str, t.Any] = {}

    def _statement(self, dialect: str) -> t.Any:
        statement = self._statements.get(dialect)
        if statement is None:
            insert = upsert_insert(dialect)
            table = self._table
            statement = (
                insert(table)
                .values(
                    key=sa.bindparam("key"),
                    count=1,
                    expires_at=sa.bindparam("expires_at"),
                )
                .on_conflict_do_update(
                    index_elements=[table.c.key],
                    set_={"count": 1, "expires_at": sa.bindparam("expires_at")},
                    where=table.c.expires_at <= sa.bindparam("now"),
                )
                # RETURNING, not rowcount: psycopg reports -1 for an upsert.
                .returning(table.c.key)
            )
            self._statements[dialect] = statement
        return statement

    def first_use(self, key: str, now: int, ttl: int) -> bool:
        """Record ``key``; ``False`` if it is recorded and not expired."""
        params = {"key": key, "expires_at": now + ttl, "now": now}
        with self._db.autocommit() as conn:
            result = conn.execute(self._statement(self._db.dialect), params)
            return result.first() is not None


class RedisReplayCache:
    """Replay keys in Redis, each ``SET NX`` with its own expiry.

    :param uri: a Redis ``limits`` storage URI (``ROPC_RATELIMIT_STORAGE_URI``).
    :param options: its options (``ROPC_RATELIMIT_STORAGE_OPTIONS``).
    """

    def __init__(self, uri: str, options: t.Mapping[str, t.Any]) -> None:
        storage = storage_from_string(uri, **storage_options(uri, options))
        assert isinstance(storage, RedisStorage)
        self._storage = storage

    def first_use(self, key: str, now: int, ttl: int) -> bool:
        """Record ``key``; ``False`` if Redis still holds it."""
        storage = self._storage
        client: t.Any = storage.get_connection()
        # Redis expires the key on its own clock.
        return bool(client.set(storage.prefixed_key(key), 1, nx=True, ex=ttl))


def replay_cache(
    database: Database,
    table: sa.Table,
    storage_uri: str | None,
    options: t.Mapping[str, t.Any] | None = None,
) -> ReplayCache:
    """Redis when ``storage_uri`` names it, else the database (also for
    ``memory://``, which would not be shared between workers)."""
    if storage_uri is not None and storage_uri.startswith(("redis", "valkey")):
        return RedisReplayCache(storage_uri, options or {})
    return SQLReplayCache(database, table)
