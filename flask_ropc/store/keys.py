"""The ``ropc_signing_keys`` rows, with the private keys encrypted at rest.

Imports :mod:`.database` and leaves (:mod:`~flask_ropc.key_encryption` seals
and opens the private JWKs; :mod:`~flask_ropc.key_policy` plans lifecycle
changes, which :meth:`KeyStore.apply_lifecycle` makes under the key lock).
It stores and changes rows; which key signs is decided by
:mod:`flask_ropc.keyring` and :mod:`flask_ropc.key_lifecycle`.

Every change to which key is active (a first key, ``generate``, ``rotate``)
runs under one database-level lock and re-reads the rows under it, so
concurrent workers never make two keys active: a PostgreSQL transaction
advisory lock, SQLite's write lock (``BEGIN IMMEDIATE``).

The ``private_jwk`` column is written and read as :class:`_KeyText`, whose
values print as ``'<private key>'``: SQLAlchemy's ``echo`` and DEBUG logs
(parameters and result rows) never show a stored key, sealed or not.
"""

from __future__ import annotations

import hashlib
import typing as t
from collections.abc import Callable
from collections.abc import Sequence

import sqlalchemy as sa

from ..errors import KeysChangedError
from ..key_encryption import KeyCipher
from ..key_encryption import open_stored
from ..key_policy import Plan
from ..models import ACTIVE
from ..models import PENDING
from ..models import PREVIOUS
from ..models import RETIRED
from ..models import Tables
from .database import Database

#: Makes a new key when one is needed: returns ``(kid, alg, private_jwk)``.
KeyMaker = Callable[[], tuple[str, str, str]]

#: The PostgreSQL advisory lock id of key changes (any 64-bit constant).
ADVISORY_LOCK_ID = int.from_bytes(
    hashlib.sha256(b"flask_ropc.signing_keys").digest()[:8], "big", signed=True
)


class _Hidden(str):
    """A stored private key value; its repr (what logs show) hides it."""

    __slots__ = ()

    def __repr__(self) -> str:
        return "'<private key>'"


