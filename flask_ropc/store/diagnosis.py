"""What a database error means, told to an operator: the driver's words,
never a password.

The ``flask ropc`` commands and ``flask ropc check`` explain a failure with
:func:`explain`: the database (its URL with the password hidden), the
driver's own message (a closed port, a wrong user, a missing database or
SQLite directory) and, only when our tables are missing, the fix
(``flask ropc init-db``). Imports :mod:`.database` (which errors are a
missing schema).
"""

from __future__ import annotations

import os
import urllib.parse

import sqlalchemy as sa
import sqlalchemy.exc

from .database import is_missing_schema


def safe_url(url: sa.URL) -> str:
    """``url`` as text with its password replaced by ``***``."""
    return url.render_as_string(hide_password=True)


def safe_uri(uri: str) -> str:
    """Any URI (a ``limits`` storage's, say) with its password as ``***``."""
    parts = urllib.parse.urlsplit(uri)
    if parts.password is None:
        return uri
    user, _, host = parts.netloc.rpartition("@")
    name = user.partition(":")[0]
    return urllib.parse.urlunsplit(parts._replace(netloc=f"{name}:***@{host}"))


def absent_tables(engine: sa.Engine, names: list[str]) -> list[str]:
    """Which of the tables ``names`` the database does not have.

    An SQLite file that does not exist lacks them all; it is not created.

    :raises sqlalchemy.exc.SQLAlchemyError: the database is unreachable.
    """
    url = engine.url
    if url.get_backend_name() == "sqlite" and url.database not in (None, ":memory:"):
        if not os.path.exists(str(url.database)):
            return list(names)
    with engine.connect() as conn:
        present = set(sa.inspect(conn).get_table_names())
    return [name for name in names if name not in present]


def driver_message(error: BaseException, url: sa.URL) -> str:
    """The driver's message for ``error``, without SQL, parameters or any
    form of ``url``'s password."""
    original = getattr(error, "orig", None)
    if isinstance(error, sqlalchemy.exc.StatementError) and original is not None:
        text = str(original)
    elif isinstance(error, sqlalchemy.exc.SQLAlchemyError):
        text = str(error.args[0]) if error.args else ""
    else:
        text = str(error)
    text = " ".join(line.strip() for line in text.strip().splitlines())
    return scrub(text or type(error).__name__, url)


def scrub(text: str, url: sa.URL) -> str:
    """``text`` with every spelling of ``url``'s password replaced by ``***``."""
    password = url.password
    if password:
        spellings = {
            str(password),
            urllib.parse.quote(str(password), safe=""),
            urllib.parse.quote_plus(str(password)),
        }
        for spelling in sorted(spellings, key=len, reverse=True):
            text = text.replace(spelling, "***")
    return text


def explain(error: BaseException, url: sa.URL) -> str:
    """One line for an operator: what failed on which database, and how to
    fix it when we know."""
    where = safe_url(url)
    message = driver_message(error, url)
    if is_missing_schema(error):
        return (
            f"Flask-ROPC's tables are missing in {where}: run 'flask ropc "
            f"init-db' (or the migrations) on this database ({message})"
        )
    hint = ""
    if url.get_backend_name() == "sqlite" and url.database not in (None, ":memory:"):
        folder = os.path.dirname(os.path.abspath(str(url.database)))
        if not os.path.isdir(folder):
            hint = f" (the directory {folder} does not exist)"
    return f"cannot use the database {where}: {message}{hint}"
