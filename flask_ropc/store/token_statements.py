"""The statements of the token endpoint's and ``require_token``'s hot path,
built once per app: constructing SQLAlchemy statements costs more than
running them.

On PostgreSQL a grant's rows go in one statement (the inserts as
data-modifying ``WITH`` parts of the client's ``UPDATE``): one round trip
instead of three. They run on the driver's cursor (:mod:`.driver`), through
the ``run`` they are given. Imports :mod:`.driver` and leaves.
"""

from __future__ import annotations

import functools
import json
import typing as t

import sqlalchemy as sa

from ..models import Tables
from .driver import Rows

#: Runs a statement on a connection (``Database.run``).
Run = t.Callable[[sa.Connection, t.Any, t.Mapping[str, t.Any]], Rows]


class TokenStatements:
    """The statements of one app's tables."""

    def __init__(self, tables: Tables, run: Run) -> None:
        self._tables = tables
        self._run = run

    def write_grant(
        self,
        conn: sa.Connection,
        access: t.Mapping[str, t.Any],
        refresh: t.Mapping[str, t.Any] | None,
        now: int,
    ) -> None:
        """Insert the token rows and mark the client used.

        On PostgreSQL in one statement (the inserts as data-modifying
        ``WITH`` parts of the client's ``UPDATE``): one round trip, not three.
        """
        password = access["grant_type"] == "password"
        used_params = {"cid": access["client_id"], "now": now}
        params = {f"a_{k}": v for k, v in json_claims(access).items()}
        refresh_params = {}
        if refresh is not None:
            refresh_params = {f"r_{k}": v for k, v in json_claims(refresh).items()}
        columns, refresh_columns = tuple(access), tuple(refresh or ())
        used = self.grant["used_password" if password else "used"]
        if conn.dialect.name == "postgresql":
            statement = self._combined_grant(columns, refresh_columns, password)
            self._run(conn, statement, {**params, **refresh_params, **used_params})
            return
        self._run(conn, self._insert("access", columns), params)
        if refresh is not None:
            self._run(conn, self._insert("refresh", refresh_columns), refresh_params)
        self._run(conn, used, used_params)

    @functools.cache  # noqa: B019 (one per app, few shapes)
    def _insert(self, kind: str, columns: tuple[str, ...]) -> t.Any:
        """The ``INSERT`` of ``columns`` into the ``access`` or ``refresh``
        table, parameters prefixed ``a_`` or ``r_`` (a bound parameter may
        not take a column's own name)."""
        table = getattr(self._tables, f"{kind}_tokens")
        prefix = kind[0]
        return table.insert().values(
            {name: sa.bindparam(f"{prefix}_{name}") for name in columns}
        )

    @functools.cache  # noqa: B019 (one per app, few shapes)
    def _combined_grant(
        self, columns: tuple[str, ...], refresh_columns: tuple[str, ...], password: bool
    ) -> t.Any:
        used = self.grant["used_password" if password else "used"]
        statement = used.add_cte(self._insert("access", columns).cte("new_access"))
        if refresh_columns:
            refresh = self._insert("refresh", refresh_columns).cte("new_refresh")
            statement = statement.add_cte(refresh)
        return statement

    @functools.cached_property
    def lookups(self) -> dict[str, t.Any]:
        # The token endpoint's and require_token's reads.
        tables = self._tables
        clients, keys = tables.clients, tables.signing_keys
        access, refresh = tables.access_tokens, tables.refresh_tokens
        digest: t.Any = sa.bindparam("digest")
        return {
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

    @functools.cached_property
    def grant(self) -> dict[str, t.Any]:
        """Claiming a refresh token, the two inserts and marking the client used."""
        tables = self._tables
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


def json_claims(values: t.Mapping[str, t.Any]) -> dict[str, t.Any]:
    row = dict(values)
    row["claims"] = json.dumps(row.get("claims") or {}, separators=(",", ":"))
    return row
