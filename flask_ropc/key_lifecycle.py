"""The database key ring under the automatic lifecycle (``ROPC_KEY_ROTATION_ENABLED``).

:class:`ManagedKeyRing` serves the same three questions as
:class:`~flask_ropc.keyring.DatabaseKeyRing` (which key signs, which are
published, which verifies a ``kid``), but which key signs is computed from
the stored keys and the clock by :mod:`~flask_ropc.key_policy`, and it
drives the lifecycle itself: on token and JWKS requests it re-reads the
keys at most every :data:`~flask_ropc.key_policy.CHECK_INTERVAL` seconds of
the app's clock and, if a new key or a step down is due, makes it under the
store's key lock (re-reading there, so N workers due at once make one key).
``flask ropc keys rotate --if-due`` runs the same step for cron.

A stored key no configured secret decrypts is skipped (left out of the
JWKS, refused for verification) with an error naming its ``kid``, once per
process. It still counts for every decision, so a worker with the wrong
secret never mints keys of its own; if it is the key that signs, signing
fails loudly instead. :func:`keyring_for` picks an app's key ring.
Imports :mod:`~flask_ropc.keyring`,
:mod:`~flask_ropc.store` and leaves.
"""

from __future__ import annotations

import dataclasses
import logging
import threading
import typing as t
from collections.abc import Callable

from .config import Settings
from .errors import ConfigurationError
from .key_policy import CHECK_INTERVAL
from .key_policy import KeyPolicy
from .key_policy import Plan
from .key_policy import next_change
from .key_policy import plan
from .key_policy import publish_until
from .key_policy import signer_of
from .keyring import ConfigKeyRing
from .keyring import DatabaseKeyRing
from .keyring import KeyRing
from .keyring import new_key
from .keys import SigningKey
from .keys import import_signing_key
from .keys import is_valid_kid
from .models import ACTIVE
from .models import PENDING
from .models import PREVIOUS
from .store import Store
from .store.keys import KeyStore

log = logging.getLogger("flask_ropc")


@dataclasses.dataclass(frozen=True)
class LifecycleReport:
    """What one lifecycle step did, and where the keys stand after it."""

    #: The changes made (empty: nothing was due).
    plan: Plan
    #: The key created, if any (its ``kid``).
    created: str | None
    #: The key that signs now.
    signer: str | None
    #: When the next key is due to be made (Unix time), if known.
    next_key_at: int | None


def is_published(row: t.Any, now: int) -> bool:
    """Whether a stored key is in the JWKS at ``now``."""
    if row.status in (PENDING, ACTIVE):
        return True
    return row.status == PREVIOUS and (row.publish_until or 0) > now


