"""The server on its worst day: database connections killed, Redis gone.

PostgreSQL faults are made with ``pg_terminate_backend`` on the test's own
connections (never by restarting the shared server); Redis faults with a
private ``redis-server`` on a port of the test's own.
"""

from __future__ import annotations

import contextlib
import shutil
import subprocess
import typing as t
from pathlib import Path

import flask
import pytest
import sqlalchemy as sa

# Internal on purpose, only to reach the throttle's Redis storage (see the
# end of test_redis_stopped_mid_run_fails_closed_then_recovers).
from flask_ropc.state import get_state

from conftest import PG_URL
from conftest import basic_auth
from conftest import build_app
from conftest import count_rows
from conftest import dispose_app
from conftest import free_port
from conftest import password_form
from conftest import ropc_of
from conftest import table_rows

pg_only = pytest.mark.skipif(not PG_URL, reason="needs ROPC_TEST_DATABASE_URL")


@pytest.fixture
def pg_app(database_uri: str, app: flask.Flask) -> flask.Flask:
    if not database_uri.startswith("postgresql"):
        pytest.skip("connection faults are made on PostgreSQL")
    return app


def _engine(app: flask.Flask) -> sa.Engine:
    """The engine our tables live on, whose connections the tests break."""
    with app.app_context():
        return ropc_of(app).engine


