"""Bounded waits on the database: a lock held elsewhere costs a login seconds
(``ROPC_DATABASE_LOCK_TIMEOUT``), never the WSGI server's timeout.

A test holds a lock the request needs on a connection of its own and sends
the request from a thread, so that a request that waits for ever fails the
test (after a bound) instead of hanging it; the lock is released only after
the request has answered. Every request must answer 503
``temporarily_unavailable`` with ``Retry-After`` after the configured time
and before a small margin past it, with nothing written.
"""

from __future__ import annotations

import contextlib
import sqlite3
import time
import typing as t
from collections.abc import Callable
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor

import flask
import pytest
import sqlalchemy as sa
from flask_sqlalchemy import SQLAlchemy

from flask_ropc import ROPC
from flask_ropc import ConfigurationError

from conftest import PG_URL
from conftest import OAuthClient
from conftest import Validator
from conftest import bearer
from conftest import client_snapshot
from conftest import introspect
from conftest import issue_token
from conftest import login
from conftest import post_as
from conftest import table_rows

pg_only = pytest.mark.skipif(not PG_URL, reason="needs ROPC_TEST_DATABASE_URL")

#: How much later than its timeout a blocked request may answer: the rest of
#: the request, on a busy machine, and far less than the lock is held.
MARGIN = 4.0
#: Our token tables, whose rows a refused request must leave as they were.
TOKEN_TABLES = ("ropc_access_tokens", "ropc_refresh_tokens")


@pytest.fixture
def pg_uri(database_uri: str) -> str:
    """The test's database, on PostgreSQL only (the SQLite case is skipped)."""
    if not database_uri.startswith("postgresql"):
        pytest.skip("PostgreSQL's lock_timeout and statement_timeout")
    return database_uri


@contextlib.contextmanager
def holding(uri: str, *statements: str, **params: t.Any) -> Iterator[None]:
    """Run ``statements`` in a transaction of a connection of our own (no
    timeouts), and keep it open, with its locks, until the block ends."""
    engine = sa.create_engine(uri)
    try:
        with engine.connect() as conn:
            for statement in statements:
                conn.execute(sa.text(statement), params)
            try:
                yield
            finally:
                conn.rollback()
    finally:
        engine.dispose()


def timed(request: Callable[[], t.Any], bound: float) -> tuple[t.Any, float]:
    """Send ``request`` from a thread; its response and how long it took.

    Fails if there is no answer within ``bound`` seconds: the request is
    waiting for the lock, which is released after this returns or fails.
    """
    pool = ThreadPoolExecutor(max_workers=1)
    try:

        def run() -> tuple[t.Any, float]:
            start = time.monotonic()
            response = request()
            return response, time.monotonic() - start

        future = pool.submit(run)
        return future.result(timeout=bound)
    finally:
        pool.shutdown(wait=False)


def assert_unavailable(
    response: t.Any, elapsed: float, timeout: float | None = None
) -> None:
    """A 503 ``temporarily_unavailable`` with ``Retry-After``; if ``timeout``
    is given, answered once it expired and soon after."""
    assert response.status_code == 503, response.get_data(as_text=True)
    assert response.get_json()["error"] == "temporarily_unavailable"
    assert int(response.headers["Retry-After"]) > 0
    if timeout is not None:
        assert timeout * 0.9 <= elapsed < timeout + MARGIN, elapsed


def our_timeout(app: flask.Flask) -> float:
    """The first of our limits that stops a statement waiting for a lock."""
    limits = (
        app.config.get("ROPC_DATABASE_LOCK_TIMEOUT"),
        app.config.get("ROPC_DATABASE_STATEMENT_TIMEOUT"),
    )
    return float(min(limit for limit in limits if limit is not None))


def stored_rows(app: flask.Flask) -> dict[str, list[t.Any]]:
    """Every token row and client row, to prove a request changed nothing."""
    rows = {name: table_rows(app, name) for name in TOKEN_TABLES}
    rows["ropc_clients"] = client_snapshot(app)
    return rows


