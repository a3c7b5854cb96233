"""Which keys sign and verify JWT access tokens, and their life cycle.

Keys come from configuration (``ROPC_SIGNING_KEYS``, :class:`ConfigKeyRing`)
or from the database (:class:`DatabaseKeyRing`), managed with
``flask ropc keys ...`` or :attr:`ROPC.keys <flask_ropc.ROPC.keys>`. Imports
:mod:`~flask_ropc.keys` (the key material), :mod:`~flask_ropc.store` and
leaves.

A database key moves through these states:

.. code-block:: text

    pending ──rotate──▶ active ──rotate──▶ previous ──publish_until──▶ (gone)
       │                  │                   │
       └──────────────────┴──── retire ───────┴──▶ retired

``pending`` keys are published in the JWKS but do not sign yet (generate one
ahead of a rotation so that APIs caching the JWKS already know it); the one
``active`` key signs; ``previous`` keys stay published until the tokens they
signed have expired; ``retired`` keys are neither published nor accepted.
"""

from __future__ import annotations

import json
import logging
import threading
import time
import typing as t
from collections.abc import Sequence

from joserfc.jwk import Key

from .errors import ConfigurationError
from .keys import SigningKey
from .keys import generate_key
from .keys import import_signing_key
from .keys import is_valid_kid
from .models import ACTIVE
from .models import PENDING
from .models import PREVIOUS
from .models import RETIRED
from .store.keys import KeyStore

log = logging.getLogger("flask_ropc")


#: How often a worker re-reads which database key signs. After ``rotate`` in
#: one process, the others may sign with the old key for this long.
SIGNER_REFRESH_SECONDS = 30


class KeyRing(t.Protocol):
    """Where signing keys come from."""

    def signing_key(self) -> SigningKey:
        """The key that signs new tokens."""

    def published_keys(self) -> list[SigningKey]:
        """The keys whose public halves the JWKS lists."""

    def key_for(self, kid: str) -> SigningKey | None:
        """A published key by ``kid``, for verification, or ``None``."""

    def reload(self) -> None:
        """Drop any cached state so that the next call sees changes."""


class ConfigKeyRing:
    """Keys given in ``ROPC_SIGNING_KEYS``: the first signs, all are published."""

    def __init__(self, keys: Sequence[SigningKey]) -> None:
        if not keys:
            raise ConfigurationError("ROPC_SIGNING_KEYS must hold at least one key")
        self._keys = list(keys)
        self._by_kid = {key.kid: key for key in keys}

    def signing_key(self) -> SigningKey:
        """The first configured key."""
        return self._keys[0]

    def published_keys(self) -> list[SigningKey]:
        """Every configured key."""
        return list(self._keys)

    def key_for(self, kid: str) -> SigningKey | None:
        """A configured key by ``kid``; an id of the wrong shape finds none."""
        if not is_valid_kid(kid):
            return None
        return self._by_kid.get(kid)

    def reload(self) -> None:
        """Nothing to reload: configured keys change with the configuration."""


class DatabaseKeyRing:
    """Keys stored in the ``ropc_signing_keys`` table.

    Parsed keys are cached per process: parsing a PEM costs more than the
    query. The signer is re-read at most every ``refresh_seconds`` (after a
    rotation, other workers switch within that time; the old key stays
    published, so their tokens still validate). An unknown ``kid`` is looked
    up at once. Retirement needs no cache: every token check also reads the
    key's state with the token row (see :meth:`TokenStore.find_access
    <flask_ropc.store.tokens.TokenStore.find_access>`).

    With no active key at all, the first signer or JWKS request generates
    one (of ``default_alg``) and logs that it did; the store's key lock
    makes that one key however many workers race to it. ``init-db`` and
    ``ROPC.create_all`` make it ahead of time (:func:`ensure_stored_key`).
    """

    def __init__(
        self,
        keys: KeyStore,
        default_alg: str,
        refresh_seconds: int = SIGNER_REFRESH_SECONDS,
    ) -> None:
        self._rows = keys
        self._default_alg = default_alg
        self._refresh_seconds = refresh_seconds
        self._lock = threading.Lock()
        self._keys: dict[str, SigningKey] = {}
        self._signer: SigningKey | None = None
        self._loaded_at = float("-inf")

    def _load(self) -> None:
        now = self._rows.now()
        keys = {}
        signer = None
        for row in self._rows.list():
            key = self._keys.get(row.kid)
            if key is None or key.status != row.status:
                key = _from_row(row, self._rows)
            if row.status == RETIRED:
                continue
            if row.status == PREVIOUS and (row.publish_until or 0) <= now:
                continue
            keys[row.kid] = key
            if row.status == ACTIVE:
                signer = key  # rows come oldest first: the newest active wins
        self._keys, self._signer = keys, signer
        self._loaded_at = time.monotonic()

    def _refresh_if_older_than(self, seconds: float) -> None:
        with self._lock:
            if time.monotonic() - self._loaded_at >= seconds:
                self._load()

    def signing_key(self) -> SigningKey:
        """The newest active key; generated on first use if there is none."""
        self._refresh_if_older_than(self._refresh_seconds)
        if self._signer is None:
            with self._lock:
                self._load()
                self._ensure_signer()
        assert self._signer is not None
        return self._signer

    def published_keys(self) -> list[SigningKey]:
        """Pending, active and not yet expired previous keys.

        Never empty: with no active key, one is generated first, so the
        JWKS an API fetches at start-up already lists the key that will
        sign our first tokens.
        """
        with self._lock:
            self._load()
            self._ensure_signer()
            return list(self._keys.values())

    def _ensure_signer(self) -> None:
        """Make the first key if no key is active (``self._lock`` held).

        The store takes a database lock and re-reads: of several workers
        arriving here at once, one creates the key, the others load it.
        """
        if self._signer is not None:
            return
        row, created = self._rows.ensure_active(lambda: new_key(self._default_alg))
        if created:
            log.warning(
                "No signing key was configured: generated a new %s key "
                "(kid %s) and stored it in the database. Manage keys "
                "with 'flask ropc keys' or set ROPC_SIGNING_KEYS.",
                row.alg,
                row.kid,
            )
        self._load()

    def key_for(self, kid: str) -> SigningKey | None:
        """A published key by ``kid``; an id new to this process is looked up.

        The lookup is one indexed query, like the token row check that
        follows anyway, so a key another worker just generated is accepted
        at once. An id that cannot be ours (:func:`~flask_ropc.keys.is_valid_kid`:
        NUL, lone surrogates, too long) is refused before any lookup.
        """
        if not is_valid_kid(kid):
            return None
        key = self._keys.get(kid)
        if key is not None:
            return key
        row = self._rows.find(kid)
        if row is None or row.status == RETIRED:
            return None
        if row.status == PREVIOUS and (row.publish_until or 0) <= self._rows.now():
            return None
        key = _from_row(row, self._rows)
        with self._lock:
            self._keys[kid] = key
        return key

    def reload(self) -> None:
        """Forget the cache; the next use re-reads the table.

        The key commands call it, so that a rotation takes effect at once in
        the process that made it.
        """
        with self._lock:
            self._loaded_at = float("-inf")
            self._signer = None


