"""Pending MFA logins (``mfa_token`` rows) and accepted TOTP steps, in SQL.

An ``mfa_token`` is stored only as its digest, with what the password step
established (client, subject, scopes, claims, ``auth_time``, DPoP key). Every
change is one conditional statement, so concurrent continuations agree:
:meth:`SQLMfaTokens.fail` counts a wrong code only on a live token, and
:meth:`SQLMfaTokens.consume_in` marks it used only if it is still live, inside
the transaction that stores the tokens; of two continuations with the right
code, exactly one gets tokens. :class:`SQLStepLedger` keeps the last accepted
TOTP time step per subject (the default replay store of
:class:`~flask_ropc.totp.TotpVerifier`). The Redis variant of the tokens is in
:mod:`.mfa_redis`.

Imports :mod:`.database`, ``hashing`` and leaves.
"""

from __future__ import annotations

import dataclasses
import json
import typing as t
from collections.abc import Callable
from collections.abc import Mapping

import sqlalchemy as sa

from .. import hashing
from .database import Database
from .database import upsert_insert


@dataclasses.dataclass(frozen=True)
class PendingMfa:
    """A live ``mfa_token``: a login whose password was right."""

    client_id: str
    subject: str
    scopes: tuple[str, ...]
    claims: Mapping[str, t.Any]
    extra: Mapping[str, t.Any]
    factors: tuple[str, ...]
    auth_time: int
    dpop_jkt: str | None
    failures: int
    expires_at: int

    @classmethod
    def from_values(cls, values: Mapping[str, t.Any]) -> PendingMfa:
        """From a row (or a Redis hash) of the token's columns."""
        return cls(
            client_id=str(values["client_id"]),
            subject=str(values["subject"]),
            scopes=tuple(str(values["scope"]).split()),
            claims=json.loads(values["claims"]),
            extra=json.loads(values["extra"]),
            factors=tuple(str(values["factors"]).split()),
            auth_time=int(values["auth_time"]),
            dpop_jkt=values["dpop_jkt"] or None,
            failures=int(values["failures"]),
            expires_at=int(values["expires_at"]),
        )


def new_row(
    digest: str,
    *,
    client_id: str,
    subject: str,
    scopes: tuple[str, ...],
    claims: Mapping[str, t.Any],
    extra: Mapping[str, t.Any],
    factors: tuple[str, ...],
    auth_time: int,
    dpop_jkt: str | None,
    expires_at: int,
) -> dict[str, t.Any]:
    """The column values of a new ``mfa_token`` row."""
    return {
        "token_digest": digest,
        "client_id": client_id,
        "subject": subject,
        "scope": " ".join(scopes),
        "claims": json.dumps(dict(claims), separators=(",", ":")),
        "extra": json.dumps(dict(extra), separators=(",", ":")),
        "factors": " ".join(factors),
        "auth_time": auth_time,
        "dpop_jkt": dpop_jkt,
        "failures": 0,
        "expires_at": expires_at,
        "consumed_at": None,
    }


class MfaTokens(t.Protocol):
    """Where pending MFA logins live (SQL or Redis)."""

    #: Whether :meth:`consume_in` can join the tokens' transaction.
    consumes_in_database: bool

    def create(
        self, row: Mapping[str, t.Any], also: Callable[[sa.Connection], None] | None
    ) -> None:
        """Store a new token (``also`` runs in the same transaction, if SQL)."""

    def find(self, digest: str, now: int, max_failures: int) -> PendingMfa | None:
        """The live token (unused, unexpired, not dead), else ``None``."""

    def fail(self, digest: str, now: int, max_failures: int) -> int | None:
        """Count a code (before it is judged); the new count, or ``None`` if
        the token was not live."""

    def forgive(self, digest: str) -> None:
        """Take back one counted code (it was right, or never judged)."""

    def consume(self, digest: str, now: int, max_failures: int) -> bool:
        """Mark it used if it is live; whether this call did."""

    def consume_in(
        self, conn: sa.Connection, digest: str, now: int, max_failures: int
    ) -> bool:
        """:meth:`consume` inside ``conn``'s transaction (SQL only)."""


def _live(table: sa.Table) -> t.Any:
    return sa.and_(
        table.c.token_digest == sa.bindparam("digest"),
        table.c.consumed_at.is_(None),
        table.c.expires_at > sa.bindparam("now"),
        table.c.failures < sa.bindparam("max_failures"),
    )


