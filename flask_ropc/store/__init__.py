"""The only package that runs SQL: our tables on one database.

:class:`Store` bundles the row stores of one app: :attr:`~Store.clients`,
:attr:`~Store.tokens` and :attr:`~Store.keys` (with encryption at rest), plus
the counters throttling uses. Modules inside import only each other and the
leaves (``models``, ``errors``, ``hashing``, ``scopes``, ``key_encryption``);
nothing here imports the services above.

Every method runs in its own short transaction (``Database.begin`` or
``Database.autocommit``), never in the app's ORM session: the app's unit of
work is left alone, and a grant is written all at once or not at all.
"""

from __future__ import annotations

import typing as t

import sqlalchemy as sa

from ..errors import ConfigurationError
from ..key_encryption import KeyCipher
from ..models import Tables
from .clients import ClientStore
from .counters import Counters
from .counters import DatabaseCounters
from .database import UNAVAILABLE_ERRORS as UNAVAILABLE_ERRORS
from .database import Clock as Clock
from .database import Database as Database
from .database import DatabaseError as DatabaseError
from .database import is_missing_schema as is_missing_schema
from .dpop_replay import ReplayCache as ReplayCache
from .dpop_replay import replay_cache
from .engines import Timeouts as Timeouts
from .engines import create_engine as create_engine
from .keys import KeyStore
from .limits_storage import LimitsCounters
from .mfa import MfaTokens as MfaTokens
from .mfa import PendingMfa as PendingMfa
from .mfa import SQLMfaTokens
from .mfa import SQLStepLedger
from .mfa_redis import RedisMfaTokens
from .tokens import TokenStore


class Store:
    """Everything one app keeps in its database.

    :param database: the engine and clock.
    :param tables: our tables, see :func:`~flask_ropc.models.tables_for`.
    :param cipher: encrypts stored private signing keys, if configured.
    """

    def __init__(
        self, database: Database, tables: Tables, cipher: KeyCipher | None = None
    ) -> None:
        #: The engine and clock.
        self.db = database
        #: Our tables.
        self.tables = tables
        #: Client rows.
        self.clients = ClientStore(database, tables)
        #: Access and refresh token rows.
        self.tokens = TokenStore(database, tables)
        #: Signing key rows.
        self.keys = KeyStore(database, tables, cipher)

    def now(self) -> int:
        """The current time as whole Unix seconds."""
        return self.db.now()

    def create_all(self) -> None:
        """Create any of our tables that do not exist yet; keeps existing rows.

        Tables made by an earlier release get the nullable columns added
        since (``flask ropc init-db`` is also the upgrade without Alembic).
        """
        metadata = self.tables.clients.metadata
        metadata.create_all(self.db.engine, tables=self.tables.all())
        with self.db.engine.begin() as conn:
            for table in self.tables.all():
                have = {c["name"] for c in sa.inspect(conn).get_columns(table.name)}
                for column in table.columns:
                    if column.name not in have and column.nullable:
                        ddl = sa.schema.CreateColumn(column).compile(conn)
                        name = conn.dialect.identifier_preparer.format_table(table)
                        conn.execute(sa.text(f"ALTER TABLE {name} ADD COLUMN {ddl}"))

    def drop_all(self) -> None:
        """Drop our tables and every row in them (never the app's tables)."""
        metadata = self.tables.clients.metadata
        metadata.drop_all(self.db.engine, tables=self.tables.all())

    def counters(
        self, storage_uri: str | None, options: t.Mapping[str, t.Any] | None = None
    ) -> Counters:
        """Where throttling counters live: our table, or a ``limits`` storage
        (created with ``options``, see :func:`.limits_storage.storage_options`).

        :raises ConfigurationError: a storage that cannot do what throttling
            needs.
        """
        if storage_uri is None:
            return DatabaseCounters(self.db, self.tables.throttle)
        if storage_uri.startswith("memcached"):
            # Taking back a reserved place is a negative increment, which
            # memcached refuses: every success would fail with a storage error.
            raise ConfigurationError(
                "ROPC_RATELIMIT_STORAGE_URI: memcached cannot decrement counters, "
                "which throttling needs; use Redis or leave it unset (the database)"
            )
        return LimitsCounters(storage_uri, options)

    def dpop_replay(
        self, storage_uri: str | None, options: t.Mapping[str, t.Any] | None = None
    ) -> ReplayCache:
        """Where DPoP proof ids are remembered: the throttle's Redis, if
        ``storage_uri`` names one, else our database."""
        return replay_cache(self.db, self.tables.throttle, storage_uri, options)

    def mfa_tokens(
        self,
        storage_uri: str | None,
        options: t.Mapping[str, t.Any] | None = None,
        prefix: str = "ropc",
    ) -> MfaTokens:
        """Where pending MFA logins live: the throttle's Redis, if
        ``storage_uri`` names one, else our database."""
        if storage_uri is not None and storage_uri.startswith(("redis", "valkey")):
            return RedisMfaTokens(storage_uri, options or {}, prefix)
        return SQLMfaTokens(self.db, self.tables.mfa_tokens)

    def mfa_steps(self) -> SQLStepLedger:
        """The default store of accepted TOTP steps (replay rejection)."""
        return SQLStepLedger(self.db, self.tables.mfa_steps)
