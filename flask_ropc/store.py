"""The only module that talks to the database.

:class:`Store` wraps our tables and an engine. Every method runs in its own
short transaction (``engine.begin()``), never in the app's ORM session: the
app's unit of work is left alone, and a grant is written all at once or not
at all.
"""

from __future__ import annotations

import functools
import json
import typing as t
from collections.abc import Callable
from collections.abc import Iterable

import sqlalchemy as sa

from . import hashing
from .errors import ClientNotFoundError
from .key_encryption import KeyCipher
from .key_encryption import open_stored
from .locking import in_lock_order
from .models import AUTH_METHODS
from .models import GRANT_TYPES
from .models import TOKEN_FORMATS
from .models import Client
from .models import Tables

#: A callable returning the current Unix time; injectable for tests.
Clock = Callable[[], float]


class Store:
    """Client and token persistence on one database.

    :param tables: our tables, see :func:`~flask_ropc.models.tables_for`.
    :param get_engine: returns the engine to use; called per operation because
        Flask-SQLAlchemy's ``db.engine`` is looked up per app context.
    :param clock: returns the current Unix time.
    """

    def __init__(
        self, tables: Tables, get_engine: Callable[[], sa.Engine], clock: Clock
    ) -> None:
        self.tables = tables
        self._get_engine = get_engine
        self._clock = clock
        self._reader: tuple[sa.Engine, sa.Engine] | None = None
        #: Encrypts the private signing keys we store, if configured.
        self.cipher: KeyCipher | None = None

    @property
    def engine(self) -> sa.Engine:
        """The engine in use now."""
        return self._get_engine()

    def autocommit(self) -> t.ContextManager[sa.Connection]:
        """A connection for reads and single-statement writes (committed).

        On PostgreSQL it is in autocommit mode. Our reads are single
        statements, atomic on their own (inside a transaction the default
        READ COMMITTED would give each statement its own snapshot anyway),
        and so are the throttle's counter updates; without a transaction
        each costs two round trips instead of four (no ``BEGIN``, no
        ``COMMIT`` or ``ROLLBACK``). Switching psycopg to autocommit is
        client-side, and the pool restores the level on return.

        Elsewhere it is a plain ``engine.begin()``: SQLite's driver starts a
        transaction only before a write anyway, while switching its
        isolation level costs a ``PRAGMA`` on every return to the pool.
        """
        engine = self.engine
        if engine.dialect.name != "postgresql":
            return engine.begin()
        if self._reader is None or self._reader[0] is not engine:
            self._reader = (
                engine,
                engine.execution_options(isolation_level="AUTOCOMMIT"),
            )
        return self._reader[1].connect()

    def now(self) -> int:
        """The current time as whole Unix seconds."""
        return int(self._clock())

    def create_all(self) -> None:
        """Create any of our tables that do not exist yet; keeps existing rows."""
        metadata = self.tables.clients.metadata
        metadata.create_all(self.engine, tables=self.tables.all())

    # -- clients ------------------------------------------------------------

    def create_client(
        self,
        name: str,
        *,
        scopes: Iterable[str] = (),
        grant_types: Iterable[str] = ("password",),
        auth_method: str = "client_secret_basic",
        access_token_lifetime: int | None = None,
        refresh_token_sliding_lifetime: int | None = None,
        refresh_token_absolute_lifetime: int | None = None,
        access_token_format: str | None = None,
        audience: str | None = None,
        is_resource_server: bool = False,
        trusted_backend: bool = False,
        secret: str | None = None,
        client_id: str | None = None,
    ) -> tuple[Client, str | None]:
        """Register a client and return it with its secret.

        The secret is generated unless ``secret`` imports an existing one; it
        is returned here once and only its digest is stored. Public clients
        (``auth_method="none"``) get no secret.

        :raises ValueError: for an empty name, unknown grant type or method, a
            secret given to a public client, or an imported secret shorter
            than :data:`~flask_ropc.hashing.MIN_IMPORTED_SECRET_LENGTH`.
        """
        name = _check_name(name)
        scope_text = _scope_text(scopes)
        grant_text = _grant_text(grant_types)
        if auth_method not in AUTH_METHODS:
            raise ValueError(f"unknown token endpoint auth method {auth_method!r}")
        _check_lifetime(access_token_lifetime)
        _check_lifetime(refresh_token_sliding_lifetime)
        _check_lifetime(refresh_token_absolute_lifetime)
        _check_format(access_token_format)
        audience = _check_audience(audience)
        if auth_method == "none":
            if secret is not None:
                raise ValueError("a public client has no secret to import")
            if trusted_backend:
                raise ValueError(
                    "only a confidential client can be a trusted backend: anyone "
                    "can send a public client's id"
                )
            plain = None
        elif secret is not None:
            plain = check_imported_secret(secret)
        else:
            plain = hashing.generate_secret()
        if client_id is None:
            client_id = hashing.generate_client_id()
        else:
            client_id = check_imported_client_id(client_id)
            if self.get_client(client_id) is not None:
                raise ValueError(f"a client with id {client_id!r} already exists")
        with self.engine.begin() as conn:
            conn.execute(
                self.tables.clients.insert().values(
                    client_id=client_id,
                    name=name,
                    secret_digest=hashing.digest(plain) if plain else None,
                    token_endpoint_auth_method=auth_method,
                    scopes=scope_text,
                    grant_types=grant_text,
                    access_token_lifetime=access_token_lifetime,
                    refresh_token_sliding_lifetime=refresh_token_sliding_lifetime,
                    refresh_token_absolute_lifetime=refresh_token_absolute_lifetime,
                    access_token_format=access_token_format,
                    audience=audience,
                    is_resource_server=is_resource_server,
                    trusted_backend=trusted_backend,
                    password_grant_count=0,
                    enabled=True,
                    created_at=self.now(),
                )
            )
        return self.require_client(client_id), plain

    def get_client(self, client_id: str) -> Client | None:
        """Return the client with ``client_id``, or ``None``.

        An id that no client can have (over 64 characters, or not printable
        ASCII, e.g. with a NUL byte that PostgreSQL refuses in text) is not
        looked up at all.
        """
        if not _plausible_id(client_id):
            return None
        with self.autocommit() as conn:
            row = conn.execute(self._lookups["client"], {"cid": client_id}).first()
        return Client.from_row(row) if row is not None else None

    def require_client(self, client_id: str) -> Client:
        """Like :meth:`get_client` but raise for an unknown id.

        :raises ClientNotFoundError: no such client.
        """
        client = self.get_client(client_id)
        if client is None:
            raise ClientNotFoundError(client_id)
        return client

    def all_scopes(self) -> list[str]:
        """Every scope some client may request, sorted (for discovery)."""
        clients = self.tables.clients
        with self.autocommit() as conn:
            rows = conn.execute(sa.select(clients.c.scopes).distinct()).scalars()
            return sorted({scope for text in rows for scope in text.split()})

    def list_clients(self) -> list[Client]:
        """All clients, oldest first."""
        clients = self.tables.clients
        with self.autocommit() as conn:
            rows = conn.execute(sa.select(clients).order_by(clients.c.id)).all()
        return [Client.from_row(row) for row in rows]

    def update_client(
        self,
        client_id: str,
        *,
        name: str | None = None,
        scopes: Iterable[str] | None = None,
        grant_types: Iterable[str] | None = None,
        access_token_lifetime: int | None = None,
        reset_access_token_lifetime: bool = False,
        refresh_token_sliding_lifetime: int | None = None,
        refresh_token_absolute_lifetime: int | None = None,
        reset_refresh_token_lifetimes: bool = False,
        access_token_format: str | None = None,
        reset_access_token_format: bool = False,
        audience: str | None = None,
        reset_audience: bool = False,
        is_resource_server: bool | None = None,
        trusted_backend: bool | None = None,
        sunset_at: int | None = None,
        clear_sunset: bool = False,
        enabled: bool | None = None,
    ) -> Client:
        """Change the given settings of a client; ``None`` leaves one as is.

        :param reset_access_token_lifetime: go back to the app's default
            lifetime; ``reset_access_token_format`` and ``reset_audience``
            likewise.
        :raises ClientNotFoundError: no such client.
        :raises ValueError: for an invalid value; nothing is changed then.
        """
        values: dict[str, t.Any] = {}
        if name is not None:
            values["name"] = _check_name(name)
        if scopes is not None:
            values["scopes"] = _scope_text(scopes)
        if grant_types is not None:
            values["grant_types"] = _grant_text(grant_types)
        if reset_access_token_lifetime:
            values["access_token_lifetime"] = None
        elif access_token_lifetime is not None:
            _check_lifetime(access_token_lifetime)
            values["access_token_lifetime"] = access_token_lifetime
        if reset_refresh_token_lifetimes:
            values["refresh_token_sliding_lifetime"] = None
            values["refresh_token_absolute_lifetime"] = None
        for column, lifetime in (
            ("refresh_token_sliding_lifetime", refresh_token_sliding_lifetime),
            ("refresh_token_absolute_lifetime", refresh_token_absolute_lifetime),
        ):
            if lifetime is not None and not reset_refresh_token_lifetimes:
                _check_lifetime(lifetime)
                values[column] = lifetime
        if reset_access_token_format:
            values["access_token_format"] = None
        elif access_token_format is not None:
            _check_format(access_token_format)
            values["access_token_format"] = access_token_format
        if reset_audience:
            values["audience"] = None
        elif audience is not None:
            values["audience"] = _check_audience(audience)
        if is_resource_server is not None:
            values["is_resource_server"] = is_resource_server
        if trusted_backend:
            if self.require_client(client_id).is_public:
                raise ValueError("only a confidential client can be a trusted backend")
            values["trusted_backend"] = True
        elif trusted_backend is False:
            values["trusted_backend"] = False
        if clear_sunset:
            values["sunset_at"] = None
            values["deprecated_at"] = None
        elif sunset_at is not None:
            values["sunset_at"] = sunset_at
            values["deprecated_at"] = self.now()
        if enabled is not None:
            values["enabled"] = enabled
        self._update(client_id, values)
        return self.require_client(client_id)

    def rotate_secret(self, client_id: str) -> tuple[Client, str]:
        """Give a confidential client a new secret; the old one stops at once.

        :raises ClientNotFoundError: no such client.
        :raises ValueError: the client is public and has no secret.
        """
        client = self.require_client(client_id)
        if client.is_public:
            raise ValueError("a public client has no secret to rotate")
        plain = hashing.generate_secret()
        self._update(client_id, {"secret_digest": hashing.digest(plain)})
        return self.require_client(client_id), plain

    def delete_client(self, client_id: str) -> None:
        """Delete a client and every token issued to it.

        :raises ClientNotFoundError: no such client.
        """
        tables = self.tables
        with self.engine.begin() as conn:
            # Explicit, because SQLite enforces ON DELETE CASCADE only with
            # PRAGMA foreign_keys=ON, which an app's own engine may not set.
            for table in (tables.access_tokens, tables.refresh_tokens):
                mine = (table.c.client_id == client_id,)
                conn.execute(table.delete().where(*_in_id_order(conn, table, mine)))
            result = conn.execute(
                tables.clients.delete().where(tables.clients.c.client_id == client_id)
            )
            if result.rowcount != 1:
                raise ClientNotFoundError(client_id)

    def _update(self, client_id: str, values: dict[str, t.Any]) -> None:
        clients = self.tables.clients
        with self.engine.begin() as conn:
            if values:
                result = conn.execute(
                    clients.update()
                    .where(clients.c.client_id == client_id)
                    .values(**values)
                )
                found = result.rowcount == 1
            else:
                found = (
                    conn.execute(
                        sa.select(clients.c.id).where(clients.c.client_id == client_id)
                    ).first()
                    is not None
                )
        if not found:
            raise ClientNotFoundError(client_id)

    # -- access tokens ------------------------------------------------------

    def save_grant(
        self,
        *,
        access: t.Mapping[str, t.Any],
        refresh: t.Mapping[str, t.Any] | None = None,
        claim_refresh_id: int | None = None,
        repeat_since: int | None = None,
        also: Callable[[sa.Connection], None] | None = None,
    ) -> bool:
        """Store one grant's tokens in one transaction, and mark the client used.

        ``access`` and ``refresh`` are column values of the two token tables
        (``claims`` as a mapping). With ``claim_refresh_id``, the refresh
        token being exchanged is first claimed with a conditional
        ``UPDATE ... WHERE used_at IS NULL``: the statement that takes the
        row lock on PostgreSQL (and the write lock on SQLite) comes first, so
        of two concurrent exchanges exactly one claims it and the other sees
        it used. Returns ``False``, writing nothing, when the claim fails.

        With ``repeat_since`` as well, the token was already exchanged and
        is exchanged again (``ROPC_REFRESH_TOKEN_REUSE_INTERVAL``); see
        :meth:`_reclaim`.

        ``also`` is called with the connection last, inside the transaction.
        """
        statements = self._grant_statements
        now = access["issued_at"]
        with self.engine.begin() as conn:
            # Returning False inside the block changes nothing.
            if claim_refresh_id is not None and repeat_since is None:
                claimed = conn.execute(
                    statements["claim"], {"claim_id": claim_refresh_id, "now": now}
                )
                if claimed.rowcount != 1:
                    return False
            elif claim_refresh_id is not None:
                assert refresh is not None and repeat_since is not None
                family_id = refresh["family_id"]
                if not self._reclaim(
                    conn, claim_refresh_id, family_id, repeat_since, now
                ):
                    return False
            conn.execute(statements["access"], _json_claims(access))
            if refresh is not None:
                conn.execute(statements["refresh"], _json_claims(refresh))
            used = (
                statements["used_password"]
                if access["grant_type"] == "password"
                else statements["used"]
            )
            conn.execute(used, {"cid": access["client_id"], "now": now})
            if also is not None:
                also(conn)
        return True

    @functools.cached_property
    def _grant_statements(self) -> dict[str, t.Any]:
        # Built once: constructing SQLAlchemy statements costs more than
        # running them, and the token endpoint runs these on every grant.
        tables = self.tables
        refresh_tokens, clients = tables.refresh_tokens, tables.clients
        now: t.Any = sa.bindparam("now")
        used = clients.update().where(clients.c.client_id == sa.bindparam("cid"))
        return {
            "claim": refresh_tokens.update()
            .where(refresh_tokens.c.id == sa.bindparam("claim_id"))
            .where(refresh_tokens.c.used_at.is_(None))
            .where(refresh_tokens.c.revoked_at.is_(None))
            .values(used_at=now),
            "access": tables.access_tokens.insert(),
            "refresh": refresh_tokens.insert(),
            "used": used.values(last_used_at=now),
            "used_password": used.values(
                last_used_at=now,
                password_grant_count=clients.c.password_grant_count + 1,
            ),
        }

    def _reclaim(
        self, conn: sa.Connection, token_id: int, family_id: str, since: int, now: int
    ) -> bool:
        """Claim an already exchanged refresh token again; revoke the rest of
        its family.

        Every token of the family is locked first, in id order (the order
        revocation locks them in too: neither waits for the other in a
        circle), and the locked rows, their latest versions, are checked:
        the token must be unrevoked and exchanged at or after ``since``, and
        no later token of the family may have been used (else the earlier
        response did reach its client, and this is a replay). Then every
        other token of the family is revoked, so that it keeps one live
        branch: the one about to be written.
        """
        tokens = self.tables.refresh_tokens
        if conn.dialect.name == "sqlite":
            # The driver begins a transaction only at the first write: write
            # first (a no-op), so that the check and the writes after it are
            # one transaction under SQLite's write lock.
            conn.execute(
                tokens.update()
                .where(tokens.c.id == token_id)
                .values(used_at=tokens.c.used_at)
            )
        rows = conn.execute(
            sa.select(tokens.c.id, tokens.c.used_at, tokens.c.revoked_at)
            .where(tokens.c.family_id == family_id)
            .order_by(tokens.c.id)
            .with_for_update()
        ).all()
        token = next((row for row in rows if row.id == token_id), None)
        if (
            token is None
            or token.revoked_at is not None
            or token.used_at is None
            or token.used_at < since
            or any(row.used_at is not None for row in rows if row.id > token_id)
        ):
            return False
        self._revoke_in(
            conn,
            tokens.c.family_id == family_id,
            self.tables.access_tokens.c.family_id == family_id,
            now,
            keep=token_id,
        )
        return True

    def find_access_token(self, token_digest: str) -> t.Any | None:
        """Return the stored row for a token digest, or ``None``.

        The row also carries the client's ``enabled`` flag as
        ``client_enabled`` and the signing key's state as ``key_status``
        (``None`` for reference tokens and configured keys), so that
        disabling a client or retiring a key stops its tokens at once.
        """
        with self.autocommit() as conn:
            query = self._lookups["access_token"]
            return conn.execute(query, {"digest": token_digest}).first()

    def revoke_access_token(self, token_digest: str) -> None:
        """Mark an access token revoked (idempotent)."""
        tokens = self.tables.access_tokens
        with self.engine.begin() as conn:
            conn.execute(
                tokens.update()
                .where(tokens.c.token_digest == token_digest)
                .where(tokens.c.revoked_at.is_(None))
                .values(revoked_at=self.now())
            )

    # -- refresh tokens -------------------------------------------------------

    def find_refresh_token(self, token_digest: str) -> t.Any | None:
        """The stored refresh token row for a digest (with ``client_enabled``)."""
        with self.autocommit() as conn:
            query = self._lookups["refresh_token"]
            return conn.execute(query, {"digest": token_digest}).first()

    @functools.cached_property
    def _lookups(self) -> dict[str, t.Any]:
        # The token endpoint's and require_token's reads, built once (see
        # _grant_statements).
        tables = self.tables
        clients, keys = tables.clients, tables.signing_keys
        access, refresh = tables.access_tokens, tables.refresh_tokens
        digest: t.Any = sa.bindparam("digest")
        return {
            "client": sa.select(clients).where(
                clients.c.client_id == sa.bindparam("cid")
            ),
            "access_token": sa.select(
                access,
                clients.c.enabled.label("client_enabled"),
                clients.c.audience.label("client_audience"),
                keys.c.status.label("key_status"),
            )
            .join(clients, clients.c.client_id == access.c.client_id)
            .outerjoin(keys, keys.c.kid == access.c.kid)
            .where(access.c.token_digest == digest),
            "refresh_token": sa.select(
                refresh, clients.c.enabled.label("client_enabled")
            )
            .join(clients, clients.c.client_id == refresh.c.client_id)
            .where(refresh.c.token_digest == digest),
        }

    def family_has_unrevoked_tokens(self, family_id: str) -> bool:
        """Whether any refresh token of the family is not revoked yet."""
        tokens = self.tables.refresh_tokens
        query = (
            sa.select(tokens.c.id)
            .where(tokens.c.family_id == family_id, tokens.c.revoked_at.is_(None))
            .limit(1)
        )
        with self.autocommit() as conn:
            return conn.execute(query).first() is not None

    def revoke_family(self, family_id: str) -> int:
        """Revoke every refresh and access token of a family; return the count."""
        return self._revoke(
            self.tables.refresh_tokens.c.family_id == family_id,
            self.tables.access_tokens.c.family_id == family_id,
        )

    def revoke_subject(self, subject: str) -> int:
        """Sign a user out everywhere: revoke all their tokens; return the count."""
        return self._revoke(
            self.tables.refresh_tokens.c.subject == subject,
            self.tables.access_tokens.c.subject == subject,
        )

    def revoke_client_tokens(self, client_id: str) -> int:
        """Revoke every token issued to a client; return the count."""
        return self._revoke(
            self.tables.refresh_tokens.c.client_id == client_id,
            self.tables.access_tokens.c.client_id == client_id,
        )

    def _revoke(self, refresh_where: t.Any, access_where: t.Any) -> int:
        with self.engine.begin() as conn:
            return self._revoke_in(conn, refresh_where, access_where, self.now())

    def _revoke_in(
        self,
        conn: sa.Connection,
        refresh_where: t.Any,
        access_where: t.Any,
        now: int,
        *,
        keep: int | None = None,
    ) -> int:
        """Revoke the matching live tokens inside ``conn``'s transaction.

        ``keep`` names a refresh token to leave alone (see :meth:`_reclaim`).
        """
        refresh_tokens = self.tables.refresh_tokens
        spare = () if keep is None else (refresh_tokens.c.id != keep,)
        count, where = 0, refresh_where
        # Repeated until it finds nothing: on PostgreSQL an UPDATE that
        # waits for a refresh in progress (which holds its token's row)
        # sees that refresh's claim once it commits, but not the successor
        # tokens it inserted, which are newer than the statement. The next
        # UPDATE sees them. It looks only in the families just revoked, so
        # that a stream of new logins cannot keep it going. A refresh that
        # starts later waits for our lock on its token, then finds it
        # revoked.
        while changed := conn.execute(
            self._revocation(conn, refresh_tokens, (where, *spare), now)
        ).rowcount:
            count += changed
            ours = sa.select(refresh_tokens.c.family_id).where(
                refresh_where, refresh_tokens.c.revoked_at == now
            )
            where = refresh_tokens.c.family_id.in_(ours)
        # After the loop: every refresh that could add an access token to
        # the family has committed or will find its token revoked.
        access = self._revocation(conn, self.tables.access_tokens, (access_where,), now)
        return count + conn.execute(access).rowcount

    @staticmethod
    def _revocation(
        conn: sa.Connection, table: sa.Table, where: tuple[t.Any, ...], now: int
    ) -> t.Any:
        """``UPDATE table SET revoked_at = now`` for the live rows ``where``."""
        live = _in_id_order(conn, table, (*where, table.c.revoked_at.is_(None)))
        return table.update().where(*live).values(revoked_at=now)

    def cleanup(self, *, revoked_before: int, batch_size: int = 1000) -> dict[str, int]:
        """Delete expired tokens, and revoked ones revoked before a time.

        Works in batches of ``batch_size`` rows, each its own short
        transaction, so it can run while the server is serving. Returns the
        number of rows deleted per table.
        """
        now = self.now()
        deleted = {}
        for table in (self.tables.access_tokens, self.tables.refresh_tokens):
            dead = sa.or_(
                table.c.expires_at <= now, table.c.revoked_at < revoked_before
            )
            total = 0
            while True:
                ids = sa.select(table.c.id).where(dead).limit(batch_size)
                with self.engine.begin() as conn:
                    batch = [row.id for row in conn.execute(ids)]
                    if batch:
                        chosen = (table.c.id.in_(batch),)
                        conn.execute(
                            table.delete().where(*_in_id_order(conn, table, chosen))
                        )
                total += len(batch)
                if len(batch) < batch_size:
                    break
            deleted[table.name] = total
        return deleted

    # -- signing keys ---------------------------------------------------------

    def list_signing_keys(self) -> list[t.Any]:
        """Every stored signing key row, oldest first."""
        keys = self.tables.signing_keys
        with self.autocommit() as conn:
            return list(conn.execute(sa.select(keys).order_by(keys.c.id)).all())

    def find_signing_key(self, kid: str) -> t.Any | None:
        """The stored signing key row with ``kid``, or ``None``."""
        keys = self.tables.signing_keys
        with self.autocommit() as conn:
            return conn.execute(sa.select(keys).where(keys.c.kid == kid)).first()

    def add_signing_key(self, key: t.Any, alg: str, status: str) -> t.Any:
        """Store a new private key (a joserfc key) in ``status``; return its row."""
        keys = self.tables.signing_keys
        kid = key.kid or key.thumbprint()
        with self.engine.begin() as conn:
            conn.execute(
                keys.insert().values(
                    kid=kid,
                    alg=alg,
                    private_jwk=self._seal(
                        json.dumps(key.as_dict(private=True, kid=kid))
                    ),
                    status=status,
                    created_at=self.now(),
                )
            )
            return conn.execute(sa.select(keys).where(keys.c.kid == kid)).one()

    def signing_key_jwk(self, row: t.Any) -> str:
        """The private JWK JSON of a stored key row, decrypted if need be.

        :raises ConfigurationError: the row is encrypted and no configured
            secret decrypts it.
        """
        return open_stored(row.private_jwk, self.cipher)

    def encrypt_signing_keys(self) -> int:
        """(Re-)encrypt every stored key with the first configured secret.

        Unencrypted keys get encrypted, and keys encrypted under an older
        secret are re-encrypted, all in one transaction. Returns how many.

        :raises ValueError: ``ROPC_KEY_ENCRYPTION_KEYS`` is not set.
        :raises ConfigurationError: a key cannot be decrypted; nothing changed.
        """
        if self.cipher is None:
            raise ValueError("set ROPC_KEY_ENCRYPTION_KEYS first")
        keys = self.tables.signing_keys
        with self.engine.begin() as conn:
            rows = conn.execute(sa.select(keys.c.id, keys.c.private_jwk)).all()
            for row in rows:
                conn.execute(
                    keys.update()
                    .where(keys.c.id == row.id)
                    .values(private_jwk=self._seal(self.signing_key_jwk(row)))
                )
        return len(rows)

    def _seal(self, jwk_json: str) -> str:
        return self.cipher.seal(jwk_json) if self.cipher is not None else jwk_json

    def longest_access_token_lifetime(self, default: int) -> int:
        """The longest lifetime any client's access tokens can have."""
        clients = self.tables.clients
        with self.autocommit() as conn:
            longest = conn.execute(
                sa.select(sa.func.max(clients.c.access_token_lifetime))
            ).scalar()
        return max(default, longest or 0)


