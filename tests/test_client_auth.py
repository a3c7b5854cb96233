"""Client authentication at ``POST /oauth/token`` (RFC 6749 §2.3).

Every request goes through the real endpoint and the real database. Failed
authentication must look the same whatever the cause (no oracle for which
client ids exist), never reach the password validator, never write anything,
and never turn into a 500.
"""

from __future__ import annotations

import base64
import time
import typing as t

import flask
import pytest

from conftest import USERS
from conftest import OAuthClient
from conftest import basic_auth
from conftest import client_snapshot
from conftest import count_rows
from conftest import password_form
from conftest import ropc_of

TOKEN_URL = "/oauth/token"

#: A secret with every character RFC 6749 §2.3.1's form-encoding matters for.
AWKWARD_SECRET = "pässwörd:with+plus %41 and spaces ✓"


def raw_basic(raw: bytes) -> dict[str, str]:
    """An ``Authorization: Basic`` header of exactly these bytes, not encoded."""
    return {"Authorization": "Basic " + base64.b64encode(raw).decode()}


def get_client(app: flask.Flask, client_id: str) -> t.Any:
    with app.app_context():
        return ropc_of(app).clients.get(client_id)


def assert_token_issued(http: t.Any, response: t.Any, client_id: str) -> None:
    """The response carries a bearer token that works for ``client_id``."""
    assert response.status_code == 200, response.get_data(as_text=True)
    body = response.get_json()
    assert body["token_type"] == "Bearer"
    me = http.get(
        "/api/me", headers={"Authorization": f"Bearer {body['access_token']}"}
    )
    assert me.status_code == 200
    assert me.get_json()["client_id"] == client_id
    assert me.get_json()["sub"] == USERS["ann"][1]


def assert_invalid_client(response: t.Any) -> dict[str, t.Any]:
    """A 401 ``invalid_client`` JSON answer with a Basic challenge."""
    assert response.status_code == 401, response.get_data(as_text=True)
    assert response.is_json
    body: dict[str, t.Any] = response.get_json()
    assert body["error"] == "invalid_client"
    assert response.headers["WWW-Authenticate"].startswith("Basic")
    return body


class Clients(t.NamedTuple):
    basic: OAuthClient
    post: OAuthClient
    public: OAuthClient
    disabled: OAuthClient
    disabled_public: OAuthClient


@pytest.fixture
def clients(app: flask.Flask, make_client: t.Callable[..., OAuthClient]) -> Clients:
    """One client of each kind, two of them disabled."""
    disabled = make_client("Disabled")
    disabled_public = make_client("Disabled public", auth_method="none")
    with app.app_context():
        ropc_of(app).clients.update(disabled.client_id, enabled=False)
        ropc_of(app).clients.update(disabled_public.client_id, enabled=False)
    return Clients(
        basic=make_client("Basic", auth_method="client_secret_basic"),
        post=make_client("Post", auth_method="client_secret_post"),
        public=make_client("Public", auth_method="none"),
        disabled=disabled,
        disabled_public=disabled_public,
    )


# -- success ----------------------------------------------------------------


def test_confidential_client_authenticates_with_basic(
    http: t.Any, clients: Clients, validator: t.Any
) -> None:
    c = clients.basic
    assert c.secret is not None
    response = http.post(
        TOKEN_URL, data=password_form(), headers=basic_auth(c.client_id, c.secret)
    )
    assert_token_issued(http, response, c.client_id)
    assert [call.client.client_id for call in validator.calls] == [c.client_id]


def test_client_secret_post_client_authenticates_in_the_body(
    http: t.Any, clients: Clients
) -> None:
    c = clients.post
    assert c.secret is not None
    form = password_form(client_id=c.client_id, client_secret=c.secret)
    assert_token_issued(http, http.post(TOKEN_URL, data=form), c.client_id)


