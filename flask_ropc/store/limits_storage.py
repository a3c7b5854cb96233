"""Throttling counters on a ``limits`` storage (Redis, memory).

Imports only ``errors``: :class:`LimitsCounters` implements the
:class:`~.counters.Counters` protocol on the storage Flask-Limiter uses, and
:func:`storage_options` gives every Redis storage bounded waits.
"""

from __future__ import annotations

import time
import typing as t

from limits.storage import MemoryStorage
from limits.storage import RedisStorage
from limits.storage import Storage
from limits.storage import storage_from_string

from ..errors import ConfigurationError
from .counters import Reserved

#: redis-py's connection arguments for every Redis (and Valkey) storage,
#: unless the options or the URI say otherwise: without them a frozen Redis
#: holds a login until the WSGI server kills the worker. A counter call takes
#: well under a millisecond; seconds mean Redis is not answering.
REDIS_TIMEOUTS: dict[str, float] = {
    "socket_connect_timeout": 1.0,
    "socket_timeout": 2.0,
}


def storage_options(uri: str, options: t.Mapping[str, t.Any]) -> dict[str, t.Any]:
    """The keyword arguments for ``storage_from_string(uri, ...)``.

    ``options`` over :data:`REDIS_TIMEOUTS` for a Redis or Valkey URI (as
    they are for any other). redis-py lets the URI's query string win over
    both (``redis://host/0?socket_timeout=5``). Sentinel URIs also get the
    timeouts for the sentinels themselves, which do not inherit them.
    """
    scheme = uri.partition("://")[0]
    if not scheme.startswith(("redis", "valkey")):
        return dict(options)
    merged: dict[str, t.Any] = {**REDIS_TIMEOUTS, **options}
    if scheme.endswith("+sentinel") and "sentinel_kwargs" not in options:
        merged["sentinel_kwargs"] = {
            name: merged[name] for name in REDIS_TIMEOUTS if merged[name] is not None
        }
    return merged


class LimitsCounters:
    """:class:`Counters` on a ``limits`` storage (Redis, memory).

    One call per key: ``limits`` storages have no batch operations.

    :param uri: a ``limits`` storage URI, e.g. ``redis://host:6379/0``.
    :param options: the storage's keyword arguments, see :func:`storage_options`.
    """

    settles_in_database = False

    def __init__(self, uri: str, options: t.Mapping[str, t.Any] | None = None) -> None:
        #: The ``limits`` storage.
        self.storage = t.cast(
            Storage, storage_from_string(uri, **storage_options(uri, options or {}))
        )
        if not isinstance(self.storage, RedisStorage | MemoryStorage):
            # Unlocking a username clears its keys by prefix (clear_prefix).
            raise ConfigurationError(
                "ROPC_RATELIMIT_STORAGE_URI: throttling supports Redis (redis://, "
                "rediss://, redis+sentinel://, redis+cluster://) and memory://, "
                "or leave it unset (the database)"
            )

    def now(self) -> float:
        """The current Unix time (``limits`` storages expire on real time)."""
        return time.time()

    def get(self, key: str) -> int:
        """The counter's value, 0 if absent or expired."""
        return int(self.storage.get(key))

    def get_many(self, keys: t.Sequence[str]) -> dict[str, int]:
        """The values of ``keys``, read in the order given."""
        return {key: self.get(key) for key in keys}

    def get_expiry(self, key: str) -> float:
        """Unix time at which the key expires."""
        return float(self.storage.get_expiry(key))

    def incr(self, key: str, expiry: int, amount: int = 1) -> int:
        """Add ``amount`` atomically; a new key expires after ``expiry`` s."""
        # By keyword: before limits 5 the third parameter was elastic_expiry,
        # and -1 there would add one.
        return int(self.storage.incr(key, expiry, amount=amount))

    def incr_many(
        self, items: t.Sequence[tuple[str, int]], amount: int = 1
    ) -> list[tuple[int, float | None]]:
        """:meth:`incr` for each pair; no expiry is reported."""
        return [(self.incr(key, window, amount), None) for key, window in items]

    def reserve(
        self,
        reads: t.Sequence[str],
        items: t.Sequence[tuple[str, int]],
        proceed: t.Callable[[dict[str, int]], bool],
    ) -> Reserved:
        """Read ``reads``; increment ``items`` only if ``proceed(seen)``."""
        seen = self.get_many(reads)
        counts = self.incr_many(items) if proceed(seen) else None
        return Reserved(seen, counts, {})

    def release_many(self, items: t.Sequence[tuple[str, int]]) -> None:
        """Take one back from each positive counter.

        ``limits`` storages have no conditional decrement; the window between
        the check and the decrement is microseconds, and the worst case is one
        extra attempt in the next window.
        """
        for key, window in items:
            if self.get(key) > 0:
                self.incr(key, window, amount=-1)

    def clear_many(self, keys: t.Sequence[str]) -> None:
        """Delete ``keys``."""
        for key in keys:
            self.storage.clear(key)

    def clear_prefix(self, prefix: str) -> int:
        """Delete every key that starts with ``prefix``; return how many
        were live.

        ``limits`` storages have no such operation, so this reaches into the
        two we support: Redis (a ``SCAN`` of the storage's own prefixed keys)
        and memory (its dictionary).
        """
        storage = self.storage
        if isinstance(storage, RedisStorage):
            client: t.Any = storage.get_connection()
            pattern = storage.prefixed_key(_glob_escape(prefix)) + "*"
            # Redis expires keys itself: DEL counts only live ones.
            keys = client.scan_iter(match=pattern, count=500)
            return sum(int(client.delete(key)) for key in keys)
        if isinstance(storage, MemoryStorage):
            live = 0
            for key in [key for key in storage.storage if key.startswith(prefix)]:
                live += storage.get(key) != 0  # 0: expired, not yet swept
                storage.clear(key)
            return live
        # Refused by __init__.
        raise TypeError(f"cannot clear keys by prefix in {type(storage).__name__}")


def _glob_escape(text: str) -> str:
    """``text`` with Redis glob characters escaped."""
    return "".join("\\" + char if char in "*?[]\\" else char for char in text)
