"""``flask ropc check``: configuration, database, keys, validator and counters
on one screen, exit 1 on a failure, ``--json``; never changes anything.

Through Flask's CLI runner on the test database (SQLite, PostgreSQL), with
real failures: dropped tables, a closed port, keys sealed with another
secret, no validator, an unreachable Redis.
"""

from __future__ import annotations

import json
import os
import secrets
import socket
import typing as t

import flask
import pytest

from flask_ropc import ROPC

from conftest import build_app
from conftest import dispose_app
from conftest import table_rows

ISSUER = {"ROPC_ISSUER": "https://auth.example.test", "SECRET_KEY": "k" * 32}
REDIS_URL = os.environ.get("ROPC_TEST_REDIS_URL")
NAMES = ["configuration", "database", "signing keys", "validator", "counters"]


def check(app: flask.Flask) -> tuple[int, dict[str, tuple[str, str]], str]:
    """Run ``check --json`` and ``check``; exit code, results by name, text."""
    runner = app.test_cli_runner()
    as_json = runner.invoke(args=["ropc", "check", "--json"])
    text = runner.invoke(args=["ropc", "check"])
    assert as_json.exit_code == text.exit_code, text.output
    data = json.loads(as_json.stdout)
    results = {c["name"]: (c["status"], c["detail"]) for c in data["checks"]}
    assert list(results) == NAMES
    assert data["ok"] is (as_json.exit_code == 0)
    for name, (status, detail) in results.items():
        assert f"{status.upper():<5} {name}:" in text.stdout and detail in text.stdout
    return as_json.exit_code, results, str(text.stdout)


def closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@pytest.mark.parametrize("app_config", [ISSUER])
def test_a_ready_app_passes_every_check(app: flask.Flask) -> None:
    app.test_cli_runner().invoke(args=["ropc", "keys", "generate"])

    code, results, text = check(app)

    assert code == 0, text
    assert {status for status, _ in results.values()} == {"ok"}
    assert "our 5 tables present" in results["database"][1]
    assert "signing with ES256" in results["signing keys"][1]
    assert "Validator" in results["validator"][1]
    assert "Ready" in text


def test_missing_tables_fail_and_check_creates_nothing(
    app: flask.Flask, ropc: ROPC
) -> None:
    with app.app_context():
        ropc.drop_all()

    code, results, _ = check(app)

    assert code == 1
    status, detail = results["database"]
    assert status == "fail" and "flask ropc init-db" in detail
    assert "ropc_clients" in detail and "ropc_throttle" in detail
    assert results["signing keys"][0] == "fail"
    assert check(app)[1]["database"] == (status, detail)  # still missing


def test_no_active_key_warns_and_no_key_is_generated(app: flask.Flask) -> None:
    code, results, _ = check(app)

    assert code == 0
    assert results["signing keys"][0] == "warn"
    assert "flask ropc keys generate" in results["signing keys"][1]
    assert results["configuration"][0] == "warn"  # ROPC_ISSUER unset
    assert table_rows(app, "ropc_signing_keys") == []


def test_keys_that_do_not_decrypt_fail(make_app: t.Any) -> None:
    sealed = make_app(ROPC_KEY_ENCRYPTION_KEYS=secrets.token_urlsafe(32))
    sealed.test_cli_runner().invoke(args=["ropc", "keys", "generate"])
    other = make_app(ROPC_KEY_ENCRYPTION_KEYS=secrets.token_urlsafe(32))

    code, results, _ = check(other)

    assert code == 1
    status, detail = results["signing keys"]
    assert status == "fail" and "ROPC_KEY_ENCRYPTION_KEYS" in detail
    assert check(sealed)[1]["signing keys"][0] == "ok"


def test_no_validator_fails(database_uri: str, tmp_path: t.Any) -> None:
    app = flask.Flask("no_validator", instance_path=str(tmp_path / "instance"))
    app.config.update(ROPC_DATABASE_URI=database_uri, **ISSUER)
    ext = ROPC(app)
    try:
        code, results, _ = check(app)
        assert code == 1
        status, detail = results["validator"]
        assert status == "fail" and "@ropc.password_validator" in detail
    finally:
        with app.app_context():
            ext.dispose()


def test_unreachable_database_fails_without_the_password(tmp_path: t.Any) -> None:
    port = closed_port()
    uri = f"postgresql+psycopg://ropc:Sup3r-s3cret@127.0.0.1:{port}/ropc"
    app = flask.Flask("down", instance_path=str(tmp_path / "instance"))
    app.config.update(ROPC_DATABASE_URI=uri, **ISSUER)
    ext = ROPC(app)
    ext.password_validator(lambda req: None)

    runner = app.test_cli_runner()
    result = runner.invoke(args=["ropc", "check"])

    assert result.exit_code == 1
    assert "Connection refused" in result.output
    assert f"ropc:***@127.0.0.1:{port}" in result.output
    assert "Sup3r-s3cret" not in result.output
    as_json = runner.invoke(args=["ropc", "check", "--json"])
    assert "Sup3r-s3cret" not in as_json.output
    assert json.loads(as_json.stdout)["ok"] is False


@pytest.mark.parametrize("storage", ["off", "memory", "closed redis", "redis"])
def test_counters_storage(database_uri: str, tmp_path: t.Any, storage: str) -> None:
    config: dict[str, t.Any] = dict(ISSUER)
    if storage == "off":
        config["ROPC_THROTTLE_ENABLED"] = False
    elif storage == "memory":
        config["ROPC_RATELIMIT_STORAGE_URI"] = "memory://"
    elif storage == "closed redis":
        password = "redis-Pa55word"
        url = f"redis://:{password}@127.0.0.1:{closed_port()}/0"
        config["ROPC_RATELIMIT_STORAGE_URI"] = url
    else:
        if not REDIS_URL:
            pytest.skip("set ROPC_TEST_REDIS_URL to run the Redis storage tests")
        config["ROPC_RATELIMIT_STORAGE_URI"] = REDIS_URL
    app = build_app(database_uri, str(tmp_path / "instance"), **config)
    try:
        app.test_cli_runner().invoke(args=["ropc", "keys", "generate"])
        code, results, text = check(app)
    finally:
        dispose_app(app)

    status, detail = results["counters"]
    expected = {"off": "warn", "memory": "ok", "closed redis": "fail", "redis": "ok"}
    assert status == expected[storage], detail
    assert code == (1 if storage == "closed redis" else 0)
    assert "Pa55word" not in text
