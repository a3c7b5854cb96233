"""Never a 500, never an HTML page: hostile tokens and Host headers (#13).

* A bearer token whose JOSE header is JSON but not an object (``"alg"``,
  ``[1]``) is ``invalid_token``, not a 500 (item 7).
* A ``kid`` no database can be asked about (a lone surrogate, NUL, too long)
  is refused before any lookup, on SQLite and PostgreSQL (item 8).
* A Host (or, through ProxyFix, X-Forwarded-Host) that Werkzeug cannot use
  gets JSON ``invalid_request`` from every route we own: our endpoints, the
  discovery documents and views decorated with ``require_token`` (with its
  ``WWW-Authenticate``); the app's other views are left to the app (item 9).

Requests with such hosts go through :func:`conftest.wsgi_open`: the test
client itself raises on them after the response. One test sends them over a
real socket to a live server.
"""

from __future__ import annotations

import base64
import http.client
import json
import typing as t
import urllib.parse

import flask
import pytest
from joserfc.jwk import ECKey
from werkzeug.middleware.proxy_fix import ProxyFix

from flask_ropc import ROPC
from flask_ropc import ConfigurationError

from conftest import USERS
from conftest import OAuthClient
from conftest import basic_auth
from conftest import bearer
from conftest import count_rows
from conftest import issue_token
from conftest import password_form
from conftest import ropc_of
from conftest import wsgi_open


def b64url(data: str) -> str:
    return base64.urlsafe_b64encode(data.encode()).decode().rstrip("=")


def token_with_header(header: str) -> str:
    """A compact JWS with ``header`` (JSON text) and a junk signature."""
    return f"{b64url(header)}.{b64url('{}')}.AAAA"


def assert_invalid_token(response: t.Any) -> None:
    assert response.status_code == 401, response.get_data(as_text=True)
    assert response.mimetype == "application/json"
    assert response.get_json()["error"] == "invalid_token"
    assert response.headers["WWW-Authenticate"].startswith(
        'Bearer error="invalid_token"'
    )


# -- item 7: JOSE headers of every JSON type --------------------------------------


@pytest.mark.parametrize(
    "header",
    ['"alg"', '""', '["alg", "ES256"]', "[]", "5", "1.5", "null", "true", "false"],
)
def test_a_jose_header_that_is_not_an_object_is_an_invalid_token(
    http: t.Any, make_client: t.Any, header: str
) -> None:
    token = token_with_header(header)
    assert_invalid_token(http.get("/api/me", headers=bearer(token)))
    api = make_client("API", scopes=[], is_resource_server=True)
    response = http.post(
        "/oauth/introspect", data={"token": token}, headers=basic_auth(*api)
    )
    assert response.status_code == 200, response.get_data(as_text=True)
    assert response.get_json() == {"active": False}


# -- item 8: kids no database can be asked about -----------------------------------


@pytest.mark.parametrize(
    "kid",
    ["\ud800", "a\udfffb", "a\x00b", "\x00", "k\x7f", "", "k" * 65, "k" * 10_000],
    ids=["surrogate", "low-surrogate", "nul", "only-nul", "del", "empty", "65", "10k"],
)
@pytest.mark.parametrize("alg", ["ES256", "RS256"])
def test_a_kid_that_cannot_be_ours_is_refused_before_any_lookup(
    http: t.Any, make_client: t.Any, kid: str, alg: str
) -> None:
    # A key exists, so that the database is asked about unknown kids.
    client = make_client()
    issue_token(http, client)
    token = token_with_header(json.dumps({"typ": "at+jwt", "alg": alg, "kid": kid}))
    assert_invalid_token(http.get("/api/me", headers=bearer(token)))
    api = make_client("API", scopes=[], is_resource_server=True)
    response = http.post(
        "/oauth/introspect", data={"token": token}, headers=basic_auth(*api)
    )
    assert response.status_code == 200, response.get_data(as_text=True)
    assert response.get_json() == {"active": False}


def configured_jwk(kid: str) -> dict[str, t.Any]:
    key = ECKey.generate_key("P-256")
    return dict(key.as_dict(private=True), kid=kid)


@pytest.mark.parametrize("kid", ["a\x00b", "\ud800", "k" * 65, "tab\tkid"])
def test_a_configured_key_whose_kid_could_never_verify_is_refused_at_start(
    tmp_path: t.Any, kid: str
) -> None:
    app = flask.Flask("bad_kid", instance_path=str(tmp_path))
    app.config["ROPC_DATABASE_URI"] = f"sqlite:///{tmp_path / 'db.sqlite3'}"
    app.config["ROPC_SIGNING_KEYS"] = [configured_jwk(kid)]
    with pytest.raises(ConfigurationError, match="kid"):
        ROPC(app)


