"""RFC 8414 discovery and the JWKS, checked from the outside.

The live tests are the "an API in another language validates our tokens
offline" proof: PyJWT, knowing nothing but our discovery URL, fetches the
metadata and the JWKS over real HTTP and verifies a token we issued.
"""

from __future__ import annotations

import base64
import contextlib
import json
import threading
import typing as t
from collections.abc import Iterator
from urllib.parse import urlsplit

import flask
import jwt
import pytest
import requests
from authlib.oauth2.rfc8414 import AuthorizationServerMetadata
from werkzeug.serving import make_server

from conftest import basic_auth
from conftest import password_form
from conftest import ropc_of

DISCOVERY_PATHS = (
    "/.well-known/oauth-authorization-server",
    "/.well-known/openid-configuration",
)
METADATA_PATH = DISCOVERY_PATHS[0]
ENDPOINT_FIELDS = (
    "token_endpoint",
    "jwks_uri",
    "introspection_endpoint",
    "revocation_endpoint",
)


# -- fixtures -----------------------------------------------------------------


# -- helpers ------------------------------------------------------------------


@contextlib.contextmanager
def serve(app: flask.Flask) -> Iterator[str]:
    """Serve ``app`` over real HTTP on a free loopback port; yield its base URL."""
    server = make_server("127.0.0.1", 0, app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_port}"
    finally:
        server.shutdown()
        thread.join(timeout=10)
        server.server_close()


def metadata(http: t.Any, **kwargs: t.Any) -> dict[str, t.Any]:
    response = http.get(METADATA_PATH, **kwargs)
    assert response.status_code == 200, response.get_data(as_text=True)
    assert response.mimetype == "application/json"
    return t.cast(dict[str, t.Any], response.get_json())


def path_of(url: str) -> str:
    return urlsplit(url).path


def issue(
    http: t.Any, client: t.Any, url: str = "/oauth/token", **kwargs: t.Any
) -> str:
    response = http.post(
        url, data=password_form(), headers=basic_auth(*client), **kwargs
    )
    assert response.status_code == 200, response.get_data(as_text=True)
    return str(response.get_json()["access_token"])


def unverified_claims(token: str) -> dict[str, t.Any]:
    return t.cast(
        dict[str, t.Any], jwt.decode(token, options={"verify_signature": False})
    )


# -- the document -------------------------------------------------------------


def test_both_well_known_paths_serve_the_same_document(
    http: t.Any, oauth_client: t.Any
) -> None:
    oauth, openid = (http.get(path) for path in DISCOVERY_PATHS)

    assert oauth.status_code == openid.status_code == 200
    assert oauth.mimetype == openid.mimetype == "application/json"
    assert oauth.get_json() == openid.get_json()


def test_document_describes_the_password_grant_server(
    http: t.Any, oauth_client: t.Any
) -> None:
    document = metadata(http)

    assert document["issuer"] == "http://localhost"
    assert document["token_endpoint"] == "http://localhost/oauth/token"
    assert document["jwks_uri"] == "http://localhost/oauth/jwks"
    assert document["introspection_endpoint"] == "http://localhost/oauth/introspect"
    assert document["revocation_endpoint"] == "http://localhost/oauth/revoke"
    assert "password" in document["grant_types_supported"]
    # RFC 8414 requires a non-empty list; "none": no authorization endpoint.
    assert document["response_types_supported"] == ["none"]
    assert "authorization_endpoint" not in document
    assert set(document["token_endpoint_auth_methods_supported"]) == {
        "client_secret_basic",
        "client_secret_post",
        "none",
    }
    # Public clients may revoke their tokens, but not introspect.
    assert set(document["introspection_endpoint_auth_methods_supported"]) == {
        "client_secret_basic",
        "client_secret_post",
    }
    assert set(document["revocation_endpoint_auth_methods_supported"]) == {
        "client_secret_basic",
        "client_secret_post",
        "none",
    }