def _in_id_order(
    conn: sa.Connection, table: sa.Table, where: tuple[t.Any, ...]
) -> tuple[t.Any, ...]:
    """``where`` for an UPDATE or DELETE of token rows that first locks them in
    id order, the order every writer of several token rows uses (a repeat
    exchange too: see :meth:`Store._reclaim`). See locking.py.
    """
    return in_lock_order(conn.dialect.name, table.c.id, where)


def _json_claims(values: t.Mapping[str, t.Any]) -> dict[str, t.Any]:
    row = dict(values)
    row["claims"] = json.dumps(row.get("claims") or {}, separators=(",", ":"))
    return row


def _plausible_id(client_id: str) -> bool:
    return 0 < len(client_id) <= 64 and client_id.isascii() and client_id.isprintable()


def check_imported_client_id(client_id: str) -> str:
    """Return a client id kept from another server, if it is usable here.

    :raises ValueError: empty, over 64 characters, not printable ASCII,
        containing white space or ``:`` (which Basic credentials would
        split), or starting with ``-`` (which a shell reads as an option).
    """
    if not _plausible_id(client_id) or client_id.startswith("-"):
        raise ValueError(
            "an imported client id must be 1 to 64 printable ASCII characters "
            "not starting with '-'"
        )
    if any(char.isspace() or char == ":" for char in client_id):
        raise ValueError("an imported client id may not contain spaces or ':'")
    return client_id


