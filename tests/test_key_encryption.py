"""Private signing keys kept in the database are encrypted at rest.

With ``ROPC_KEY_ENCRYPTION_KEYS`` set, a generated key is stored as a Fernet
token, tokens sign and verify as before, a missing or wrong secret fails
loudly, and ``flask ropc keys encrypt`` encrypts existing keys or moves them
to a new secret. Runs on SQLite and, when configured, PostgreSQL.
"""

from __future__ import annotations

import json
import logging
import secrets
import typing as t

import flask
import pytest

from flask_ropc import ROPC
from flask_ropc import ConfigurationError
from flask_ropc.state import get_state

from conftest import OAuthClient
from conftest import basic_auth
from conftest import bearer
from conftest import issue_token
from conftest import password_form
from conftest import ropc_of
from conftest import table_rows

OLD = secrets.token_urlsafe(32)
NEW = secrets.token_urlsafe(32)


def stored_keys(app: flask.Flask) -> list[str]:
    """The ``private_jwk`` column of every stored key, as stored."""
    return [row.private_jwk for row in table_rows(app, "ropc_signing_keys")]


def private_parts(app: flask.Flask) -> list[str]:
    """The private scalar ``d`` of every stored key, decrypted by the app.

    Reaches into the key row store (``get_state(app).store.keys``) on
    purpose: the public API never hands out a private key, and these tests
    compare the decrypted key with what is stored.
    """
    keys = get_state(app).store.keys
    rows = table_rows(app, "ropc_signing_keys")
    return [json.loads(keys.private_jwk(row))["d"] for row in rows]


def login(app: flask.Flask, client: t.Any) -> str:
    return issue_token(app.test_client(), client)


def opens_api(app: flask.Flask, token: str) -> bool:
    response = app.test_client().get("/api/me", headers=bearer(token))
    return bool(response.status_code == 200)


def encrypt(app: flask.Flask) -> t.Any:
    return app.test_cli_runner().invoke(args=["ropc", "keys", "encrypt"])


def new_client(app: flask.Flask) -> t.Any:
    with app.app_context():
        client, secret = ropc_of(app).clients.create("App", scopes=["api"])
    return OAuthClient(client.client_id, secret)


def test_a_generated_key_is_stored_encrypted_and_signs_tokens(
    make_app: t.Any,
) -> None:
    app = make_app(ROPC_KEY_ENCRYPTION_KEYS=NEW)
    token = login(app, new_client(app))
    assert opens_api(app, token)
    [stored] = stored_keys(app)
    [private] = private_parts(app)
    assert stored.startswith("fernet:")
    assert private not in stored and '"d"' not in stored


def test_without_the_secret_encrypted_keys_fail_loudly_and_stay_intact(
    make_app: t.Any, caplog: pytest.LogCaptureFixture
) -> None:
    sealed = make_app(ROPC_KEY_ENCRYPTION_KEYS=NEW)
    client = new_client(sealed)
    login(sealed, client)
    before = stored_keys(sealed)
    for config in ({}, {"ROPC_KEY_ENCRYPTION_KEYS": OLD}):
        app = make_app(**config)
        caplog.clear()
        with caplog.at_level(logging.ERROR, logger="flask_ropc"):
            token_response = app.test_client().post(
                "/oauth/token", data=password_form(), headers=basic_auth(*client)
            )
        assert token_response.status_code == 500
        assert token_response.json["error"] == "server_error"
        assert "ROPC_KEY_ENCRYPTION_KEYS" in caplog.text
        assert NEW not in caplog.text and OLD not in caplog.text
        result = encrypt(app)
        assert result.exit_code != 0
        assert "ROPC_KEY_ENCRYPTION_KEYS" in result.output
    assert stored_keys(sealed) == before


def test_a_new_secret_in_front_then_keys_encrypt_retires_the_old_secret(
    make_app: t.Any,
) -> None:
    first = make_app(ROPC_KEY_ENCRYPTION_KEYS=OLD)
    client = new_client(first)
    token = login(first, client)
    private = private_parts(first)

    both = make_app(ROPC_KEY_ENCRYPTION_KEYS=[NEW, OLD])
    assert opens_api(both, token)  # the old secret still decrypts
    result = encrypt(both)
    assert result.exit_code == 0, result.output
    assert "Encrypted 1 signing key" in result.output

    only_new = make_app(ROPC_KEY_ENCRYPTION_KEYS=NEW)
    assert private_parts(only_new) == private  # the same key, re-encrypted
    assert opens_api(only_new, token)
    assert opens_api(only_new, login(only_new, client))
    only_old = make_app(ROPC_KEY_ENCRYPTION_KEYS=OLD)
    with only_old.app_context(), pytest.raises(ConfigurationError):
        private_parts(only_old)


def test_keys_encrypt_encrypts_keys_stored_before_encryption_was_on(
    make_app: t.Any,
) -> None:
    plain = make_app()
    client = new_client(plain)
    token = login(plain, client)
    [stored] = stored_keys(plain)
    assert json.loads(stored)["d"]  # written without encryption

    app = make_app(ROPC_KEY_ENCRYPTION_KEYS=NEW)
    assert opens_api(app, token)  # unencrypted keys are still read
    result = encrypt(app)
    assert result.exit_code == 0, result.output
    [sealed] = stored_keys(app)
    assert sealed.startswith("fernet:")
    assert opens_api(app, token)
    assert opens_api(app, login(app, client))


@pytest.mark.parametrize(
    "value",
    ["too-short", ["x" * 40, "short"], [], 42, [b"x" * 40]],
    ids=["short", "one-short", "empty-list", "int", "bytes"],
)
def test_unusable_encryption_secrets_are_refused_without_quoting_them(
    value: t.Any,
) -> None:
    app = flask.Flask(__name__)
    app.config["ROPC_KEY_ENCRYPTION_KEYS"] = value
    with pytest.raises(ConfigurationError, match="ROPC_KEY_ENCRYPTION_KEYS") as info:
        ROPC(app)
    assert "too-short" not in str(info.value) and "short'" not in str(info.value)


def test_settings_repr_hides_the_secrets() -> None:
    """Reaches into the app's state (its settings and the key row store's
    cipher) on purpose: their repr is what this test checks."""
    app = flask.Flask(__name__)
    app.config["ROPC_KEY_ENCRYPTION_KEYS"] = NEW
    app.config["ROPC_DATABASE_URI"] = "sqlite://"
    ROPC(app)
    state = get_state(app)
    assert NEW not in repr(state.settings)
    assert NEW not in repr(state.store.keys.cipher)
