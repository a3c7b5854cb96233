"""The OpenAPI 3.1 description of our endpoints (``flask_ropc/openapi.json``).

Three things are checked: the document is valid OpenAPI 3.1 (by
``openapi-spec-validator``, which also checks every schema in it against the
3.1 meta-schema); it is served at ``{prefix}/openapi.json`` only when
``ROPC_OPENAPI_ENABLED`` is on, naming ``ROPC_ISSUER`` + prefix as its server;
and it tells the truth: real responses of every kind, from a real app on
SQLite and PostgreSQL, validate (with ``jsonschema``) against the schemas and
required headers the document gives for their path, method and status.
"""

from __future__ import annotations

import json
import typing as t
from collections.abc import Callable
from importlib import resources

import flask
import jsonschema
import pytest
from openapi_spec_validator import validate as validate_spec
from referencing import Registry
from referencing.jsonschema import DRAFT202012

from flask_ropc import ROPC
from flask_ropc import GrantResult
from flask_ropc.grant_types import GRANT_TYPES
from flask_ropc.grant_types import MFA_FACTORS

from conftest import SECRET_KEY
from conftest import OAuthClient
from conftest import basic_auth
from conftest import introspect
from conftest import password_form
from dpop_proofs import DPoPKey
from mfa_helpers import MFA_GRANTS
from mfa_helpers import MFA_OTP
from mfa_helpers import MFA_RECOVERY
from mfa_helpers import enable_mfa
from mfa_helpers import otp_now
from mfa_helpers import send_otp
from mfa_helpers import send_recovery
from mfa_helpers import start_login

FORM = "application/x-www-form-urlencoded"
DOCUMENT_URI = "urn:flask-ropc:openapi"
POST_PATHS = ("/token", "/introspect", "/revoke")


def load_document() -> dict[str, t.Any]:
    text = resources.files("flask_ropc").joinpath("openapi.json").read_text("utf-8")
    document: dict[str, t.Any] = json.loads(text)
    return document


DOCUMENT = load_document()


# -- fixtures -----------------------------------------------------------------


@pytest.fixture
def app_config() -> dict[str, t.Any]:
    """Overrides conftest's: the document served, and a fixed issuer."""
    return {"ROPC_OPENAPI_ENABLED": True, "ROPC_ISSUER": "https://auth.example.com"}


@pytest.fixture
def offline_client(make_client: Callable[..., OAuthClient]) -> OAuthClient:
    """A confidential client that may get refresh tokens."""
    return make_client(
        "Offline", scopes=["api", "profile"], grant_types=["password", "refresh_token"]
    )


@pytest.fixture
def outage_app(tmp_path: t.Any) -> flask.Flask:
    """An app whose database refuses connections: every lookup is an outage."""
    application = flask.Flask("outage", instance_path=str(tmp_path))
    application.config.update(
        ROPC_DATABASE_URI="postgresql+psycopg://postgres@127.0.0.1:1/x",
        ROPC_ISSUER="https://auth.example.com",
        SECRET_KEY=SECRET_KEY,
    )
    ropc = ROPC(application)
    ropc.password_validator(lambda req: "someone")
    return application


# -- helpers ------------------------------------------------------------------


def resolve(node: dict[str, t.Any]) -> dict[str, t.Any]:
    """Follow a local ``$ref`` (``#/components/...``) to the object it names."""
    while "$ref" in node:
        target: t.Any = DOCUMENT
        for part in node["$ref"].removeprefix("#/").split("/"):
            target = target[part.replace("~1", "/").replace("~0", "~")]
        node = target
    return node


def documented_response(path: str, method: str, status: int) -> dict[str, t.Any]:
    """The response object for ``status``: exact code first, then ``4XX``."""
    operation = DOCUMENT["paths"][path][method.lower()]
    responses = operation["responses"]
    for key in (str(status), f"{str(status)[0]}XX", "default"):
        if key in responses:
            return resolve(responses[key])
    raise AssertionError(f"{method} {path} documents no {status} response")


def schema_validator(schema: dict[str, t.Any]) -> jsonschema.Draft202012Validator:
    """A validator for ``schema`` whose ``#/components/...`` refs reach DOCUMENT."""
    registry: Registry[t.Any] = Registry().with_resource(
        DOCUMENT_URI, DRAFT202012.create_resource(DOCUMENT)
    )
    wrapper = {"$id": DOCUMENT_URI + "/wrapper", "allOf": [schema]}
    # Relative refs must resolve against the document, not the wrapper.
    wrapper = json.loads(json.dumps(wrapper).replace('"#/', f'"{DOCUMENT_URI}#/'))
    return jsonschema.Draft202012Validator(
        wrapper, registry=registry, format_checker=jsonschema.FormatChecker()
    )


