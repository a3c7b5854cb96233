"""RFC 9068 JWT access tokens and their signing keys, end to end.

Through the token endpoint, ``@ropc.require_token`` views, ``GET /oauth/jwks``,
the ``flask ropc keys`` commands and the real database. Forged tokens are
built with joserfc (or by hand) from keys generated here, or from our own
signing key as stored in the database; where a forged token must get past
the database lookup to prove a JWT check, a token row is written for it into
the access-token table through ``ropc.engine``, so that only that check
stands between the token and the view (see
test_forge_harness_control_is_accepted).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import logging
import typing as t
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

import flask
import jwt as pyjwt
import pytest
import sqlalchemy as sa
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric import rsa
from joserfc import jwk
from joserfc import jws
from joserfc.jwk import ECKey
from joserfc.jwk import RSAKey

import flask_ropc
from flask_ropc import ConfigurationError
from flask_ropc import GrantResult
from flask_ropc import hashing
from flask_ropc.state import get_state

from conftest import Clock
from conftest import basic_auth
from conftest import bearer
from conftest import clock_of
from conftest import clock_shifted
from conftest import count_rows
from conftest import password_form
from conftest import post_as
from conftest import ropc_of
from conftest import table_rows
from conftest import wait_for_lock_waits

TOKEN_URL = "/oauth/token"
JWKS_URL = "/oauth/jwks"
PRIVATE_MEMBERS = ("d", "p", "q", "dp", "dq", "qi")


# -- helpers ------------------------------------------------------------------


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def _header(token: str) -> dict[str, t.Any]:
    """The JOSE header of a compact JWS, unverified."""
    return t.cast(dict[str, t.Any], json.loads(_unb64(token.split(".")[0])))


def _claims(token: str) -> dict[str, t.Any]:
    """The claims of a compact JWS, unverified."""
    return t.cast(dict[str, t.Any], json.loads(_unb64(token.split(".")[1])))


def _token_response(http: t.Any, client: t.Any, **form: str) -> t.Any:
    response = http.post(
        TOKEN_URL, data=password_form(**form), headers=basic_auth(*client)
    )
    assert response.status_code == 200, response.json
    return response


def _token(http: t.Any, client: t.Any, **form: str) -> str:
    return str(_token_response(http, client, **form).json["access_token"])


def _assert_rejected(http: t.Any, token: str, path: str = "/api/me") -> None:
    response = http.get(path, headers=bearer(token))
    assert response.status_code == 401, response.json
    assert response.json["error"] == "invalid_token"
    assert 'error="invalid_token"' in response.headers["WWW-Authenticate"]


def _jwks(http: t.Any) -> list[dict[str, t.Any]]:
    response = http.get(JWKS_URL)
    assert response.status_code == 200
    return t.cast(list[dict[str, t.Any]], response.json["keys"])


def _jwks_kids(http: t.Any) -> set[str]:
    return {key["kid"] for key in _jwks(http)}


class Signer(t.NamedTuple):
    """Our real signing key: its ``kid``, ``alg`` and joserfc private ``key``."""

    kid: str
    alg: str
    key: t.Any


def _private_jwk(app: flask.Flask, row: t.Any) -> dict[str, t.Any]:
    """The private JWK of a stored key row, as the app decrypts it.

    Stored keys are encrypted (under a key derived from SECRET_KEY), and the
    admin API never hands out a private key: this reaches into the key row
    store (``get_state(app).store.keys``) on purpose.
    """
    return t.cast(
        dict[str, t.Any], json.loads(get_state(app).store.keys.private_jwk(row))
    )


def _signer(app: flask.Flask) -> Signer:
    """Our real signing key, read from its stored row (see :func:`_private_jwk`)."""
    with app.app_context():
        current = ropc_of(app).keys.current()
    (row,) = [
        row for row in table_rows(app, "ropc_signing_keys") if row.kid == current.kid
    ]
    private = jwk.import_key(_private_jwk(app, row))
    return Signer(current.kid, current.alg, private)


def _engine(app: flask.Flask) -> sa.Engine:
    """The engine our tables live on."""
    with app.app_context():
        return ropc_of(app).engine


def _table(app: flask.Flask, name: str) -> tuple[sa.Engine, sa.Table]:
    """The engine and our table ``name``, reflected from the database."""
    engine = _engine(app)
    return engine, sa.Table(name, sa.MetaData(), autoload_with=engine)


def _sign(header: dict[str, t.Any], claims: dict[str, t.Any], key: t.Any) -> str:
    """A compact JWS with exactly ``header`` (joserfc adds no ``typ``)."""
    payload = json.dumps(claims, separators=(",", ":"))
    return jws.serialize_compact(header, payload, key, algorithms=[header["alg"]])


def _hand_made(header: dict[str, t.Any], claims: dict[str, t.Any], sig: bytes) -> str:
    head = _b64(json.dumps(header).encode())
    body = _b64(json.dumps(claims).encode())
    return f"{head}.{body}.{_b64(sig)}"


def _store_row(
    app: flask.Flask,
    value: str,
    client_id: str,
    *,
    scope: str = "api profile",
    kid: str | None = None,
    lifetime: int = 3600,
) -> None:
    """Store a live token row for ``value``, as the token endpoint would.

    Written straight into the access-token table (its columns are the
    contract), so the forged token differs from a real one only in the JWT.
    """
    now = int(clock_of(app)())
    engine, access_tokens = _table(app, "ropc_access_tokens")
    with engine.begin() as conn:
        conn.execute(
            access_tokens.insert().values(
                token_digest=hashing.digest(value),
                client_id=client_id,
                subject="user-1",
                grant_type="password",
                scope=scope,
                claims=json.dumps({"role": "member"}),
                issued_at=now,
                expires_at=now + lifetime,
                kid=kid,
            )
        )


def _ropc(runner: t.Any, *args: str) -> t.Any:
    return runner.invoke(args=["ropc", *args])


def _ok(result: t.Any) -> str:
    assert result.exit_code == 0, result.output
    assert result.exception is None, result.output
    return str(result.output)


def _failed(result: t.Any) -> str:
    assert result.exit_code != 0, result.output
    assert not isinstance(result.exception, AssertionError | TypeError | KeyError)
    return str(result.output)


def _keys_json(runner: t.Any) -> list[dict[str, t.Any]]:
    out = _ok(_ropc(runner, "keys", "list", "--json"))
    return t.cast(list[dict[str, t.Any]], json.loads(out)["keys"])


def _status_of(runner: t.Any) -> dict[str, str]:
    return {row["kid"]: row["status"] for row in _keys_json(runner)}


def _new_client(app: flask.Flask, **options: t.Any) -> tuple[str, str]:
    options.setdefault("scopes", ["api", "profile"])
    with app.app_context():
        client, secret = ropc_of(app).clients.create("Client", **options)
    assert secret is not None
    return client.client_id, secret


def _ec_pem(curve: ec.EllipticCurve | None = None) -> str:
    private = ec.generate_private_key(curve or ec.SECP256R1())
    return private.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    ).decode()


def _rsa_pem(bits: int) -> str:
    private = rsa.generate_private_key(public_exponent=65537, key_size=bits)
    return private.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    ).decode()


# -- the default format and its claims ---------------------------------------


def test_access_tokens_are_at_jwt_es256_with_a_kid_published_in_the_jwks(
    http: t.Any, oauth_client: t.Any
) -> None:
    token = _token(http, oauth_client)
    header = _header(token)
    assert header["typ"] == "at+jwt"
    assert header["alg"] == "ES256"
    published = {key["kid"]: key for key in _jwks(http)}
    assert header["kid"] in published
    assert published[header["kid"]]["alg"] == "ES256"


def test_jwt_carries_the_rfc_9068_claims_and_the_validators_claims(
    http: t.Any, oauth_client: t.Any
) -> None:
    claims = _claims(_token(http, oauth_client))
    assert claims["iss"] == "http://localhost"
    assert claims["sub"] == "user-1"
    assert claims["aud"] == "http://localhost"
    assert claims["client_id"] == oauth_client.client_id
    assert claims["scope"] == "api profile"
    assert claims["role"] == "member"
    assert isinstance(claims["jti"], str) and len(claims["jti"]) >= 16
    assert isinstance(claims["iat"], int)
    assert claims["auth_time"] == claims["iat"]
    assert claims["exp"] - claims["iat"] == 3600


def test_jwt_lifetime_is_the_clients_own_and_matches_expires_in(
    http: t.Any, make_client: t.Any
) -> None:
    response = _token_response(http, make_client(access_token_lifetime=60))
    claims = _claims(response.json["access_token"])
    assert response.json["expires_in"] == 60
    assert claims["exp"] - claims["iat"] == 60


def test_every_jwt_has_its_own_jti_and_each_one_works(
    http: t.Any, oauth_client: t.Any
) -> None:
    """Two tokens for the same user in the same second are distinct tokens."""
    first = _token(http, oauth_client)
    second = _token(http, oauth_client)
    assert first != second
    assert _claims(first)["jti"] != _claims(second)["jti"]
    for token in (first, second):
        assert http.get("/api/me", headers=bearer(token)).status_code == 200


def test_jwt_reaches_a_protected_view_with_current_token(
    http: t.Any, oauth_client: t.Any
) -> None:
    token = _token(http, oauth_client)
    response = http.get("/api/me", headers=bearer(token))
    assert response.status_code == 200
    assert response.json == {
        "sub": "user-1",
        "client_id": oauth_client.client_id,
        "scopes": ["api", "profile"],
        "claims": {"role": "member"},
    }


@pytest.mark.parametrize("alg", ["ES256", "RS256", "EdDSA"])
def test_an_api_can_verify_our_jwt_with_pyjwt_and_the_published_jwks(
    make_app: t.Any, alg: str
) -> None:
    """What a separate resource server does: fetch the JWKS, verify locally."""
    app = make_app(ROPC_SIGNING_ALG=alg)
    http = app.test_client()
    token = _token(http, _new_client(app))
    jwk = next(k for k in _jwks(http) if k["kid"] == _header(token)["kid"])
    claims = pyjwt.decode(
        token,
        pyjwt.PyJWK(jwk).key,
        algorithms=[alg],
        audience="http://localhost",
        issuer="http://localhost",
    )
    assert claims["sub"] == "user-1"


# -- issuer and audience -------------------------------------------------------


def test_without_ropc_issuer_iss_and_aud_are_the_requests_base_url(
    app: flask.Flask, oauth_client: t.Any
) -> None:
    http = app.test_client()
    token = _token(http, oauth_client)
    assert _claims(token)["iss"] == "http://localhost"
    other = app.test_client()
    response = other.post(
        TOKEN_URL,
        data=password_form(),
        headers=basic_auth(*oauth_client),
        base_url="https://auth.test",
    )
    assert response.status_code == 200, response.json
    claims = _claims(response.json["access_token"])
    assert claims["iss"] == "https://auth.test"
    assert claims["aud"] == "https://auth.test"


def test_ropc_issuer_sets_iss_and_aud_whatever_host_the_request_used(
    make_app: t.Any,
) -> None:
    app = make_app(ROPC_ISSUER="https://auth.example.com")
    http = app.test_client()
    client = _new_client(app)
    response = http.post(
        TOKEN_URL,
        data=password_form(),
        headers=basic_auth(*client),
        base_url="https://a.example",
    )
    assert response.status_code == 200, response.json
    token = response.json["access_token"]
    assert _claims(token)["iss"] == "https://auth.example.com"
    assert _claims(token)["aud"] == "https://auth.example.com"
    used = http.get("/api/me", headers=bearer(token), base_url="https://b.example")
    assert used.status_code == 200


def test_ropc_audience_overrides_the_default_aud(make_app: t.Any) -> None:
    app = make_app(ROPC_AUDIENCE="https://api.example.org")
    http = app.test_client()
    token = _token(http, _new_client(app))
    assert _claims(token)["aud"] == "https://api.example.org"
    assert _claims(token)["iss"] == "http://localhost"
    assert http.get("/api/me", headers=bearer(token)).status_code == 200


def test_a_client_audience_sets_aud_and_other_apis_refuse_the_token(
    http: t.Any, make_client: t.Any
) -> None:
    """RFC 9068 §4: a token meant for another API is not accepted here."""
    token = _token(http, make_client(audience="https://api.example"))
    assert _claims(token)["aud"] == "https://api.example"
    _assert_rejected(http, token)


# -- validator claims that clash with registered claims ------------------------


@pytest.mark.parametrize(
    "claims",
    [{"sub": "x"}, {"scope": "admin"}, {"iss": "https://evil.example"}, {"exp": 1}],
    ids=["sub", "scope", "iss", "exp"],
)
def test_validator_claim_clashing_with_a_registered_claim_is_a_500_and_no_token(
    app: flask.Flask,
    http: t.Any,
    oauth_client: t.Any,
    ropc: flask_ropc.ROPC,
    caplog: pytest.LogCaptureFixture,
    claims: dict[str, t.Any],
) -> None:
    ropc.password_validator(lambda req: GrantResult.success("user-1", claims=claims))
    before = count_rows(app)
    with caplog.at_level(logging.ERROR, logger="flask_ropc"):
        response = http.post(
            TOKEN_URL, data=password_form(), headers=basic_auth(*oauth_client)
        )
    assert response.status_code == 500
    assert response.json["error"] == "server_error"
    assert "access_token" not in response.json
    (name,) = claims
    errors = [r for r in caplog.records if r.levelno >= logging.ERROR]
    assert errors, "the configuration error was not logged"
    assert any(name in r.getMessage() and "claim" in r.getMessage() for r in errors)
    assert count_rows(app)["ropc_access_tokens"] == before["ropc_access_tokens"]


# -- reference tokens ----------------------------------------------------------


def test_reference_format_app_wide_issues_opaque_tokens_that_work(
    make_app: t.Any,
) -> None:
    app = make_app(ROPC_ACCESS_TOKEN_FORMAT="reference")
    http = app.test_client()
    token = _token(http, _new_client(app))
    assert "." not in token
    response = http.get("/api/me", headers=bearer(token))
    assert response.status_code == 200
    assert response.json["sub"] == "user-1"


def test_a_reference_client_in_a_jwt_app_gets_an_opaque_token_that_works(
    http: t.Any, make_client: t.Any
) -> None:
    token = _token(http, make_client(access_token_format="reference"))
    assert "." not in token
    assert http.get("/api/me", headers=bearer(token)).status_code == 200


def test_a_jwt_client_in_a_reference_app_gets_a_jwt_that_works(
    make_app: t.Any,
) -> None:
    app = make_app(ROPC_ACCESS_TOKEN_FORMAT="reference")
    http = app.test_client()
    jwt_token = _token(http, _new_client(app, access_token_format="jwt"))
    assert _header(jwt_token)["typ"] == "at+jwt"
    assert http.get("/api/me", headers=bearer(jwt_token)).status_code == 200
    assert "." not in _token(http, _new_client(app))


# -- forged and damaged tokens -------------------------------------------------


def _genuine(app: flask.Flask, http: t.Any, client: t.Any) -> tuple[str, t.Any]:
    """A really issued token and our real signing key."""
    token = _token(http, client)
    key = _signer(app)
    assert _header(token)["kid"] == key.kid
    return token, key


def _good_header(key: t.Any) -> dict[str, t.Any]:
    return {"alg": key.alg, "kid": key.kid, "typ": "at+jwt"}


@pytest.mark.parametrize("typ", ["at+jwt", "application/at+jwt"])
def test_forge_harness_control_is_accepted(
    app: flask.Flask, http: t.Any, oauth_client: t.Any, typ: str
) -> None:
    """A re-signed copy with a stored row passes: the forgeries below fail
    only because of what each one changes."""
    token, key = _genuine(app, http, oauth_client)
    claims = _claims(token)
    claims["jti"] = "control"
    copy = _sign({**_good_header(key), "typ": typ}, claims, key.key)
    _store_row(app, copy, oauth_client.client_id, kid=key.kid)
    assert http.get("/api/me", headers=bearer(copy)).status_code == 200


def test_jwt_signed_by_another_key_under_our_kid_is_rejected(
    app: flask.Flask, http: t.Any, oauth_client: t.Any
) -> None:
    token, key = _genuine(app, http, oauth_client)
    attacker = ECKey.generate_key("P-256")
    forged = _sign(_good_header(key), _claims(token), attacker)
    _store_row(app, forged, oauth_client.client_id, kid=key.kid)
    _assert_rejected(http, forged)


def test_jwt_signed_by_a_key_whose_kid_is_not_in_the_jwks_is_rejected(
    app: flask.Flask, http: t.Any, oauth_client: t.Any
) -> None:
    token, _ = _genuine(app, http, oauth_client)
    attacker = ECKey.generate_key("P-256", auto_kid=True)
    assert attacker.kid not in _jwks_kids(http)
    header = {"alg": "ES256", "kid": attacker.kid, "typ": "at+jwt"}
    forged = _sign(header, _claims(token), attacker)
    _store_row(app, forged, oauth_client.client_id)
    _assert_rejected(http, forged)


def test_jwt_without_a_kid_is_rejected(
    app: flask.Flask, http: t.Any, oauth_client: t.Any
) -> None:
    token, key = _genuine(app, http, oauth_client)
    forged = _sign({"alg": key.alg, "typ": "at+jwt"}, _claims(token), key.key)
    _store_row(app, forged, oauth_client.client_id, kid=key.kid)
    _assert_rejected(http, forged)


def test_alg_none_jwt_is_rejected(
    app: flask.Flask, http: t.Any, oauth_client: t.Any
) -> None:
    token, key = _genuine(app, http, oauth_client)
    forged = _hand_made({**_good_header(key), "alg": "none"}, _claims(token), b"")
    assert forged.endswith(".")
    _store_row(app, forged, oauth_client.client_id, kid=key.kid)
    _assert_rejected(http, forged)


@pytest.mark.parametrize("secret_form", ["pem", "jwk"])
def test_hs256_signed_with_our_public_key_as_secret_is_rejected(
    app: flask.Flask, http: t.Any, oauth_client: t.Any, secret_form: str
) -> None:
    """The classic algorithm-confusion attack on asymmetric JWT validation."""
    token, key = _genuine(app, http, oauth_client)
    published = next(k for k in _jwks(http) if k["kid"] == key.kid)
    if secret_form == "pem":
        secret = key.key.as_pem(private=False)
    else:
        secret = json.dumps(published).encode()
    header = {**_good_header(key), "alg": "HS256"}
    head = _b64(json.dumps(header).encode())
    body = _b64(json.dumps(_claims(token)).encode())
    mac = hmac.new(secret, f"{head}.{body}".encode(), hashlib.sha256).digest()
    forged = f"{head}.{body}.{_b64(mac)}"
    _store_row(app, forged, oauth_client.client_id, kid=key.kid)
    _assert_rejected(http, forged)


def test_jwt_expired_by_the_clock_is_rejected(
    http: t.Any, make_client: t.Any, clock: Clock
) -> None:
    token = _token(http, make_client(access_token_lifetime=60))
    assert http.get("/api/me", headers=bearer(token)).status_code == 200
    clock.advance(61)
    _assert_rejected(http, token)


@pytest.mark.parametrize(
    "change",
    [
        {"exp": -10},
        {"iat": 3600},
        {"nbf": 3600},
    ],
    ids=["exp-passed", "iat-in-future", "nbf-in-future"],
)
def test_jwt_with_times_out_of_range_is_rejected_even_with_a_live_row(
    app: flask.Flask,
    http: t.Any,
    oauth_client: t.Any,
    clock: Clock,
    change: dict[str, int],
) -> None:
    """The signed times are checked, not only the stored row's expiry."""
    token, key = _genuine(app, http, oauth_client)
    now = int(clock())
    claims = _claims(token)
    for name, offset in change.items():
        claims[name] = now + offset
    forged = _sign(_good_header(key), claims, key.key)
    _store_row(app, forged, oauth_client.client_id, kid=key.kid)
    _assert_rejected(http, forged)


