"""The shape of token requests and responses at ``POST /oauth/token``.

Covers RFC 6749 §3.2 (the endpoint), §4.3.2 (the password grant request),
§5.1 (success) and §5.2 (errors), through the Flask test client and the real
database (SQLite, and PostgreSQL when ``ROPC_TEST_DATABASE_URL`` is set).
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import re
import typing as t
from collections.abc import Iterator
from http.client import HTTPConnection
from urllib.parse import quote_plus
from urllib.parse import urlencode
from urllib.parse import urlsplit

import flask
import pytest

from conftest import USERS
from conftest import basic_auth
from conftest import client_snapshot
from conftest import count_rows
from conftest import password_form
from conftest import ropc_of
from conftest import table_rows

TOKEN_URL = "/oauth/token"
FORM = "application/x-www-form-urlencoded"

# RFC 6749 §5.2: error_description is 1*( %x20-21 / %x23-5B / %x5D-7E ).
ERROR_DESCRIPTION = re.compile(r"[\x20\x21\x23-\x5b\x5d-\x7e]+")


# -- fixtures -----------------------------------------------------------------


# -- helpers ------------------------------------------------------------------


@contextlib.contextmanager
def nothing_written(app: flask.Flask) -> Iterator[None]:
    """Assert that the block leaves every row (and last_used_at) unchanged."""
    rows, clients = count_rows(app), client_snapshot(app)
    yield
    assert count_rows(app) == rows
    assert client_snapshot(app) == clients


def assert_oauth_error(response: t.Any, status: int, error: str) -> dict[str, t.Any]:
    """Check an RFC 6749 §5.2 error response and return its JSON body."""
    assert response.status_code == status, response.get_data(as_text=True)
    assert response.mimetype == "application/json"
    assert response.headers["Cache-Control"] == "no-store"
    assert response.headers["Pragma"] == "no-cache"
    body = response.get_json()
    assert body["error"] == error
    assert set(body) <= {"error", "error_description", "error_uri"}
    description = body.get("error_description")
    assert isinstance(description, str), "error_description is missing"
    assert ERROR_DESCRIPTION.fullmatch(description), description
    return t.cast(dict[str, t.Any], body)


def post_token(http: t.Any, client: t.Any, **form: str) -> t.Any:
    """POST a password grant for ann, with Basic client auth, plus ``form``."""
    return http.post(TOKEN_URL, data=password_form(**form), headers=basic_auth(*client))


def post_raw(http: t.Any, body: bytes, client: t.Any | None = None) -> t.Any:
    """POST ``body`` as-is with the form content type."""
    headers = basic_auth(*client) if client is not None else {}
    return http.post(TOKEN_URL, data=body, content_type=FORM, headers=headers)


# -- success (RFC 6749 §5.1) --------------------------------------------------


def test_success_response_has_exactly_the_rfc_fields_and_validator_extra(
    app: flask.Flask, http: t.Any, oauth_client: t.Any
) -> None:
    response = post_token(http, oauth_client)

    assert response.status_code == 200
    assert response.mimetype == "application/json"
    body = response.get_json()
    assert set(body) == {
        "access_token",
        "token_type",
        "expires_in",
        "scope",
        "display_name",
    }
    assert body["token_type"] == "Bearer"
    assert body["expires_in"] == 3600
    assert body["expires_in"] == app.config["ROPC_ACCESS_TOKEN_LIFETIME"]
    assert body["scope"] == "api profile"
    assert body["display_name"] == "Ann"


def test_success_response_forbids_caching(http: t.Any, oauth_client: t.Any) -> None:
    """RFC 6749 §5.1: tokens must not be stored by caches."""
    response = post_token(http, oauth_client)

    assert response.status_code == 200
    assert response.headers["Cache-Control"] == "no-store"
    assert response.headers["Pragma"] == "no-cache"


def test_client_access_token_lifetime_overrides_the_default(
    http: t.Any, make_client: t.Any
) -> None:
    client = make_client(access_token_lifetime=600)

    response = post_token(http, client)

    assert response.status_code == 200
    assert response.get_json()["expires_in"] == 600


@pytest.mark.parametrize("app_config", [{"ROPC_ACCESS_TOKEN_LIFETIME": 120}])
def test_configured_access_token_lifetime_is_expires_in(
    http: t.Any, oauth_client: t.Any
) -> None:
    response = post_token(http, oauth_client)

    assert response.status_code == 200
    assert response.get_json()["expires_in"] == 120


def test_issued_token_opens_a_protected_view(http: t.Any, oauth_client: t.Any) -> None:
    token = post_token(http, oauth_client).get_json()["access_token"]

    response = http.get("/api/me", headers={"Authorization": f"Bearer {token}"})

    assert response.status_code == 200
    me = response.get_json()
    assert me["sub"] == USERS["ann"][1]
    assert me["client_id"] == oauth_client.client_id
    assert me["claims"] == {"role": "member"}


def test_access_token_is_stored_only_as_its_sha256_digest(
    app: flask.Flask, http: t.Any, oauth_client: t.Any
) -> None:
    token = post_token(http, oauth_client).get_json()["access_token"]

    rows = table_rows(app, "ropc_access_tokens")
    assert len(rows) == 1
    assert rows[0].token_digest == hashlib.sha256(token.encode()).hexdigest()
    stored = [str(value) for row in rows for value in row]
    stored += [str(value) for row in client_snapshot(app) for value in row]
    assert not any(token in value for value in stored)


def test_reference_tokens_are_long_random_and_distinct(
    app: flask.Flask, http: t.Any, make_client: t.Any
) -> None:
    """256 bits of url-safe base64 is at least 43 characters."""
    client = make_client(access_token_format="reference")
    tokens = [post_token(http, client).get_json()["access_token"] for _ in range(3)]

    for token in tokens:
        assert re.fullmatch(r"[A-Za-z0-9_-]{43,}", token), token
    assert len(set(tokens)) == 3
    assert count_rows(app)["ropc_access_tokens"] == 3


def test_success_marks_the_client_as_used(
    app: flask.Flask, http: t.Any, oauth_client: t.Any
) -> None:
    """The counterpart of the failure tests: a success does write."""
    before = count_rows(app)

    assert post_token(http, oauth_client).status_code == 200

    assert count_rows(app)["ropc_access_tokens"] == before["ropc_access_tokens"] + 1
    with app.app_context():
        client = ropc_of(app).clients.require(oauth_client.client_id)
    assert client.last_used_at is not None


# -- HTTP method --------------------------------------------------------------


@pytest.mark.parametrize("method", ["GET", "PUT", "PATCH", "DELETE", "OPTIONS"])
def test_methods_other_than_post_are_405_json_with_allow_post(
    app: flask.Flask, http: t.Any, oauth_client: t.Any, method: str
) -> None:
    with nothing_written(app):
        response = http.open(
            TOKEN_URL,
            method=method,
            data=password_form(),
            headers=basic_auth(*oauth_client),
        )

    assert_oauth_error(response, 405, "invalid_request")
    assert response.headers["Allow"] == "POST"


def test_head_is_405_with_allow_post(app: flask.Flask, http: t.Any) -> None:
    response = http.head(TOKEN_URL)

    assert response.status_code == 405
    assert response.headers["Allow"] == "POST"
    assert response.headers["Cache-Control"] == "no-store"


# -- body encoding ------------------------------------------------------------


@pytest.mark.parametrize(
    "kwargs",
    [
        pytest.param({"json": password_form()}, id="json"),
        pytest.param(
            {"data": password_form(), "content_type": "multipart/form-data"},
            id="multipart",
        ),
        pytest.param(
            {"data": urlencode(password_form()), "content_type": "text/plain"},
            id="text-plain",
        ),
        pytest.param(
            {"data": urlencode(password_form()).encode()}, id="no-content-type"
        ),
    ],
)
def test_body_that_is_not_form_urlencoded_is_invalid_request(
    app: flask.Flask,
    http: t.Any,
    oauth_client: t.Any,
    validator: t.Any,
    kwargs: dict[str, t.Any],
) -> None:
    with nothing_written(app):
        response = http.post(TOKEN_URL, headers=basic_auth(*oauth_client), **kwargs)

    assert_oauth_error(response, 400, "invalid_request")
    assert validator.calls == []


@pytest.mark.parametrize(
    "content_type",
    [
        "application/x-www-form-urlencoded; charset=UTF-8",
        "application/x-www-form-urlencoded;charset=utf-8",
        "Application/X-WWW-Form-URLEncoded",
    ],
)
def test_form_content_type_with_parameters_or_other_case_is_accepted(
    http: t.Any, oauth_client: t.Any, content_type: str
) -> None:
    response = http.post(
        TOKEN_URL,
        data=urlencode(password_form()),
        content_type=content_type,
        headers=basic_auth(*oauth_client),
    )

    assert response.status_code == 200, response.get_data(as_text=True)


@pytest.mark.parametrize("name", ["grant_type", "username", "password", "scope"])
def test_repeated_parameter_is_invalid_request(
    app: flask.Flask, http: t.Any, oauth_client: t.Any, validator: t.Any, name: str
) -> None:
    """RFC 6749 §3.2: parameters MUST NOT be included more than once."""
    form = password_form(scope="api")
    pairs = list(form.items()) + [(name, form[name])]

    with nothing_written(app):
        response = post_raw(http, urlencode(pairs).encode(), oauth_client)

    body = assert_oauth_error(response, 400, "invalid_request")
    assert name in body["error_description"]
    assert validator.calls == []


def test_repeated_client_id_is_invalid_request(
    app: flask.Flask, http: t.Any, make_client: t.Any, validator: t.Any
) -> None:
    public = make_client(auth_method="none")
    pairs = list(password_form().items())
    pairs += [("client_id", public.client_id)] * 2

    with nothing_written(app):
        response = post_raw(http, urlencode(pairs).encode())

    body = assert_oauth_error(response, 400, "invalid_request")
    assert "client_id" in body["error_description"]
    assert validator.calls == []


@pytest.mark.parametrize(
    "name",
    ["grant_type", "scope", "client_id", "username", "password", "client_secret"],
)
def test_oauth_parameter_in_query_string_is_invalid_request(
    app: flask.Flask, http: t.Any, oauth_client: t.Any, validator: t.Any, name: str
) -> None:
    """Even with a valid body: the query string ends up in logs (CWE-598)."""
    values = {
        "grant_type": "password",
        "scope": "api",
        "client_id": oauth_client.client_id,
        "username": "ann",
        "password": USERS["ann"][0],
        "client_secret": oauth_client.secret,
    }
    url = f"{TOKEN_URL}?{urlencode({name: values[name]})}"

    with nothing_written(app):
        response = http.post(
            url, data=password_form(), headers=basic_auth(*oauth_client)
        )

    assert_oauth_error(response, 400, "invalid_request")
    assert validator.calls == []


def test_unrelated_query_parameter_is_ignored(http: t.Any, oauth_client: t.Any) -> None:
    response = http.post(
        f"{TOKEN_URL}?utm_source=app",
        data=password_form(),
        headers=basic_auth(*oauth_client),
    )

    assert response.status_code == 200
    assert "access_token" in response.get_json()


# -- grant type ---------------------------------------------------------------


@pytest.mark.parametrize("grant_type", [None, ""], ids=["absent", "empty"])
def test_missing_grant_type_is_invalid_request(
    app: flask.Flask,
    http: t.Any,
    oauth_client: t.Any,
    validator: t.Any,
    grant_type: str | None,
) -> None:
    form = password_form()
    if grant_type is None:
        del form["grant_type"]
    else:
        form["grant_type"] = grant_type

    with nothing_written(app):
        response = http.post(TOKEN_URL, data=form, headers=basic_auth(*oauth_client))

    assert_oauth_error(response, 400, "invalid_request")
    assert validator.calls == []


@pytest.mark.parametrize(
    "grant_type",
    [
        "authorization_code",
        "client_credentials",
        "urn:ietf:params:oauth:grant-type:jwt-bearer",
        "foo",
        "Password",
        'pass"word',
        "pässword",
    ],
)
def test_unknown_grant_type_is_unsupported_grant_type(
    app: flask.Flask,
    http: t.Any,
    oauth_client: t.Any,
    validator: t.Any,
    grant_type: str,
) -> None:
    """Grant types are case-sensitive; the description stays RFC-safe ASCII."""
    with nothing_written(app):
        response = post_token(http, oauth_client, grant_type=grant_type)

    assert_oauth_error(response, 400, "unsupported_grant_type")
    assert validator.calls == []


def test_client_not_allowed_the_password_grant_is_unauthorized_client(
    app: flask.Flask, http: t.Any, make_client: t.Any, validator: t.Any
) -> None:
    client = make_client(grant_types=[])

    with nothing_written(app):
        response = post_token(http, client)

    assert_oauth_error(response, 400, "unauthorized_client")
    assert validator.calls == []


# -- username and password ----------------------------------------------------


@pytest.mark.parametrize("name", ["username", "password"])
@pytest.mark.parametrize("value", [None, ""], ids=["absent", "empty"])
def test_missing_username_or_password_is_invalid_request(
    app: flask.Flask,
    http: t.Any,
    oauth_client: t.Any,
    validator: t.Any,
    name: str,
    value: str | None,
) -> None:
    form = password_form()
    if value is None:
        del form[name]
    else:
        form[name] = value

    with nothing_written(app):
        response = http.post(TOKEN_URL, data=form, headers=basic_auth(*oauth_client))

    body = assert_oauth_error(response, 400, "invalid_request")
    assert name in body["error_description"]
    assert validator.calls == []


@pytest.mark.parametrize(
    ("name", "length"),
    [("username", 257), ("username", 10_000), ("password", 1025)],
)
def test_overlong_username_or_password_is_rejected_before_the_validator(
    app: flask.Flask,
    http: t.Any,
    oauth_client: t.Any,
    validator: t.Any,
    name: str,
    length: int,
) -> None:
    assert app.config["ROPC_MAX_USERNAME_LENGTH"] == 256
    assert app.config["ROPC_MAX_PASSWORD_LENGTH"] == 1024

    with nothing_written(app):
        response = post_token(http, oauth_client, **{name: "a" * length})

    assert_oauth_error(response, 400, "invalid_request")
    assert validator.calls == []


@pytest.mark.parametrize(("name", "length"), [("username", 256), ("password", 1024)])
def test_username_or_password_exactly_at_the_cap_reaches_the_validator(
    app: flask.Flask,
    http: t.Any,
    oauth_client: t.Any,
    validator: t.Any,
    name: str,
    length: int,
) -> None:
    value = "a" * length

    with nothing_written(app):
        response = post_token(http, oauth_client, **{name: value})

    # Unknown credentials to the test validator: invalid_grant from it.
    assert_oauth_error(response, 400, "invalid_grant")
    assert len(validator.calls) == 1
    assert getattr(validator.calls[0], name) == value


# -- body size and malformed input --------------------------------------------


def _padded_body(size: int) -> bytes:
    """A valid password-grant body for ann padded to exactly ``size`` bytes."""
    base = urlencode(password_form()) + "&padding="
    body = (base + "x" * (size - len(base))).encode()
    assert len(body) == size
    return body


@pytest.mark.parametrize("size", [16 * 1024 + 1, 1024 * 1024])
def test_body_larger_than_max_body_size_is_invalid_request(
    app: flask.Flask, http: t.Any, oauth_client: t.Any, validator: t.Any, size: int
) -> None:
    """A valid grant that is merely too large: 400, never 413 or 500."""
    assert app.config["ROPC_MAX_BODY_SIZE"] == 16 * 1024

    with nothing_written(app):
        response = post_raw(http, _padded_body(size), oauth_client)

    assert_oauth_error(response, 400, "invalid_request")
    assert validator.calls == []


def test_body_of_exactly_max_body_size_is_accepted(
    http: t.Any, oauth_client: t.Any
) -> None:
    response = post_raw(http, _padded_body(16 * 1024), oauth_client)

    assert response.status_code == 200, response.get_data(as_text=True)


def _post_chunked(url: str, body: bytes, headers: dict[str, str]) -> tuple[int, t.Any]:
    """POST ``body`` with ``Transfer-Encoding: chunked`` (no Content-Length)."""
    parts = urlsplit(url)
    conn = HTTPConnection(parts.hostname, parts.port, timeout=30)
    try:
        conn.putrequest("POST", TOKEN_URL)
        conn.putheader("Content-Type", FORM)
        conn.putheader("Transfer-Encoding", "chunked")
        for name, value in headers.items():
            conn.putheader(name, value)
        conn.endheaders()
        for start in range(0, len(body), 4096):
            chunk = body[start : start + 4096]
            conn.send(f"{len(chunk):x}\r\n".encode() + chunk + b"\r\n")
        conn.send(b"0\r\n\r\n")
        response = conn.getresponse()
        return response.status, response.read()
    finally:
        conn.close()


@pytest.mark.live
@pytest.mark.parametrize(("size", "status"), [(1000, 200), (64 * 1024, 400)])
def test_chunked_body_is_capped_at_max_body_size(
    app: flask.Flask, live_server: t.Any, oauth_client: t.Any, size: int, status: int
) -> None:
    """A body without Content-Length is still limited while it is read."""
    rows = count_rows(app)

    code, raw = _post_chunked(
        live_server.url, _padded_body(size), basic_auth(*oauth_client)
    )

    assert code == status, raw
    if status == 400:
        assert b'"invalid_request"' in raw
        assert count_rows(app) == rows


@pytest.mark.parametrize(
    "body",
    [
        pytest.param(
            b"grant_type=password&username=%ff%fe&password=\xff", id="non-utf8"
        ),
        pytest.param(b"grant_type=password&username=ann&password=%zz", id="bad-pct"),
        pytest.param(b"grant_type=password&username=ann%00&password=x", id="pct-nul"),
        pytest.param(b"grant_type=password&username=ann&password=a\x00b", id="nul"),
        pytest.param(b"grant_type=password&username=%C3%28&password=x", id="bad-seq"),
        pytest.param(b"grant_type=%ff&username=ann&password=x", id="grant-type"),
        pytest.param(
            b"grant_type=password&username=ann&password=x&scope=%ff", id="scope"
        ),
        pytest.param(b"grant_type=password&username=" + b"\xff" * 5000, id="long"),
        pytest.param(b"\xff\xfe\x00" * 100, id="garbage"),
        pytest.param(b"&&==&%&=%=", id="separators"),
    ],
)
def test_malformed_body_is_a_client_error_never_a_500(
    app: flask.Flask, http: t.Any, oauth_client: t.Any, body: bytes
) -> None:
    with nothing_written(app):
        response = post_raw(http, body, oauth_client)

    assert 400 <= response.status_code < 500
    error = response.get_json()["error"]
    assert error in {
        "invalid_request",
        "invalid_grant",
        "invalid_scope",
        "unsupported_grant_type",
    }
    assert response.headers["Cache-Control"] == "no-store"


@pytest.mark.parametrize(
    "raw_id",
    [b"a\x00b", b"\x00", b"\xff\xfe", b"x" * 5000],
    ids=["nul", "only-nul", "non-utf8", "long"],
)
@pytest.mark.parametrize("where", ["basic", "body"])
def test_malformed_client_id_is_invalid_client_never_a_500(
    app: flask.Flask,
    http: t.Any,
    make_client: t.Any,
    validator: t.Any,
    raw_id: bytes,
    where: str,
) -> None:
    """Garbage client ids are unknown clients (401), whatever the database
    thinks of them (PostgreSQL refuses NUL in text)."""
    make_client(auth_method="none")
    make_client()
    body = urlencode(password_form()).encode()
    headers = {}
    if where == "basic":
        credentials = quote_plus(raw_id) + ":" + quote_plus("secret-value")
        headers["Authorization"] = "Basic " + base64.b64encode(
            credentials.encode()
        ).decode("ascii")
    else:
        body += b"&client_id=" + quote_plus(raw_id).encode()

    with nothing_written(app):
        response = http.post(TOKEN_URL, data=body, content_type=FORM, headers=headers)

    assert_oauth_error(response, 401, "invalid_client")
    assert validator.calls == []


# -- transport security -------------------------------------------------------


@pytest.mark.parametrize(
    "base_url",
    ["http://example.com", "http://10.0.0.1", "http://localhost.example.com:8080"],
)
def test_plain_http_to_a_remote_host_is_invalid_request_requiring_https(
    app: flask.Flask, http: t.Any, oauth_client: t.Any, base_url: str
) -> None:
    with nothing_written(app):
        response = http.post(
            TOKEN_URL,
            data=password_form(),
            headers=basic_auth(*oauth_client),
            base_url=base_url,
        )

    body = assert_oauth_error(response, 400, "invalid_request")
    assert "HTTPS is required" in body["error_description"]


@pytest.mark.parametrize(
    "base_url", ["https://example.com", "http://localhost", "http://127.0.0.1:5000"]
)
def test_https_or_loopback_http_is_served(
    http: t.Any, oauth_client: t.Any, base_url: str
) -> None:
    response = http.post(
        TOKEN_URL,
        data=password_form(),
        headers=basic_auth(*oauth_client),
        base_url=base_url,
    )

    assert response.status_code == 200
    assert "access_token" in response.get_json()


# -- scope --------------------------------------------------------------------


@pytest.mark.parametrize("scope", ["admin", "api admin", "API"])
def test_scope_outside_the_clients_set_is_invalid_scope(
    app: flask.Flask, http: t.Any, oauth_client: t.Any, validator: t.Any, scope: str
) -> None:
    """Rejected, not silently narrowed, and before any password check."""
    with nothing_written(app):
        response = post_token(http, oauth_client, scope=scope)

    assert_oauth_error(response, 400, "invalid_scope")
    assert validator.calls == []


@pytest.mark.parametrize("scope", ['api"', "apï", "api\\x", "api\tprofile"])
def test_malformed_scope_is_invalid_scope(
    app: flask.Flask, http: t.Any, make_client: t.Any, validator: t.Any, scope: str
) -> None:
    client = make_client(scopes=["api", "profile"])

    with nothing_written(app):
        response = post_token(http, client, scope=scope)

    assert_oauth_error(response, 400, "invalid_scope")
    assert validator.calls == []


@pytest.mark.parametrize(
    ("requested", "granted"),
    [
        ("api", {"api"}),
        ("profile", {"profile"}),
        ("profile api", {"api", "profile"}),
        ("api  api", {"api"}),
    ],
)
def test_allowed_scope_subset_is_granted_exactly(
    http: t.Any,
    oauth_client: t.Any,
    validator: t.Any,
    requested: str,
    granted: set[str],
) -> None:
    response = post_token(http, oauth_client, scope=requested)

    assert response.status_code == 200
    scope = response.get_json()["scope"]
    assert set(scope.split(" ")) == granted
    assert len(scope.split(" ")) == len(granted)
    assert set(validator.calls[0].scopes) == granted


@pytest.mark.parametrize("scope", [None, "", " "], ids=["absent", "empty", "blank"])
def test_no_scope_grants_all_the_clients_scopes(
    http: t.Any, make_client: t.Any, scope: str | None
) -> None:
    client = make_client(scopes=["api", "profile", "email"])
    extra = {} if scope is None else {"scope": scope}

    response = post_token(http, client, **extra)

    assert response.status_code == 200
    assert sorted(response.get_json()["scope"].split(" ")) == [
        "api",
        "email",
        "profile",
    ]


@pytest.mark.parametrize(
    ("requested", "reported"),
    [(None, ["api", "profile"]), ("api", ["api"])],
    ids=["default", "subset"],
)
def test_granted_scopes_are_what_the_protected_view_sees(
    http: t.Any, oauth_client: t.Any, requested: str | None, reported: list[str]
) -> None:
    extra = {} if requested is None else {"scope": requested}
    token = post_token(http, oauth_client, **extra).get_json()["access_token"]

    response = http.get("/api/me", headers={"Authorization": f"Bearer {token}"})

    assert response.status_code == 200
    assert sorted(response.get_json()["scopes"]) == reported


def test_token_without_the_required_scope_is_refused_by_the_view(
    http: t.Any, oauth_client: t.Any
) -> None:
    """A token granted only ``profile`` does not open the ``api`` view."""
    token = post_token(http, oauth_client, scope="profile").get_json()["access_token"]

    response = http.get("/api/me", headers={"Authorization": f"Bearer {token}"})

    assert response.status_code == 403


def test_embedded_sqlite_runs_in_wal_mode_without_fsync_per_commit(
    app: flask.Flask, database_uri: str
) -> None:
    # Where Flask-ROPC owns the SQLite engine, readers never wait for the
    # writer and a commit does not fsync: the settings the token endpoint's
    # throughput depends on.
    if not database_uri.startswith("sqlite"):
        pytest.skip("SQLite's own settings")
    with app.app_context():
        engine = ropc_of(app).engine
    assert engine is not None
    with engine.connect() as conn:

        def pragma(name: str) -> t.Any:
            return conn.exec_driver_sql(f"PRAGMA {name}").scalar()

        assert pragma("journal_mode") == "wal"
        assert pragma("synchronous") == 1  # NORMAL
        assert pragma("foreign_keys") == 1
