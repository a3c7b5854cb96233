"""The password validator contract, and the order of checks around it.

The validator is the application's code: it must only ever see requests from
an authenticated client that may use the password grant and the requested
scopes, and whatever it returns or raises must become a clean OAuth answer.
"""

from __future__ import annotations

import logging
import re
import typing as t
from collections.abc import Iterator

import flask
import pytest
import sqlalchemy as sa

from flask_ropc import ROPC
from flask_ropc import GrantResult
from flask_ropc import PasswordRequest

from conftest import SECRET_KEY
from conftest import USERS
from conftest import OAuthClient
from conftest import Validator
from conftest import basic_auth
from conftest import client_snapshot
from conftest import count_rows
from conftest import dispose_app
from conftest import password_form
from conftest import ropc_of

TOKEN_URL = "/oauth/token"
ANN_PASSWORD = USERS["ann"][0]

# RFC 6749 §5.2: error_description = 1*( %x20-21 / %x23-5B / %x5D-7E )
RFC_DESCRIPTION = re.compile(r"[\x20-\x21\x23-\x5b\x5d-\x7e]*")


def use_validator(app: flask.Flask, func: t.Callable[..., t.Any]) -> None:
    """Replace the app's password validator."""
    ropc_of(app).password_validator(func)


def token_request(
    http: t.Any, client: OAuthClient, form: dict[str, str] | None = None, **kw: t.Any
) -> t.Any:
    assert client.secret is not None
    return http.post(
        TOKEN_URL,
        data=form if form is not None else password_form(),
        headers={**basic_auth(client.client_id, client.secret), **kw},
    )


def me(http: t.Any, response: t.Any) -> dict[str, t.Any]:
    """What /api/me reports for the token in a successful token response."""
    assert response.status_code == 200, response.get_data(as_text=True)
    token = response.get_json()["access_token"]
    answer = http.get("/api/me", headers={"Authorization": f"Bearer {token}"})
    assert answer.status_code == 200
    body: dict[str, t.Any] = answer.get_json()
    return body


def assert_server_error(response: t.Any) -> None:
    assert response.status_code == 500
    assert response.is_json
    assert response.get_json()["error"] == "server_error"


# -- order of checks --------------------------------------------------------

PASSWORDS = {
    "right-password": password_form(),
    "wrong-password": password_form(password="not-anns-password"),
    "unknown-user": password_form("nobody"),
}


@pytest.mark.parametrize("form", PASSWORDS.values(), ids=PASSWORDS.keys())
def test_disallowed_scope_is_invalid_scope_before_the_password_is_checked(
    app: flask.Flask,
    http: t.Any,
    make_client: t.Callable[..., OAuthClient],
    validator: Validator,
    form: dict[str, str],
) -> None:
    """No password oracle for a client asking for a scope it may not have."""
    client = make_client(scopes=["api"])
    rows, snapshot = count_rows(app), client_snapshot(app)

    response = token_request(http, client, {**form, "scope": "api admin"})

    assert response.status_code == 400
    assert response.get_json()["error"] == "invalid_scope"
    assert validator.calls == []
    assert count_rows(app) == rows
    assert client_snapshot(app) == snapshot


@pytest.mark.parametrize("form", PASSWORDS.values(), ids=PASSWORDS.keys())
def test_unauthenticated_client_is_invalid_client_before_scope_and_password(
    app: flask.Flask,
    http: t.Any,
    make_client: t.Callable[..., OAuthClient],
    validator: Validator,
    form: dict[str, str],
) -> None:
    client = make_client(scopes=["api"])
    rows, snapshot = count_rows(app), client_snapshot(app)

    response = http.post(
        TOKEN_URL,
        data={**form, "scope": "admin"},
        headers=basic_auth(client.client_id, "not-the-client-secret"),
    )

    assert response.status_code == 401
    assert response.get_json()["error"] == "invalid_client"
    assert validator.calls == []
    assert count_rows(app) == rows
    assert client_snapshot(app) == snapshot


def test_client_without_the_password_grant_is_refused_before_the_password_check(
    app: flask.Flask,
    http: t.Any,
    make_client: t.Callable[..., OAuthClient],
    validator: Validator,
) -> None:
    client = make_client(grant_types=[])
    rows, snapshot = count_rows(app), client_snapshot(app)

    response = token_request(http, client, password_form(scope="not-allowed"))

    assert response.status_code == 400
    assert response.get_json()["error"] == "unauthorized_client"
    assert validator.calls == []
    assert count_rows(app) == rows
    assert client_snapshot(app) == snapshot


# -- what the validator returns ---------------------------------------------