def check_response(response: t.Any, path: str, method: str) -> t.Any:
    """Validate ``response`` against the document; return its JSON body.

    Checks that the status is documented, the content type is one the
    document lists, the body matches its schema and every required header is
    present and matches its schema.
    """
    documented = documented_response(path, method, response.status_code)
    content = documented.get("content", {})
    assert response.mimetype in content, (response.mimetype, list(content))
    body = response.get_json() if response.mimetype == "application/json" else None
    schema = content[response.mimetype]["schema"]
    schema_validator(schema).validate(
        body if body is not None else response.get_data(as_text=True)
    )
    for name, header in documented.get("headers", {}).items():
        header = resolve(header)
        value = response.headers.get(name)
        if header.get("required"):
            assert value is not None, f"missing required header {name}"
        if value is not None:
            schema_validator(header["schema"]).validate(value)
    return body


def token_request(
    http: t.Any, client: OAuthClient | None, form: dict[str, str], **kwargs: t.Any
) -> t.Any:
    headers = basic_auth(client.client_id, t.cast(str, client.secret)) if client else {}
    return http.post("/oauth/token", data=form, headers=headers, **kwargs)


def issue(http: t.Any, client: OAuthClient, **extra: str) -> dict[str, t.Any]:
    response = token_request(http, client, password_form(**extra))
    assert response.status_code == 200, response.get_data(as_text=True)
    body: dict[str, t.Any] = response.get_json()
    return body


def error_codes(schema_name: str) -> set[str]:
    return set(DOCUMENT["components"]["schemas"][schema_name]["enum"])


# -- the document -------------------------------------------------------------


def test_document_is_valid_openapi_3_1() -> None:
    """openapi-spec-validator: the 3.1 structure and every schema in it."""
    assert DOCUMENT["openapi"].startswith("3.1.")
    validate_spec(DOCUMENT)


def test_document_describes_every_endpoint() -> None:
    paths = DOCUMENT["paths"]
    assert set(paths) == {
        "/token",
        "/introspect",
        "/revoke",
        "/jwks",
        "/openapi.json",
        "/.well-known/oauth-authorization-server",
        "/.well-known/openid-configuration",
    }
    for path in POST_PATHS:
        post = paths[path]["post"]
        body = post["requestBody"]
        assert body["required"] is True
        assert list(body["content"]) == [FORM]
        assert {"200", "400", "401", "500", "503"} <= set(post["responses"])
        for method in ("get", "put", "patch", "delete", "options"):
            assert set(paths[path][method]["responses"]) == {"405"}
    assert {"429", "4XX"} <= set(paths["/token"]["post"]["responses"])
    schemes = DOCUMENT["components"]["securitySchemes"]
    assert (schemes["clientBasic"]["type"], schemes["clientBasic"]["scheme"]) == (
        "http",
        "basic",
    )
    assert (schemes["bearerAuth"]["type"], schemes["bearerAuth"]["scheme"]) == (
        "http",
        "bearer",
    )
    # Discovery lives at the host root, whatever the prefix.
    for path in paths:
        if path.startswith("/.well-known/"):
            assert paths[path]["servers"] == [
                {"url": "/", "description": paths[path]["servers"][0]["description"]}
            ]


def test_operation_ids_are_unique() -> None:
    ids = [
        operation["operationId"]
        for item in DOCUMENT["paths"].values()
        for key, operation in item.items()
        if key != "servers"
    ]
    assert len(ids) == len(set(ids))


def test_token_error_codes_are_rfc_6749_and_our_own() -> None:
    assert error_codes("TokenErrorCode") == {
        "invalid_request",
        "invalid_client",
        "invalid_grant",
        "unauthorized_client",
        "unsupported_grant_type",
        "invalid_scope",
        "slow_down",
        "server_error",
        "temporarily_unavailable",
        "invalid_dpop_proof",
        "use_dpop_nonce",
    }


# -- serving it ---------------------------------------------------------------