@pytest.mark.parametrize(
    "change",
    [
        {"iss": "https://evil.example"},
        {"aud": "https://other-api.example"},
        {"aud": None},
        {"sub": None},
        {"client_id": None},
    ],
    ids=["wrong-iss", "wrong-aud", "no-aud", "no-sub", "no-client-id"],
)
def test_jwt_signed_by_our_key_with_wrong_or_missing_claims_is_rejected(
    app: flask.Flask, http: t.Any, oauth_client: t.Any, change: dict[str, t.Any]
) -> None:
    token, key = _genuine(app, http, oauth_client)
    claims = _claims(token)
    for name, value in change.items():
        if value is None:
            del claims[name]
        else:
            claims[name] = value
    forged = _sign(_good_header(key), claims, key.key)
    _store_row(app, forged, oauth_client.client_id, kid=key.kid)
    _assert_rejected(http, forged)


@pytest.mark.parametrize("typ", ["JWT", None], ids=["JWT", "missing"])
def test_jwt_signed_by_our_key_without_typ_at_jwt_is_rejected(
    app: flask.Flask, http: t.Any, oauth_client: t.Any, typ: str | None
) -> None:
    """RFC 9068 §4: an ID token or other JWT is not an access token."""
    token, key = _genuine(app, http, oauth_client)
    header = _good_header(key)
    if typ is None:
        del header["typ"]
    else:
        header["typ"] = typ
    forged = _sign(header, _claims(token), key.key)
    assert _header(forged).get("typ") == typ
    _store_row(app, forged, oauth_client.client_id, kid=key.kid)
    _assert_rejected(http, forged)


