"""The token rows: storing a grant, looking tokens up, revoking and cleaning up.

Imports :mod:`.database`, :mod:`.locking`, :mod:`.token_statements` and
leaves. Every method runs in its
own short transaction; a grant is written all at once or not at all.
"""

from __future__ import annotations

import typing as t
from collections.abc import Callable

import sqlalchemy as sa

from ..models import Tables
from .database import Database
from .locking import in_id_order
from .token_statements import TokenStatements


class TokenStore:
    """Access and refresh token persistence on one database.

    :param database: the engine and clock.
    :param tables: our tables.
    """

    def __init__(self, database: Database, tables: Tables) -> None:
        self._db = database
        self._tables = tables
        self._statements = TokenStatements(tables, database.run)

    def save(
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
        statements = self._statements.grant
        now = access["issued_at"]
        with self._db.begin() as conn:
            # Returning False inside the block changes nothing.
            if claim_refresh_id is not None and repeat_since is None:
                claim = {"claim_id": claim_refresh_id, "now": now}
                claimed = self._db.run(conn, statements["claim"], claim)
                if claimed.rowcount != 1:
                    return False
            elif claim_refresh_id is not None:
                assert refresh is not None and repeat_since is not None
                family_id = refresh["family_id"]
                if not self._reclaim(
                    conn, claim_refresh_id, family_id, repeat_since, now
                ):
                    return False
            self._statements.write_grant(conn, access, refresh, now)
            if also is not None:
                also(conn)
        return True

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
        tokens = self._tables.refresh_tokens
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
            self._tables.access_tokens.c.family_id == family_id,
            now,
            keep=token_id,
        )
        return True

    def find_access(self, token_digest: str) -> t.Any | None:
        """Return the stored row for a token digest, or ``None``.

        The row also carries the client's ``enabled`` flag as
        ``client_enabled`` and the signing key's state as ``key_status``
        (``None`` for reference tokens and configured keys), so that
        disabling a client or retiring a key stops its tokens at once.
        """
        with self._db.autocommit() as conn:
            query = self._statements.lookups["access_token"]
            return self._db.run(conn, query, {"digest": token_digest}).first()

    def revoke_access(self, token_digest: str) -> None:
        """Mark an access token revoked (idempotent)."""
        tokens = self._tables.access_tokens
        with self._db.begin() as conn:
            conn.execute(
                tokens.update()
                .where(tokens.c.token_digest == token_digest)
                .where(tokens.c.revoked_at.is_(None))
                .values(revoked_at=self._db.now())
            )

    def find_refresh(self, token_digest: str) -> t.Any | None:
        """The stored refresh token row for a digest (with ``client_enabled``)."""
        with self._db.autocommit() as conn:
            query = self._statements.lookups["refresh_token"]
            return self._db.run(conn, query, {"digest": token_digest}).first()

    def family_has_unrevoked_tokens(self, family_id: str) -> bool:
        """Whether any refresh token of the family is not revoked yet."""
        tokens = self._tables.refresh_tokens
        query = (
            sa.select(tokens.c.id)
            .where(tokens.c.family_id == family_id, tokens.c.revoked_at.is_(None))
            .limit(1)
        )
        with self._db.autocommit() as conn:
            return conn.execute(query).first() is not None

    def revoke_family(self, family_id: str) -> int:
        """Revoke every refresh and access token of a family; return the count."""
        return self._revoke(
            self._tables.refresh_tokens.c.family_id == family_id,
            self._tables.access_tokens.c.family_id == family_id,
        )

    def revoke_subject(self, subject: str) -> int:
        """Sign a user out everywhere: revoke all their tokens; return the count."""
        return self._revoke(
            self._tables.refresh_tokens.c.subject == subject,
            self._tables.access_tokens.c.subject == subject,
        )

    def revoke_client(self, client_id: str) -> int:
        """Revoke every token issued to a client; return the count."""
        return self._revoke(
            self._tables.refresh_tokens.c.client_id == client_id,
            self._tables.access_tokens.c.client_id == client_id,
        )

    def _revoke(self, refresh_where: t.Any, access_where: t.Any) -> int:
        with self._db.begin() as conn:
            return self._revoke_in(conn, refresh_where, access_where, self._db.now())

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
        refresh_tokens = self._tables.refresh_tokens
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
        access = self._revocation(
            conn, self._tables.access_tokens, (access_where,), now
        )
        return count + conn.execute(access).rowcount

    @staticmethod
    def _revocation(
        conn: sa.Connection, table: sa.Table, where: tuple[t.Any, ...], now: int
    ) -> t.Any:
        """``UPDATE table SET revoked_at = now`` for the live rows ``where``."""
        live = in_id_order(conn, table, (*where, table.c.revoked_at.is_(None)))
        return table.update().where(*live).values(revoked_at=now)

    def cleanup(
        self,
        *,
        revoked_before: int,
        batch_size: int = 1000,
        progress: Callable[[str, int], None] | None = None,
    ) -> dict[str, int]:
        """Delete expired tokens, and those revoked before ``revoked_before``,
        in batches of ``batch_size`` rows, each its own short transaction (so
        it can run while the server serves); ``progress(table, rows)`` after
        each. Returns the rows deleted per table."""
        deleted = {}
        for table in (self._tables.access_tokens, self._tables.refresh_tokens):
            dead = self._dead(table, revoked_before)
            total = 0
            while True:
                ids = sa.select(table.c.id).where(dead).limit(batch_size)
                with self._db.begin() as conn:
                    batch = [row.id for row in conn.execute(ids)]
                    if batch:
                        chosen = (table.c.id.in_(batch),)
                        conn.execute(
                            table.delete().where(*in_id_order(conn, table, chosen))
                        )
                total += len(batch)
                if progress is not None and batch:
                    progress(table.name, len(batch))
                if len(batch) < batch_size:
                    break
            deleted[table.name] = total
        return deleted

    def cleanup_backlog(self, *, revoked_before: int) -> int:
        """How many token rows :meth:`cleanup` would delete now."""
        tables = (self._tables.access_tokens, self._tables.refresh_tokens)
        count = sa.func.count()
        with self._db.autocommit() as conn:
            return sum(
                conn.execute(
                    sa.select(count).where(self._dead(table, revoked_before))
                ).scalar_one()
                for table in tables
            )

    def _dead(self, table: sa.Table, revoked_before: int) -> t.Any:
        """Expired, or revoked before ``revoked_before``."""
        now = self._db.now()
        return sa.or_(table.c.expires_at <= now, table.c.revoked_at < revoked_before)
