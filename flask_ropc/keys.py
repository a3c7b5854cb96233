"""Asymmetric signing keys for JWT access tokens, and where they come from.

Only asymmetric algorithms are supported (ES256, the default; RS256; EdDSA
with Ed25519): an API validating our tokens must never hold a key that can
also sign them. Keys come from configuration (``ROPC_SIGNING_KEYS``, PEM or
JWK) or from the database, managed with ``flask ropc keys ...``.

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

import dataclasses
import json
import logging
import threading
import time
import typing as t
from collections.abc import Mapping
from collections.abc import Sequence

import sqlalchemy as sa
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric import ed25519
from cryptography.hazmat.primitives.asymmetric import rsa
from joserfc.jwk import ECKey
from joserfc.jwk import Key
from joserfc.jwk import KeySet
from joserfc.jwk import OKPKey
from joserfc.jwk import RSAKey

from .errors import ConfigurationError

if t.TYPE_CHECKING:  # pragma: no cover
    from .store import Store

log = logging.getLogger("flask_ropc")

#: Signing algorithms we issue and accept. Never HS256 or ``none``.
SUPPORTED_ALGORITHMS = ("ES256", "RS256", "EdDSA")

#: Key states, see the module docstring.
PENDING, ACTIVE, PREVIOUS, RETIRED = "pending", "active", "previous", "retired"

#: Smallest RSA modulus we sign with (RFC 7518 §3.3 requires 2048 bits).
MIN_RSA_BITS = 2048


@dataclasses.dataclass(frozen=True)
class SigningKey:
    """One signing key with its algorithm and state."""

    #: The key id, the RFC 7638 thumbprint of the public key.
    kid: str
    #: ``ES256``, ``RS256`` or ``EdDSA``.
    alg: str
    #: The joserfc private key. Never shown in a repr.
    key: Key = dataclasses.field(repr=False)
    #: ``pending``, ``active``, ``previous`` or ``retired``.
    status: str = ACTIVE
    #: Unix time of creation (0 for configured keys).
    created_at: int = 0
    #: For ``previous`` keys: published until then.
    publish_until: int | None = None

    def public_jwk(self) -> dict[str, t.Any]:
        """The public JWK with ``kid``, ``alg`` and ``use``; no private part."""
        data = dict(self.key.as_dict(private=False))
        data.update(kid=self.kid, alg=self.alg, use="sig")
        return data


def generate_key(alg: str = "ES256") -> Key:
    """Generate a new private key for ``alg`` with its thumbprint as ``kid``.

    :raises ConfigurationError: ``alg`` is not supported.
    """
    key: Key
    if alg == "ES256":
        key = ECKey.generate_key("P-256", auto_kid=True)
    elif alg == "RS256":
        key = RSAKey.generate_key(MIN_RSA_BITS, auto_kid=True)
    elif alg == "EdDSA":
        key = OKPKey.generate_key("Ed25519", auto_kid=True)
    else:
        raise ConfigurationError(
            f"unsupported signing algorithm {alg!r}; choose one of "
            + ", ".join(SUPPORTED_ALGORITHMS)
        )
    return key


def import_signing_key(value: str | Mapping[str, t.Any]) -> SigningKey:
    """Load a private key from PEM text or a JWK (dict or JSON text).

    The algorithm follows from the key: P-256 → ES256, RSA (2048 bits or
    more) → RS256, Ed25519 → EdDSA. A ``kid`` in the JWK is kept; otherwise
    the thumbprint is used.

    :raises ConfigurationError: not a private key of a supported type.
    """
    if isinstance(value, str) and value.lstrip().startswith("-----BEGIN"):
        key = _import_pem(value)
    else:
        data = json.loads(value) if isinstance(value, str) else dict(value)
        key = _import_jwk(data)
    alg = _algorithm_of(key)
    if not key.is_private:
        raise ConfigurationError("a signing key must be a private key")
    kid = key.kid or key.thumbprint()
    return SigningKey(kid=kid, alg=alg, key=key)


def _import_pem(pem: str) -> Key:
    try:
        private = serialization.load_pem_private_key(pem.encode(), password=None)
    except (ValueError, TypeError) as error:
        raise ConfigurationError(
            f"cannot read the PEM signing key ({type(error).__name__}); it must "
            "be an unencrypted private key"
        ) from None
    if isinstance(private, ec.EllipticCurvePrivateKey):
        return ECKey.import_key(pem)
    if isinstance(private, rsa.RSAPrivateKey):
        # Checked before joserfc sees the key: it only warns about short ones.
        _check_rsa_bits(private.key_size)
        return RSAKey.import_key(pem)
    if isinstance(private, ed25519.Ed25519PrivateKey):
        return OKPKey.import_key(pem)
    raise ConfigurationError("unsupported PEM key type; use P-256, RSA or Ed25519")


def _import_jwk(data: dict[str, t.Any]) -> Key:
    kty = data.get("kty")
    if kty == "RSA" and isinstance(data.get("n"), str):
        # base64url without padding: 4 characters carry 3 bytes.
        _check_rsa_bits(len(data["n"]) * 6 // 8 * 8)
    importers: dict[str, type[ECKey] | type[RSAKey] | type[OKPKey]] = {
        "EC": ECKey,
        "RSA": RSAKey,
        "OKP": OKPKey,
    }
    if kty not in importers:
        raise ConfigurationError(
            f"unsupported JWK key type {kty!r}: use EC (P-256), RSA or OKP "
            "(Ed25519); symmetric keys are never accepted"
        )
    try:
        return importers[kty].import_key(data)
    except Exception as error:
        raise ConfigurationError(
            f"cannot read the JWK signing key ({type(error).__name__})"
        ) from None


def _check_rsa_bits(bits: int) -> None:
    if bits < MIN_RSA_BITS:
        raise ConfigurationError(f"RSA signing keys need at least {MIN_RSA_BITS} bits")


def _algorithm_of(key: Key) -> str:
    if isinstance(key, ECKey):
        if key.curve_name != "P-256":
            raise ConfigurationError("EC signing keys must use the P-256 curve")
        return "ES256"
    if isinstance(key, RSAKey):
        _check_rsa_bits(key.raw_value.key_size)
        return "RS256"
    if isinstance(key, OKPKey) and key.curve_name == "Ed25519":
        return "EdDSA"
    raise ConfigurationError("unsupported signing key; use P-256, RSA or Ed25519")


class KeysChangedError(Exception):
    """Another ``flask ropc keys`` command changed the keys at the same time."""


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
        """A configured key by ``kid``."""
        return self._by_kid.get(kid)

    def reload(self) -> None:
        """Nothing to reload: configured keys change with the configuration."""


class DatabaseKeyRing:
    """Keys stored in the ``ropc_signing_keys`` table.

    Parsed keys are cached per process: parsing a PEM costs more than the
    query. The signer is re-read at most every ``refresh_seconds`` (after a
    rotation, other workers switch within that time; the old key stays
    published, so their tokens still validate). An unknown ``kid`` triggers a
    re-read, at most once per second. Retirement needs no cache: every token
    check also reads the key's state with the token row (see
    :meth:`Store.find_access_token`).

    With no usable key at all, the first signer request generates one (of
    ``default_alg``) and logs that it did.
    """

    def __init__(
        self,
        store: Store,
        default_alg: str,
        refresh_seconds: int = SIGNER_REFRESH_SECONDS,
    ) -> None:
        self._store = store
        self._default_alg = default_alg
        self._refresh_seconds = refresh_seconds
        self._lock = threading.Lock()
        self._keys: dict[str, SigningKey] = {}
        self._signer: SigningKey | None = None
        self._loaded_at = float("-inf")

    def _load(self) -> None:
        now = self._store.now()
        keys = {}
        signer = None
        for row in self._store.list_signing_keys():
            key = self._keys.get(row.kid)
            if key is None or key.status != row.status:
                key = _from_row(row, self._store)
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
                if self._signer is None:
                    created = self._store.add_signing_key(
                        generate_key(self._default_alg), self._default_alg, ACTIVE
                    )
                    log.warning(
                        "No signing key was configured: generated a new %s key "
                        "(kid %s) and stored it in the database. Manage keys "
                        "with 'flask ropc keys' or set ROPC_SIGNING_KEYS.",
                        created.alg,
                        created.kid,
                    )
                    self._load()
        assert self._signer is not None
        return self._signer

    def published_keys(self) -> list[SigningKey]:
        """Pending, active and not yet expired previous keys."""
        with self._lock:
            self._load()
            return list(self._keys.values())

    def key_for(self, kid: str) -> SigningKey | None:
        """A published key by ``kid``; an id new to this process is looked up.

        The lookup is one indexed query, like the token row check that
        follows anyway, so a key another worker just generated is accepted
        at once.
        """
        key = self._keys.get(kid)
        if key is not None:
            return key
        row = self._store.find_signing_key(kid) if len(kid) <= 64 else None
        if row is None or row.status == RETIRED:
            return None
        if row.status == PREVIOUS and (row.publish_until or 0) <= self._store.now():
            return None
        key = _from_row(row, self._store)
        with self._lock:
            self._keys[kid] = key
        return key

    def reload(self) -> None:
        """Forget the cache; the next use re-reads the table.

        The ``flask ropc keys`` commands call it, so that a rotation takes
        effect at once in the process that made it.
        """
        with self._lock:
            self._loaded_at = float("-inf")
            self._signer = None


def _from_row(row: t.Any, store: Store) -> SigningKey:
    imported = import_signing_key(store.signing_key_jwk(row))
    return SigningKey(
        kid=row.kid,
        alg=row.alg,
        key=imported.key,
        status=row.status,
        created_at=row.created_at,
        publish_until=row.publish_until,
    )


def keyset_of(keys: Sequence[SigningKey]) -> KeySet:
    """A joserfc key set of ``keys``, each carrying its ``kid``."""
    return KeySet([key.key for key in keys])


def signing_keys_table(metadata: sa.MetaData) -> sa.Table:
    """The ``ropc_signing_keys`` table definition (see :mod:`flask_ropc.models`)."""
    return sa.Table(
        "ropc_signing_keys",
        metadata,
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("kid", sa.String(64), nullable=False, unique=True),
        sa.Column("alg", sa.String(16), nullable=False),
        # The private key as JWK JSON, encrypted when ROPC_KEY_ENCRYPTION_KEYS
        # is set (see key_encryption.py).
        sa.Column("private_jwk", sa.Text, nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("created_at", sa.BigInteger, nullable=False),
        sa.Column("publish_until", sa.BigInteger, nullable=True),
    )


def generate_stored_key(store: Store, alg: str) -> t.Any:
    """Add a database key: ``active`` if none is, else ``pending``.

    A pending key is published at once, so APIs that cache the JWKS learn it
    before ``rotate`` makes it the signer.
    """
    statuses = {row.status for row in store.list_signing_keys()}
    status = PENDING if ACTIVE in statuses else ACTIVE
    return store.add_signing_key(generate_key(alg), alg, status)


def rotate_stored_keys(store: Store, alg: str, longest_lifetime: int) -> t.Any:
    """Make a new key the signer; keep the old one published for a while.

    The newest ``pending`` key is promoted if there is one, else a new key of
    ``alg`` is generated. Every ``active`` key becomes ``previous`` and stays
    in the JWKS for ``longest_lifetime`` seconds, plus the time other workers
    may take to notice the rotation and stop signing with it: until every
    token it signed has expired. Returns the new signer's row.

    :raises KeysChangedError: the key to promote stopped being pending while
        this ran (another ``keys`` command); nothing was changed.
    """
    pending = [row for row in store.list_signing_keys() if row.status == PENDING]
    if pending:
        new_kid = pending[-1].kid
    else:
        new_kid = store.add_signing_key(generate_key(alg), alg, PENDING).kid
    publish_until = store.now() + longest_lifetime + SIGNER_REFRESH_SECONDS
    keys = store.tables.signing_keys
    # Both changes are conditional on the statuses as they are now, not as
    # read above: a key retired meanwhile must not sign again, and every key
    # active now (one another rotation just promoted included) steps down.
    # On PostgreSQL every key row is locked first, so that a rotation running
    # at the same time has committed, and its promotion is seen, before ours
    # decides what to demote (SQLite's one writer gives that for free).
    with store.engine.begin() as conn:
        conn.execute(sa.select(keys.c.id).order_by(keys.c.id).with_for_update())
        promoted = conn.execute(
            keys.update()
            .where(keys.c.kid == new_kid, keys.c.status == PENDING)
            .values(status=ACTIVE, publish_until=None)
        ).rowcount
        if promoted != 1:
            raise KeysChangedError(
                f"key {new_kid} is no longer pending (another 'keys' command ran "
                "at the same time); nothing was changed: run 'keys rotate' again"
            )
        conn.execute(
            keys.update()
            .where(keys.c.status == ACTIVE, keys.c.kid != new_kid)
            .values(status=PREVIOUS, publish_until=publish_until)
        )
    return next(row for row in store.list_signing_keys() if row.kid == new_kid)


def retire_stored_key(store: Store, kid: str) -> None:
    """Stop publishing and accepting a key; tokens it signed stop working.

    :raises LookupError: no stored key has this ``kid``.
    :raises ValueError: it is the active key (rotate first).
    """
    keys = store.tables.signing_keys
    with store.engine.begin() as conn:
        # Conditional, so that a key a concurrent rotation just made active
        # is not retired from under every worker.
        retired = conn.execute(
            keys.update()
            .where(keys.c.kid == kid, keys.c.status != ACTIVE)
            .values(status=RETIRED, publish_until=None)
        ).rowcount
    if retired:
        return
    row = store.find_signing_key(kid)
    if row is None:
        raise LookupError(f"no signing key with kid {kid!r}")
    raise ValueError(
        f"key {kid} is the active signing key; run 'flask ropc keys rotate' "
        "first, then retire it"
    )