def test_tampered_payload_is_rejected(
    app: flask.Flask, http: t.Any, make_client: t.Any
) -> None:
    """Raising one's scope in the payload breaks the signature."""
    client = make_client(scopes=["api", "profile", "admin"])
    token = _token(http, client, scope="api")
    head, _, sig = token.split(".")
    claims = _claims(token)
    claims["scope"] = "api admin"
    tampered = f"{head}.{_b64(json.dumps(claims).encode())}.{sig}"
    _store_row(app, tampered, client.client_id, scope="api admin")
    _assert_rejected(http, tampered, "/api/admin")


@pytest.mark.parametrize(
    "cut",
    [
        lambda token: token[:-8],
        lambda token: token.rsplit(".", 1)[0] + ".",
    ],
    ids=["short-signature", "no-signature"],
)
def test_truncated_jwt_is_rejected(
    app: flask.Flask, http: t.Any, oauth_client: t.Any, cut: Callable[[str], str]
) -> None:
    token = _token(http, oauth_client)
    truncated = cut(token)
    _store_row(app, truncated, oauth_client.client_id)
    _assert_rejected(http, truncated)


def test_jwt_cut_to_two_parts_is_rejected(http: t.Any, oauth_client: t.Any) -> None:
    token = _token(http, oauth_client)
    _assert_rejected(http, token.rsplit(".", 1)[0])


