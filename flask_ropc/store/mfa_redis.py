"""Pending MFA logins in Redis, for deployments whose counters live there.

Chosen when ``ROPC_RATELIMIT_STORAGE_URI`` names a Redis: one hash per
``mfa_token`` digest, expiring with the token. Wrong codes and the single use
are counted by Lua scripts, atomic in Redis, so concurrent continuations on
any instance agree as they do in SQL (:mod:`.mfa`). Redis cannot join the SQL
transaction that stores the tokens, so the token is consumed just before
they are written: if that write then fails, the user logs in again.

Imports :mod:`.mfa`, :mod:`.limits_storage` and leaves.
"""

from __future__ import annotations

import time
import typing as t
from collections.abc import Callable
from collections.abc import Mapping

from limits.storage import RedisStorage
from limits.storage import storage_from_string

from .limits_storage import storage_options
from .mfa import PendingMfa

if t.TYPE_CHECKING:  # pragma: no cover
    import sqlalchemy as sa

# KEYS[1] the hash; ARGV now, max_failures. Live: present, unused, unexpired,
# fewer failures than the maximum.
_LIVE = """
local h = redis.call('HMGET', KEYS[1], 'expires_at', 'failures', 'consumed_at')
if not h[1] or h[3] ~= '' then return nil end
if tonumber(h[1]) <= tonumber(ARGV[1]) then return nil end
if tonumber(h[2]) >= tonumber(ARGV[2]) then return nil end
"""
_FAIL = _LIVE + "return redis.call('HINCRBY', KEYS[1], 'failures', 1)"
_CONSUME = _LIVE + "redis.call('HSET', KEYS[1], 'consumed_at', ARGV[1]) return 1"
_FORGIVE = """
local f = redis.call('HGET', KEYS[1], 'failures')
if f and tonumber(f) > 0 then redis.call('HINCRBY', KEYS[1], 'failures', -1) end
"""

#: Seconds a hash outlives its token, so that Redis's clock and ours may
#: differ a little; our own expiry check decides.
_SLACK = 60


class RedisMfaTokens:
    """:class:`~.mfa.MfaTokens` on the throttle's Redis.

    :param uri: a Redis ``limits`` storage URI.
    :param options: its options (``ROPC_RATELIMIT_STORAGE_OPTIONS``).
    :param prefix: prepended to every key (``ROPC_RATELIMIT_KEY_PREFIX``).
    """

    consumes_in_database = False

    def __init__(self, uri: str, options: Mapping[str, t.Any], prefix: str) -> None:
        storage = storage_from_string(uri, **storage_options(uri, options))
        assert isinstance(storage, RedisStorage)
        self._storage = storage
        self._prefix = prefix
        client: t.Any = storage.get_connection()
        self._fail = client.register_script(_FAIL)
        self._consume = client.register_script(_CONSUME)
        self._forgive = client.register_script(_FORGIVE)

    def _key(self, digest: str) -> str:
        return str(self._storage.prefixed_key(f"{self._prefix}:mfa:{digest}"))

    def create(
        self, row: Mapping[str, t.Any], also: Callable[[sa.Connection], None] | None
    ) -> None:
        """Store the hash, expiring with the token (``also`` must be None)."""
        assert also is None, "Redis cannot join an SQL transaction"
        client: t.Any = self._storage.get_connection()
        key = self._key(row["token_digest"])
        values = {name: "" if v is None else str(v) for name, v in row.items()}
        ttl = max(1, int(row["expires_at"]) - int(time.time())) + _SLACK
        pipe = client.pipeline(transaction=True)
        pipe.hset(key, mapping=values)
        pipe.expire(key, ttl)
        pipe.execute()

    def find(self, digest: str, now: int, max_failures: int) -> PendingMfa | None:
        """The live token with this digest."""
        client: t.Any = self._storage.get_connection()
        raw = client.hgetall(self._key(digest))
        if not raw:
            return None
        values = {
            (k.decode() if isinstance(k, bytes) else k): (
                v.decode() if isinstance(v, bytes) else v
            )
            for k, v in raw.items()
        }
        pending = PendingMfa.from_values(values)
        if values.get("consumed_at") or pending.expires_at <= now:
            return None
        return None if pending.failures >= max_failures else pending

    def fail(self, digest: str, now: int, max_failures: int) -> int | None:
        """Count a wrong code on a live token (a Lua script: atomic)."""
        count = self._fail(keys=[self._key(digest)], args=[now, max_failures])
        return None if count is None else int(count)

    def forgive(self, digest: str) -> None:
        """Take back one counted code (a Lua script: never below 0)."""
        self._forgive(keys=[self._key(digest)])

    def consume(self, digest: str, now: int, max_failures: int) -> bool:
        """Mark a live token used (a Lua script: of two callers one wins)."""
        done = self._consume(keys=[self._key(digest)], args=[now, max_failures])
        return done is not None

    def consume_in(
        self, conn: sa.Connection, digest: str, now: int, max_failures: int
    ) -> bool:
        """Not available: Redis cannot join an SQL transaction."""
        raise NotImplementedError("RedisMfaTokens consume before the transaction")
