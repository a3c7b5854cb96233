"""Missing tables are a misconfiguration (500), not an outage (503).

An app deployed without ``flask ropc init-db`` (or its migrations) cannot
recover by itself: answering 503 ``temporarily_unavailable`` with
``Retry-After`` would have every client retry forever, and hides the cause.
Every endpoint answers 500 ``server_error`` instead, and the log line says
what to run. Real outages stay 503 (see ``test_validator.py``,
``test_require_token.py`` and ``test_faults.py``). On SQLite and PostgreSQL,
whose errors differ ("no such table", an ``OperationalError`` like an
outage; SQLSTATE 42P01, a ``ProgrammingError``).
"""

from __future__ import annotations

import logging
import typing as t

import flask
import pytest
import sqlalchemy as sa

from conftest import assert_oauth_error
from conftest import basic_auth
from conftest import bearer
from conftest import introspect
from conftest import issue_token
from conftest import login
from conftest import ropc_of
from conftest import token_client

FIX = "run 'flask ropc init-db' or your migrations"


def _drop(app: flask.Flask, table: str | None) -> None:
    """Drop one of our tables, or all of them (``None``). The next test gets
    them back (see ``database_uri`` in conftest)."""
    with app.app_context():
        ropc = ropc_of(app)
        if table is None:
            ropc.drop_all()
        else:
            with ropc.engine.begin() as conn:
                conn.execute(sa.text(f"DROP TABLE {table}"))


def _assert_misconfigured(response: t.Any, caplog: pytest.LogCaptureFixture) -> None:
    assert_oauth_error(response, 500, "server_error")
    assert "Retry-After" not in response.headers
    errors = [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR]
    assert errors, "nothing was logged"
    assert FIX in errors[-1].splitlines()[0]
    assert "temporarily" not in response.get_data(as_text=True)


def test_token_endpoint_without_our_tables_is_500_naming_the_fix(
    app: flask.Flask, http: t.Any, caplog: pytest.LogCaptureFixture
) -> None:
    _drop(app, None)
    with caplog.at_level(logging.ERROR, logger="flask_ropc"):
        response = http.post(
            "/oauth/token",
            data={"grant_type": "password", "username": "ann", "password": "pw"},
            headers=basic_auth("some-client", "some-secret"),
        )
    _assert_misconfigured(response, caplog)
    assert app.extensions["test_validator"].calls == []


@pytest.mark.parametrize("table", ["ropc_access_tokens", "ropc_throttle"])
def test_a_login_with_one_table_dropped_is_500_naming_the_fix(
    app: flask.Flask,
    http: t.Any,
    make_client: t.Any,
    caplog: pytest.LogCaptureFixture,
    table: str,
) -> None:
    """The throttle's own table too: with ROPC_THROTTLE_ON_STORAGE_ERROR at
    its default ("closed") a storage failure is a 503, but a missing table
    is no outage."""
    client = token_client(make_client, "reference")
    _drop(app, table)
    with caplog.at_level(logging.ERROR, logger="flask_ropc"):
        response = login(http, client)
    _assert_misconfigured(response, caplog)


def test_introspection_and_revocation_without_the_token_table_are_500(
    app: flask.Flask, http: t.Any, make_client: t.Any, caplog: pytest.LogCaptureFixture
) -> None:
    client = token_client(make_client, "reference")
    token = issue_token(http, client)
    _drop(app, "ropc_access_tokens")
    with caplog.at_level(logging.ERROR, logger="flask_ropc"):
        response = introspect(http, client, token)
    _assert_misconfigured(response, caplog)
    caplog.clear()
    with caplog.at_level(logging.ERROR, logger="flask_ropc"):
        response = http.post(
            "/oauth/revoke", data={"token": token}, headers=basic_auth(*client)
        )
    _assert_misconfigured(response, caplog)


@pytest.mark.parametrize("token_format", ["reference", "jwt"])
def test_a_protected_route_without_our_tables_is_a_json_500(
    app: flask.Flask,
    http: t.Any,
    make_client: t.Any,
    caplog: pytest.LogCaptureFixture,
    token_format: str,
) -> None:
    """A JWT is checked against the signing keys' table, a reference token
    against the token table: either missing is a 500 naming the fix."""
    token = issue_token(http, token_client(make_client, token_format))
    _drop(app, None)
    with caplog.at_level(logging.ERROR, logger="flask_ropc"):
        response = http.get("/api/me", headers=bearer(token))
    _assert_misconfigured(response, caplog)