def _from_row(row: t.Any, rows: KeyStore) -> SigningKey:
    imported = import_signing_key(rows.private_jwk(row))
    return SigningKey(
        kid=row.kid,
        alg=row.alg,
        key=imported.key,
        status=row.status,
        created_at=row.created_at,
        publish_until=row.publish_until,
    )


def new_key(alg: str) -> tuple[str, str, str]:
    """Generate a private key of ``alg``: its ``kid``, ``alg`` and JWK JSON."""
    key: Key = generate_key(alg)
    kid = key.kid or key.thumbprint()
    return kid, alg, json.dumps(key.as_dict(private=True, kid=kid))


def add_key(rows: KeyStore, alg: str, status: str) -> t.Any:
    """Generate a private key of ``alg`` and store it in ``status``."""
    return rows.add(*new_key(alg), status)


def ensure_stored_key(rows: KeyStore, alg: str) -> tuple[t.Any, bool]:
    """The active database key, made (of ``alg``) if there is none.

    What ``init-db`` and ``ROPC.create_all`` do after creating the tables,
    so that the JWKS lists the signer before the first token is issued.
    Returns the row and whether it was created.
    """
    return rows.ensure_active(lambda: new_key(alg))


def generate_stored_key(rows: KeyStore, alg: str) -> t.Any:
    """Add a database key: ``active`` if none is, else ``pending``.

    A pending key is published at once, so APIs that cache the JWKS learn it
    before ``rotate`` makes it the signer. Which of the two is decided under
    the store's key lock, so concurrent runs never make two keys active.
    """
    return rows.add_signer_or_pending(lambda: new_key(alg))


def rotate_stored_keys(rows: KeyStore, alg: str, longest_lifetime: int) -> t.Any:
    """Make a new key the signer; keep the old one published for a while.

    The newest ``pending`` key is promoted if there is one, else a new key of
    ``alg`` is generated. Every ``active`` key becomes ``previous`` and stays
    in the JWKS for ``longest_lifetime`` seconds, plus the time other workers
    may take to notice the rotation and stop signing with it: until every
    token it signed has expired. Returns the new signer's row.

    :raises KeysChangedError: the key to promote stopped being pending while
        this ran (another ``keys`` command); nothing was changed.
    """
    pending = [row for row in rows.list() if row.status == PENDING]
    new_kid = pending[-1].kid if pending else add_key(rows, alg, PENDING).kid
    rows.promote(new_kid, rows.now() + longest_lifetime + SIGNER_REFRESH_SECONDS)
    return rows.find(new_kid)


def retire_stored_key(rows: KeyStore, kid: str) -> None:
    """Stop publishing and accepting a key; tokens it signed stop working.

    :raises LookupError: no stored key has this ``kid``.
    :raises ValueError: it is the active key (rotate first).
    """
    if rows.retire(kid):
        return
    if rows.find(kid) is None:
        raise LookupError(f"no signing key with kid {kid!r}")
    raise ValueError(
        f"key {kid} is the active signing key; run 'flask ropc keys rotate' "
        "first, then retire it"
    )