@pytest.mark.parametrize("app_config", [{"ROPC_ISSUER": "https://auth.example.com"}])
@pytest.mark.parametrize("path", DISCOVERY_PATHS)
def test_document_passes_authlibs_rfc8414_validator(
    http: t.Any, oauth_client: t.Any, path: str
) -> None:
    """Authlib's own metadata class, which an Authlib client would use to
    check our document, finds nothing wrong with it (RFC 8414 §2)."""
    response = http.get(path, base_url="https://auth.example.com")
    document = AuthorizationServerMetadata(response.get_json())
    document.validate()
    assert document["issuer"] == "https://auth.example.com"


def test_scopes_supported_is_the_union_of_the_clients_scopes(
    http: t.Any, make_client: t.Any
) -> None:
    assert metadata(http)["scopes_supported"] == []

    make_client("One", scopes=["api", "profile"])
    make_client("Two", scopes=["admin", "api"])
    make_client("None", scopes=[])

    assert sorted(metadata(http)["scopes_supported"]) == ["admin", "api", "profile"]


def test_document_may_be_cached_publicly(http: t.Any) -> None:
    response = http.get(METADATA_PATH)

    assert response.cache_control.public
    assert response.cache_control.max_age == 300


# -- the issuer ---------------------------------------------------------------

CONFIGURED_ISSUER = {"ROPC_ISSUER": "https://auth.example.com"}


@pytest.mark.parametrize("app_config", [CONFIGURED_ISSUER])
@pytest.mark.parametrize("base_url", ["http://localhost", "https://other.example"])
def test_configured_issuer_names_every_endpoint_whatever_the_host(
    http: t.Any, base_url: str
) -> None:
    document = metadata(http, base_url=base_url)

    assert document["issuer"] == "https://auth.example.com"
    for field in ENDPOINT_FIELDS:
        assert document[field].startswith("https://auth.example.com/"), field


@pytest.mark.parametrize("app_config", [CONFIGURED_ISSUER])
def test_tokens_name_the_configured_issuer_of_the_document(
    http: t.Any, oauth_client: t.Any
) -> None:
    document = metadata(http)

    token = issue(http, oauth_client)

    claims = unverified_claims(token)
    assert claims["iss"] == document["issuer"] == "https://auth.example.com"
    assert claims["aud"] == document["issuer"]
    me = http.get("/api/me", headers={"Authorization": f"Bearer {token}"})
    assert me.status_code == 200
    introspected = http.post(
        "/oauth/introspect", data={"token": token}, headers=basic_auth(*oauth_client)
    ).get_json()
    assert introspected["iss"] == document["issuer"]


def test_without_configured_issuer_the_request_base_url_is_the_issuer(
    http: t.Any,
) -> None:
    document = metadata(http, base_url="https://id.example.org")

    assert document["issuer"] == "https://id.example.org"
    for field in ENDPOINT_FIELDS:
        assert document[field].startswith("https://id.example.org/oauth/"), field


def test_token_issued_through_a_base_url_names_it_as_issuer(
    http: t.Any, oauth_client: t.Any
) -> None:
    base_url = "https://id.example.org"
    document = metadata(http, base_url=base_url)

    token = issue(http, oauth_client, base_url=base_url)

    claims = unverified_claims(token)
    assert claims["iss"] == document["issuer"] == base_url
    assert claims["aud"] == base_url


# -- the endpoints it lists ---------------------------------------------------


@pytest.mark.parametrize(
    "app_config", [{}, {"ROPC_URL_PREFIX": "/auth/v1"}], ids=["default", "prefix"]
)
def test_listed_endpoints_are_the_ones_that_work(
    http: t.Any, oauth_client: t.Any, app_config: dict[str, t.Any]
) -> None:
    document = metadata(http)
    prefix = app_config.get("ROPC_URL_PREFIX", "/oauth")
    for field in ENDPOINT_FIELDS:
        assert path_of(document[field]).startswith(prefix + "/"), field
    auth = basic_auth(*oauth_client)

    token = issue(http, oauth_client, path_of(document["token_endpoint"]))

    introspect_path = path_of(document["introspection_endpoint"])
    active = http.post(introspect_path, data={"token": token}, headers=auth)
    assert active.get_json()["active"] is True
    jwks = http.get(path_of(document["jwks_uri"])).get_json()
    assert jwt.get_unverified_header(token)["kid"] in {k["kid"] for k in jwks["keys"]}
    revoked = http.post(
        path_of(document["revocation_endpoint"]), data={"token": token}, headers=auth
    )
    assert revoked.status_code == 200
    inactive = http.post(introspect_path, data={"token": token}, headers=auth)
    assert inactive.get_json() == {"active": False}


