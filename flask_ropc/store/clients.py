"""The ``ropc_clients`` rows: registering, reading, changing and deleting clients.

Imports :mod:`.database`, :mod:`.locking`, :mod:`.client_values`,
:mod:`.client_settings` and leaves.
Every method runs in its own short transaction, never in the app's session.
"""

from __future__ import annotations

import collections
import functools
import typing as t
from collections.abc import Iterable

import sqlalchemy as sa

from .. import hashing
from ..errors import ClientNotFoundError
from ..errors import SecretChangedError
from ..models import Client
from ..models import Tables
from .client_settings import ClientChanges as ClientChanges
from .client_settings import NewClient as NewClient
from .client_values import DECOY_ROW
from .client_values import auth_columns
from .client_values import check_audience
from .client_values import check_auth_methods
from .client_values import check_digest
from .client_values import check_format
from .client_values import check_imported_client_id
from .client_values import check_lifetime
from .client_values import check_name
from .client_values import dpop_column
from .client_values import dpop_nonce_column
from .client_values import grant_text
from .client_values import plausible_client_id
from .client_values import scope_text
from .client_values import stored
from .database import Database
from .locking import in_id_order


class ClientStore:
    """Client persistence on one database.

    :param database: the engine and clock.
    :param tables: our tables.
    """

    def __init__(self, database: Database, tables: Tables) -> None:
        self._db = database
        self._tables = tables
        columns = tables.clients.c.keys()
        # get() reads a known row and the decoy alike into this (cheap).
        row_type: t.Any = collections.namedtuple("_ClientRow", columns)  # type: ignore[misc]
        self._make_row: t.Callable[[t.Iterable[t.Any]], t.Any] = row_type._make
        self._decoy = tuple(DECOY_ROW.get(name) for name in columns)

    def create(
        self,
        name: str,
        *,
        scopes: Iterable[str] = (),
        grant_types: Iterable[str] = ("password",),
        auth_method: str | None = None,
        auth_methods: Iterable[str] | None = None,
        access_token_lifetime: int | None = None,
        refresh_token_sliding_lifetime: int | None = None,
        refresh_token_absolute_lifetime: int | None = None,
        access_token_format: str | None = None,
        audience: str | None = None,
        is_resource_server: bool = False,
        trusted_backend: bool = False,
        dpop: str | None = None,
        dpop_nonce: str | None = None,
        secret: str | None = None,
        client_id: str | None = None,
        secret_digest: str | None = None,
    ) -> tuple[Client, str | None]:
        """Register a client and return it with its secret.

        See :meth:`flask_ropc.admin.ClientAdmin.create`.
        """
        name = check_name(name)
        scope_column = scope_text(scopes)
        grant_column = grant_text(grant_types)
        methods = check_auth_methods(auth_methods, auth_method)
        for lifetime in (access_token_lifetime, refresh_token_sliding_lifetime):
            check_lifetime(lifetime)
        check_lifetime(refresh_token_absolute_lifetime)
        check_format(access_token_format)
        audience = check_audience(audience)
        plain, digest = stored(methods, secret, trusted_backend, secret_digest)
        if client_id is None:
            client_id = hashing.generate_client_id()
        else:
            client_id = check_imported_client_id(client_id)
            if self.get(client_id) is not None:
                raise ValueError(f"a client with id {client_id!r} already exists")
        with self._db.begin() as conn:
            conn.execute(
                self._tables.clients.insert().values(
                    client_id=client_id,
                    name=name,
                    secret_digest=digest,
                    **auth_columns(methods),
                    scopes=scope_column,
                    grant_types=grant_column,
                    access_token_lifetime=access_token_lifetime,
                    refresh_token_sliding_lifetime=refresh_token_sliding_lifetime,
                    refresh_token_absolute_lifetime=refresh_token_absolute_lifetime,
                    access_token_format=access_token_format,
                    audience=audience,
                    is_resource_server=is_resource_server,
                    trusted_backend=trusted_backend,
                    **dpop_column(dpop),
                    **dpop_nonce_column(dpop_nonce),
                    password_grant_count=0,
                    enabled=True,
                    created_at=self._db.now(),
                )
            )
        return self.require(client_id), plain

    @functools.cached_property
    def _by_id(self) -> t.Any:
        # Built once: the token endpoint runs it on every request.
        clients = self._tables.clients
        return sa.select(clients).where(clients.c.client_id == sa.bindparam("cid"))

    def get(self, client_id: str) -> Client | None:
        """Return the client with ``client_id``, or ``None``.

        An id that no client can have is not looked up at all (see
        :func:`~.client_values.plausible_client_id`). An unknown id builds a
        decoy client too, so that timing does not tell it from a known one.
        """
        if not plausible_client_id(client_id):
            return None
        with self._db.autocommit() as conn:
            row = self._db.run(conn, self._by_id, {"cid": client_id}).first()
        read: t.Any = self._decoy if row is None else row
        client = Client.from_row(self._make_row(read))
        return None if row is None else client

    def require(self, client_id: str) -> Client:
        """Like :meth:`get` but raise for an unknown id.

        :raises ClientNotFoundError: no such client.
        """
        client = self.get(client_id)
        if client is None:
            raise ClientNotFoundError(client_id)
        return client

    def all_scopes(self) -> list[str]:
        """Every scope some client may request, sorted (for discovery)."""
        clients = self._tables.clients
        with self._db.autocommit() as conn:
            rows = conn.execute(sa.select(clients.c.scopes).distinct()).scalars()
            return sorted({scope for text in rows for scope in text.split()})

    def list(self) -> list[Client]:
        """All clients, oldest first."""
        clients = self._tables.clients
        with self._db.autocommit() as conn:
            rows = conn.execute(sa.select(clients).order_by(clients.c.id)).all()
        return [Client.from_row(row) for row in rows]

    def update(
        self,
        client_id: str,
        *,
        name: str | None = None,
        scopes: Iterable[str] | None = None,
        grant_types: Iterable[str] | None = None,
        auth_methods: Iterable[str] | None = None,
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
        dpop: str | None = None,
        dpop_nonce: str | None = None,
        sunset_at: int | None = None,
        clear_sunset: bool = False,
        enabled: bool | None = None,
        secret_digest: str | None = None,
    ) -> Client:
        """Change the given settings of a client; ``None`` leaves one as is.

        See :meth:`flask_ropc.admin.ClientAdmin.update`.
        """
        changes: dict[str, t.Any] = {}
        if name is not None:
            changes["name"] = check_name(name)
        if scopes is not None:
            changes["scopes"] = scope_text(scopes)
        if grant_types is not None:
            changes["grant_types"] = grant_text(grant_types)
        if auth_methods is not None:
            methods = check_auth_methods(auth_methods)
            if (methods == ("none",)) != self.require(client_id).is_public:
                raise ValueError("'none' is for public clients, and only for them")
            changes.update(auth_columns(methods))
        if reset_access_token_lifetime:
            changes["access_token_lifetime"] = None
        elif access_token_lifetime is not None:
            check_lifetime(access_token_lifetime)
            changes["access_token_lifetime"] = access_token_lifetime
        if reset_refresh_token_lifetimes:
            changes["refresh_token_sliding_lifetime"] = None
            changes["refresh_token_absolute_lifetime"] = None
        for column, lifetime in (
            ("refresh_token_sliding_lifetime", refresh_token_sliding_lifetime),
            ("refresh_token_absolute_lifetime", refresh_token_absolute_lifetime),
        ):
            if lifetime is not None and not reset_refresh_token_lifetimes:
                check_lifetime(lifetime)
                changes[column] = lifetime
        if reset_access_token_format:
            changes["access_token_format"] = None
        elif access_token_format is not None:
            check_format(access_token_format)
            changes["access_token_format"] = access_token_format
        if reset_audience:
            changes["audience"] = None
        elif audience is not None:
            changes["audience"] = check_audience(audience)
        if is_resource_server is not None:
            changes["is_resource_server"] = is_resource_server
        if trusted_backend:
            if self.require(client_id).is_public:
                raise ValueError("only a confidential client can be a trusted backend")
            changes["trusted_backend"] = True
        elif trusted_backend is False:
            changes["trusted_backend"] = False
        changes.update(dpop_column(dpop))
        changes.update(dpop_nonce_column(dpop_nonce))
        if clear_sunset:
            changes["sunset_at"] = None
            changes["deprecated_at"] = None
        elif sunset_at is not None:
            changes["sunset_at"] = sunset_at
            changes["deprecated_at"] = self._db.now()
        if enabled is not None:
            changes["enabled"] = enabled
        if secret_digest is not None:  # the importer's, checked as public
            changes["secret_digest"] = check_digest(secret_digest)
        self._update(client_id, changes)
        return self.require(client_id)

    def rotate_secret(self, client_id: str) -> tuple[Client, str]:
        """Give a confidential client a new secret; the old one stops at once.

        :raises ClientNotFoundError: no such client.
        :raises ValueError: the client is public and has no secret.
        :raises SecretChangedError: another rotation changed the secret first.
        """
        client = self.require(client_id)
        if client.is_public:
            raise ValueError("a public client has no secret to rotate")
        plain = hashing.generate_secret()
        # Compare-and-swap on the digest read: of two rotations at once, one
        # changes nothing and says so, rather than print a dead secret.
        unchanged = self._tables.clients.c.secret_digest == client.secret_digest
        try:
            self._update(client_id, {"secret_digest": hashing.digest(plain)}, unchanged)
        except ClientNotFoundError:
            self.require(client_id)  # raises again if it was deleted meanwhile
            raise SecretChangedError(client_id) from None
        return self.require(client_id), plain

    def replace_carried_digest(self, client_id: str, old: str, new: str) -> bool:
        """Swap a carried-over digest ``old`` for our digest ``new``.

        Compare-and-swap on ``old``: when the secret was rotated (or the
        client deleted) since ``old`` was read, nothing changes and the
        answer is ``False``; the newer secret wins.

        :raises ValueError: ``old`` is not a carried digest, or ``new`` is
            not one of ours (an upgrade never goes the other way).
        """
        if not hashing.is_carried(old) or hashing.is_carried(new):
            raise ValueError("only a carried digest is replaced, and by ours")
        unchanged = self._tables.clients.c.secret_digest == old
        changes = {"secret_digest": check_digest(new)}
        try:
            self._update(client_id, changes, unchanged)
        except ClientNotFoundError:
            return False
        return True

    def delete(self, client_id: str) -> None:
        """Delete a client and every token issued to it.

        :raises ClientNotFoundError: no such client.
        """
        tables = self._tables
        with self._db.begin() as conn:
            # Explicit, because SQLite enforces ON DELETE CASCADE only with
            # PRAGMA foreign_keys=ON, which an app's own engine may not set.
            for table in (tables.access_tokens, tables.refresh_tokens):
                mine = (table.c.client_id == client_id,)
                conn.execute(table.delete().where(*in_id_order(conn, table, mine)))
            result = conn.execute(
                tables.clients.delete().where(tables.clients.c.client_id == client_id)
            )
            if result.rowcount != 1:
                raise ClientNotFoundError(client_id)

    def _update(self, client_id: str, changes: dict[str, t.Any], *where: t.Any) -> None:
        clients = self._tables.clients
        with self._db.begin() as conn:
            if changes:
                result = conn.execute(
                    clients.update()
                    .where(clients.c.client_id == client_id, *where)
                    .values(**changes)
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

    def longest_access_token_lifetime(self, default: int) -> int:
        """The longest lifetime any client's access tokens can have."""
        clients = self._tables.clients
        with self._db.autocommit() as conn:
            longest = conn.execute(
                sa.select(sa.func.max(clients.c.access_token_lifetime))
            ).scalar()
        return max(default, longest or 0)