@pytest.mark.parametrize("app_config", [{}])
def test_not_served_by_default(http: t.Any) -> None:
    assert http.get("/oauth/openapi.json").status_code == 404


@pytest.mark.parametrize("app_config", [{"ROPC_OPENAPI_ENABLED": False}])
def test_not_served_when_disabled(http: t.Any) -> None:
    response = http.get("/oauth/openapi.json")
    assert response.status_code == 404
    check_response(response, "/openapi.json", "GET")


def test_served_when_enabled_with_the_issuer_and_prefix_as_server(http: t.Any) -> None:
    response = http.get("/oauth/openapi.json")
    assert response.status_code == 200
    body = check_response(response, "/openapi.json", "GET")
    assert body["servers"] == [{"url": "https://auth.example.com/oauth"}]
    assert {k: v for k, v in body.items() if k != "servers"} == {
        k: v for k, v in DOCUMENT.items() if k != "servers"
    }


@pytest.mark.parametrize(
    "app_config",
    [
        {
            "ROPC_OPENAPI_ENABLED": True,
            "ROPC_ISSUER": "https://id.example.org/tenant",
            "ROPC_URL_PREFIX": "/auth/v1",
        }
    ],
)
def test_server_url_follows_a_custom_issuer_and_prefix(http: t.Any) -> None:
    assert http.get("/oauth/openapi.json").status_code == 404
    body = http.get("/auth/v1/openapi.json").get_json()
    assert body["servers"] == [{"url": "https://id.example.org/tenant/auth/v1"}]


@pytest.mark.parametrize("app_config", [{"ROPC_OPENAPI_ENABLED": True}])
def test_server_url_without_an_issuer_is_the_request_base_url(http: t.Any) -> None:
    body = http.get("/oauth/openapi.json", base_url="https://as.example.net").get_json()
    assert body["servers"] == [{"url": "https://as.example.net/oauth"}]


# -- real responses against the document: the token endpoint ------------------


def test_password_grant_success(http: t.Any, oauth_client: OAuthClient) -> None:
    response = token_request(http, oauth_client, password_form(scope="api"))
    assert response.status_code == 200
    body = check_response(response, "/token", "POST")
    assert body["token_type"] == "Bearer"
    assert body["display_name"] == "Ann"  # a validator's extra field is allowed


def test_refresh_grant_success_with_sunset_headers(
    app: flask.Flask, http: t.Any, ropc: ROPC, offline_client: OAuthClient
) -> None:
    first = issue(http, offline_client, scope="api offline_access")
    assert "refresh_token" in first
    with app.app_context():
        ropc.clients.update(offline_client.client_id, sunset_at=4102444800)
    response = token_request(
        http,
        offline_client,
        {"grant_type": "refresh_token", "refresh_token": first["refresh_token"]},
    )
    assert response.status_code == 200
    assert "Sunset" in response.headers and "Deprecation" in response.headers
    body = check_response(response, "/token", "POST")
    assert body["refresh_token"] != first["refresh_token"]


TOKEN_ERRORS: list[tuple[str, dict[str, str], str | None, int, str]] = [
    # (id, form, credentials: "basic" / "none" / "wrong", status, error)
    ("no grant_type", {"username": "ann"}, "basic", 400, "invalid_request"),
    ("unknown grant", {"grant_type": "magic"}, "basic", 400, "unsupported_grant_type"),
    ("missing password", {"grant_type": "password", "username": "ann"}, "basic", 400,
     "invalid_request"),
    ("wrong password", password_form("ann") | {"password": "nope"}, "basic", 400,
     "invalid_grant"),
    ("scope not allowed", password_form(scope="admin"), "basic", 400, "invalid_scope"),
    ("malformed scope", password_form(scope='a"b'), "basic", 400, "invalid_scope"),
    ("bad refresh token", {"grant_type": "refresh_token", "refresh_token": "x"},
     "basic", 400, "invalid_grant"),
    ("refresh not allowed", {"grant_type": "refresh_token", "refresh_token": "x"},
     "password-only", 400, "unauthorized_client"),
    ("wrong secret", password_form(), "wrong", 401, "invalid_client"),
    ("no credentials", password_form(), None, 401, "invalid_client"),
]  # fmt: skip