def test_validator_returning_none_is_invalid_grant(
    app: flask.Flask, http: t.Any, oauth_client: OAuthClient, validator: Validator
) -> None:
    rows, snapshot = count_rows(app), client_snapshot(app)

    response = token_request(http, oauth_client, password_form(password="wrong"))

    assert response.status_code == 400
    assert response.get_json() == {
        "error": "invalid_grant",
        "error_description": "invalid username or password",
    }
    assert len(validator.calls) == 1
    assert count_rows(app) == rows
    assert client_snapshot(app) == snapshot


def test_unknown_user_and_wrong_password_get_byte_identical_answers(
    http: t.Any, oauth_client: OAuthClient
) -> None:
    """The token endpoint is no oracle for which usernames exist."""
    unknown = token_request(http, oauth_client, password_form("nobody"))
    wrong = token_request(http, oauth_client, password_form(password="wrong"))
    assert unknown.status_code == wrong.status_code == 400
    assert unknown.get_data() == wrong.get_data()
    assert unknown.headers.get("Content-Type") == wrong.headers.get("Content-Type")


def test_validator_returning_a_string_grants_a_token_to_that_subject(
    app: flask.Flask, http: t.Any, oauth_client: OAuthClient
) -> None:
    use_validator(app, lambda req: "subject-from-string")
    response = token_request(http, oauth_client)
    assert me(http, response)["sub"] == "subject-from-string"


def test_success_claims_reach_the_token_and_extra_reaches_the_response(
    app: flask.Flask, http: t.Any, oauth_client: OAuthClient
) -> None:
    def validate(req: PasswordRequest) -> GrantResult:
        return GrantResult.success(
            "user-77",
            claims={"role": "admin", "tenant": 7, "groups": ["a", "b"]},
            extra={"display_name": "Ann Example", "password_expires_in": 86400},
        )

    use_validator(app, validate)
    response = token_request(http, oauth_client)

    body = response.get_json()
    assert body["display_name"] == "Ann Example"
    assert body["password_expires_in"] == 86400
    assert body["token_type"] == "Bearer"
    assert body["access_token"]
    seen = me(http, response)
    assert seen["sub"] == "user-77"
    assert seen["claims"] == {"role": "admin", "tenant": 7, "groups": ["a", "b"]}


