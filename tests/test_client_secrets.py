"""Imported secrets and ids with ``+``, ``%`` or spaces work with ``requests``.

RFC 6749 §2.3.1 says Basic credentials are form-urlencoded before base64;
``requests`` and ``requests-oauthlib`` (like most client libraries) do not
encode them. Before #13 a secret containing ``+`` or a ``%`` escape,
imported from another server, therefore never worked with them. The token
endpoint now accepts the value as sent when the form-decoded one does not
match (both always checked, in constant time); a wrong secret still fails,
and ``client_secret_post`` (a form body, decoded by the form parser) is
unchanged. Over real HTTP against a live server, on every backend.
"""

from __future__ import annotations

import base64
import typing as t
from urllib.parse import quote_plus

import flask
import pytest
import requests
import requests.auth
from oauthlib.oauth2 import LegacyApplicationClient
from requests_oauthlib import OAuth2Session

from flask_ropc import ROPC

from conftest import USERS
from conftest import OAuthClient

pytestmark = pytest.mark.live

#: The password-grant fields of a login as ann.
LOGIN = {"grant_type": "password", "username": "ann", "password": USERS["ann"][0]}

#: Imported secrets (20 characters or more) whose raw and form-decoded
#: spellings differ, or look as if they might.
SECRETS = {
    "plus": "plus+signs+inside+this+secret",
    "percent escape": "percent%41%42-inside-this-secret",
    "encoded plus": "encoded%2Bplus%2Bsigns-in-a-secret",
    "space": "a secret with spaces inside",
    "space and plus": "spaces and+plus signs+mixed in",
    "stray percent": "100%-random-secret-value-%%",
    "escape that is not UTF-8": "bytes%FF%FE-not-utf8-after-decoding",
}

#: Imported client ids with such characters (ids cannot hold spaces or ':').
CLIENT_IDS = {
    "plus": "legacy+client+id",
    "percent escape": "legacy%41client",
    "encoded plus": "legacy%2Bclient",
}


@pytest.fixture(autouse=True)
def _allow_loopback_http(monkeypatch: pytest.MonkeyPatch) -> None:
    """oauthlib refuses http:// even to 127.0.0.1; our server allows loopback."""
    monkeypatch.setenv("OAUTHLIB_INSECURE_TRANSPORT", "1")


def password_login(url: str, client_id: str, secret: str) -> requests.Response:
    """A password login with ``requests``' own Basic auth (no form-encoding)."""
    return requests.post(
        f"{url}/oauth/token",
        data=LOGIN,
        auth=(client_id, secret),
        timeout=10,
    )


def assert_works(url: str, response: requests.Response, client_id: str) -> None:
    assert response.status_code == 200, response.text
    me = requests.get(
        f"{url}/api/me",
        headers={"Authorization": f"Bearer {response.json()['access_token']}"},
        timeout=10,
    )
    assert me.status_code == 200
    assert me.json()["client_id"] == client_id


def assert_refused(response: requests.Response) -> None:
    assert response.status_code == 401, response.text
    assert response.json()["error"] == "invalid_client"


@pytest.mark.parametrize("secret", SECRETS.values(), ids=SECRETS.keys())
def test_requests_basic_auth_works_with_an_imported_secret(
    live_server: t.Any, make_client: t.Callable[..., OAuthClient], secret: str
) -> None:
    client = make_client(secret=secret)

    response = password_login(live_server.url, client.client_id, secret)

    assert_works(live_server.url, response, client.client_id)


@pytest.mark.parametrize("secret", SECRETS.values(), ids=SECRETS.keys())
def test_form_encoded_basic_credentials_still_work(
    live_server: t.Any, make_client: t.Callable[..., OAuthClient], secret: str
) -> None:
    """What RFC 6749 §2.3.1 prescribes (the way curl -u does not, but
    Authlib's client and others do) keeps working."""
    client = make_client(secret=secret)
    encoded = f"{quote_plus(client.client_id)}:{quote_plus(secret)}".encode()

    response = requests.post(
        f"{live_server.url}/oauth/token",
        data=LOGIN,
        headers={"Authorization": "Basic " + base64.b64encode(encoded).decode()},
        timeout=10,
    )

    assert_works(live_server.url, response, client.client_id)


@pytest.mark.parametrize("secret", SECRETS.values(), ids=SECRETS.keys())
def test_requests_oauthlib_works_with_an_imported_secret(
    live_server: t.Any, make_client: t.Callable[..., OAuthClient], secret: str
) -> None:
    client = make_client(secret=secret)
    session = OAuth2Session(client=LegacyApplicationClient(client_id=client.client_id))

    token = session.fetch_token(
        token_url=f"{live_server.url}/oauth/token",
        username="ann",
        password=USERS["ann"][0],
        client_id=client.client_id,
        client_secret=secret,
    )

    assert token["token_type"] == "Bearer"
    assert session.get(f"{live_server.url}/api/me").json()["client_id"] == (
        client.client_id
    )


@pytest.mark.parametrize("secret", SECRETS.values(), ids=SECRETS.keys())
def test_a_wrong_secret_still_fails_in_either_spelling(
    live_server: t.Any, make_client: t.Callable[..., OAuthClient], secret: str
) -> None:
    client = make_client(secret=secret)

    for wrong in (secret + "x", secret[:-1], secret.swapcase()):
        assert_refused(password_login(live_server.url, client.client_id, wrong))
        encoded = f"{quote_plus(client.client_id)}:{quote_plus(wrong)}".encode()
        assert_refused(
            requests.post(
                f"{live_server.url}/oauth/token",
                data=LOGIN,
                headers={
                    "Authorization": "Basic " + base64.b64encode(encoded).decode()
                },
                timeout=10,
            )
        )


