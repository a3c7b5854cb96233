"""The ``ropc_signing_keys`` rows, with the private keys encrypted at rest.

Imports :mod:`.database` and leaves (:mod:`~flask_ropc.key_encryption` seals
and opens the private JWKs). It stores and changes rows; which key signs is
decided by :mod:`flask_ropc.keyring`.
"""

from __future__ import annotations

import typing as t

import sqlalchemy as sa

from ..errors import KeysChangedError
from ..key_encryption import KeyCipher
from ..key_encryption import open_stored
from ..models import ACTIVE
from ..models import PENDING
from ..models import PREVIOUS
from ..models import RETIRED
from ..models import Tables
from .database import Database


class KeyStore:
    """Signing key persistence on one database.

    :param database: the engine and clock.
    :param tables: our tables.
    :param cipher: encrypts the private keys we store, if configured.
    """

    def __init__(
        self, database: Database, tables: Tables, cipher: KeyCipher | None
    ) -> None:
        self._db = database
        self._table = tables.signing_keys
        #: Encrypts the private signing keys we store, if configured.
        self.cipher = cipher

    def now(self) -> int:
        """The current time as whole Unix seconds."""
        return self._db.now()

    def list(self) -> list[t.Any]:
        """Every stored signing key row, oldest first."""
        keys = self._table
        with self._db.autocommit() as conn:
            return list(conn.execute(sa.select(keys).order_by(keys.c.id)).all())

    def find(self, kid: str) -> t.Any | None:
        """The stored signing key row with ``kid``, or ``None``."""
        keys = self._table
        with self._db.autocommit() as conn:
            return conn.execute(sa.select(keys).where(keys.c.kid == kid)).first()

    def add(self, kid: str, alg: str, private_jwk: str, status: str) -> t.Any:
        """Store a private key (JWK JSON) in ``status``; return its row."""
        keys = self._table
        with self._db.begin() as conn:
            conn.execute(
                keys.insert().values(
                    kid=kid,
                    alg=alg,
                    private_jwk=self._seal(private_jwk),
                    status=status,
                    created_at=self._db.now(),
                )
            )
            return conn.execute(sa.select(keys).where(keys.c.kid == kid)).one()

    def private_jwk(self, row: t.Any) -> str:
        """The private JWK JSON of a stored key row, decrypted if need be.

        :raises ConfigurationError: the row is encrypted and no configured
            secret decrypts it.
        """
        return open_stored(row.private_jwk, self.cipher)

    def promote(self, kid: str, publish_previous_until: int) -> None:
        """Make the pending key ``kid`` active; every other active key previous.

        Both changes are conditional on the statuses as they are now: a key
        retired meanwhile must not sign again, and every key active now (one
        another rotation just promoted included) steps down. On PostgreSQL
        every key row is locked first, so that a rotation running at the same
        time has committed, and its promotion is seen, before ours decides
        what to demote (SQLite's one writer gives that for free).

        :raises KeysChangedError: ``kid`` is no longer pending; nothing changed.
        """
        keys = self._table
        with self._db.begin() as conn:
            conn.execute(sa.select(keys.c.id).order_by(keys.c.id).with_for_update())
            promoted = conn.execute(
                keys.update()
                .where(keys.c.kid == kid, keys.c.status == PENDING)
                .values(status=ACTIVE, publish_until=None)
            ).rowcount
            if promoted != 1:
                raise KeysChangedError(
                    f"key {kid} is no longer pending (another 'keys' command ran "
                    "at the same time); nothing was changed: run 'keys rotate' again"
                )
            conn.execute(
                keys.update()
                .where(keys.c.status == ACTIVE, keys.c.kid != kid)
                .values(status=PREVIOUS, publish_until=publish_previous_until)
            )

    def retire(self, kid: str) -> bool:
        """Retire ``kid`` unless it is active; whether it was retired.

        Conditional, so that a key a concurrent rotation just made active is
        not retired from under every worker.
        """
        keys = self._table
        with self._db.begin() as conn:
            retired = conn.execute(
                keys.update()
                .where(keys.c.kid == kid, keys.c.status != ACTIVE)
                .values(status=RETIRED, publish_until=None)
            ).rowcount
        return bool(retired)

    def encrypt_all(self) -> int:
        """(Re-)encrypt every stored key with the first configured secret.

        Unencrypted keys get encrypted, and keys encrypted under an older
        secret are re-encrypted, all in one transaction. Returns how many.

        :raises ValueError: ``ROPC_KEY_ENCRYPTION_KEYS`` is not set.
        :raises ConfigurationError: a key cannot be decrypted; nothing changed.
        """
        if self.cipher is None:
            raise ValueError("set ROPC_KEY_ENCRYPTION_KEYS first")
        keys = self._table
        with self._db.begin() as conn:
            rows = conn.execute(sa.select(keys.c.id, keys.c.private_jwk)).all()
            for row in rows:
                conn.execute(
                    keys.update()
                    .where(keys.c.id == row.id)
                    .values(private_jwk=self._seal(self.private_jwk(row)))
                )
        return len(rows)

    def _seal(self, jwk_json: str) -> str:
        return self.cipher.seal(jwk_json) if self.cipher is not None else jwk_json