class _KeyText(sa.types.TypeDecorator[str]):
    """``Text`` whose values SQLAlchemy logs as ``'<private key>'``.

    Applied per statement (``type_coerce`` and typed bind parameters), so
    the table's column stays plain ``Text`` for the app's migrations.
    """

    impl = sa.Text
    cache_ok = True

    def process_bind_param(self, value: t.Any, dialect: t.Any) -> t.Any:
        return None if value is None else _Hidden(value)

    def process_result_value(self, value: t.Any, dialect: t.Any) -> t.Any:
        return None if value is None else _Hidden(value)


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
            return list(conn.execute(self._select().order_by(keys.c.id)).all())

    def find(self, kid: str) -> t.Any | None:
        """The stored signing key row with ``kid``, or ``None``."""
        keys = self._table
        with self._db.autocommit() as conn:
            return conn.execute(self._select().where(keys.c.kid == kid)).first()

    def add(self, kid: str, alg: str, private_jwk: str, status: str) -> t.Any:
        """Store a private key (JWK JSON) in ``status``; return its row."""
        with self._db.begin() as conn:
            return self._insert(conn, kid, alg, private_jwk, status)

    def ensure_active(self, make: KeyMaker) -> tuple[t.Any, bool]:
        """The active key row, or a new one from ``make`` stored active.

        Under the key lock, so that of any number of workers racing to make
        the first key, one does and the others get its row. Returns the row
        and whether it was created.
        """
        keys = self._table
        with self._db.begin() as conn:
            self._lock(conn)
            active = conn.execute(
                self._select()
                .where(keys.c.status == ACTIVE)
                .order_by(keys.c.id.desc())
                .limit(1)
            ).first()
            if active is not None:
                return active, False
            kid, alg, private_jwk = make()
            return self._insert(conn, kid, alg, private_jwk, ACTIVE), True

    def add_signer_or_pending(self, make: KeyMaker) -> t.Any:
        """Store a key from ``make``: active if none is, else pending.

        Decided under the key lock, like :meth:`ensure_active`.
        """
        keys = self._table
        with self._db.begin() as conn:
            self._lock(conn)
            active = conn.execute(
                sa.select(keys.c.id).where(keys.c.status == ACTIVE).limit(1)
            ).first()
            kid, alg, private_jwk = make()
            status = PENDING if active is not None else ACTIVE
            return self._insert(conn, kid, alg, private_jwk, status)

    def apply_lifecycle(
        self,
        decide: Callable[[Sequence[t.Any], int], Plan],
        make: KeyMaker,
        publish_until: Callable[[t.Any, int], int],
    ) -> tuple[Plan, t.Any | None]:
        """Make the lifecycle changes due now, under the key lock.

        ``decide`` is given the rows as they are once the lock is held (a
        worker that took the lock first may have made the key already) and
        the time, and says what to change; ``make`` makes a key to create,
        ``publish_until`` stamps each key that steps down. Every change is
        conditional on the state it changes, so a second run changes
        nothing. Returns the plan carried out and the created row, if any.
        """
        keys = self._table
        with self._db.begin() as conn:
            self._lock(conn)
            columns = [c for c in keys.c if c.name != "private_jwk"]
            rows = list(conn.execute(sa.select(*columns).order_by(keys.c.id)).all())
            now = self._db.now()
            plan = decide(rows, now)
            created = None
            if plan.create is not None:
                kid, alg, private_jwk = make()
                created = self._insert(conn, kid, alg, private_jwk, plan.create)
            if plan.activate is not None:
                conn.execute(
                    keys.update()
                    .where(keys.c.kid == plan.activate, keys.c.status == PENDING)
                    .values(status=ACTIVE, publish_until=None)
                )
            by_kid = {row.kid: row for row in rows}
            for kid in plan.demote:
                conn.execute(
                    keys.update()
                    .where(keys.c.kid == kid, keys.c.status.in_((PENDING, ACTIVE)))
                    .values(
                        status=PREVIOUS, publish_until=publish_until(by_kid[kid], now)
                    )
                )
        return plan, created

    def private_jwk(self, row: t.Any) -> str:
        """The private JWK JSON of a stored key row, decrypted if need be.

        :raises ConfigurationError: the row is encrypted and no configured
            secret decrypts it; the message names its ``kid`` and the fix.
        """
        return open_stored(row.private_jwk, self.cipher, f"signing key {row.kid}")

    def promote(self, kid: str, publish_previous_until: int) -> None:
        """Make the pending key ``kid`` active; every other active key previous.

        Both changes are conditional on the statuses as they are now: a key
        retired meanwhile must not sign again, and every key active now (one
        another rotation just promoted included) steps down. The key lock is
        taken first, so that a rotation (or a first key) being made at the
        same time has committed, and is seen, before ours decides what to
        demote.

        :raises KeysChangedError: ``kid`` is no longer pending; nothing changed.
        """
        keys = self._table
        with self._db.begin() as conn:
            self._lock(conn)
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
        secret (or under ``SECRET_KEY_FALLBACKS``) are re-encrypted, all in
        one transaction. Returns how many.

        :raises ValueError: neither ``SECRET_KEY`` nor
            ``ROPC_KEY_ENCRYPTION_KEYS`` is set.
        :raises ConfigurationError: a key cannot be decrypted; nothing changed.
        """
        if self.cipher is None:
            raise ValueError("set SECRET_KEY or ROPC_KEY_ENCRYPTION_KEYS first")
        keys = self._table
        with self._db.begin() as conn:
            rows = conn.execute(
                sa.select(keys.c.id, keys.c.kid, self._private_column())
            ).all()
            for row in rows:
                conn.execute(
                    keys.update()
                    .where(keys.c.id == row.id)
                    .values(private_jwk=self._sealed(self.private_jwk(row)))
                )
        return len(rows)

    def _insert(
        self, conn: sa.Connection, kid: str, alg: str, private_jwk: str, status: str
    ) -> t.Any:
        keys = self._table
        conn.execute(
            keys.insert().values(
                kid=kid,
                alg=alg,
                private_jwk=self._sealed(private_jwk),
                status=status,
                created_at=self._db.now(),
            )
        )
        return conn.execute(self._select().where(keys.c.kid == kid)).one()

    def _lock(self, conn: sa.Connection) -> None:
        """Take the key lock until the end of ``conn``'s transaction."""
        dialect = conn.dialect.name
        if dialect == "postgresql":
            conn.execute(sa.select(sa.func.pg_advisory_xact_lock(ADVISORY_LOCK_ID)))
        elif dialect == "sqlite":
            dbapi = conn.connection.dbapi_connection
            if not getattr(dbapi, "in_transaction", False):
                conn.exec_driver_sql("BEGIN IMMEDIATE")
            else:  # begun by the app's own engine events: a write takes the lock
                keys = self._table
                conn.execute(
                    keys.update().where(sa.false()).values(status=keys.c.status)
                )
        else:
            keys = self._table
            conn.execute(sa.select(keys.c.id).order_by(keys.c.id).with_for_update())

    def _select(self) -> sa.Select[t.Any]:
        """``SELECT`` every column, the private key as :class:`_KeyText`."""
        return sa.select(
            *(c for c in self._table.c if c.name != "private_jwk"),
            self._private_column(),
        )

    def _private_column(self) -> t.Any:
        column = self._table.c.private_jwk
        return sa.type_coerce(column, _KeyText).label("private_jwk")

    def _sealed(self, jwk_json: str) -> t.Any:
        value = self.cipher.seal(jwk_json) if self.cipher is not None else jwk_json
        return sa.bindparam(None, value, type_=_KeyText())
