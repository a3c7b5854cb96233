"""Round trips to PostgreSQL per grant, counted on the wire (PostgreSQL only).

libpq traces every protocol message a connection sends (``PQtrace``,
through psycopg's ``pgconn.trace``); each simple ``Query`` message (the
pool's pre-ping, ``BEGIN``, ``COMMIT``) and each ``Sync`` (the end of one
extended-protocol statement) waits for the server's answer: one round trip.
"""

from __future__ import annotations

import typing as t
from collections.abc import Callable
from collections.abc import Iterator
from pathlib import Path

import flask
import pytest
import sqlalchemy as sa

from conftest import PG_URL
from conftest import basic_auth
from conftest import password_form
from conftest import ropc_of

pytestmark = pytest.mark.skipif(not PG_URL, reason="needs ROPC_TEST_DATABASE_URL")

#: The most round trips a password login (with a refresh token) may take:
#: issue #15's target.
MOST_PER_LOGIN = 8


@pytest.fixture
def pg_app(database_uri: str, app: flask.Flask) -> flask.Flask:
    if not database_uri.startswith("postgresql"):
        pytest.skip("round trips are counted on PostgreSQL")
    return app


def _sent(lines: list[str]) -> list[str]:
    """The messages that wait for an answer, from a libpq trace."""
    waits = []
    for line in lines:
        fields = line.split("\t")
        if len(fields) > 2 and fields[0] == "F" and fields[2] in ("Query", "Sync"):
            waits.append(line)
    return waits


@pytest.fixture
def round_trips(pg_app: flask.Flask, tmp_path: Path) -> Iterator[Callable[..., int]]:
    """``round_trips(action)``: run ``action()`` and count its round trips
    on every connection of our engine."""
    psycopg_pq = pytest.importorskip("psycopg.pq")
    with pg_app.app_context():
        engine = ropc_of(pg_app).engine
    if engine.dialect.driver != "psycopg":
        pytest.skip("the wire is traced through psycopg 3")
    trace = (tmp_path / "libpq.trace").open("w+")
    traced: list[t.Any] = []

    def on_checkout(dbapi_connection: t.Any, *_: t.Any) -> None:
        if dbapi_connection not in traced:
            traced.append(dbapi_connection)
            dbapi_connection.pgconn.trace(trace.fileno())
            dbapi_connection.pgconn.set_trace_flags(
                psycopg_pq.Trace.SUPPRESS_TIMESTAMPS
            )

    def count(action: Callable[[], t.Any]) -> int:
        trace.seek(0)
        trace.truncate()
        sa.event.listen(engine, "checkout", on_checkout)
        try:
            action()
        finally:
            sa.event.remove(engine, "checkout", on_checkout)
            for connection in traced:
                connection.pgconn.untrace()
            traced.clear()
        trace.seek(0)
        return len(_sent(trace.read().splitlines()))

    yield count
    trace.close()


def test_a_password_login_takes_at_most_8_round_trips(
    pg_app: flask.Flask, round_trips: Callable[..., int], make_client: t.Any
) -> None:
    """Pre-ping, client, throttle reservation, then the grant's transaction
    (BEGIN, token rows and client, throttle settlement, COMMIT)."""
    http = pg_app.test_client()
    client = make_client(grant_types=["password", "refresh_token"])
    form = password_form(scope="api offline_access")

    def login() -> t.Any:
        response = http.post("/oauth/token", data=form, headers=basic_auth(*client))
        assert response.status_code == 200, response.json
        assert "refresh_token" in response.json
        return response.json

    login()  # the signing key is made, the pool filled
    count = round_trips(login)
    assert 0 < count <= MOST_PER_LOGIN, f"{count} round trips"


def test_a_refresh_takes_at_most_8_round_trips(
    pg_app: flask.Flask, round_trips: Callable[..., int], make_client: t.Any
) -> None:
    http = pg_app.test_client()
    client = make_client(grant_types=["password", "refresh_token"])
    tokens = http.post(
        "/oauth/token",
        data=password_form(scope="api offline_access"),
        headers=basic_auth(*client),
    ).json

    def exchange() -> None:
        response = http.post(
            "/oauth/token",
            data={
                "grant_type": "refresh_token",
                "refresh_token": tokens["refresh_token"],
            },
            headers=basic_auth(*client),
        )
        assert response.status_code == 200, response.json

    count = round_trips(exchange)
    assert 0 < count <= MOST_PER_LOGIN, f"{count} round trips"


def test_the_trace_counts_what_it_should() -> None:
    """A pre-ping, a statement and a COMMIT are three round trips."""
    lines = [
        'F\t6\tQuery\t ";"',
        'F\t52\tParse\t "" "SELECT 1"',
        'F\t9\tBind\t "" "" 0 0 0',
        'F\t6\tDescribe\t P ""',
        'F\t9\tExecute\t "" 0',
        "F\t4\tSync",
        "B\t5\tReadyForQuery\t I",
        'F\t11\tQuery\t "COMMIT"',
    ]
    assert len(_sent(lines)) == 3