OFFLINE = {"grant_types": ["password", "refresh_token"], "scopes": ["api"]}
OFFLINE_SCOPE = "api offline_access"
LOCK_CLIENT = (
    "SELECT client_id FROM ropc_clients WHERE client_id = :client_id FOR UPDATE"
)


@pg_only
@pytest.mark.parametrize(
    "app_config",
    [
        {"ROPC_DATABASE_LOCK_TIMEOUT": 2},
        {"ROPC_DATABASE_LOCK_TIMEOUT": None, "ROPC_DATABASE_STATEMENT_TIMEOUT": 1},
    ],
    ids=["lock_timeout", "statement_timeout"],
)
def test_a_login_blocked_by_a_locked_client_row_answers_503_in_time(
    pg_uri: str, app: flask.Flask, http: t.Any, make_client: t.Any
) -> None:
    """The grant's transaction updates the client row last (its usage
    counters); with that row locked elsewhere, the login answers 503 after
    our timeout, and the access and refresh tokens it had inserted are
    rolled back with it. Once the lock is gone, logins work again."""
    client = make_client(**OFFLINE)
    assert login(http, client, scope=OFFLINE_SCOPE).status_code == 200
    before = stored_rows(app)
    timeout = our_timeout(app)
    with holding(pg_uri, LOCK_CLIENT, client_id=client.client_id):
        response, elapsed = timed(
            lambda: login(http, client, scope=OFFLINE_SCOPE), timeout + 20
        )
        assert_unavailable(response, elapsed, timeout)
    assert stored_rows(app) == before
    assert login(http, client, scope=OFFLINE_SCOPE).status_code == 200


@pg_only
@pytest.mark.parametrize("app_config", [{"ROPC_DATABASE_LOCK_TIMEOUT": 1}])
@pytest.mark.parametrize("endpoint", ["token", "introspect", "revoke", "api"])
def test_every_endpoint_answers_503_while_the_token_table_is_locked(
    pg_uri: str, app: flask.Flask, http: t.Any, make_client: t.Any, endpoint: str
) -> None:
    """With the access token table locked (as a migration would lock it), the
    token, introspection and revocation endpoints and a protected route each
    answer 503 after the lock timeout, whether they read (in autocommit) or
    write; the token is neither issued nor revoked."""
    client = make_client()
    token = issue_token(http, client)
    before = stored_rows(app)
    requests = {
        "token": lambda: login(http, client),
        "introspect": lambda: introspect(http, client, token),
        "revoke": lambda: post_as(http, "/oauth/revoke", client, {"token": token}),
        "api": lambda: http.get("/api/me", headers=bearer(token)),
    }
    with holding(pg_uri, "LOCK TABLE ropc_access_tokens IN ACCESS EXCLUSIVE MODE"):
        response, elapsed = timed(requests[endpoint], 21)
        assert_unavailable(response, elapsed, 1)
    assert stored_rows(app) == before
    assert introspect(http, client, token).get_json()["active"] is True