def test_revoked_jwt_is_rejected_though_its_signature_is_valid(
    http: t.Any, oauth_client: t.Any
) -> None:
    token = _token(http, oauth_client)
    assert http.get("/api/me", headers=bearer(token)).status_code == 200
    # Revoked by its own client (RFC 7009); the JWT itself is unchanged.
    revoked = post_as(http, "/oauth/revoke", oauth_client, {"token": token})
    assert revoked.status_code == 200, revoked.get_data(as_text=True)
    _assert_rejected(http, token)


# -- algorithms and configured keys --------------------------------------------


@pytest.mark.parametrize(
    ("alg", "kty"), [("RS256", "RSA"), ("EdDSA", "OKP")], ids=["RS256", "EdDSA"]
)
def test_signing_alg_setting_issues_tokens_with_that_alg_that_work(
    make_app: t.Any, alg: str, kty: str
) -> None:
    app = make_app(ROPC_SIGNING_ALG=alg)
    http = app.test_client()
    token = _token(http, _new_client(app))
    assert _header(token)["alg"] == alg
    assert http.get("/api/me", headers=bearer(token)).status_code == 200
    (published,) = _jwks(http)
    assert published["kty"] == kty
    assert published["alg"] == alg
    assert published["kid"] == _header(token)["kid"]