def test_a_configured_kid_of_printable_characters_signs_and_verifies(
    make_app: t.Any,
) -> None:
    app = make_app(ROPC_SIGNING_KEYS=[configured_jwk("clé 2024-01")])
    with app.app_context():
        client, secret = ropc_of(app).clients.create("c", scopes=["api"])
    http = app.test_client()
    token = issue_token(http, OAuthClient(client.client_id, secret))
    assert http.get("/api/me", headers=bearer(token)).status_code == 200


# -- item 9: Host headers Werkzeug cannot use --------------------------------------

#: Hosts Werkzeug raises on: invalid Punycode (request.url), a label over 63
#: characters or an empty one (routing), a bracketed literal that is no IPv6
#: address (request.url).
UNUSABLE_HOSTS = [
    "xn--a",
    "xn--a.example.com:8443",
    "login.xn--zz-.example.com",
    "a" * 64 + ".example.com",
    "auth..example.com",
    "[1:2]",
]


class Route(t.NamedTuple):
    method: str
    path: str
    protected: bool = False


OUR_ROUTES = [
    Route("POST", "/oauth/token"),
    Route("POST", "/oauth/introspect"),
    Route("POST", "/oauth/revoke"),
    Route("GET", "/oauth/jwks"),
    Route("GET", "/oauth/openapi.json"),
    Route("GET", "/.well-known/oauth-authorization-server"),
    Route("GET", "/.well-known/openid-configuration"),
    Route("GET", "/api/me", protected=True),
    Route("GET", "/api/any", protected=True),
]


def send(app: flask.Flask, route: Route, host: str, **kwargs: t.Any) -> t.Any:
    """``route`` with ``Host: host`` and credentials that would otherwise work."""
    headers = {"Host": host, **kwargs.pop("headers", {})}
    return wsgi_open(app, route.path, method=route.method, headers=headers, **kwargs)


def valid_request(route: Route, client: t.Any, token: str) -> dict[str, t.Any]:
    """Everything but the host right: the request would succeed."""
    if route.protected:
        return {"headers": bearer(token)}
    if route.path.endswith("/token"):
        return {"headers": basic_auth(*client), "data": password_form()}
    if route.method == "POST":
        return {"headers": basic_auth(*client), "data": {"token": token}}
    return {}


def assert_invalid_request(response: t.Any, route: Route) -> None:
    assert response.status_code == 400, (route, response.get_data(as_text=True))
    assert response.mimetype == "application/json", route
    assert response.headers["Cache-Control"] == "no-store"
    body = response.get_json()
    assert body["error"] == "invalid_request", (route, body)
    assert "Host" in body["error_description"]
    if route.protected:
        challenge = response.headers["WWW-Authenticate"]
        assert challenge.startswith('Bearer error="invalid_request"'), challenge


@pytest.mark.parametrize("app_config", [{"ROPC_OPENAPI_ENABLED": True}])
@pytest.mark.parametrize("host", UNUSABLE_HOSTS)
def test_an_unusable_host_is_json_invalid_request_on_every_route_we_own(
    app: flask.Flask, http: t.Any, make_client: t.Any, host: str
) -> None:
    client = make_client(is_resource_server=True)
    token = issue_token(http, client)
    before = count_rows(app)
    for route in OUR_ROUTES:
        assert_invalid_request(
            send(app, route, host, **valid_request(route, client, token)), route
        )
        # ... and the same without any credentials.
        assert_invalid_request(send(app, route, host), route)
    # Nothing was issued, revoked or counted as a failure.
    assert count_rows(app) == before
    assert http.get("/api/me", headers=bearer(token)).status_code == 200


@pytest.mark.parametrize("host", ["xn--a", "a" * 64 + ".example.com"])
def test_x_forwarded_host_through_proxyfix_is_checked_like_host(
    app: flask.Flask, host: str
) -> None:
    # Wrapped after init_app, as the ProxyFix documentation shows.
    app.wsgi_app = ProxyFix(app.wsgi_app, x_proto=1, x_host=1)
    forwarded = {"X-Forwarded-Host": host, "X-Forwarded-Proto": "https"}
    for route in OUR_ROUTES[:4] + OUR_ROUTES[-1:]:
        response = wsgi_open(
            app,
            route.path,
            base_url="http://10.0.0.7:8000",
            method=route.method,
            headers=forwarded,
        )
        assert_invalid_request(response, route)


def test_a_usable_forwarded_host_becomes_the_issuer_without_ropc_issuer(
    make_app: t.Any,
) -> None:
    app = make_app(ROPC_ISSUER=None)
    app.wsgi_app = ProxyFix(app.wsgi_app, x_proto=1, x_host=1)
    for host in ["auth.example.org", "xn--n3h.example.org:8443", "[2001:db8::1]"]:
        response = wsgi_open(
            app,
            "/.well-known/oauth-authorization-server",
            base_url="http://10.0.0.7:8000",
            headers={"X-Forwarded-Host": host, "X-Forwarded-Proto": "https"},
        )
        assert response.status_code == 200, response.get_data(as_text=True)
        issuer = response.get_json()["issuer"]
        assert urllib.parse.urlsplit(issuer).port == (8443 if ":8443" in host else None)
        assert issuer.startswith("https://")