class SQLMfaTokens:
    """Pending MFA logins as rows of ``ropc_mfa_tokens``."""

    consumes_in_database = True

    def __init__(self, database: Database, table: sa.Table) -> None:
        self._db = database
        self._table = table
        live = _live(table)
        self._find = sa.select(table).where(live)
        self._fail = (
            table.update()
            .where(live)
            .values(failures=table.c.failures + 1)
            .returning(table.c.failures)
        )
        # A used token also expires at once, so that cleanup finds it by the
        # expires_at index alone.
        self._consume = (
            table.update()
            .where(live)
            .values(consumed_at=sa.bindparam("at"), expires_at=sa.bindparam("at"))
        )

    def create(
        self, row: Mapping[str, t.Any], also: Callable[[sa.Connection], None] | None
    ) -> None:
        """Insert the row; ``also`` (the throttle's settlement) joins in."""
        with self._db.begin() as conn:
            conn.execute(self._table.insert(), dict(row))
            if also is not None:
                also(conn)

    def find(self, digest: str, now: int, max_failures: int) -> PendingMfa | None:
        """The live token with this digest."""
        params = {"digest": digest, "now": now, "max_failures": max_failures}
        with self._db.autocommit() as conn:
            row = conn.execute(self._find, params).mappings().first()
        return None if row is None else PendingMfa.from_values(dict(row))

    def fail(self, digest: str, now: int, max_failures: int) -> int | None:
        """One conditional ``UPDATE ... RETURNING``: atomic on both databases."""
        params = {"digest": digest, "now": now, "max_failures": max_failures}
        with self._db.autocommit() as conn:
            count = conn.execute(self._fail, params).scalar()
        return None if count is None else int(count)

    def forgive(self, digest: str) -> None:
        """Take back one counted code: ``failures - 1``, never below 0."""
        table = self._table
        statement = (
            table.update()
            .where(table.c.token_digest == digest, table.c.failures > 0)
            .values(failures=table.c.failures - 1)
        )
        with self._db.autocommit() as conn:
            conn.execute(statement)

    def consume(self, digest: str, now: int, max_failures: int) -> bool:
        """:meth:`consume_in` in a transaction of its own."""
        with self._db.begin() as conn:
            return self.consume_in(conn, digest, now, max_failures)

    def consume_in(
        self, conn: sa.Connection, digest: str, now: int, max_failures: int
    ) -> bool:
        """``UPDATE ... WHERE consumed_at IS NULL``: on PostgreSQL the second
        of two concurrent consumers waits for the first's row lock, then
        finds the row used; SQLite serialises the writers."""
        params = {"digest": digest, "now": now, "max_failures": max_failures}
        return conn.execute(self._consume, {**params, "at": now}).rowcount == 1

    def purge_expired(self, now: int) -> int:
        """Delete expired and used tokens; return how many."""
        table = self._table
        expired = table.c.expires_at <= now  # a used one expired when used
        with self._db.begin() as conn:
            return int(conn.execute(table.delete().where(expired)).rowcount or 0)


class SQLStepLedger:
    """The last accepted TOTP step per subject, in ``ropc_mfa_steps``.

    :meth:`accept` is one ``INSERT ... ON CONFLICT DO UPDATE ... WHERE step <
    new step RETURNING``: of two requests with the same code, on any
    instance, exactly one gets ``True``.
    """

    def __init__(self, database: Database, table: sa.Table) -> None:
        self._db = database
        self._table = table
        self._statements: dict[str, t.Any] = {}

    def _statement(self, dialect: str) -> t.Any:
        statement = self._statements.get(dialect)
        if statement is None:
            insert = upsert_insert(dialect)
            table = self._table
            new = insert(table).values(
                subject_digest=sa.bindparam("digest"),
                step=sa.bindparam("step"),
                updated_at=sa.bindparam("now"),
            )
            statement = new.on_conflict_do_update(
                index_elements=[table.c.subject_digest],
                set_={"step": new.excluded.step, "updated_at": new.excluded.updated_at},
                where=table.c.step < new.excluded.step,
            ).returning(table.c.subject_digest)
            self._statements[dialect] = statement
        return statement

    def accept(self, subject: str, step: int) -> bool:
        """Record ``step`` if it is later than the last one; whether it was."""
        params = {
            "digest": hashing.digest(subject),
            "step": step,
            "now": self._db.now(),
        }
        with self._db.autocommit() as conn:
            return (
                conn.execute(self._statement(self._db.dialect), params).first()
                is not None
            )
