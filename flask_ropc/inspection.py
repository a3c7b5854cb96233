"""Read-only inspection of an app's Flask-ROPC state: what ``flask ropc
check`` reports and how the commands explain a database error.

Nothing here writes: no table, key or counter is created. Imports ``admin``
(its :class:`KeyInfo`), ``state``, ``store`` and leaves.
"""

from __future__ import annotations

from .admin import KeyInfo
from .keys import import_signing_key
from .state import State
from .store import diagnosis
from .store.limits_storage import LimitsCounters


def database_url(state: State) -> str:
    """The URL of the database our tables are on, its password hidden."""
    return diagnosis.safe_url(state.store.db.engine.url)


def explain_database_error(state: State, error: BaseException) -> str:
    """What ``error`` means for an operator, in one line: the database (its
    password hidden), the driver's message, and the fix for missing tables.
    No password of the database URL appears in it."""
    return diagnosis.explain(error, state.store.db.engine.url)


def absent_tables(state: State) -> list[str]:
    """Which of our tables the database lacks (``[]``: all there).

    :raises DatabaseError: the database is unreachable.
    """
    names = [table.name for table in state.store.tables.all()]
    return diagnosis.absent_tables(state.store.db.engine, names)


def verify_stored_keys(state: State) -> list[KeyInfo]:
    """Decrypt and parse every stored key still in use; never generates one.

    :raises ConfigurationError: a key no ``ROPC_KEY_ENCRYPTION_KEYS`` secret
        decrypts. Other exceptions: a key that does not parse.
    """
    rows = state.store.keys
    used = [row for row in rows.list() if row.status != "retired"]
    for row in used:
        import_signing_key(rows.private_jwk(row))
    return [KeyInfo.from_row(row) for row in used]


def counters_storage(state: State) -> tuple[str, bool | None]:
    """Where throttle counters live (``off``, ``database`` or the storage
    URI, password hidden) and whether that storage answers (``None``: the
    database, checked with it)."""
    throttle, uri = state.throttle, state.settings.ratelimit_storage_uri
    if throttle is None:
        return "off", None
    if isinstance(throttle.counters, LimitsCounters) and uri is not None:
        return diagnosis.safe_uri(uri), bool(throttle.counters.storage.check())
    return "database", None