@pytest.mark.parametrize(
    ("form", "credentials", "status", "error"),
    [pytest.param(*case[1:], id=case[0]) for case in TOKEN_ERRORS],
)
def test_token_errors(
    http: t.Any,
    make_client: Callable[..., OAuthClient],
    offline_client: OAuthClient,
    form: dict[str, str],
    credentials: str | None,
    status: int,
    error: str,
) -> None:
    client: OAuthClient | None = offline_client
    if credentials == "wrong":
        client = OAuthClient(offline_client.client_id, "not-the-secret")
    elif credentials == "password-only":
        client = make_client("Password only")
    elif credentials is None:
        client = None
    response = token_request(http, client, form)
    assert response.status_code == status, response.get_data(as_text=True)
    body = check_response(response, "/token", "POST")
    assert body["error"] == error
    assert error in error_codes("TokenErrorCode")


@pytest.mark.parametrize(
    ("case", "request_kwargs"),
    [
        ("json body", {"json": password_form()}),
        ("query parameter", {"query_string": {"scope": "api"}}),
        ("repeated parameter", {"data": "grant_type=password&grant_type=password"}),
        ("invalid UTF-8", {"data": b"grant_type=password&username=\xff"}),
        ("too large", {"data": "grant_type=password&x=" + "a" * 20000}),
        ("plain http to a remote host", {"base_url": "http://auth.example.com"}),
    ],
)
def test_token_request_rule_violations_are_invalid_request(
    http: t.Any,
    oauth_client: OAuthClient,
    case: str,
    request_kwargs: dict[str, t.Any],
) -> None:
    kwargs = {"data": password_form(), **request_kwargs}
    if "json" in kwargs:
        del kwargs["data"]
    elif isinstance(kwargs["data"], bytes | str):
        kwargs["content_type"] = FORM
    response = http.post(
        "/oauth/token",
        headers=basic_auth(oauth_client.client_id, t.cast(str, oauth_client.secret)),
        **kwargs,
    )
    assert response.status_code == 400, response.get_data(as_text=True)
    assert check_response(response, "/token", "POST")["error"] == "invalid_request"


def test_throttled_password_attempts_are_429_slow_down(
    http: t.Any, oauth_client: OAuthClient
) -> None:
    form = password_form("ann") | {"password": "wrong"}
    responses = [token_request(http, oauth_client, form) for _ in range(6)]
    assert [r.status_code for r in responses] == [400] * 5 + [429]
    body = check_response(responses[-1], "/token", "POST")
    assert body["error"] == "slow_down"


def test_validator_crash_is_500_server_error(
    http: t.Any, ropc: ROPC, oauth_client: OAuthClient
) -> None:
    def crash(req: t.Any) -> t.Any:
        raise RuntimeError("validator bug")

    ropc.password_validator(crash)
    response = token_request(http, oauth_client, password_form())
    assert response.status_code == 500
    assert check_response(response, "/token", "POST")["error"] == "server_error"


@pytest.mark.parametrize("status", [400, 403])
def test_validator_chosen_error_is_documented(
    http: t.Any, ropc: ROPC, oauth_client: OAuthClient, status: int
) -> None:
    def mfa(req: t.Any) -> GrantResult:
        return GrantResult.error(
            "mfa_required",
            "Second factor needed.",
            {"mfa_token": "m"},
            status_code=status,
        )

    ropc.password_validator(mfa)
    response = token_request(http, oauth_client, password_form())
    assert response.status_code == status
    assert check_response(response, "/token", "POST")["error"] == "mfa_required"


@pytest.mark.parametrize("path", POST_PATHS)
@pytest.mark.parametrize("method", ["GET", "PUT", "PATCH", "DELETE", "OPTIONS"])
def test_other_methods_are_405(http: t.Any, path: str, method: str) -> None:
    response = http.open("/oauth" + path, method=method)
    assert response.status_code == 405
    assert check_response(response, path, method)["error"] == "invalid_request"


# -- introspection and revocation ---------------------------------------------


def test_introspection_active_access_and_refresh_tokens(
    http: t.Any, offline_client: OAuthClient
) -> None:
    tokens = issue(http, offline_client, scope="api offline_access")
    access = introspect(http, offline_client, tokens["access_token"])
    body = check_response(access, "/introspect", "POST")
    assert body["active"] is True and body["token_type"] == "Bearer"
    refresh = introspect(http, offline_client, tokens["refresh_token"])
    body = check_response(refresh, "/introspect", "POST")
    assert body["active"] is True and body["token_type"] == "refresh_token"