@pytest.mark.parametrize("host", ["auth_server", "ex ample.com", "a.com:0", "é.com"])
def test_a_host_werkzeug_ignores_is_refused_when_the_issuer_comes_from_it(
    make_app: t.Any, host: str
) -> None:
    """Werkzeug treats such a host as absent: the issuer would be ``https:``."""
    app = make_app(ROPC_ISSUER=None)
    for route in OUR_ROUTES[3:4] + OUR_ROUTES[5:]:
        response = send(app, route, host.encode().decode("latin-1"))
        assert_invalid_request(response, route)


@pytest.mark.parametrize("app_config", [{"ROPC_ISSUER": "https://auth.example.com"}])
def test_with_ropc_issuer_a_host_werkzeug_ignores_does_not_matter(
    app: flask.Flask, http: t.Any, oauth_client: t.Any
) -> None:
    """Docker service names (``auth_server``) reach protected views as before."""
    token = issue_token(http, oauth_client)
    route = Route("GET", "/api/me", protected=True)
    response = send(app, route, "auth_server", headers=bearer(token))
    assert response.status_code == 200, response.get_data(as_text=True)
    assert response.get_json()["sub"] == USERS["ann"][1]


def test_an_untrusted_host_under_trusted_hosts_is_json_invalid_request(
    make_app: t.Any,
) -> None:
    app = make_app(TRUSTED_HOSTS=["auth.example.com"])
    for route in OUR_ROUTES[:4] + OUR_ROUTES[5:]:
        assert_invalid_request(send(app, route, "evil.example.net"), route)
    ok = send(app, OUR_ROUTES[3], "auth.example.com")
    assert ok.status_code == 200


def test_the_apps_own_views_are_left_to_the_app(app: flask.Flask) -> None:
    @app.get("/hello")
    def hello() -> str:
        return "hello"

    response = wsgi_open(app, "/hello", headers={"Host": "xn--a"})
    assert response.status_code == 200 and response.get_data() == b"hello"
    # Werkzeug's own answer on a route that is not ours stays.
    response = wsgi_open(app, "/hello", headers={"Host": "a" * 64 + ".com"})
    assert response.status_code == 400 and response.mimetype == "text/html"


def test_a_protected_view_whose_decorator_hides_the_mark_still_answers_json(
    app: flask.Flask, http: t.Any, oauth_client: t.Any
) -> None:
    ropc = ropc_of(app)

    def without_wraps(view: t.Callable[[], t.Any]) -> t.Callable[[], t.Any]:
        def inner() -> t.Any:
            return view()

        return inner

    @app.get("/api/hidden", endpoint="hidden")
    @without_wraps
    @ropc.require_token("api")
    def hidden() -> dict[str, str]:
        return {"ok": "yes"}

    token = issue_token(http, oauth_client)
    route = Route("GET", "/api/hidden", protected=True)
    assert_invalid_request(send(app, route, "xn--a", headers=bearer(token)), route)
    assert http.get("/api/hidden", headers=bearer(token)).get_json() == {"ok": "yes"}


def test_live_server_answers_json_to_an_idna_invalid_host(
    live_server: t.Any, oauth_client: t.Any
) -> None:
    """Over a real socket, as the review sent it."""
    address = urllib.parse.urlsplit(live_server.url)
    for method, path, headers, body in [
        ("GET", "/api/me", {}, b""),
        (
            "POST",
            "/oauth/token",
            {
                **basic_auth(*oauth_client),
                "Content-Type": "application/x-www-form-urlencoded",
            },
            urllib.parse.urlencode(password_form()).encode(),
        ),
    ]:
        conn = http.client.HTTPConnection(address.hostname, address.port, timeout=30)
        try:
            conn.putrequest(method, path, skip_host=True)
            conn.putheader("Host", "xn--a")
            for name, value in headers.items():
                conn.putheader(name, value)
            conn.putheader("Content-Length", str(len(body)))
            conn.endheaders(body)
            response = conn.getresponse()
            data = response.read()
        finally:
            conn.close()
        assert response.status == 400, data
        assert response.getheader("Content-Type") == "application/json"
        assert json.loads(data)["error"] == "invalid_request"


def test_a_doubled_slash_in_our_paths_gets_no_redirect_built_from_the_host(
    app: flask.Flask,
) -> None:
    """Werkzeug answered ``/oauth//token`` with a redirect built from the
    Host header: an HTML 500 for a Host it cannot use, a 308 otherwise."""
    for host in ("[1:2]", "localhost"):
        response = wsgi_open(
            app, "/oauth//token", method="POST", headers={"Host": host}
        )
        assert response.status_code not in (308, 500), response.status_code
