"""The request guards of ``/oauth/introspect`` and ``/oauth/revoke``.

Both endpoints check a request as the token endpoint does before they look
at the token: POST only, a form body, no OAuth parameter in the query string,
no parameter twice, HTTPS off loopback, and a token to act on. Each check
runs here once per endpoint. The token endpoint's own copies of these checks
(with its own parameters) are in ``test_token_endpoint.py``.

A refused introspection must not pass for an inactive token (RFC 7662 §2.3),
and a refused revocation must revoke nothing: the :class:`Endpoint` of each
says which of the two it is held to.
"""

from __future__ import annotations

import typing as t
from collections.abc import Sequence
from urllib.parse import urlencode

import pytest

from conftest import assert_oauth_error
from conftest import basic_auth
from conftest import bearer
from conftest import issue_token

FORM = "application/x-www-form-urlencoded"


class Endpoint(t.NamedTuple):
    """One endpoint under test, and what its refusals must also show."""

    url: str
    #: The error must not be dressed up as ``{"active": false}``.
    not_inactive: bool = False
    #: The tokens the request carried must still work afterwards.
    revokes_nothing: bool = False


INTROSPECTION = Endpoint("/oauth/introspect", not_inactive=True)
REVOCATION = Endpoint("/oauth/revoke", revokes_nothing=True)

ENDPOINTS = pytest.mark.parametrize(
    "endpoint", [INTROSPECTION, REVOCATION], ids=["introspect", "revoke"]
)


# -- helpers ------------------------------------------------------------------


def works(http: t.Any, token: str) -> bool:
    """Whether ``token`` opens the protected ``/api/me``."""
    response = http.get("/api/me", headers=bearer(token))
    assert response.status_code in (200, 401), response.get_data(as_text=True)
    if response.status_code == 401:
        assert response.get_json()["error"] == "invalid_token"
    return bool(response.status_code == 200)


def assert_refused(
    http: t.Any,
    endpoint: Endpoint,
    response: t.Any,
    status: int,
    tokens: Sequence[str] = (),
) -> None:
    """An ``invalid_request`` error with ``status``, and what ``endpoint`` adds."""
    assert_oauth_error(response, status, "invalid_request")
    if endpoint.not_inactive:
        assert "active" not in response.get_json()
    if endpoint.revokes_nothing:
        for token in tokens:
            assert works(http, token)


# -- the guards ---------------------------------------------------------------


@ENDPOINTS
@pytest.mark.parametrize("method", ["GET", "PUT", "DELETE"])
def test_methods_other_than_post_are_405_json_with_allow_post(
    http: t.Any, oauth_client: t.Any, endpoint: Endpoint, method: str
) -> None:
    token = issue_token(http, oauth_client)

    response = http.open(
        endpoint.url,
        method=method,
        data={"token": token},
        headers=basic_auth(*oauth_client),
    )

    assert_refused(http, endpoint, response, 405, [token])
    assert response.headers["Allow"] == "POST"


@ENDPOINTS
def test_json_body_is_invalid_request(
    http: t.Any, oauth_client: t.Any, endpoint: Endpoint
) -> None:
    token = issue_token(http, oauth_client)

    response = http.post(
        endpoint.url, json={"token": token}, headers=basic_auth(*oauth_client)
    )

    assert_refused(http, endpoint, response, 400, [token])


@ENDPOINTS
@pytest.mark.parametrize("name", ["token", "token_type_hint"])
def test_token_parameters_in_the_query_string_are_invalid_request(
    http: t.Any, oauth_client: t.Any, endpoint: Endpoint, name: str
) -> None:
    """Even with a valid body: a token in a URL ends up in logs (CWE-598)."""
    token = issue_token(http, oauth_client)
    value = token if name == "token" else "access_token"

    response = http.post(
        f"{endpoint.url}?{urlencode({name: value})}",
        data={"token": token},
        headers=basic_auth(*oauth_client),
    )

    assert_refused(http, endpoint, response, 400, [token])


@ENDPOINTS
@pytest.mark.parametrize("first", ["unknown", "live"])
def test_repeated_token_is_invalid_request(
    http: t.Any, oauth_client: t.Any, endpoint: Endpoint, first: str
) -> None:
    """Whichever of the two the endpoint would act on, it acts on neither."""
    live = [issue_token(http, oauth_client) for _ in range(2 if first == "live" else 1)]
    values = live if first == "live" else ["unknown-token", *live]
    body = urlencode([("token", value) for value in values])

    response = http.post(
        endpoint.url, data=body, content_type=FORM, headers=basic_auth(*oauth_client)
    )

    assert_refused(http, endpoint, response, 400, live)


@ENDPOINTS
@pytest.mark.parametrize("data", [{}, {"token": ""}], ids=["missing", "empty"])
def test_missing_token_is_invalid_request(
    http: t.Any, oauth_client: t.Any, endpoint: Endpoint, data: dict[str, str]
) -> None:
    response = http.post(endpoint.url, data=data, headers=basic_auth(*oauth_client))

    assert_refused(http, endpoint, response, 400)


@ENDPOINTS
def test_plain_http_to_a_remote_host_is_invalid_request(
    http: t.Any, oauth_client: t.Any, endpoint: Endpoint
) -> None:
    token = issue_token(http, oauth_client)

    response = http.post(
        endpoint.url,
        data={"token": token},
        headers=basic_auth(*oauth_client),
        base_url="http://auth.example.com",
    )

    assert_refused(http, endpoint, response, 400, [token])