def test_configured_pem_key_signs_and_is_the_only_published_key(
    make_app: t.Any,
) -> None:
    pem = _ec_pem()
    expected = ECKey.import_key(pem)
    app = make_app(ROPC_SIGNING_KEYS=pem)
    http = app.test_client()
    token = _token(http, _new_client(app))
    assert _header(token)["kid"] == expected.thumbprint()
    assert _header(token)["alg"] == "ES256"
    assert http.get("/api/me", headers=bearer(token)).status_code == 200
    (published,) = _jwks(http)
    assert published["kid"] == expected.thumbprint()
    public = expected.as_dict(private=False)
    assert {k: published[k] for k in ("kty", "crv", "x", "y")} == {
        k: public[k] for k in ("kty", "crv", "x", "y")
    }
    assert not set(PRIVATE_MEMBERS) & set(published)
    assert table_rows(app, "ropc_signing_keys") == []


def test_configured_jwk_keys_first_signs_all_are_published(make_app: t.Any) -> None:
    first = RSAKey.generate_key(2048).as_dict(private=True, kid="rsa-main")
    second = ECKey.generate_key("P-256").as_dict(private=True, kid="ec-next")
    app = make_app(ROPC_SIGNING_KEYS=[first, second])
    http = app.test_client()
    token = _token(http, _new_client(app))
    assert _header(token)["kid"] == "rsa-main"
    assert _header(token)["alg"] == "RS256"
    assert http.get("/api/me", headers=bearer(token)).status_code == 200
    published = {key["kid"]: key for key in _jwks(http)}
    assert set(published) == {"rsa-main", "ec-next"}
    assert published["rsa-main"]["n"] == first["n"]
    assert published["ec-next"]["x"] == second["x"]
    for key in published.values():
        assert not set(PRIVATE_MEMBERS) & set(key)


def test_tokens_signed_with_a_configured_key_survive_an_app_restart(
    make_app: t.Any,
) -> None:
    """Another instance with the same ROPC_SIGNING_KEYS accepts the token."""
    pem = _ec_pem()
    first = make_app(ROPC_SIGNING_KEYS=pem)
    token = _token(first.test_client(), _new_client(first))
    second = make_app(ROPC_SIGNING_KEYS=pem)
    assert second.test_client().get("/api/me", headers=bearer(token)).status_code == (
        200
    )


@pytest.mark.parametrize(
    "value",
    [
        pytest.param(
            {"kty": "oct", "k": _b64(b"0123456789abcdef0123456789abcdef")},
            id="symmetric-jwk",
        ),
        pytest.param(_ec_pem(ec.SECP384R1()), id="p384-pem"),
        pytest.param(_rsa_pem(1024), id="rsa-1024-pem"),
        pytest.param(
            ECKey.generate_key("P-256").as_dict(private=False), id="public-jwk-only"
        ),
    ],
)
def test_unusable_signing_keys_are_a_configuration_error_at_init(
    tmp_path: t.Any, value: t.Any
) -> None:
    app = flask.Flask("bad_keys", instance_path=str(tmp_path / "bad"))
    app.config.update(
        ROPC_DATABASE_URI=f"sqlite:///{tmp_path / 'bad.sqlite3'}",
        ROPC_SIGNING_KEYS=value,
    )
    with pytest.raises(ConfigurationError):
        flask_ropc.ROPC(app)
    assert "ropc" not in app.extensions


# -- the JWKS endpoint -----------------------------------------------------------