def test_only_the_two_spellings_of_the_secret_are_accepted(
    live_server: t.Any, make_client: t.Callable[..., OAuthClient]
) -> None:
    """A secret with '+' is accepted as sent ('+') and form-decoded (the
    sender meant '+' as a space only if it encoded): nothing else."""
    plus = make_client(secret="plus+signs+inside+this+secret")
    spaces = make_client(secret="plus signs inside this secret")

    # Sent unencoded, "a+b" is either "a+b" (as sent) or "a b" (decoded).
    assert_works(
        live_server.url,
        password_login(
            live_server.url, plus.client_id, "plus+signs+inside+this+secret"
        ),
        plus.client_id,
    )
    assert_works(
        live_server.url,
        password_login(
            live_server.url, spaces.client_id, "plus+signs+inside+this+secret"
        ),
        spaces.client_id,
    )
    assert_refused(
        password_login(
            live_server.url, plus.client_id, "plus%20signs%20inside%20this%20secret"
        )
    )
    assert_refused(
        password_login(live_server.url, plus.client_id, "plus-signs-inside-this-secret")
    )


@pytest.mark.parametrize("client_id", CLIENT_IDS.values(), ids=CLIENT_IDS.keys())
def test_requests_basic_auth_works_with_an_imported_client_id(
    live_server: t.Any, make_client: t.Callable[..., OAuthClient], client_id: str
) -> None:
    secret = SECRETS["plus"]
    client = make_client(client_id=client_id, secret=secret)
    assert client.client_id == client_id

    assert_works(
        live_server.url,
        password_login(live_server.url, client_id, secret),
        client_id,
    )
    assert_refused(password_login(live_server.url, client_id, secret + "-wrong"))


@pytest.mark.parametrize("client_id", CLIENT_IDS.values(), ids=CLIENT_IDS.keys())
def test_requests_oauthlib_works_with_an_imported_client_id(
    live_server: t.Any, make_client: t.Callable[..., OAuthClient], client_id: str
) -> None:
    """requests-oauthlib sends the id unencoded in Basic and, encoded, in
    the body too: the two must be seen as the same id."""
    secret = SECRETS["percent escape"]
    make_client(client_id=client_id, secret=secret)
    session = OAuth2Session(client=LegacyApplicationClient(client_id=client_id))

    token = session.fetch_token(
        token_url=f"{live_server.url}/oauth/token",
        username="ann",
        password=USERS["ann"][0],
        include_client_id=True,
        auth=requests.auth.HTTPBasicAuth(client_id, secret),
    )

    assert session.get(f"{live_server.url}/api/me").json()["client_id"] == client_id
    assert token["token_type"] == "Bearer"


@pytest.mark.parametrize("secret", SECRETS.values(), ids=SECRETS.keys())
def test_client_secret_post_is_unaffected(
    live_server: t.Any, make_client: t.Callable[..., OAuthClient], secret: str
) -> None:
    """The body is a form: requests encodes it and the server decodes it."""
    client = make_client(secret=secret, auth_method="client_secret_post")
    form = {**LOGIN, "client_id": client.client_id}
    url = f"{live_server.url}/oauth/token"

    encoded = requests.post(url, data={**form, "client_secret": secret}, timeout=10)
    wrong = requests.post(url, data={**form, "client_secret": secret + "x"}, timeout=10)

    assert_works(live_server.url, encoded, client.client_id)
    assert_refused(wrong)


def test_client_secret_post_takes_no_second_spelling(
    live_server: t.Any, make_client: t.Callable[..., OAuthClient]
) -> None:
    """A '+' in a form body is a space: the body is not second-guessed the
    way Basic credentials are (no library sends a body unencoded)."""
    secret = SECRETS["plus"]
    client = make_client(secret=secret, auth_method="client_secret_post")
    fields = {**LOGIN, "client_id": client.client_id}
    body = "&".join(f"{k}={quote_plus(v)}" for k, v in fields.items())

    response = requests.post(
        f"{live_server.url}/oauth/token",
        data=f"{body}&client_secret={secret}",
        headers={"Content-Type": "application/x-www-form-urlencoded"},
        timeout=10,
    )

    assert_refused(response)


def test_a_secret_sent_unencoded_is_redacted_from_logged_errors(
    live_server: t.Any,
    ropc: ROPC,
    make_client: t.Callable[..., OAuthClient],
    caplog: pytest.LogCaptureFixture,
) -> None:
    """A validator that fails quoting Werkzeug's view of the Basic header
    (the secret as sent, not form-decoded) leaks neither spelling."""
    secret = SECRETS["plus"]
    client = make_client(secret=secret)

    @ropc.password_validator
    def leaky(req: t.Any) -> t.Any:
        raise RuntimeError(f"debugging: {flask.request.authorization.password}")

    response = password_login(live_server.url, client.client_id, secret)

    assert response.status_code == 500
    logged = caplog.text + "".join(
        f"{r.getMessage()}{r.exc_text or ''}" for r in caplog.records
    )
    assert "debugging: [redacted]" in logged
    assert secret not in logged
    assert secret.replace("+", " ") not in logged
