"""Private signing keys kept in the database are encrypted at rest.

By default under a key derived from the app's ``SECRET_KEY``, or under
``ROPC_KEY_ENCRYPTION_KEYS``; with neither, ``init_app`` refuses unless
``ROPC_ALLOW_PLAINTEXT_KEYS`` is on. A generated key is stored as a Fernet
token, tokens sign and verify as before, a missing or wrong secret fails
loudly (and never makes a new key), ``flask ropc keys encrypt`` encrypts
existing keys or moves them to a new secret, and no key material reaches
any log, SQLAlchemy's DEBUG output included. Runs on SQLite and, when
configured, PostgreSQL.
"""

from __future__ import annotations

import json
import logging
import secrets
import typing as t

import flask
import pytest
from flask_sqlalchemy import SQLAlchemy
from joserfc.jwk import ECKey

from flask_ropc import ROPC
from flask_ropc import ConfigurationError
from flask_ropc.state import get_state

from conftest import SECRET_KEY
from conftest import OAuthClient
from conftest import Validator
from conftest import basic_auth
from conftest import bearer
from conftest import issue_token
from conftest import kid_of
from conftest import new_client
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
    for config in (
        {},  # SECRET_KEY's key only
        {"ROPC_KEY_ENCRYPTION_KEYS": OLD},
        {"SECRET_KEY": None, "ROPC_ALLOW_PLAINTEXT_KEYS": True},  # no secret
    ):
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


@pytest.mark.parametrize(
    "config",
    [{"ROPC_KEY_ENCRYPTION_KEYS": NEW}, {}],
    ids=["encryption-keys", "secret-key"],
)
def test_keys_encrypt_encrypts_keys_stored_before_encryption_was_on(
    make_app: t.Any, config: dict[str, t.Any]
) -> None:
    # Unencrypted keys: written by an older release, or with the explicit
    # opt-out (encryption is the default now).
    plain = make_app(SECRET_KEY=None, ROPC_ALLOW_PLAINTEXT_KEYS=True)
    client = new_client(plain)
    token = login(plain, client)
    [stored] = stored_keys(plain)
    assert json.loads(stored)["d"]  # written without encryption

    app = make_app(**config)
    assert opens_api(app, token)  # unencrypted keys are still read
    result = encrypt(app)
    assert result.exit_code == 0, result.output
    source = "ROPC_KEY_ENCRYPTION_KEYS" if config else "SECRET_KEY"
    assert source in result.output
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


# -- encrypted by default (#13) ---------------------------------------------------


def test_by_default_a_stored_key_is_encrypted_under_secret_key(
    make_app: t.Any,
) -> None:
    """Only SECRET_KEY is set (as in most Flask apps): the stored key is
    sealed, so a database dump alone forges no token."""
    app = make_app()
    token = login(app, new_client(app))
    assert opens_api(app, token)
    [stored] = stored_keys(app)
    [private] = private_parts(app)
    assert stored.startswith("fernet:")
    assert private not in stored and '"d"' not in stored
    with pytest.raises(ValueError):
        json.loads(stored)


def test_the_key_derived_from_secret_key_differs_from_the_same_secret_as_kek(
    make_app: t.Any,
) -> None:
    """HKDF labels differ: the SECRET_KEY value given as
    ROPC_KEY_ENCRYPTION_KEYS (without SECRET_KEY) decrypts nothing."""
    app = make_app()
    login(app, new_client(app))
    other = make_app(SECRET_KEY=None, ROPC_KEY_ENCRYPTION_KEYS=SECRET_KEY)
    with other.app_context(), pytest.raises(ConfigurationError):
        private_parts(other)
    assert private_parts(make_app())  # the derived key itself still opens it