def test_introspection_inactive(http: t.Any, oauth_client: OAuthClient) -> None:
    response = introspect(http, oauth_client, "no-such-token")
    assert check_response(response, "/introspect", "POST") == {"active": False}


@pytest.mark.parametrize("path", ["/introspect", "/revoke"])
def test_introspection_and_revocation_errors(
    http: t.Any, oauth_client: OAuthClient, path: str
) -> None:
    missing = http.post(
        "/oauth" + path,
        data={"token_type_hint": "access_token"},
        headers=basic_auth(oauth_client.client_id, t.cast(str, oauth_client.secret)),
    )
    assert missing.status_code == 400
    assert check_response(missing, path, "POST")["error"] == "invalid_request"
    wrong = http.post(
        "/oauth" + path,
        data={"token": "x"},
        headers=basic_auth(oauth_client.client_id, "wrong"),
    )
    assert wrong.status_code == 401
    assert check_response(wrong, path, "POST")["error"] == "invalid_client"


def test_revocation_is_an_empty_object(http: t.Any, oauth_client: OAuthClient) -> None:
    token = issue(http, oauth_client)["access_token"]
    for value in (token, "unknown"):
        response = http.post(
            "/oauth/revoke",
            data={"token": value},
            headers=basic_auth(
                oauth_client.client_id, t.cast(str, oauth_client.secret)
            ),
        )
        assert response.status_code == 200
        assert check_response(response, "/revoke", "POST") == {}


# -- JWKS and discovery -------------------------------------------------------


@pytest.mark.parametrize(
    "app_config",
    [{"ROPC_SIGNING_ALG": alg} for alg in ("ES256", "RS256", "EdDSA")],
    ids=["ES256", "RS256", "EdDSA"],
)
def test_jwks(http: t.Any, oauth_client: OAuthClient) -> None:
    issue(http, oauth_client)  # the first token generates the key
    response = http.get("/oauth/jwks")
    assert response.status_code == 200
    body = check_response(response, "/jwks", "GET")
    assert len(body["keys"]) == 1


@pytest.mark.parametrize(
    "path",
    ["/.well-known/oauth-authorization-server", "/.well-known/openid-configuration"],
)
def test_discovery(
    http: t.Any, make_client: Callable[..., OAuthClient], path: str
) -> None:
    make_client(scopes=["api", "offline_access"])
    response = http.get(path)
    assert response.status_code == 200
    body = check_response(response, path, "GET")
    assert body["token_endpoint"] == "https://auth.example.com/oauth/token"


# -- outages ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("method", "path", "data"),
    [
        ("POST", "/token", password_form()),
        ("POST", "/introspect", {"token": "x"}),
        ("POST", "/revoke", {"token": "x"}),
        ("GET", "/jwks", None),
        ("GET", "/.well-known/oauth-authorization-server", None),
    ],
)
def test_database_outage_is_503(
    outage_app: flask.Flask, method: str, path: str, data: dict[str, str] | None
) -> None:
    url = path if path.startswith("/.well-known/") else "/oauth" + path
    response = outage_app.test_client().open(
        url, method=method, data=data, headers=basic_auth("c", "s")
    )
    assert response.status_code == 503
    body = check_response(response, path, method)
    assert body["error"] == "temporarily_unavailable"


# -- bearer errors of protected routes (documented as components) -------------


def component_response(name: str, response: t.Any) -> dict[str, t.Any]:
    """Validate a protected route's answer against a documented response."""
    documented = resolve({"$ref": f"#/components/responses/{name}"})
    schema = documented["content"]["application/json"]["schema"]
    body: dict[str, t.Any] = response.get_json()
    schema_validator(schema).validate(body)
    for header_name, header in documented["headers"].items():
        header = resolve(header)
        schema_validator(header["schema"]).validate(response.headers[header_name])
    return body


def test_bearer_errors(http: t.Any, make_client: Callable[..., OAuthClient]) -> None:
    client = make_client(scopes=["api"])
    token = issue(http, client)["access_token"]
    none = http.get("/api/me")
    assert none.status_code == 401
    assert component_response("BearerUnauthorized", none) == {}
    bad = http.get("/api/me", headers={"Authorization": "Bearer " + token[:-4]})
    assert bad.status_code == 401
    assert component_response("BearerUnauthorized", bad)["error"] == "invalid_token"
    scope = http.get("/api/admin", headers={"Authorization": "Bearer " + token})
    assert scope.status_code == 403
    body = component_response("BearerForbidden", scope)
    assert body["error"] == "insufficient_scope"