@pytest.mark.parametrize("alg", ["ES256", "RS256", "EdDSA"])
def test_jwks_lists_public_keys_only_with_kid_alg_and_use(
    make_app: t.Any, alg: str
) -> None:
    app = make_app(ROPC_SIGNING_ALG=alg)
    runner = app.test_cli_runner()
    _ok(_ropc(runner, "keys", "generate"))
    _ok(_ropc(runner, "keys", "generate"))  # a pending one too
    http = app.test_client()
    keys = _jwks(http)
    assert len(keys) == 2
    rows = table_rows(app, "ropc_signing_keys")
    secrets_ = [
        _private_jwk(app, row)[member]
        for row in rows
        for member in PRIVATE_MEMBERS
        if member in _private_jwk(app, row)
    ]
    assert secrets_, "the stored keys should hold private members"
    body = http.get(JWKS_URL).get_data(as_text=True)
    for secret in secrets_:
        assert secret not in body
    for key in keys:
        assert not set(PRIVATE_MEMBERS) & set(key)
        assert key["kid"]
        assert key["alg"] == alg
        assert key["use"] == "sig"


def test_jwks_is_publicly_cacheable_for_five_minutes_by_default(
    http: t.Any, oauth_client: t.Any
) -> None:
    _token(http, oauth_client)
    response = http.get(JWKS_URL)
    assert response.cache_control.public
    assert response.cache_control.max_age == 300


def test_jwks_max_age_follows_the_setting(make_app: t.Any) -> None:
    app = make_app(ROPC_JWKS_MAX_AGE=42)
    response = app.test_client().get(JWKS_URL)
    assert response.status_code == 200
    assert response.cache_control.public
    assert response.cache_control.max_age == 42


def test_jwks_refuses_post(http: t.Any) -> None:
    assert http.post(JWKS_URL).status_code == 405


def test_discovery_points_at_the_jwks(http: t.Any) -> None:
    metadata = http.get("/.well-known/oauth-authorization-server").json
    assert metadata["jwks_uri"] == "http://localhost/oauth/jwks"
    assert metadata["issuer"] == "http://localhost"


# -- key management and rotation ------------------------------------------------


def test_first_token_without_any_key_generates_one_and_warns(
    app: flask.Flask,
    http: t.Any,
    runner: t.Any,
    oauth_client: t.Any,
    caplog: pytest.LogCaptureFixture,
) -> None:
    assert _keys_json(runner) == []
    with caplog.at_level(logging.WARNING, logger="flask_ropc"):
        token = _token(http, oauth_client)
    warnings = [
        r
        for r in caplog.records
        if r.name == "flask_ropc" and "generated" in r.getMessage()
    ]
    assert len(warnings) == 1
    (row,) = _keys_json(runner)
    assert row["status"] == "active"
    assert row["kid"] == _header(token)["kid"]
    assert row["kid"] in warnings[0].getMessage()
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="flask_ropc"):
        _token(http, oauth_client)
    assert not [r for r in caplog.records if "generated" in r.getMessage()]
    assert len(_keys_json(runner)) == 1


def test_keys_generate_on_an_empty_database_makes_the_signing_key(
    http: t.Any,
    runner: t.Any,
    oauth_client: t.Any,
    caplog: pytest.LogCaptureFixture,
) -> None:
    _ok(_ropc(runner, "keys", "generate"))
    (row,) = _keys_json(runner)
    assert row["status"] == "active"
    with caplog.at_level(logging.WARNING, logger="flask_ropc"):
        token = _token(http, oauth_client)
    assert _header(token)["kid"] == row["kid"]
    assert not [r for r in caplog.records if "generated" in r.getMessage()]


def _active_kid(runner: t.Any) -> str:
    (kid,) = [k for k, status in _status_of(runner).items() if status == "active"]
    return kid


def test_token_signed_before_rotation_still_works_and_both_kids_are_published(
    http: t.Any, runner: t.Any, oauth_client: t.Any, make_app: t.Any
) -> None:
    old_token = _token(http, oauth_client)
    old_kid = _header(old_token)["kid"]
    _ok(_ropc(runner, "keys", "rotate"))
    new_kid = _active_kid(runner)
    assert new_kid != old_kid
    assert _status_of(runner) == {old_kid: "previous", new_kid: "active"}
    assert http.get("/api/me", headers=bearer(old_token)).status_code == 200
    assert _jwks_kids(http) == {old_kid, new_kid}
    # A worker started after the rotation signs with the new key, and the
    # first app accepts its tokens.
    worker = make_app()
    new_token = _token(worker.test_client(), oauth_client)
    assert _header(new_token)["kid"] == new_kid
    assert http.get("/api/me", headers=bearer(new_token)).status_code == 200


def test_right_after_rotate_and_retire_the_same_app_signs_with_the_new_key(
    http: t.Any, runner: t.Any, oauth_client: t.Any
) -> None:
    """``flask ropc keys rotate`` run in the app's own process takes effect at
    once there; otherwise a token signed after ``keys retire OLD`` is signed
    with the retired key and is dead on arrival."""
    old_kid = _header(_token(http, oauth_client))["kid"]
    _ok(_ropc(runner, "keys", "rotate"))
    new_kid = _active_kid(runner)
    assert _header(_token(http, oauth_client))["kid"] == new_kid
    _ok(_ropc(runner, "keys", "retire", old_kid))
    token = _token(http, oauth_client)
    assert _header(token)["kid"] == new_kid
    assert http.get("/api/me", headers=bearer(token)).status_code == 200