def test_jwks_publishes_only_public_keys(http: t.Any, oauth_client: t.Any) -> None:
    token = issue(http, oauth_client)

    keys = http.get("/oauth/jwks").get_json()["keys"]

    header = jwt.get_unverified_header(token)
    (key,) = [k for k in keys if k["kid"] == header["kid"]]
    assert key["alg"] == header["alg"] == "ES256"
    assert key["use"] == "sig"
    for jwk in keys:
        assert not {"d", "p", "q", "dp", "dq", "qi"} & set(jwk), jwk


# -- from the outside: PyJWT over real HTTP -----------------------------------


@pytest.mark.live
@pytest.mark.parametrize(
    "app_config",
    [{"ROPC_SIGNING_ALG": alg} for alg in ("ES256", "RS256", "EdDSA")],
    ids=["ES256", "RS256", "EdDSA"],
)
def test_pyjwt_verifies_our_token_from_discovery_and_jwks_alone(
    app: flask.Flask, app_config: dict[str, t.Any]
) -> None:
    alg = app_config["ROPC_SIGNING_ALG"]
    with app.app_context():
        client, secret = ropc_of(app).clients.create("API caller", scopes=["api"])
    assert secret is not None

    with serve(app) as base_url:
        document = requests.get(base_url + METADATA_PATH, timeout=10).json()
        issued = requests.post(
            document["token_endpoint"],
            data=password_form(),
            auth=(client.client_id, secret),
            timeout=10,
        )
        assert issued.status_code == 200, issued.text
        token = issued.json()["access_token"]

        signing_key = jwt.PyJWKClient(document["jwks_uri"]).get_signing_key_from_jwt(
            token
        )
        claims = jwt.decode(
            token,
            signing_key.key,
            algorithms=[alg],
            audience=document["issuer"],
            issuer=document["issuer"],
        )

    assert document["issuer"] == base_url
    assert jwt.get_unverified_header(token)["typ"] == "at+jwt"
    assert jwt.get_unverified_header(token)["alg"] == alg
    assert claims["sub"] == "user-1"
    assert claims["client_id"] == client.client_id
    assert claims["scope"] == "api"
    assert claims["exp"] - claims["iat"] == 3600
    # And the same check refuses a token whose claims were changed.
    header, _, signature = token.split(".")
    forged_claims = json.dumps({**claims, "sub": "user-2"}).encode()
    forged_payload = base64.urlsafe_b64encode(forged_claims).rstrip(b"=").decode()
    with pytest.raises(jwt.InvalidSignatureError):
        jwt.decode(
            f"{header}.{forged_payload}.{signature}",
            signing_key.key,
            algorithms=[alg],
            audience=document["issuer"],
            issuer=document["issuer"],
        )


@pytest.mark.live
def test_api_checks_a_reference_token_through_the_discovered_introspection_endpoint(
    app: flask.Flask,
) -> None:
    """An API with opaque tokens asks us, finding the endpoint via discovery."""
    with app.app_context():
        clients = ropc_of(app).clients
        client, secret = clients.create(
            "App", scopes=["api"], access_token_format="reference"
        )
        api, api_secret = clients.create("API", scopes=[], is_resource_server=True)
    assert secret is not None and api_secret is not None

    with serve(app) as base_url:
        document = requests.get(base_url + METADATA_PATH, timeout=10).json()
        token = requests.post(
            document["token_endpoint"],
            data=password_form(),
            auth=(client.client_id, secret),
            timeout=10,
        ).json()["access_token"]
        answer = requests.post(
            document["introspection_endpoint"],
            data={"token": token},
            auth=(api.client_id, api_secret),
            timeout=10,
        )

    assert answer.status_code == 200
    assert answer.headers["Cache-Control"] == "no-store"
    body = answer.json()
    assert body["active"] is True
    assert body["sub"] == "user-1"
    assert body["client_id"] == client.client_id
    assert body["iss"] == document["issuer"]
