"""Configuration checked at ``init_app``: typos warn, absurd values fail.

A mistyped ``ROPC_*`` key would otherwise be ignored in silence (the default
applies and nobody notices); a value no deployment means, or two values that
contradict each other, must stop the app at start-up with a
:class:`~flask_ropc.ConfigurationError` naming the key, before any request.
"""

from __future__ import annotations

import json
import typing as t

import flask
import pytest
from joserfc.jwk import ECKey

import flask_ropc
from flask_ropc import ConfigurationError

from conftest import SECRET_KEY


def _init(tmp_path: t.Any, **config: t.Any) -> flask.Flask:
    """An app with ``config`` on a real SQLite file; ``ROPC(app)`` run on it."""
    app = flask.Flask("config_test", instance_path=str(tmp_path / "instance"))
    app.config.update(
        ROPC_DATABASE_URI=f"sqlite:///{tmp_path / 'config.sqlite3'}",
        ROPC_ISSUER="https://auth.example.com",
        SECRET_KEY=SECRET_KEY,
        **config,
    )
    flask_ropc.ROPC(app)
    return app


# -- unknown keys ---------------------------------------------------------------


@pytest.mark.parametrize(
    ("typo", "meant"),
    [
        ("ROPC_ACCESS_TOKEN_LIFETIM", "ROPC_ACCESS_TOKEN_LIFETIME"),
        ("ROPC_THROTTLE_USERNAME_LIMITS", "ROPC_THROTTLE_USERNAME_LIMIT"),
        ("ROPC_SIGNING_KEY", "ROPC_SIGNING_KEYS"),
    ],
)
def test_a_mistyped_key_warns_with_the_closest_known_name(
    tmp_path: t.Any, typo: str, meant: str
) -> None:
    with pytest.warns(UserWarning) as caught:
        _init(tmp_path, **{typo: 60})
    messages = [str(w.message) for w in caught]
    assert messages == [
        f"{typo} is not a Flask-ROPC setting and is ignored; did you mean {meant}?"
    ]


def test_an_unknown_key_with_nothing_close_warns_without_a_guess(
    tmp_path: t.Any,
) -> None:
    with pytest.warns(UserWarning, match="ROPC_ZZZ is not a Flask-ROPC setting"):
        app = _init(tmp_path, ROPC_ZZZ=1)
    # The app still starts: a stray key is a warning, not an error.
    assert "ropc" in app.extensions


def test_known_keys_and_other_extensions_keys_do_not_warn(tmp_path: t.Any) -> None:
    # Warnings are errors in this suite: any warning fails the test.
    app = _init(
        tmp_path,
        ROPC_ACCESS_TOKEN_LIFETIME=600,
        ROPCX_SETTING=1,  # not our prefix
        SQLALCHEMY_ECHO=False,
    )
    assert app.config["ROPC_ACCESS_TOKEN_LIFETIME"] == 600


# -- absurd and contradicting values ------------------------------------------


@pytest.mark.parametrize(
    ("key", "value"),
    [
        ("ROPC_ACCESS_TOKEN_LIFETIME", 10**12),
        ("ROPC_ACCESS_TOKEN_LIFETIME", 365 * 86400 + 1),
        ("ROPC_REFRESH_TOKEN_ABSOLUTE_LIFETIME", 10**12),
        ("ROPC_THROTTLE_LOCKOUT_MAX", 10**12),
        ("ROPC_THROTTLE_USERNAME_WINDOW", 10**12),
        ("ROPC_JWKS_MAX_AGE", 10**12),
    ],
)
def test_a_duration_beyond_its_bound_is_a_configuration_error(
    tmp_path: t.Any, key: str, value: int
) -> None:
    with pytest.raises(ConfigurationError, match=f"^{key} must be at most"):
        _init(tmp_path, **{key: value})


def test_the_bounds_themselves_are_accepted(tmp_path: t.Any) -> None:
    app = _init(
        tmp_path,
        ROPC_ACCESS_TOKEN_LIFETIME=365 * 86400,
        ROPC_REFRESH_TOKEN_SLIDING_LIFETIME=3650 * 86400,
        ROPC_REFRESH_TOKEN_ABSOLUTE_LIFETIME=3650 * 86400,
    )
    assert "ropc" in app.extensions


def test_a_sliding_refresh_lifetime_longer_than_the_absolute_one_fails(
    tmp_path: t.Any,
) -> None:
    with pytest.raises(ConfigurationError) as caught:
        _init(
            tmp_path,
            ROPC_REFRESH_TOKEN_SLIDING_LIFETIME=90 * 86400,
            ROPC_REFRESH_TOKEN_ABSOLUTE_LIFETIME=30 * 86400,
        )
    message = str(caught.value)
    assert message.startswith("ROPC_REFRESH_TOKEN_SLIDING_LIFETIME (7776000)")
    assert "ROPC_REFRESH_TOKEN_ABSOLUTE_LIFETIME (2592000)" in message


def test_a_lockout_base_above_its_maximum_fails(tmp_path: t.Any) -> None:
    with pytest.raises(ConfigurationError, match="^ROPC_THROTTLE_LOCKOUT_BASE"):
        _init(tmp_path, ROPC_THROTTLE_LOCKOUT_BASE=7200, ROPC_THROTTLE_LOCKOUT_MAX=3600)


def test_equal_pairs_are_consistent(tmp_path: t.Any) -> None:
    app = _init(
        tmp_path,
        ROPC_REFRESH_TOKEN_SLIDING_LIFETIME=86400,
        ROPC_REFRESH_TOKEN_ABSOLUTE_LIFETIME=86400,
        ROPC_THROTTLE_LOCKOUT_BASE=600,
        ROPC_THROTTLE_LOCKOUT_MAX=600,
    )
    assert "ropc" in app.extensions


# -- signing keys that are not keys ---------------------------------------------


@pytest.mark.parametrize(
    "value",
    [
        pytest.param("not a key", id="plain-text"),
        pytest.param(["not a key"], id="in-a-list"),
        pytest.param('{"kty": "EC", "crv": ', id="broken-json"),
        pytest.param("[1, 2]", id="json-not-an-object"),
        pytest.param([42], id="not-a-string"),
    ],
)
def test_a_signing_key_that_is_neither_pem_nor_jwk_names_the_key(
    tmp_path: t.Any, value: t.Any
) -> None:
    with pytest.raises(ConfigurationError, match="^ROPC_SIGNING_KEYS: ") as caught:
        _init(tmp_path, ROPC_SIGNING_KEYS=value)
    # The value is a would-be private key: never quoted back.
    assert "not a key" not in str(caught.value)
    assert '"kty"' not in str(caught.value)


def test_the_bad_entry_of_a_key_list_is_named(tmp_path: t.Any) -> None:
    good = json.dumps(ECKey.generate_key("P-256").as_dict(private=True))
    with pytest.raises(ConfigurationError, match="^ROPC_SIGNING_KEYS, entry 2: "):
        _init(tmp_path, ROPC_SIGNING_KEYS=[good, "not a key"])