def test_retiring_the_old_key_stops_its_tokens_and_unpublishes_it(
    http: t.Any, runner: t.Any, oauth_client: t.Any, make_app: t.Any
) -> None:
    old_token = _token(http, oauth_client)
    old_kid = _header(old_token)["kid"]
    _ok(_ropc(runner, "keys", "rotate"))
    new_kid = _active_kid(runner)
    assert old_kid in _jwks_kids(http)
    _ok(_ropc(runner, "keys", "retire", old_kid))
    _assert_rejected(http, old_token)
    assert _jwks_kids(http) == {new_kid}
    assert _status_of(runner) == {old_kid: "retired", new_kid: "active"}
    # A retired key is published until no time: `keys list` says so.
    listed = {row["kid"]: row for row in _keys_json(runner)}
    assert listed[old_kid]["publish_until"] is None
    worker = make_app()
    _assert_rejected(worker.test_client(), old_token)
    new_token = _token(worker.test_client(), oauth_client)
    assert _header(new_token)["kid"] == new_kid
    assert http.get("/api/me", headers=bearer(new_token)).status_code == 200


def test_generate_while_a_key_is_active_publishes_a_pending_key_that_rotate_promotes(
    http: t.Any, runner: t.Any, oauth_client: t.Any, make_app: t.Any
) -> None:
    active_kid = _header(_token(http, oauth_client))["kid"]
    out = _ok(_ropc(runner, "keys", "generate"))
    statuses = _status_of(runner)
    (pending_kid,) = [kid for kid, status in statuses.items() if status == "pending"]
    assert pending_kid in out
    assert statuses == {active_kid: "active", pending_kid: "pending"}
    assert _jwks_kids(http) == {active_kid, pending_kid}
    assert _header(_token(http, oauth_client))["kid"] == active_kid
    out = _ok(_ropc(runner, "keys", "rotate"))
    assert pending_kid in out
    assert _status_of(runner) == {active_kid: "previous", pending_kid: "active"}
    worker = make_app()
    assert _header(_token(worker.test_client(), oauth_client))["kid"] == pending_kid


def test_rotate_to_another_alg_keeps_old_tokens_valid(
    http: t.Any, runner: t.Any, oauth_client: t.Any, make_app: t.Any
) -> None:
    old_token = _token(http, oauth_client)
    _ok(_ropc(runner, "keys", "rotate", "--alg", "RS256"))
    (row,) = [r for r in _keys_json(runner) if r["status"] == "active"]
    assert row["alg"] == "RS256"
    assert http.get("/api/me", headers=bearer(old_token)).status_code == 200
    worker = make_app()
    worker_http = worker.test_client()
    new_token = _token(worker_http, oauth_client)
    assert _header(new_token)["alg"] == "RS256"
    assert _header(new_token)["kid"] == row["kid"]
    for token in (old_token, new_token):
        assert worker_http.get("/api/me", headers=bearer(token)).status_code == 200


def test_a_running_worker_accepts_tokens_signed_by_a_key_new_to_it(
    http: t.Any, runner: t.Any, oauth_client: t.Any, make_app: t.Any
) -> None:
    """After a rotation, a token from a worker that already signs with the
    new key is accepted by a worker that has not seen that key yet."""
    assert (
        http.get("/api/me", headers=bearer(_token(http, oauth_client))).status_code
        == 200
    )
    _ok(_ropc(runner, "keys", "rotate"))
    worker = make_app()
    new_token = _token(worker.test_client(), oauth_client)
    assert _header(new_token)["kid"] == _active_kid(runner)
    response = http.get("/api/me", headers=bearer(new_token))
    assert response.status_code == 200


def test_previous_key_leaves_the_jwks_once_its_tokens_have_expired(
    app: flask.Flask, http: t.Any, runner: t.Any, oauth_client: t.Any
) -> None:
    old_kid = _header(_token(http, oauth_client))["kid"]
    _ok(_ropc(runner, "keys", "rotate"))
    # The longest lifetime (3600 s), plus the 30 s other workers may go on
    # signing with the old key.
    with clock_shifted(app, 3629):
        assert old_kid in _jwks_kids(http)
    with clock_shifted(app, 3631):
        kids = _jwks_kids(http)
    assert old_kid not in kids
    assert len(kids) == 1


def test_a_token_signed_with_the_old_key_just_after_a_rotation_works_until_expiry(
    http: t.Any, runner: t.Any, oauth_client: t.Any, make_app: t.Any
) -> None:
    """A worker re-reads its signer every 30 s: right after `keys rotate` in
    another process it still signs with the old key, and those tokens must
    stay valid for their whole lifetime."""
    worker = make_app()
    old_kid = _header(_token(worker.test_client(), oauth_client))["kid"]
    _ok(_ropc(runner, "keys", "rotate"))
    with clock_shifted(worker, 29):
        late_token = _token(worker.test_client(), oauth_client)
    assert _header(late_token)["kid"] == old_kid
    app = http.application
    with clock_shifted(app, 29 + 3599):
        assert http.get("/api/me", headers=bearer(late_token)).status_code == 200
    with clock_shifted(app, 29 + 3600):
        assert http.get("/api/me", headers=bearer(late_token)).status_code == 401


def test_a_key_retired_while_rotate_runs_does_not_become_active(
    app: flask.Flask, runner: t.Any, database_uri: str
) -> None:
    """``keys rotate`` chose a pending key, which another command retires
    (say, as leaked) before the rotation promotes it: the rotation must fail
    and change nothing, not make the retired key sign."""
    if not database_uri.startswith("postgresql"):
        pytest.skip("row lock waits are staged on PostgreSQL")
    _ok(_ropc(runner, "keys", "generate"))
    active = _active_kid(runner)
    _ok(_ropc(runner, "keys", "generate"))
    (pending,) = [k for k, s in _status_of(runner).items() if s == "pending"]
    engine, keys = _table(app, "ropc_signing_keys")
    with ThreadPoolExecutor(max_workers=1) as pool:
        with engine.connect() as other:
            other.execute(
                sa.select(keys.c.id).where(keys.c.kid == pending).with_for_update()
            )
            rotating = pool.submit(_ropc, runner, "keys", "rotate")
            wait_for_lock_waits(engine, 1)
            other.execute(
                keys.update().where(keys.c.kid == pending).values(status="retired")
            )
            other.commit()
        out = _failed(rotating.result())
    assert "no longer pending" in out
    assert _status_of(runner) == {active: "active", pending: "retired"}