def test_public_client_authenticates_with_its_client_id_alone(
    http: t.Any, clients: Clients
) -> None:
    c = clients.public
    assert c.secret is None
    response = http.post(TOKEN_URL, data=password_form(client_id=c.client_id))
    assert_token_issued(http, response, c.client_id)


def test_basic_with_the_same_client_id_repeated_in_the_body_is_accepted(
    http: t.Any, clients: Clients
) -> None:
    """Common client libraries send client_id in the body as well as in Basic."""
    c = clients.basic
    assert c.secret is not None
    response = http.post(
        TOKEN_URL,
        data=password_form(client_id=c.client_id),
        headers=basic_auth(c.client_id, c.secret),
    )
    assert_token_issued(http, response, c.client_id)


def test_successful_token_request_sets_client_last_used_at(
    app: flask.Flask, http: t.Any, oauth_client: OAuthClient
) -> None:
    assert oauth_client.secret is not None
    assert get_client(app, oauth_client.client_id).last_used_at is None
    response = http.post(
        TOKEN_URL,
        data=password_form(),
        headers=basic_auth(oauth_client.client_id, oauth_client.secret),
    )
    assert response.status_code == 200
    client = get_client(app, oauth_client.client_id)
    assert client.last_used_at is not None
    assert client.created_at <= client.last_used_at <= time.time() + 1


# -- uniform failures -------------------------------------------------------

Case = t.Callable[[Clients], tuple[dict[str, str], dict[str, str]]]

#: Requests that must all fail with the same 401 invalid_client:
#: name -> clients -> (form, headers).
FAILURES: dict[str, Case] = {
    "unknown-id-basic": lambda c: (
        password_form(),
        basic_auth("no-such-client", "some-secret-value"),
    ),
    "wrong-secret-basic": lambda c: (
        password_form(),
        basic_auth(c.basic.client_id, "not-the-secret-at-all"),
    ),
    "empty-secret-basic": lambda c: (
        password_form(),
        basic_auth(c.basic.client_id, ""),
    ),
    "unknown-id-post": lambda c: (
        password_form(client_id="no-such-client", client_secret="some-secret"),
        {},
    ),
    "wrong-secret-post": lambda c: (
        password_form(client_id=c.post.client_id, client_secret="not-the-secret"),
        {},
    ),
    "empty-secret-post": lambda c: (
        password_form(client_id=c.post.client_id, client_secret=""),
        {},
    ),
    "disabled-client-right-secret": lambda c: (
        password_form(),
        basic_auth(c.disabled.client_id, t.cast(str, c.disabled.secret)),
    ),
    "disabled-public-client": lambda c: (
        password_form(client_id=c.disabled_public.client_id),
        {},
    ),
    # Plain Authlib 1.9 answers this one with a 500.
    "public-client-with-basic-secret": lambda c: (
        password_form(),
        basic_auth(c.public.client_id, "any-secret-at-all"),
    ),
    "public-client-with-body-secret": lambda c: (
        password_form(client_id=c.public.client_id, client_secret="any-secret"),
        {},
    ),
    "no-credentials": lambda c: (password_form(), {}),
    "confidential-client-id-only": lambda c: (
        password_form(client_id=c.basic.client_id),
        {},
    ),
    "basic-client-secret-in-body": lambda c: (
        password_form(
            client_id=c.basic.client_id, client_secret=t.cast(str, c.basic.secret)
        ),
        {},
    ),
    "post-client-via-basic": lambda c: (
        password_form(),
        basic_auth(c.post.client_id, t.cast(str, c.post.secret)),
    ),
}


@pytest.mark.parametrize("case", FAILURES.values(), ids=FAILURES.keys())
def test_failed_client_authentication_is_uniform_and_harmless(
    app: flask.Flask, http: t.Any, clients: Clients, validator: t.Any, case: Case
) -> None:
    """401 invalid_client, identical to an unknown client's answer; no side effects."""
    reference = http.post(
        TOKEN_URL,
        data=password_form(),
        headers=basic_auth("no-such-client", "some-secret-value"),
    )
    form, headers = case(clients)
    rows, snapshot = count_rows(app), client_snapshot(app)

    response = http.post(TOKEN_URL, data=form, headers=headers)

    body = assert_invalid_client(response)
    assert body == assert_invalid_client(reference)
    assert (
        response.headers["WWW-Authenticate"] == (reference.headers["WWW-Authenticate"])
    )
    assert validator.calls == []
    assert count_rows(app) == rows
    assert client_snapshot(app) == snapshot