@pytest.mark.parametrize("field", ["access_token", "scope", "token_type", "expires_in"])
def test_success_extra_overwriting_a_standard_field_is_a_server_error(
    app: flask.Flask,
    http: t.Any,
    oauth_client: OAuthClient,
    field: str,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """GrantResult.success raises ValueError inside the validator: 500, no token."""

    def validate(req: PasswordRequest) -> GrantResult:
        return GrantResult.success("user-1", extra={field: "attacker-chosen"})

    use_validator(app, validate)
    rows = count_rows(app)
    with caplog.at_level(logging.ERROR, logger="flask_ropc"):
        response = token_request(http, oauth_client)

    assert_server_error(response)
    assert "attacker-chosen" not in response.get_data(as_text=True)
    assert count_rows(app) == rows
    assert "ValueError" in caplog.text


def test_validator_error_with_status_and_extra_fields(
    app: flask.Flask, http: t.Any, oauth_client: OAuthClient
) -> None:
    def validate(req: PasswordRequest) -> GrantResult:
        return GrantResult.error(
            "mfa_required",
            "Multi-factor authentication required",
            extra={"mfa_token": "abc"},
            status_code=403,
        )

    use_validator(app, validate)
    rows, snapshot = count_rows(app), client_snapshot(app)

    response = token_request(http, oauth_client)

    assert response.status_code == 403
    assert response.is_json
    assert response.get_json() == {
        "error": "mfa_required",
        "error_description": "Multi-factor authentication required",
        "mfa_token": "abc",
    }
    assert count_rows(app) == rows
    assert client_snapshot(app) == snapshot


def test_validator_invalid_grant_with_own_description(
    app: flask.Flask, http: t.Any, oauth_client: OAuthClient
) -> None:
    use_validator(app, lambda req: GrantResult.error("invalid_grant", "Account locked"))
    rows = count_rows(app)

    response = token_request(http, oauth_client)

    assert response.status_code == 400
    assert response.get_json() == {
        "error": "invalid_grant",
        "error_description": "Account locked",
    }
    assert count_rows(app) == rows


@pytest.mark.parametrize(
    "description",
    [
        'Das Passwort ist "abgelaufen" \\ ü',
        "Konto gesperrt ✓",
        "line one\nline two\ttab",
    ],
)
def test_validator_description_with_forbidden_characters_is_sanitised(
    app: flask.Flask,
    http: t.Any,
    oauth_client: OAuthClient,
    caplog: pytest.LogCaptureFixture,
    description: str,
) -> None:
    """A friendly message with quotes or umlauts must not become a 500."""
    use_validator(app, lambda req: GrantResult.error("invalid_grant", description))
    rows = count_rows(app)

    with caplog.at_level(logging.WARNING, logger="flask_ropc"):
        response = token_request(http, oauth_client)

    assert response.status_code == 400
    assert response.is_json
    body = response.get_json()
    assert body["error"] == "invalid_grant"
    assert body["error_description"]
    assert RFC_DESCRIPTION.fullmatch(body["error_description"])
    assert any(
        r.name == "flask_ropc" and r.levelno == logging.WARNING for r in caplog.records
    )
    assert count_rows(app) == rows


# -- what the validator receives ---------------------------------------------


@pytest.mark.parametrize(
    ("scope", "granted"),
    [
        (None, ("api", "profile")),
        ("profile", ("profile",)),
        ("profile api", ("profile", "api")),
    ],
)
def test_validator_receives_the_password_request(
    app: flask.Flask,
    http: t.Any,
    oauth_client: OAuthClient,
    scope: str | None,
    granted: tuple[str, ...],
) -> None:
    seen: dict[str, t.Any] = {}

    def validate(req: PasswordRequest) -> str:
        seen["req"] = req
        seen["user_agent"] = req.request.headers["User-Agent"]
        seen["path"] = (req.request.method, req.request.path)
        return "user-1"

    use_validator(app, validate)
    form = password_form() if scope is None else password_form(scope=scope)
    response = token_request(http, oauth_client, form, **{"User-Agent": "Probe/1.0"})

    assert response.status_code == 200
    req = seen["req"]
    assert isinstance(req, PasswordRequest)
    assert req.username == "ann"
    assert req.password == ANN_PASSWORD
    assert req.client.client_id == oauth_client.client_id
    assert req.scopes == granted
    assert isinstance(req.request, flask.Request)
    assert seen["path"] == ("POST", TOKEN_URL)
    assert seen["user_agent"] == "Probe/1.0"
    assert ANN_PASSWORD not in repr(req)


def test_async_validator_works(
    app: flask.Flask, http: t.Any, oauth_client: OAuthClient
) -> None:
    """``password_validator`` documents that the validator "may be async"."""

    async def validate(req: PasswordRequest) -> GrantResult:
        return GrantResult.success("user-async", claims={"via": "coroutine"})

    use_validator(app, validate)
    seen = me(http, token_request(http, oauth_client))
    assert seen["sub"] == "user-async"
    assert seen["claims"] == {"via": "coroutine"}


# -- validator failures -----------------------------------------------------


def test_validator_exception_is_a_500_that_leaks_no_password(
    app: flask.Flask,
    http: t.Any,
    oauth_client: OAuthClient,
    caplog: pytest.LogCaptureFixture,
) -> None:
    def validate(req: PasswordRequest) -> t.NoReturn:
        raise RuntimeError(f"db down for {req.password}")

    use_validator(app, validate)
    rows = count_rows(app)

    with caplog.at_level(logging.ERROR, logger="flask_ropc"):
        response = token_request(http, oauth_client)

    assert_server_error(response)
    text = response.get_data(as_text=True)
    assert ANN_PASSWORD not in text
    assert "Traceback" not in text
    assert "RuntimeError" not in text
    assert "db down" not in text
    assert count_rows(app) == rows
    assert any(r.levelno == logging.ERROR for r in caplog.records)
    assert "RuntimeError: db down for [redacted]" in caplog.text
    assert ANN_PASSWORD not in caplog.text


@pytest.mark.parametrize("value", [42, "", True, b"user-1", ["user-1"]])
def test_validator_returning_an_invalid_value_is_a_logged_500(
    app: flask.Flask,
    http: t.Any,
    oauth_client: OAuthClient,
    caplog: pytest.LogCaptureFixture,
    value: object,
) -> None:
    use_validator(app, lambda req: value)
    rows = count_rows(app)

    with caplog.at_level(logging.ERROR, logger="flask_ropc"):
        response = token_request(http, oauth_client)

    assert_server_error(response)
    assert count_rows(app) == rows
    assert "must return a GrantResult" in caplog.text


@pytest.fixture
def app_without_validator(database_uri: str, tmp_path: t.Any) -> Iterator[flask.Flask]:
    """An app with ROPC set up and tables created, but no password validator."""
    application = flask.Flask("no_validator", instance_path=str(tmp_path / "inst"))
    application.config.update(
        TESTING=True, ROPC_DATABASE_URI=database_uri, SECRET_KEY=SECRET_KEY
    )
    ropc = ROPC(application)
    application.extensions["test_ropc"] = ropc  # what ropc_of() reads
    with application.app_context():
        ropc.create_all()
    yield application
    dispose_app(application)


def test_missing_validator_is_a_500_naming_password_validator(
    app_without_validator: flask.Flask, caplog: pytest.LogCaptureFixture
) -> None:
    app = app_without_validator
    with app.app_context():
        client, secret = ropc_of(app).clients.create("No validator")
    assert secret is not None
    rows = count_rows(app)

    with caplog.at_level(logging.ERROR, logger="flask_ropc"):
        response = app.test_client().post(
            TOKEN_URL,
            data=password_form(),
            headers=basic_auth(client.client_id, secret),
        )

    assert_server_error(response)
    assert count_rows(app) == rows
    assert "password_validator" in caplog.text


def _warnings(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]


def test_a_missing_validator_is_warned_about_at_the_first_request(
    app_without_validator: flask.Flask, caplog: pytest.LogCaptureFixture
) -> None:
    """Any first request, before anyone tries to log in: the decorators run
    after ``ROPC(app)``, so that is the first moment we know. Once only."""
    http = app_without_validator.test_client()
    with caplog.at_level(logging.WARNING, logger="flask_ropc"):
        assert http.get("/oauth/jwks").status_code == 200
    assert [w for w in _warnings(caplog) if "@ropc.password_validator" in w] == [
        "no password validator is registered: decorate a function with "
        "@ropc.password_validator; until then every password grant answers 500"
    ]
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="flask_ropc"):
        http.get("/oauth/jwks")
    assert not [w for w in _warnings(caplog) if "password_validator" in w]