def test_retiring_the_active_key_is_refused(
    http: t.Any, runner: t.Any, oauth_client: t.Any
) -> None:
    token = _token(http, oauth_client)
    kid = _header(token)["kid"]
    out = _failed(_ropc(runner, "keys", "retire", kid))
    assert "rotate" in out
    assert _status_of(runner) == {kid: "active"}
    assert http.get("/api/me", headers=bearer(token)).status_code == 200


def test_retiring_an_unknown_kid_fails(runner: t.Any) -> None:
    _ok(_ropc(runner, "keys", "generate"))
    before = _status_of(runner)
    out = _failed(_ropc(runner, "keys", "retire", "no-such-kid"))
    assert "no-such-kid" in out
    assert _status_of(runner) == before


def test_keys_commands_never_print_private_key_material(
    app: flask.Flask, runner: t.Any
) -> None:
    outputs = [
        _ok(_ropc(runner, "keys", "generate")),
        _ok(_ropc(runner, "keys", "generate", "--alg", "RS256")),
        _ok(_ropc(runner, "keys", "rotate")),
        _ok(_ropc(runner, "keys", "generate", "--alg", "EdDSA")),
        _ok(_ropc(runner, "keys", "list")),
        _ok(_ropc(runner, "keys", "list", "--json")),
    ]
    rows = table_rows(app, "ropc_signing_keys")
    assert {row.alg for row in rows} == {"ES256", "RS256", "EdDSA"}
    text = "\n".join(outputs)
    for row in rows:
        assert row.kid in outputs[-1]
        private = _private_jwk(app, row)
        for member in PRIVATE_MEMBERS:
            if member in private:
                assert private[member] not in text
    for listed in json.loads(outputs[-1])["keys"]:
        assert not set(PRIVATE_MEMBERS) & set(listed)


@pytest.mark.parametrize(
    "command",
    [("generate",), ("rotate",), ("retire", "some-kid")],
    ids=["generate", "rotate", "retire"],
)
def test_key_commands_refuse_when_keys_come_from_config(
    make_app: t.Any, command: tuple[str, ...]
) -> None:
    pem = _ec_pem()
    app = make_app(ROPC_SIGNING_KEYS=pem)
    runner = app.test_cli_runner()
    out = _failed(_ropc(runner, "keys", *command))
    assert "ROPC_SIGNING_KEYS" in out
    assert table_rows(app, "ropc_signing_keys") == []
    (listed,) = _keys_json(runner)
    assert listed["kid"] == ECKey.import_key(pem).thumbprint()
    assert listed["status"] == "configured"


def test_another_worker_on_the_same_database_accepts_our_tokens(
    app: flask.Flask, http: t.Any, oauth_client: t.Any, make_app: t.Any
) -> None:
    token = _token(http, oauth_client)
    worker = make_app()
    response = worker.test_client().get("/api/me", headers=bearer(token))
    assert response.status_code == 200
    assert _jwks_kids(worker.test_client()) == _jwks_kids(http)


def test_retire_takes_a_kid_that_starts_with_a_dash(
    app: flask.Flask, runner: t.Any, clock: Clock
) -> None:
    # Thumbprints are base64url, so one key in 64 has a kid like "-V3x...".
    key = next(
        key
        for key in iter(lambda: ECKey.generate_key("P-256", auto_kid=True), None)
        if key.thumbprint().startswith("-")
    )
    # Stored as a pending key, as `keys generate` stores one (no admin call
    # takes a key of ours).
    kid = key.kid or key.thumbprint()
    engine, keys = _table(app, "ropc_signing_keys")
    with engine.begin() as conn:
        conn.execute(
            keys.insert().values(
                kid=kid,
                alg="ES256",
                private_jwk=json.dumps(key.as_dict(private=True, kid=kid)),
                status="pending",
                created_at=int(clock()),
            )
        )
    assert kid.startswith("-")
    result = _ropc(runner, "keys", "retire", kid)
    assert result.exit_code == 0, result.output
    assert _status_of(runner) == {kid: "retired"}


@pytest.mark.parametrize("alg", ["ES256", "RS256", "EdDSA"])
def test_tokens_are_the_jws_joserfc_jwt_encode_makes(alg: str) -> None:
    """issue_jwt signs with a header encoded once per key: the header and
    payload segments are joserfc's own, and joserfc verifies the result."""
    from joserfc import jwt

    from flask_ropc import jwt_tokens
    from flask_ropc.keys import SigningKey
    from flask_ropc.keys import generate_key

    key = generate_key(alg)
    signing = SigningKey(kid=t.cast(str, key.kid), alg=alg, key=key)
    claims = {"iss": "https://as.example", "sub": "zoë", "exp": 5, "amr": ["pwd"]}
    registry = jwt_tokens._registry(alg)
    ours = jwt_tokens._sign(signing, claims)
    header = {"alg": alg, "kid": key.kid, "typ": "at+jwt"}
    theirs = jwt.encode(header, dict(claims), key, registry=registry)
    assert ours.split(".")[:2] == theirs.split(".")[:2]
    assert jwt.decode(ours, key, registry=registry).claims == claims
    # A second token reuses the key's encoded header.
    assert jwt_tokens._sign(signing, claims).split(".")[0] == ours.split(".")[0]