@pytest.mark.parametrize(
    "secret_key", [None, "", "dev-secret-x"], ids=["unset", "empty", "short"]
)
def test_without_any_secret_init_app_refuses_naming_both_settings(
    tmp_path: t.Any, secret_key: str | None
) -> None:
    app = flask.Flask(__name__, instance_path=str(tmp_path))
    app.config.update(
        SECRET_KEY=secret_key, ROPC_DATABASE_URI=f"sqlite:///{tmp_path / 'k.db'}"
    )
    with pytest.raises(ConfigurationError) as info:
        ROPC(app)
    message = str(info.value)
    for name in ("SECRET_KEY", "ROPC_KEY_ENCRYPTION_KEYS", "ROPC_ALLOW_PLAINTEXT_KEYS"):
        assert name in message
    if secret_key:
        assert secret_key not in message
    assert "ropc" not in app.extensions  # nothing half-registered


def test_keys_from_configuration_need_no_secret(tmp_path: t.Any) -> None:
    app = flask.Flask(__name__, instance_path=str(tmp_path))
    app.config.update(
        ROPC_DATABASE_URI=f"sqlite:///{tmp_path / 'k.db'}",
        ROPC_SIGNING_KEYS=ECKey.generate_key("P-256").as_dict(private=True),
    )
    ROPC(app)
    assert get_state(app).settings.signing_keys


def test_allow_plaintext_keys_stores_them_unencrypted_with_a_warning(
    make_app: t.Any, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.WARNING, logger="flask_ropc"):
        app = make_app(SECRET_KEY=None, ROPC_ALLOW_PLAINTEXT_KEYS=True)
    warnings = [r.getMessage() for r in caplog.records if r.name == "flask_ropc"]
    assert any(
        "ROPC_ALLOW_PLAINTEXT_KEYS" in w and "unencrypted" in w for w in warnings
    )
    assert opens_api(app, login(app, new_client(app)))
    [stored] = stored_keys(app)
    assert json.loads(stored)["d"]
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="flask_ropc"):
        make_app(ROPC_ALLOW_PLAINTEXT_KEYS=True)  # SECRET_KEY set: encrypted
    assert not [r for r in caplog.records if "unencrypted" in r.getMessage()]


def test_allow_plaintext_keys_must_be_a_bool() -> None:
    app = flask.Flask(__name__)
    app.config.update(ROPC_ALLOW_PLAINTEXT_KEYS="yes", SECRET_KEY=SECRET_KEY)
    with pytest.raises(ConfigurationError, match="ROPC_ALLOW_PLAINTEXT_KEYS"):
        ROPC(app)


def test_a_changed_secret_key_loses_no_key_and_names_the_fix(
    make_app: t.Any, caplog: pytest.LogCaptureFixture
) -> None:
    """SECRET_KEY rotated without SECRET_KEY_FALLBACKS: every use of the keys
    fails loudly, naming the kid and the fix, and no new key is made (which
    would sign tokens no API knows and leave two keys active). With the old
    value in SECRET_KEY_FALLBACKS everything works again, and 'keys encrypt'
    moves the keys to the new SECRET_KEY."""
    first = make_app(SECRET_KEY=OLD)
    client = new_client(first)
    token = login(first, client)
    [kid] = [row.kid for row in table_rows(first, "ropc_signing_keys")]
    before = stored_keys(first)

    changed = make_app(SECRET_KEY=NEW)
    http = changed.test_client()
    caplog.clear()
    with caplog.at_level(logging.ERROR, logger="flask_ropc"):
        issued = http.post(
            "/oauth/token", data=password_form(), headers=basic_auth(*client)
        )
        jwks = http.get("/oauth/jwks")
    assert issued.status_code == 500 and issued.json["error"] == "server_error"
    assert jwks.status_code == 500 and jwks.json["error"] == "server_error"
    assert jwks.headers["Cache-Control"] == "no-store"
    assert kid in caplog.text and "SECRET_KEY_FALLBACKS" in caplog.text
    assert OLD not in caplog.text and NEW not in caplog.text
    result = encrypt(changed)
    assert result.exit_code != 0
    assert kid in result.output and "SECRET_KEY_FALLBACKS" in result.output
    assert stored_keys(first) == before  # nothing lost, nothing added

    fallback = make_app(SECRET_KEY=NEW, SECRET_KEY_FALLBACKS=[OLD])
    assert opens_api(fallback, token)
    result = encrypt(fallback)
    assert result.exit_code == 0, result.output
    assert "Encrypted 1 signing key" in result.output

    rotated = make_app(SECRET_KEY=NEW)
    assert opens_api(rotated, token)
    assert kid_of(login(rotated, client)) == kid
    assert len(table_rows(rotated, "ropc_signing_keys")) == 1