def test_dpop_bound_tokens_and_dpop_errors_are_documented(
    http: t.Any, oauth_client: OAuthClient
) -> None:
    proof = DPoPKey().proof("POST", "https://auth.example.com/oauth/token")
    headers = {**basic_auth(*oauth_client), "DPoP": proof}
    response = http.post("/oauth/token", data=password_form(), headers=headers)
    assert check_response(response, "/token", "POST")["token_type"] == "DPoP"
    info = introspect(http, oauth_client, response.json["access_token"])
    assert check_response(info, "/introspect", "POST")["cnf"]["jkt"]
    replayed = http.post("/oauth/token", data=password_form(), headers=headers)
    assert check_response(replayed, "/token", "POST")["error"] == "invalid_dpop_proof"


# -- MFA continuation -----------------------------------------------------------


@pytest.fixture
def mfa_client(app: flask.Flask, make_client: Callable[..., OAuthClient]) -> t.Any:
    """A client whose users need a second factor (``mfa_helpers``)."""
    app.extensions["test_clock"].freeze()
    enable_mfa(app)
    return make_client("MFA", scopes=["api", "profile"], grant_types=MFA_GRANTS)


def test_the_document_names_every_grant_type_and_factor() -> None:
    schemas = DOCUMENT["components"]["schemas"]
    metadata = schemas["AuthorizationServerMetadata"]["properties"]
    assert metadata["grant_types_supported"]["items"]["enum"] == list(GRANT_TYPES)
    assert set(schemas["TokenRequest"]["discriminator"]["mapping"]) == set(GRANT_TYPES)
    challenge = schemas["MfaRequiredError"]["properties"]["mfa_requirements"]
    item = challenge["properties"]["challenge"]["items"]
    assert item["properties"]["type"]["enum"] == list(MFA_FACTORS)
    for name in ("PasswordGrantRequest", "RefreshTokenGrantRequest"):
        assert {"acr_values", "max_age"} <= set(schemas[name]["properties"])


@pytest.mark.parametrize(
    "app_config", [{}, {"ROPC_MFA_REQUIRED_STATUS": 400}], ids=["403", "400"]
)
def test_mfa_required_and_both_continuations_are_documented(
    app: flask.Flask, http: t.Any, mfa_client: t.Any
) -> None:
    first = start_login(http, mfa_client)
    assert first.status_code == app.config.get("ROPC_MFA_REQUIRED_STATUS", 403)
    body = check_response(first, "/token", "POST")
    assert body["error"] == "mfa_required"
    # The 403 schema also admits a validator's own error: check the MFA one.
    schema_validator({"$ref": "#/components/schemas/MfaRequiredError"}).validate(body)
    done = send_otp(http, mfa_client, body["mfa_token"], otp_now(app))
    assert done.status_code == 200
    check_response(done, "/token", "POST")
    token = start_login(http, mfa_client).get_json()["mfa_token"]
    recovered = send_recovery(http, mfa_client, token, "RC-user-1")
    assert recovered.status_code == 200
    assert check_response(recovered, "/token", "POST")["recovery_code"]


@pytest.mark.parametrize(
    ("form", "error"),
    [
        ({"grant_type": MFA_OTP, "mfa_token": "no-such", "otp": "1"}, "invalid_grant"),
        ({"grant_type": MFA_RECOVERY, "mfa_token": "x"}, "invalid_request"),
        ({"grant_type": MFA_OTP, "otp": "123456"}, "invalid_request"),
        (password_form(acr_values="urn:made:up"), "invalid_request"),
        (password_form(max_age="-1"), "invalid_request"),
    ],
    ids=["unknown-token", "no-code", "no-token", "bad-acr", "bad-max-age"],
)
def test_mfa_and_step_up_refusals_are_documented(
    http: t.Any, mfa_client: t.Any, form: dict[str, str], error: str
) -> None:
    response = token_request(http, mfa_client, form)
    assert response.status_code == 400
    assert check_response(response, "/token", "POST")["error"] == error


def test_a_wrong_code_is_documented(http: t.Any, mfa_client: t.Any) -> None:
    token = start_login(http, mfa_client).get_json()["mfa_token"]
    wrong = send_otp(http, mfa_client, token, "000000")
    assert check_response(wrong, "/token", "POST")["error"] == "invalid_grant"