def test_an_app_with_a_validator_gets_no_first_request_warning(
    app: flask.Flask, http: t.Any, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.WARNING, logger="flask_ropc"):
        assert http.get("/oauth/jwks").status_code == 200
    assert not [w for w in _warnings(caplog) if "password_validator" in w]


def test_a_validator_returning_a_wrong_type_is_warned_naming_the_decorator(
    app: flask.Flask,
    http: t.Any,
    oauth_client: OAuthClient,
    caplog: pytest.LogCaptureFixture,
) -> None:
    def check_password(req: PasswordRequest) -> t.Any:
        return 42

    use_validator(app, check_password)
    with caplog.at_level(logging.WARNING, logger="flask_ropc"):
        response = token_request(http, oauth_client)

    assert_server_error(response)
    warned = [w for w in _warnings(caplog) if "@ropc.password_validator" in w]
    assert len(warned) == 1
    assert "check_password" in warned[0]
    assert "returned int" in warned[0]


# -- database unavailable ---------------------------------------------------


@pytest.fixture(params=["sqlite-missing-directory", "postgresql-closed-port"])
def app_without_database(
    request: pytest.FixtureRequest, tmp_path: t.Any
) -> Iterator[flask.Flask]:
    """An app whose database cannot be reached (tables never created)."""
    uri = {
        "sqlite-missing-directory": f"sqlite:///{tmp_path}/no-such-dir/ropc.db",
        "postgresql-closed-port": "postgresql+psycopg://postgres@127.0.0.1:1/test",
    }[request.param]
    application = flask.Flask("no_database", instance_path=str(tmp_path / "inst"))
    application.config.update(
        TESTING=True, ROPC_DATABASE_URI=uri, SECRET_KEY=SECRET_KEY
    )
    ropc = ROPC(application)
    validator = Validator()
    ropc.password_validator(validator)
    application.extensions["test_validator"] = validator
    application.extensions["test_ropc"] = ropc  # what ropc_of() reads
    yield application
    with application.app_context():
        assert ropc.engine is not None
        ropc.dispose()


def test_unreachable_database_is_503_with_retry_after(
    app_without_database: flask.Flask, caplog: pytest.LogCaptureFixture
) -> None:
    app = app_without_database
    with caplog.at_level(logging.ERROR, logger="flask_ropc"):
        response = app.test_client().post(
            TOKEN_URL,
            data=password_form(),
            headers=basic_auth("some-client", "some-client-secret"),
        )

    assert response.status_code == 503
    assert response.is_json
    assert response.get_json()["error"] == "temporarily_unavailable"
    assert int(response.headers["Retry-After"]) > 0
    assert app.extensions["test_validator"].calls == []
    assert "database unavailable" in caplog.text
    with pytest.raises(sa.exc.OperationalError):
        with app.app_context(), ropc_of(app).engine.connect():
            pass