# -- no key material in any log (#13) --------------------------------------------


def own_engine_app(
    database_uri: str, instance: str, echo: t.Any, **config: t.Any
) -> tuple[flask.Flask, ROPC, SQLAlchemy]:
    """An app whose Flask-SQLAlchemy engine (``echo`` on) we are given."""
    app = flask.Flask("own_engine", instance_path=instance)
    app.config.update(
        SQLALCHEMY_DATABASE_URI=database_uri,
        SQLALCHEMY_ECHO=echo,
        SECRET_KEY=SECRET_KEY,
    )
    app.config.update(config)
    db = SQLAlchemy()
    db.init_app(app)
    ropc = ROPC(app, db=db)
    ropc.password_validator(Validator())
    app.extensions["test_ropc"] = ropc  # where conftest's table_rows looks

    @app.get("/api/me")
    @ropc.require_token("api")
    def me() -> dict[str, t.Any]:
        return {"ok": True}

    return app, ropc, db


KEY_MODES = {
    "secret-key": {},
    "encryption-keys": {"ROPC_KEY_ENCRYPTION_KEYS": NEW},
    "plaintext": {"SECRET_KEY": None, "ROPC_ALLOW_PLAINTEXT_KEYS": True},
}


@pytest.mark.parametrize("engine", ["ours", "echo-true", "echo-debug"], ids=lambda e: e)
@pytest.mark.parametrize("mode", list(KEY_MODES), ids=lambda m: m)
def test_no_key_material_in_any_log_record_with_sqlalchemy_at_debug(
    database_uri: str,
    make_app: t.Any,
    tmp_path: t.Any,
    caplog: pytest.LogCaptureFixture,
    engine: str,
    mode: str,
) -> None:
    """First key, generate, rotate, tokens, JWKS, API calls and 'keys
    encrypt', with every logger (SQLAlchemy's included) at DEBUG: no private
    ``d``, no JWK JSON and no stored (sealed) value appears in any record."""
    caplog.set_level(logging.DEBUG)
    caplog.set_level(logging.DEBUG, logger="sqlalchemy")
    config = KEY_MODES[mode]
    if engine == "ours":
        app = make_app(**config)
        ropc, db = ropc_of(app), None
    else:
        echo = True if engine == "echo-true" else "debug"
        app, ropc, db = own_engine_app(
            database_uri, str(tmp_path / "own"), echo, **config
        )
    try:
        runner = app.test_cli_runner()
        with app.app_context():
            ropc.create_all()  # the first key
            client, secret = ropc.clients.create("App", scopes=["api"])
        for args in (["generate"], ["rotate"], ["generate", "--alg", "RS256"]):
            result = runner.invoke(args=["ropc", "keys", *args])
            assert result.exit_code == 0, result.output
        token = login(app, OAuthClient(client.client_id, secret))
        assert opens_api(app, token)
        assert app.test_client().get("/oauth/jwks").status_code == 200
        if mode != "plaintext":
            assert encrypt(app).exit_code == 0
        text = caplog.text
        # Our own reads below are logged too: stop capturing first.
        caplog.set_level(logging.WARNING, logger="sqlalchemy")
        rows = table_rows(app, "ropc_signing_keys")
        with app.app_context():
            keys = get_state(app).store.keys
            jwks = [keys.private_jwk(row) for row in rows]
    finally:
        if db is not None:
            with app.app_context():
                db.engine.dispose()

    assert len(rows) == 3
    # SQLAlchemy did speak about our key rows (else this test proves nothing).
    assert "ropc_signing_keys" in text
    if engine != "echo-true":
        assert "Row (" in text  # result rows are logged at DEBUG
    for row, jwk_json in zip(rows, jwks, strict=True):
        assert jwk_json not in text
        assert json.loads(jwk_json)["d"] not in text
        assert row.private_jwk not in text
        assert row.private_jwk[:60] not in text  # not even a truncated part