@pytest.mark.parametrize(
    "case",
    ["secret-in-body", "different-client-id", "different-id-and-secret"],
)
def test_basic_combined_with_body_credentials_is_invalid_request(
    app: flask.Flask, http: t.Any, clients: Clients, validator: t.Any, case: str
) -> None:
    """RFC 6749 §2.3: a client MUST NOT use more than one method per request."""
    c = clients.basic
    assert c.secret is not None
    extra = {
        "secret-in-body": {"client_secret": c.secret},
        "different-client-id": {"client_id": clients.public.client_id},
        "different-id-and-secret": {
            "client_id": clients.post.client_id,
            "client_secret": t.cast(str, clients.post.secret),
        },
    }[case]
    rows, snapshot = count_rows(app), client_snapshot(app)

    response = http.post(
        TOKEN_URL,
        data=password_form(**extra),
        headers=basic_auth(c.client_id, c.secret),
    )

    assert response.status_code == 400
    assert response.is_json
    assert response.get_json()["error"] == "invalid_request"
    assert validator.calls == []
    assert count_rows(app) == rows
    assert client_snapshot(app) == snapshot


# -- RFC 6749 §2.3.1 form-encoding ------------------------------------------

SECRETS = [
    "percent%41%zz%-signs-kept-literally",
    "plus+signs+are+not+spaces+at+all",
    AWKWARD_SECRET,
]


@pytest.mark.parametrize("secret", SECRETS)
def test_imported_secret_with_special_characters_works_via_basic(
    http: t.Any, make_client: t.Callable[..., OAuthClient], secret: str
) -> None:
    """Basic credentials are form-urlencoded before base64 (RFC 6749 §2.3.1)."""
    c = make_client(secret=secret)
    assert c.secret == secret
    response = http.post(
        TOKEN_URL, data=password_form(), headers=basic_auth(c.client_id, secret)
    )
    assert_token_issued(http, response, c.client_id)


@pytest.mark.parametrize("secret", SECRETS)
def test_imported_secret_with_special_characters_works_via_post(
    http: t.Any, make_client: t.Callable[..., OAuthClient], secret: str
) -> None:
    c = make_client(secret=secret, auth_method="client_secret_post")
    form = password_form(client_id=c.client_id, client_secret=secret)
    assert_token_issued(http, http.post(TOKEN_URL, data=form), c.client_id)


def test_unencoded_plus_in_basic_credentials_matches_either_spelling(
    app: flask.Flask, http: t.Any, make_client: t.Callable[..., OAuthClient]
) -> None:
    """A client that skips the encoding sends '+': form-decoded it is a
    space, as sent it is '+'; both spellings are checked (#13 item 19)."""
    plus = make_client(secret="plus+signs+are+not+spaces+at+all")
    spaces = make_client(secret="plus signs are not spaces at all")
    raw = b"plus+signs+are+not+spaces+at+all"

    as_sent = http.post(
        TOKEN_URL,
        data=password_form(),
        headers=raw_basic(plus.client_id.encode() + b":" + raw),
    )
    assert_token_issued(http, as_sent, plus.client_id)
    decoded = http.post(
        TOKEN_URL,
        data=password_form(),
        headers=raw_basic(spaces.client_id.encode() + b":" + raw),
    )
    assert_token_issued(http, decoded, spaces.client_id)


# -- undecodable Basic headers ----------------------------------------------

