"""Every query the token endpoint runs can use an index (checked on PostgreSQL).

The statements are captured from real requests (password grant with a refresh
token, refresh, a protected route, revocation, sign-out everywhere, cleanup)
and each is EXPLAINed with sequential scans disabled: a plan that still
scans one of our tables sequentially has no index to use.
"""

from __future__ import annotations

import typing as t

import flask
import pytest
import sqlalchemy as sa

from conftest import Clock
from conftest import basic_auth
from conftest import password_form
from conftest import ropc_of


def _capture(app: flask.Flask) -> tuple[list[tuple[str, t.Any]], t.Callable[[], None]]:
    with app.app_context():
        engine = ropc_of(app).engine
    seen: list[tuple[str, t.Any]] = []

    def record(
        conn: t.Any, cursor: t.Any, statement: str, params: t.Any, *_: t.Any
    ) -> None:
        seen.append((statement, params))

    sa.event.listen(engine, "before_cursor_execute", record)
    return seen, lambda: sa.event.remove(engine, "before_cursor_execute", record)


def test_hot_path_queries_use_indexes(
    app: flask.Flask,
    http: t.Any,
    make_client: t.Any,
    clock: Clock,
    database_uri: str,
) -> None:
    if not database_uri.startswith("postgresql"):
        pytest.skip("query plans are checked on PostgreSQL")
    client = make_client(grant_types=["password", "refresh_token"])
    auth = basic_auth(*client)
    seen, stop = _capture(app)
    try:
        token = http.post(
            "/oauth/token", data=password_form(scope="api offline_access"), headers=auth
        ).json
        http.get(
            "/api/me", headers={"Authorization": f"Bearer {token['access_token']}"}
        )
        refreshed = http.post(
            "/oauth/token",
            data={
                "grant_type": "refresh_token",
                "refresh_token": token["refresh_token"],
            },
            headers=auth,
        ).json
        http.post(
            "/oauth/revoke", data={"token": refreshed["refresh_token"]}, headers=auth
        )
        with app.app_context():
            ropc = ropc_of(app)
            ropc.revoke(subject="user-1")
            # revoked_for = now: the clean-up of tokens revoked before time 0.
            ropc.cleanup(revoked_for=int(clock.freeze()))
    finally:
        stop()
    statements = [
        (sql, params)
        for sql, params in seen
        if "ropc_" in sql
        and sql.lstrip().upper().startswith(("SELECT", "UPDATE", "DELETE"))
    ]
    assert len(statements) >= 10
    with app.app_context():
        engine = ropc_of(app).engine
    with engine.connect() as conn:
        raw = conn.connection.dbapi_connection
        assert raw is not None
        with raw.cursor() as cursor:
            cursor.execute("SET enable_seqscan = off")
            for sql, params in statements:
                cursor.execute("EXPLAIN " + sql, params)
                plan = "\n".join(row[0] for row in cursor.fetchall())
                assert "Seq Scan on ropc_" not in plan, f"{sql}\n{plan}"
            cursor.execute("RESET enable_seqscan")
            raw.rollback()