def _kill_our_connections(app: flask.Flask) -> int:
    """Terminate every server process serving the app's database, except
    the one doing the terminating."""
    engine = _engine(app)
    name = engine.url.database
    admin = sa.create_engine(engine.url, isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as conn:
            killed = conn.execute(
                sa.text(
                    "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
                    "WHERE datname = :name AND pid <> pg_backend_pid()"
                ),
                {"name": name},
            ).scalar_one()
    finally:
        admin.dispose()
    return int(killed)


@pg_only
def test_killed_connections_between_requests_are_replaced(
    pg_app: flask.Flask, http: t.Any, oauth_client: t.Any
) -> None:
    """The pool checks connections before use: after every server process of
    ours is killed, the next request just works, no restart needed."""
    first = http.post(
        "/oauth/token", data=password_form(), headers=basic_auth(*oauth_client)
    )
    assert first.status_code == 200
    assert _kill_our_connections(pg_app) >= 1
    again = http.post(
        "/oauth/token", data=password_form(), headers=basic_auth(*oauth_client)
    )
    assert again.status_code == 200, again.json
    me = http.get(
        "/api/me", headers={"Authorization": f"Bearer {again.json['access_token']}"}
    )
    assert me.status_code == 200


@pg_only
def test_connection_killed_mid_grant_is_503_and_writes_nothing(
    pg_app: flask.Flask, http: t.Any, make_client: t.Any
) -> None:
    """The connection dies inside the grant's transaction, after the token
    rows are written (one statement on PostgreSQL) and before the throttle is
    settled: the client gets 503, no half grant is stored, and the next
    request succeeds."""
    client = make_client(grant_types=["password", "refresh_token"])
    engine = _engine(pg_app)
    before = count_rows(pg_app)
    fired, wrote_tokens = [], []

    def kill_before_refresh_insert(
        conn: t.Any, cursor: t.Any, statement: str, *args: t.Any
    ) -> None:
        if wrote_tokens and not fired:
            fired.append(True)
            pid = conn.connection.dbapi_connection.info.backend_pid
            admin = sa.create_engine(engine.url, isolation_level="AUTOCOMMIT")
            with admin.connect() as other:
                other.execute(
                    sa.text("SELECT pg_terminate_backend(:pid)"), {"pid": pid}
                )
            admin.dispose()
        if "INSERT INTO ropc_access_tokens" in statement:
            wrote_tokens.append(True)

    sa.event.listen(engine, "before_cursor_execute", kill_before_refresh_insert)
    try:
        response = _offline_login(http, client)
    finally:
        sa.event.remove(engine, "before_cursor_execute", kill_before_refresh_insert)
    assert fired
    assert response.status_code == 503
    assert response.json["error"] == "temporarily_unavailable"
    assert "Retry-After" in response.headers
    after = count_rows(pg_app)
    assert after["ropc_access_tokens"] == before["ropc_access_tokens"]
    refresh_rows = len(table_rows(pg_app, "ropc_refresh_tokens"))
    assert refresh_rows == 0
    retry = _offline_login(http, client)
    assert retry.status_code == 200
    assert "refresh_token" in retry.json


def _offline_login(http: t.Any, client: t.Any) -> t.Any:
    """A password login that asks for a refresh token too."""
    return http.post(
        "/oauth/token",
        data=password_form(scope="api offline_access"),
        headers=basic_auth(*client),
    )


@contextlib.contextmanager
def _refresh_insert_trigger(
    engine: sa.Engine, name: str, body: str
) -> t.Iterator[None]:
    """A trigger running ``body`` (PL/pgSQL) before every refresh token
    insert, for the block's duration."""
    with engine.begin() as conn:
        conn.execute(
            sa.text(
                f"CREATE FUNCTION {name}() RETURNS trigger AS $$ "
                f"BEGIN {body} END $$ LANGUAGE plpgsql"
            )
        )
        conn.execute(
            sa.text(
                f"CREATE TRIGGER {name} BEFORE INSERT ON ropc_refresh_tokens "
                f"FOR EACH ROW EXECUTE FUNCTION {name}()"
            )
        )
    try:
        yield
    finally:
        with engine.begin() as conn:
            conn.execute(sa.text(f"DROP TRIGGER {name} ON ropc_refresh_tokens"))
            conn.execute(sa.text(f"DROP FUNCTION {name}()"))


@pg_only
def test_server_process_ending_inside_the_grant_statement_is_503_and_invalidated(
    pg_app: flask.Flask, http: t.Any, make_client: t.Any
) -> None:
    """The server process ends itself inside the grant's statement (a
    trigger; no SQLAlchemy event is listened to, so the statement runs on
    the driver's cursor): the client gets 503, nothing is written, and the
    dead connection is invalidated, never handed out again."""
    client = make_client(grant_types=["password", "refresh_token"])
    engine = _engine(pg_app)
    invalidated: list[BaseException | None] = []

    def on_invalidate(dbapi_connection: t.Any, record: t.Any, error: t.Any) -> None:
        invalidated.append(error)

    die = "PERFORM pg_terminate_backend(pg_backend_pid()); RETURN NEW;"
    with _refresh_insert_trigger(engine, "ropc_test_die", die):
        sa.event.listen(engine, "invalidate", on_invalidate)
        try:
            before = count_rows(pg_app)
            response = _offline_login(http, client)
        finally:
            sa.event.remove(engine, "invalidate", on_invalidate)
        assert response.status_code == 503, response.json
        assert response.json["error"] == "temporarily_unavailable"
        assert len(invalidated) == 1 and invalidated[0] is not None
        assert count_rows(pg_app) == before
    assert _offline_login(http, client).status_code == 200


@pg_only
def test_failure_inside_the_grant_transaction_leaves_no_token_and_counts_no_failure(
    pg_app: flask.Flask, http: t.Any, make_client: t.Any
) -> None:
    """An error raised by the database on the refresh token insert (a
    trigger) rolls back the access token written just before it."""
    client = make_client(grant_types=["password", "refresh_token"])
    engine = _engine(pg_app)

    refuse = "RAISE EXCEPTION 'injected failure';"
    with _refresh_insert_trigger(engine, "ropc_test_refuse", refuse):
        before = count_rows(pg_app)
        response = _offline_login(http, client)
        assert response.status_code == 500
        assert response.json["error"] == "server_error"
        assert count_rows(pg_app) == before
        with pg_app.app_context():
            client_row = ropc_of(pg_app).clients.require(client.client_id)
        assert client_row.password_grant_count == 0
        # The password was right each time: failed writes must not count as
        # failed logins (the default limit is 5 per username).
        for _ in range(5):
            assert _offline_login(http, client).status_code == 500
    recovered = _offline_login(http, client)
    assert recovered.status_code == 200, recovered.json


# -- Redis ------------------------------------------------------------------


def _start_redis(port: int, workdir: Path) -> None:
    subprocess.run(
        [
            "redis-server",
            "--port",
            str(port),
            "--bind",
            "127.0.0.1",
            "--save",
            "",
            "--appendonly",
            "no",
            "--daemonize",
            "yes",
            "--dir",
            str(workdir),
            "--pidfile",
            str(workdir / f"redis-{port}.pid"),
        ],
        check=True,
    )
    # redis-cli --no-raw PING retries until the daemon answers (bounded).
    for _ in range(100):
        ping = subprocess.run(
            ["redis-cli", "-p", str(port), "ping"], capture_output=True, text=True
        )
        if ping.stdout.strip() == "PONG":
            return
    raise AssertionError("private redis-server did not start")


def _stop_redis(port: int) -> None:
    subprocess.run(
        ["redis-cli", "-p", str(port), "shutdown", "nosave"], capture_output=True
    )


@pytest.mark.skipif(shutil.which("redis-server") is None, reason="needs redis-server")
def test_redis_stopped_mid_run_fails_closed_then_recovers(
    database_uri: str, tmp_path: Path
) -> None:
    """With its own redis-server stopped, the password grant answers 503
    (no unthrottled guessing) and logs loudly; once Redis is back, requests
    succeed again without restarting the app."""
    port = free_port()
    _start_redis(port, tmp_path)
    app = build_app(
        database_uri,
        str(tmp_path / "instance"),
        ROPC_RATELIMIT_STORAGE_URI=f"redis://127.0.0.1:{port}/0",
    )
    try:
        with app.app_context():
            client, secret = ropc_of(app).clients.create("c", scopes=["api"])
        auth = basic_auth(client.client_id, secret or "")
        http = app.test_client()
        assert (
            http.post("/oauth/token", data=password_form(), headers=auth).status_code
            == 200
        )
        _stop_redis(port)
        down = http.post("/oauth/token", data=password_form(), headers=auth)
        assert down.status_code == 503
        assert down.json["error"] == "temporarily_unavailable"
        assert (
            app.extensions["test_validator"].calls[-1:]
            and len(app.extensions["test_validator"].calls) == 1
        )
        _start_redis(port, tmp_path)
        back = http.post("/oauth/token", data=password_form(), headers=auth)
        assert back.status_code == 200
    finally:
        _stop_redis(port)
        # Reaches into the Redis storage under the throttle on purpose: close
        # the Redis client's sockets, which the dead server left open (no
        # public API hands out the throttle's storage).
        state = get_state(app)
        assert state.throttle is not None
        # The counters are LimitsCounters: .storage is the limits RedisStorage,
        # whose own .storage is the redis client.
        limits_storage = getattr(state.throttle.counters, "storage", None)
        redis_client = getattr(limits_storage, "storage", None)
        if redis_client is not None:
            redis_client.connection_pool.disconnect()
        dispose_app(app)