@pg_only
def test_on_a_shared_engine_our_transactions_are_bounded_and_the_app_s_are_not(
    pg_uri: str, tmp_path: t.Any
) -> None:
    """On the app's own Flask-SQLAlchemy engine our transactions set their
    timeouts with SET LOCAL: the blocked login answers 503 after ours, and
    the app's session on the very same pooled connection (a pool of one)
    keeps the server's settings, after a refused login and a successful one."""
    app = flask.Flask("shared_engine", instance_path=str(tmp_path))
    app.config.update(
        TESTING=True,
        SECRET_KEY="shared-engine-test-" + "s" * 32,
        SQLALCHEMY_DATABASE_URI=pg_uri,
        SQLALCHEMY_ENGINE_OPTIONS={"pool_size": 1, "max_overflow": 0},
        ROPC_ISSUER="https://shared.test",
        ROPC_DATABASE_LOCK_TIMEOUT=1,
    )
    db = SQLAlchemy(app)
    ropc = ROPC(app, db=db)
    ropc.password_validator(Validator())
    http = app.test_client()

    def app_session_settings() -> list[t.Any]:
        with app.app_context():
            settings = db.session.execute(
                sa.text(
                    "SELECT current_setting('lock_timeout'), "
                    "current_setting('statement_timeout')"
                )
            ).one()
            db.session.rollback()
            return list(settings)

    server_defaults = app_session_settings()
    with app.app_context():
        client, secret = ropc.clients.create("Shared", scopes=["api"])
    credentials = OAuthClient(client.client_id, secret)
    assert login(http, credentials).status_code == 200
    with holding(pg_uri, LOCK_CLIENT, client_id=client.client_id):
        response, elapsed = timed(lambda: login(http, credentials), 21)
        assert_unavailable(response, elapsed, 1)
    assert app_session_settings() == server_defaults
    assert login(http, credentials).status_code == 200
    assert app_session_settings() == server_defaults
    assert server_defaults != ["1s", "1s"]  # the check could see ours
    with app.app_context():
        db.engine.dispose()


@pytest.mark.parametrize("app_config", [{"ROPC_DATABASE_LOCK_TIMEOUT": 1}])
def test_sqlite_waits_for_the_write_lock_no_longer_than_the_lock_timeout(
    database_uri: str, app: flask.Flask, http: t.Any, make_client: t.Any
) -> None:
    """SQLite has one writer: with another connection holding the write lock
    (``BEGIN IMMEDIATE``), the login's first write (the throttle's
    reservation) waits the busy timeout, ``ROPC_DATABASE_LOCK_TIMEOUT``,
    then answers 503; the validator is never asked."""
    if not database_uri.startswith("sqlite"):
        pytest.skip("SQLite's busy timeout")
    client = make_client()
    validator = t.cast(Validator, app.extensions["test_validator"])
    before = stored_rows(app)
    with sqlite_write_lock(database_uri):
        response, elapsed = timed(lambda: login(http, client), 21)
        assert_unavailable(response, elapsed, 1)
    assert validator.calls == []
    assert stored_rows(app) == before


def test_by_default_a_blocked_login_answers_503_well_before_a_worker_timeout(
    database_uri: str, app: flask.Flask, http: t.Any, make_client: t.Any
) -> None:
    """Out of the box, a lock that never goes away (a stuck session on
    PostgreSQL, a stuck writer on SQLite) costs a login a few seconds, far
    below a WSGI server's worker timeout (gunicorn's is 30 s)."""
    client = make_client()
    if database_uri.startswith("sqlite"):
        lock = sqlite_write_lock(database_uri)
    else:
        lock = holding(database_uri, LOCK_CLIENT, client_id=client.client_id)
    with lock:
        response, elapsed = timed(lambda: login(http, client), 15)
    assert_unavailable(response, elapsed)
    assert elapsed < 10


@contextlib.contextmanager
def sqlite_write_lock(uri: str) -> Iterator[None]:
    """Hold the SQLite database's write lock until the block ends."""
    writer = sqlite3.connect(sa.make_url(uri).database or "", timeout=0)
    try:
        writer.execute("BEGIN IMMEDIATE")
        yield
    finally:
        writer.rollback()
        writer.close()


@pytest.mark.parametrize(
    "key", ["ROPC_DATABASE_LOCK_TIMEOUT", "ROPC_DATABASE_STATEMENT_TIMEOUT"]
)
@pytest.mark.parametrize("value", [0, -1, "3", True])
def test_a_timeout_must_be_a_positive_number_of_seconds(
    key: str, value: t.Any, tmp_path: t.Any
) -> None:
    app = flask.Flask("bad_timeout", instance_path=str(tmp_path))
    app.config.update({key: value, "ROPC_DATABASE_URI": "sqlite://"})
    with pytest.raises(ConfigurationError, match=key):
        ROPC(app)