def check_imported_secret(secret: str) -> str:
    """Return an imported client secret if it is strong enough to store.

    :raises ValueError: it is shorter than
        :data:`~flask_ropc.hashing.MIN_IMPORTED_SECRET_LENGTH` characters or has
        surrounding white space.
    """
    if secret != secret.strip():
        raise ValueError("the imported secret has leading or trailing white space")
    if len(secret) < hashing.MIN_IMPORTED_SECRET_LENGTH:
        raise ValueError(
            f"the imported secret is shorter than {hashing.MIN_IMPORTED_SECRET_LENGTH}"
            " characters; a fast hash only protects long random secrets, so "
            "create the client without --secret-stdin and rotate the secret "
            "on the client side instead"
        )
    return secret


def _check_name(name: str) -> str:
    name = name.strip()
    if not name:
        raise ValueError("a client needs a non-empty name")
    if len(name) > 200:
        raise ValueError("a client name may be at most 200 characters")
    return name


def _scope_text(scopes: Iterable[str]) -> str:
    from .scopes import check_scope_tokens

    return " ".join(check_scope_tokens(scopes))


def _grant_text(grant_types: Iterable[str]) -> str:
    chosen = list(dict.fromkeys(grant_types))
    unknown = [g for g in chosen if g not in GRANT_TYPES]
    if unknown:
        raise ValueError(
            f"unknown grant type {unknown[0]!r}; choose from {', '.join(GRANT_TYPES)}"
        )
    return " ".join(chosen)


def _check_format(token_format: str | None) -> None:
    if token_format is not None and token_format not in TOKEN_FORMATS:
        raise ValueError(
            f"unknown access token format {token_format!r}; choose from "
            + ", ".join(TOKEN_FORMATS)
        )


def _check_audience(audience: str | None) -> str | None:
    if audience is None:
        return None
    audience = audience.strip()
    if not audience or len(audience) > 255 or not audience.isprintable():
        raise ValueError("an audience must be 1 to 255 printable characters")
    return audience


def _check_lifetime(lifetime: int | None) -> None:
    if lifetime is not None and (isinstance(lifetime, bool) or lifetime <= 0):
        raise ValueError("the access token lifetime must be a positive number")