BAD_HEADERS = {
    "bad-base64": "Basic !!!notbase64",
    "non-ascii-base64": "Basic ü",
    "no-colon": "Basic " + base64.b64encode(b"just-a-client-id").decode(),
    "not-utf8": "Basic " + base64.b64encode(b"\xff\xfe:\xff").decode(),
    "bad-percent-encoding": "Basic " + base64.b64encode(b"id:%ff").decode(),
    "non-utf8-percent-encoded-id": "Basic "
    + base64.b64encode(b"%ff%fe:secret").decode(),
    "empty-client-id": "Basic " + base64.b64encode(b":some-secret").decode(),
    "empty-credentials": "Basic ",
    "scheme-alone": "Basic",
    "enormous": "Basic " + base64.b64encode(b"client:" + b"x" * 100_000).decode(),
    "enormous-garbage": "Basic " + "!" * 100_000,
}


@pytest.mark.parametrize("header", BAD_HEADERS.values(), ids=BAD_HEADERS.keys())
def test_undecodable_basic_header_is_a_client_error_not_500(
    app: flask.Flask, http: t.Any, clients: Clients, validator: t.Any, header: str
) -> None:
    rows, snapshot = count_rows(app), client_snapshot(app)

    response = http.post(
        TOKEN_URL, data=password_form(), headers={"Authorization": header}
    )

    assert response.status_code in (400, 401), response.get_data(as_text=True)
    assert response.is_json
    error = response.get_json()["error"]
    if response.status_code == 401:
        assert_invalid_client(response)
    else:
        assert error == "invalid_request"
    assert validator.calls == []
    assert count_rows(app) == rows
    assert client_snapshot(app) == snapshot


# -- inputs that make plain Authlib 1.9 answer 500 --------------------------

AUTHLIB_500S: dict[str, Case] = {
    "non-ascii-secret-basic": lambda c: (
        password_form(),
        basic_auth(c.basic.client_id, "sécret"),
    ),
    "non-ascii-secret-basic-unencoded": lambda c: (
        password_form(),
        raw_basic(f"{c.basic.client_id}:sécret".encode()),
    ),
    "non-ascii-secret-post": lambda c: (
        password_form(client_id=c.post.client_id, client_secret="sécret"),
        {},
    ),
    "basic-for-public-client": lambda c: (
        password_form(),
        basic_auth(c.public.client_id, "whatever-secret"),
    ),
}


@pytest.mark.parametrize("case", AUTHLIB_500S.values(), ids=AUTHLIB_500S.keys())
def test_inputs_that_crash_plain_authlib_get_401(
    app: flask.Flask, http: t.Any, clients: Clients, validator: t.Any, case: Case
) -> None:
    form, headers = case(clients)
    rows = count_rows(app)
    response = http.post(TOKEN_URL, data=form, headers=headers)
    assert_invalid_client(response)
    assert validator.calls == []
    assert count_rows(app) == rows


# -- secret rotation --------------------------------------------------------


@pytest.mark.parametrize("auth_method", ["client_secret_basic", "client_secret_post"])
def test_rotated_secret_replaces_the_old_one_at_once(
    app: flask.Flask,
    http: t.Any,
    make_client: t.Callable[..., OAuthClient],
    auth_method: str,
) -> None:
    c = make_client(auth_method=auth_method)
    assert c.secret is not None

    def token_request(secret: str) -> t.Any:
        if auth_method == "client_secret_basic":
            return http.post(
                TOKEN_URL, data=password_form(), headers=basic_auth(c.client_id, secret)
            )
        form = password_form(client_id=c.client_id, client_secret=secret)
        return http.post(TOKEN_URL, data=form)

    assert token_request(c.secret).status_code == 200
    with app.app_context():
        _, new_secret = ropc_of(app).clients.rotate_secret(c.client_id)
    assert new_secret != c.secret

    rows, snapshot = count_rows(app), client_snapshot(app)
    assert_invalid_client(token_request(c.secret))
    assert count_rows(app) == rows
    assert client_snapshot(app) == snapshot
    assert_token_issued(http, token_request(new_secret), c.client_id)
