"""The embedded database's engine: :func:`create_engine`, its SQLite pragmas,
and :class:`Timeouts` (how long our statements may wait), which it puts on
every PostgreSQL connection through libpq (:func:`timeouts_on_connect`).
Imports nothing of ours.
"""

from __future__ import annotations

import dataclasses
import os
import typing as t

import sqlalchemy as sa

#: PostgreSQL drivers on libpq: they send the connection's ``options`` in the
#: start-up packet, so settings made there cost no round trip.
LIBPQ_DRIVERS = ("psycopg", "psycopg2")


@dataclasses.dataclass(frozen=True)
class Timeouts:
    """How long one of our statements may wait, in seconds; ``None``: we set
    no limit (the engine's or the server's own applies).

    On PostgreSQL these are ``lock_timeout`` and ``statement_timeout``; a
    statement that exceeds one fails with an ``OperationalError`` (a 503),
    and its transaction rolls back. On SQLite, ``lock`` is the busy timeout
    of the embedded engine: how long a writer waits for the write lock.
    """

    lock: float | None = None
    statement: float | None = None

    def settings(self) -> dict[str, str]:
        """PostgreSQL setting -> milliseconds, for the limits that are set."""
        values = {"lock_timeout": self.lock, "statement_timeout": self.statement}
        return {
            name: str(max(1, round(value * 1000)))
            for name, value in values.items()
            if value is not None
        }


#: No limits of our own (the engine's or the server's apply).
NO_TIMEOUTS = Timeouts()


def create_engine(uri: str, timeouts: Timeouts = NO_TIMEOUTS) -> sa.Engine:
    """Create the engine for the embedded database.

    SQLite gets WAL mode and ``synchronous=NORMAL`` (readers never wait for
    the writer; a commit is an order of magnitude cheaper and still durable
    against application crashes) and a busy timeout of ``timeouts.lock``
    (the driver's 5 s if ``None``) so that concurrent workers wait for the
    write lock, for a bounded time, instead of failing at once with
    "database is locked". On PostgreSQL through libpq, every connection
    starts with our ``lock_timeout`` and ``statement_timeout`` (in its
    ``options``, which cost no round trip; ``options`` of the URI or of
    ``PGOPTIONS`` come after ours, so they win). Every engine checks
    connections before use so that a restarted database server does not
    fail the next request. Parameters are hidden from SQL error messages:
    they can hold token digests.
    """
    url = sa.make_url(uri)
    options: dict[str, t.Any] = {"hide_parameters": True}
    if url.get_backend_name() == "sqlite":
        if timeouts.lock is not None:
            options["connect_args"] = {"timeout": timeouts.lock}
    else:
        options["pool_pre_ping"] = True
        if timeouts.settings() and timeouts_on_connect(url):
            options["connect_args"] = {"options": _libpq_options(url, timeouts)}
    engine = sa.create_engine(url, **options)
    if url.get_backend_name() == "sqlite":
        sa.event.listen(engine, "connect", _sqlite_pragmas)
    return engine


def timeouts_on_connect(url: sa.URL) -> bool:
    """Whether :func:`create_engine` puts our timeouts on the connections."""
    return url.get_backend_name() == "postgresql" and (
        url.get_driver_name() in LIBPQ_DRIVERS
    )


def _libpq_options(url: sa.URL, timeouts: Timeouts) -> str:
    """libpq ``options``: our timeouts, then PGOPTIONS', then the URI's own
    (an explicit ``options`` parameter replaces PGOPTIONS, so it is kept)."""
    ours = [f"-c {name}={value}" for name, value in timeouts.settings().items()]
    given = url.query.get("options", ())
    theirs = [given] if isinstance(given, str) else list(given)
    return " ".join([*ours, os.environ.get("PGOPTIONS", ""), *theirs]).strip()


def _sqlite_pragmas(dbapi_connection: t.Any, connection_record: t.Any) -> None:
    cursor = dbapi_connection.cursor()
    try:
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.execute("PRAGMA foreign_keys=ON")
    finally:
        cursor.close()