class ManagedKeyRing:
    """Database keys whose life cycle :mod:`~flask_ropc.key_policy` computes.

    :param keys: the key rows.
    :param default_alg: the algorithm of the keys it makes.
    :param policy: the durations.
    :param retention: the retention to stamp on a key stepping down (the
        configured one, or longer if a client's tokens live longer).
    """

    def __init__(
        self,
        keys: KeyStore,
        default_alg: str,
        policy: KeyPolicy,
        retention: Callable[[], int],
    ) -> None:
        self._store = keys
        self._alg = default_alg
        self._policy = policy
        self._retention = retention
        self._lock = threading.RLock()
        self._rows: list[t.Any] = []
        self._keys: dict[str, SigningKey] = {}
        #: kid -> why it cannot be decrypted (logged once).
        self._broken: dict[str, str] = {}
        self._warned: set[str] = set()
        self._checked_at: int | None = None

    # -- the lazy check --------------------------------------------------------

    def check(self, *, force: bool = False) -> LifecycleReport | None:
        """Re-read the keys and make the changes due, at most once a minute.

        Returns ``None`` when skipped (checked less than a minute ago, by the
        app's clock), else what was done. ``force`` skips the wait (the CLI,
        and a worker that finds no key able to sign).
        """
        now = self._store.now()
        with self._lock:
            last = self._checked_at
            if not force and last is not None and 0 <= now - last < CHECK_INTERVAL:
                return None
            self._checked_at = now
            self._rows = self._store.list()
            due = plan(self._rows, now, self._policy)
            created = None
            if due:
                due, created = self._apply()
                self._rows = self._store.list()
            signer = signer_of(self._rows, self._store.now(), self._policy)
            return LifecycleReport(
                plan=due,
                created=created.kid if created is not None else None,
                signer=signer.kid if signer is not None else None,
                next_key_at=next_change(self._rows, now, self._policy),
            )

    def _apply(self) -> tuple[Plan, t.Any | None]:
        policy = self._policy
        retention = max(policy.retention, self._retention())
        done, created = self._store.apply_lifecycle(
            lambda rows, now: plan(rows, now, policy),
            lambda: new_key(self._alg),
            lambda row, now: publish_until(row, now, retention, policy),
        )
        if created is not None and created.status == ACTIVE:
            log.warning(
                "No signing key could sign: generated a new %s key (kid %s) "
                "that signs at once, without its propagation time; APIs that "
                "cached the JWKS before now reject its tokens until they "
                "fetch it again.",
                created.alg,
                created.kid,
            )
        elif created is not None:
            log.info(
                "Generated signing key %s (%s): published now, it signs from "
                "the end of its propagation time.",
                created.kid,
                created.alg,
            )
        for kid in done.demote:
            log.info("Signing key %s stopped signing; it stays published.", kid)
        return done, created

    # -- the KeyRing protocol --------------------------------------------------

    def signing_key(self) -> SigningKey:
        """The key the policy says signs now; made first if none can.

        :raises ConfigurationError: that key cannot be decrypted here.
        """
        self.check()
        now = self._store.now()
        row = signer_of(self._rows, now, self._policy)
        if row is None:
            self.check(force=True)
            now = self._store.now()
            row = signer_of(self._rows, now, self._policy)
        if row is None:  # only if the clock went back past every key
            raise ConfigurationError("no signing key can sign at this time")
        key = self._key(row)
        if key is None:
            raise ConfigurationError(self._broken[row.kid])
        if now < row.created_at + self._policy.propagation_time:
            self._warn_early(row, now)
        return key

    def published_keys(self) -> list[SigningKey]:
        """The published keys this process can decrypt, read afresh.

        Read at every call (APIs cache the JWKS, not us): a key another
        worker just made is listed at once.
        """
        if self.check() is None:
            with self._lock:
                self._rows = self._store.list()
        now = self._store.now()
        if signer_of(self._rows, now, self._policy) is None:
            self.check(force=True)
        keys = []
        for row in self._rows:
            if is_published(row, now):
                key = self._key(row)
                if key is not None:
                    keys.append(key)
        return keys

    def key_for(self, kid: str) -> SigningKey | None:
        """A published key by ``kid``; an id new to this process is looked up."""
        if not is_valid_kid(kid):
            return None
        row = next((r for r in self._rows if r.kid == kid), None)
        if row is None:
            row = self._store.find(kid)
        if row is None or not is_published(row, self._store.now()):
            return None
        return self._key(row)

    def reload(self) -> None:
        """Check again at the next use (the key commands call it)."""
        with self._lock:
            self._checked_at = None

    # -- helpers ---------------------------------------------------------------

    def _key(self, row: t.Any) -> SigningKey | None:
        """The parsed key of a row, or ``None`` (logged once) if undecryptable."""
        cached = self._keys.get(row.kid)
        if cached is not None and cached.status == row.status:
            return cached
        if row.kid in self._broken:
            return None
        try:
            imported = import_signing_key(self._store.private_jwk(row))
        except ConfigurationError as error:
            self._broken[row.kid] = str(error)
            log.error(
                "Skipping signing key %s: %s. It still counts for rotation "
                "(no key is made in its place); once no token it signed is "
                "in use, 'flask ropc keys retire %s' removes it.",
                row.kid,
                error,
                row.kid,
            )
            return None
        key = SigningKey(
            kid=row.kid,
            alg=row.alg,
            key=imported.key,
            status=row.status,
            created_at=row.created_at,
            publish_until=row.publish_until,
        )
        self._keys[row.kid] = key
        return key

    def _warn_early(self, row: t.Any, now: int) -> None:
        if row.kid in self._warned:
            return
        self._warned.add(row.kid)
        log.warning(
            "Signing with key %s, published only %d s ago (less than "
            "ROPC_KEY_PROPAGATION_TIME): APIs that cached the JWKS before "
            "then reject its tokens until they fetch it again.",
            row.kid,
            max(now - row.created_at, 0),
        )


def keyring_for(settings: Settings, store: Store) -> KeyRing:
    """The key ring an app's settings ask for: the configured keys, the
    automatic lifecycle, or the database keys rotated by hand."""
    if settings.signing_keys:
        return ConfigKeyRing(settings.signing_keys)
    if settings.key_policy is None:
        return DatabaseKeyRing(store.keys, settings.signing_alg)

    def longest_token_life() -> int:
        # Retention covers the longest-lived client's tokens plus the JWKS cache.
        longest = store.clients.longest_access_token_lifetime(
            settings.access_token_lifetime
        )
        return longest + settings.jwks_max_age

    return ManagedKeyRing(
        store.keys, settings.signing_alg, settings.key_policy, longest_token_life
    )
