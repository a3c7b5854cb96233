"""DPoP (RFC 9449) at the token endpoint: every check of §4.3, ``htu`` behind
proxies and with ``ROPC_ISSUER``, ``jti`` replay and ``iat``, and the
per-client setting. Binding, refresh and ``require_token`` are in
test_dpop_binding.py, nonces in test_dpop_nonce.py."""

from __future__ import annotations

import json
import typing as t
import warnings

import pytest
from cryptography.hazmat.primitives.asymmetric import rsa
from joserfc.jwk import ECKey
from joserfc.jwk import OctKey
from joserfc.jwk import RSAKey
from werkzeug.middleware.proxy_fix import ProxyFix

from flask_ropc import dpop

from conftest import assert_oauth_error
from conftest import password_form
from conftest import post_as
from conftest import table_rows
from dpop_proofs import ISSUER
from dpop_proofs import TOKEN_URL
from dpop_proofs import DPoPKey
from dpop_proofs import token_request
from dpop_proofs import unsigned


@pytest.fixture
def app_config() -> dict[str, t.Any]:
    return {"ROPC_ISSUER": ISSUER}


# -- RFC 3986 normalisation ----------------------------------------------------


@pytest.mark.parametrize(
    ("given", "normal"),
    [
        ("HTTPS://Auth.EXAMPLE/oauth/token", "https://auth.example/oauth/token"),
        ("https://auth.example:443/oauth/token", "https://auth.example/oauth/token"),
        ("http://auth.example:80/x", "http://auth.example/x"),
        ("https://auth.example:8443/x", "https://auth.example:8443/x"),
        ("https://auth.example", "https://auth.example/"),
        ("https://auth.example/oauth/%74oken", "https://auth.example/oauth/token"),
        ("https://auth.example/a%2fb", "https://auth.example/a%2Fb"),
        ("https://auth.example/a/./b/../c", "https://auth.example/a/c"),
        (
            "https://auth.example/oauth/token?x=1#frag",
            "https://auth.example/oauth/token",
        ),
        ("https://[::1]:443/x", "https://[::1]/x"),
    ],
)
def test_urls_are_normalised_per_rfc_3986(given: str, normal: str) -> None:
    assert dpop.normalise_url(given) == normal


@pytest.mark.parametrize(
    ("one", "other"),
    [
        ("https://auth.example/oauth/token", "https://auth.example/oauth/token/"),
        ("https://auth.example/oauth/token", "https://auth.example/OAUTH/token"),
        ("https://auth.example/oauth/token", "http://auth.example/oauth/token"),
        ("https://auth.example/oauth/token", "https://auth.example:444/oauth/token"),
    ],
)
def test_different_resources_stay_different(one: str, other: str) -> None:
    assert dpop.normalise_url(one) != dpop.normalise_url(other)


@pytest.mark.parametrize("url", ["/oauth/token", "token", "https://", "mailto:x@y"])
def test_no_absolute_url_is_refused(url: str) -> None:
    with pytest.raises(ValueError):
        dpop.normalise_url(url)


def test_the_thumbprint_is_rfc_7638s_example() -> None:
    """RFC 7638 §3.1's RSA key and its SHA-256 thumbprint."""
    jwk = {
        "kty": "RSA",
        "n": "0vx7agoebGcQSuuPiLJXZptN9nndrQmbXEps2aiAFbWhM78LhWx4cbbfAAtVT86zwu1RK7aP"
        "FFxuhDR1L6tSoc_BJECPebWKRXjBZCiFV4n3oknjhMstn64tZ_2W-5JsGY4Hc5n9yBXArwl93lqt7_"
        "RN5w6Cf0h4QyQ5v-65YGjQR0_FDW2QvzqY368QQMicAtaSqzs8KJZgnYb9c7d0zgdAZHzu6qMQvRL5"
        "hajrn1n91CbOpbISD08qNLyrdkt-bFTWhAI4vMQFh6WeZu0fM4lFd2NcRwr3XPksINHaQ-G_xBniIq"
        "bw0Ls1jF44-csFCur-kEgU8awapJzKnqDKgw",
        "e": "AQAB",
    }
    assert dpop.thumbprint(jwk) == "NzbLsXh8uDCcd-6MNwXF4W_7noWXFZAfHkxZsRGC9Xs"


# -- htu at the token endpoint ---------------------------------------------------


@pytest.mark.parametrize(
    "htu",
    [
        TOKEN_URL,
        "HTTPS://AUTH.example/oauth/token",
        "https://auth.example:443/oauth/token",
        "https://auth.example/oauth/%74oken",
        TOKEN_URL + "?ignored=1#also",
    ],
)
def test_an_equivalent_htu_is_accepted(
    http: t.Any, oauth_client: t.Any, htu: str
) -> None:
    response = token_request(http, oauth_client, DPoPKey().proof("POST", htu))
    assert response.status_code == 200, response.json
    assert response.json["token_type"] == "DPoP"


@pytest.mark.parametrize(
    "htu",
    [
        TOKEN_URL + "/",
        "https://auth.example/OAUTH/token",
        "http://auth.example/oauth/token",
        "https://auth.example:8443/oauth/token",
        "https://other.example/oauth/token",
        "/oauth/token",
    ],
)
def test_another_htu_is_refused(http: t.Any, oauth_client: t.Any, htu: str) -> None:
    response = token_request(http, oauth_client, DPoPKey().proof("POST", htu))
    assert_oauth_error(response, 400, "invalid_dpop_proof")


def test_a_spoofed_host_does_not_help_with_an_issuer(
    http: t.Any, oauth_client: t.Any
) -> None:
    """A proof made for another server, sent with that server's Host (or
    X-Forwarded-Host): our URL comes from ROPC_ISSUER, not from the request."""
    proof = DPoPKey().proof("POST", "https://evil.example/oauth/token")
    evil = "https://evil.example"
    response = token_request(http, oauth_client, proof, base_url=evil)
    assert_oauth_error(response, 400, "invalid_dpop_proof")
    response = token_request(http, oauth_client, proof, X_Forwarded_Host="evil.example")
    assert_oauth_error(response, 400, "invalid_dpop_proof")
    # And a proof for the issuer's URL works whatever Host says.
    good = DPoPKey().proof("POST", TOKEN_URL)
    assert token_request(http, oauth_client, good, base_url=evil).status_code == 200


@pytest.mark.parametrize("app_config", [{}], ids=["no-issuer"])
def test_behind_proxyfix_the_forwarded_url_is_ours(
    app: t.Any, http: t.Any, oauth_client: t.Any
) -> None:
    """Without ROPC_ISSUER the URL is what Werkzeug sees after ProxyFix."""
    app.wsgi_app = ProxyFix(app.wsgi_app, x_proto=1, x_host=1)
    forwarded = {"X-Forwarded-Proto": "https", "X-Forwarded-Host": "api.example"}
    proof = DPoPKey().proof("POST", "https://api.example/oauth/token")
    assert token_request(http, oauth_client, proof, **forwarded).status_code == 200
    # The URL the proxy hid (the backend's own) is not ours.
    backend = DPoPKey().proof("POST", "http://localhost/oauth/token")
    response = token_request(http, oauth_client, backend, **forwarded)
    assert_oauth_error(response, 400, "invalid_dpop_proof")


def test_behind_proxyfix_with_an_issuer_forwarded_headers_do_not_matter(
    app: t.Any, http: t.Any, oauth_client: t.Any
) -> None:
    app.wsgi_app = ProxyFix(app.wsgi_app, x_proto=1, x_host=1)
    spoofed = {"X-Forwarded-Proto": "https", "X-Forwarded-Host": "evil.example"}
    evil = DPoPKey().proof("POST", "https://evil.example/oauth/token")
    assert_oauth_error(
        token_request(http, oauth_client, evil, **spoofed), 400, "invalid_dpop_proof"
    )
    good = DPoPKey().proof("POST", TOKEN_URL)
    assert token_request(http, oauth_client, good, **spoofed).status_code == 200


# -- the checks of §4.3 ----------------------------------------------------------


@pytest.mark.parametrize("alg", dpop.ALGORITHMS)
def test_every_advertised_algorithm_binds(
    http: t.Any, oauth_client: t.Any, alg: str
) -> None:
    key = DPoPKey(alg)
    response = token_request(http, oauth_client, key.proof("POST", TOKEN_URL))
    assert response.status_code == 200, response.json
    assert response.json["token_type"] == "DPoP"
    row = table_rows(http.application, "ropc_access_tokens")[-1]
    assert row.dpop_jkt == key.jkt


def _bad_proofs() -> dict[str, t.Any]:
    key, other = DPoPKey(), DPoPKey()
    jwk = key.public_jwk
    claims = {"jti": "j1", "htm": "POST", "htu": TOKEN_URL, "iat": 0}
    hs_key = OctKey.generate_key(256)
    private = ECKey.generate_key("P-256")
    return {
        "alg-none": lambda now: unsigned(
            {"typ": "dpop+jwt", "alg": "none", "jwk": jwk}, {**claims, "iat": now}
        ),
        "hs256": lambda now: key.proof(
            "POST", TOKEN_URL, iat=now, header={"alg": "HS256"}, sign_with=hs_key
        ),
        "private-jwk": lambda now: key.proof(
            "POST",
            TOKEN_URL,
            iat=now,
            header={"jwk": dict(private.as_dict(private=True))},
            sign_with=private,
        ),
        "signed-by-other-key": lambda now: key.proof(
            "POST", TOKEN_URL, iat=now, sign_with=other.key
        ),
        "no-typ": lambda now: key.proof(
            "POST", TOKEN_URL, iat=now, header={"typ": None}
        ),
        "jwt-typ": lambda now: key.proof(
            "POST", TOKEN_URL, iat=now, header={"typ": "JWT"}
        ),
        "no-jwk": lambda now: key.proof(
            "POST", TOKEN_URL, iat=now, header={"jwk": None}
        ),
        "rsa-jwk-for-es256": lambda now: key.proof(
            "POST", TOKEN_URL, iat=now, header={"jwk": DPoPKey("RS256").public_jwk}
        ),
        "htm-get": lambda now: key.proof("GET", TOKEN_URL, iat=now),
        "htm-lower-case": lambda now: key.proof("post", TOKEN_URL, iat=now),
        "no-jti": lambda now: key.proof(
            "POST", TOKEN_URL, iat=now, claims={"jti": None}
        ),
        "no-htu": lambda now: key.proof(
            "POST", TOKEN_URL, iat=now, claims={"htu": None}
        ),
        "iat-string": lambda now: key.proof(
            "POST", TOKEN_URL, iat=now, claims={"iat": str(now)}
        ),
        "not-a-jwt": lambda now: "not.a.jwt",
        "garbage": lambda now: "x" * 100,
        "too-long": lambda now: key.proof(
            "POST", TOKEN_URL, iat=now, claims={"pad": "x" * 9000}
        ),
    }


BAD = _bad_proofs()


@pytest.mark.parametrize("name", sorted(BAD))
def test_a_bad_proof_is_invalid_dpop_proof(
    http: t.Any, oauth_client: t.Any, clock: t.Any, name: str
) -> None:
    now = int(clock.freeze())
    response = token_request(http, oauth_client, BAD[name](now))
    assert_oauth_error(response, 400, "invalid_dpop_proof")
    assert table_rows(http.application, "ropc_access_tokens") == []


def test_two_dpop_headers_are_refused(http: t.Any, oauth_client: t.Any) -> None:
    key = DPoPKey()
    proofs = [key.proof("POST", TOKEN_URL), key.proof("POST", TOKEN_URL)]
    assert_oauth_error(
        token_request(http, oauth_client, proofs), 400, "invalid_dpop_proof"
    )


def test_a_bad_proof_costs_no_password_attempt(
    http: t.Any, oauth_client: t.Any, validator: t.Any
) -> None:
    proof = DPoPKey().proof("GET", TOKEN_URL)
    assert_oauth_error(
        token_request(http, oauth_client, proof), 400, "invalid_dpop_proof"
    )
    assert validator.calls == []


# -- iat and jti -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("offset", "status"),
    [(0, 200), (5, 200), (6, 400), (-65, 200), (-66, 400), (-3600, 400), (3600, 400)],
    ids=["now", "skew-ahead", "future", "oldest", "too-old", "hour-old", "hour-ahead"],
)
def test_iat_must_be_within_the_window_plus_skew(
    http: t.Any, oauth_client: t.Any, clock: t.Any, offset: int, status: int
) -> None:
    """Defaults: 60 s old at most, 5 s of skew either way."""
    now = int(clock.freeze())
    response = token_request(
        http, oauth_client, DPoPKey().proof("POST", TOKEN_URL, iat=now + offset)
    )
    assert response.status_code == status, response.json
    if status == 400:
        assert_oauth_error(response, 400, "invalid_dpop_proof")


def test_a_proof_is_single_use(http: t.Any, oauth_client: t.Any) -> None:
    proof = DPoPKey().proof("POST", TOKEN_URL)
    assert token_request(http, oauth_client, proof).status_code == 200
    response = token_request(http, oauth_client, proof)
    assert_oauth_error(response, 400, "invalid_dpop_proof")
    assert "used before" in response.json["error_description"]


def test_a_rejected_proof_does_not_burn_its_jti(
    http: t.Any, oauth_client: t.Any, clock: t.Any
) -> None:
    now = int(clock.freeze())
    key = DPoPKey()
    for bad in (
        key.proof("POST", TOKEN_URL + "/", jti="same"),
        key.proof("POST", TOKEN_URL, jti="same", iat=now + 600),
        key.proof("POST", TOKEN_URL, jti="same", sign_with=DPoPKey().key),
    ):
        assert_oauth_error(
            token_request(http, oauth_client, bad), 400, "invalid_dpop_proof"
        )
    good = key.proof("POST", TOKEN_URL, jti="same", iat=now)
    assert token_request(http, oauth_client, good).status_code == 200


def test_a_jti_is_remembered_until_the_proof_expires(
    http: t.Any, oauth_client: t.Any, clock: t.Any
) -> None:
    """Kept for lifetime + 2 x skew: by then its iat is refused anyway."""
    now = int(clock.freeze())
    key = DPoPKey()
    assert (
        token_request(
            http, oauth_client, key.proof("POST", TOKEN_URL, jti="j")
        ).status_code
        == 200
    )
    clock.advance(60)
    again = key.proof("POST", TOKEN_URL, jti="j", iat=now + 60)
    assert_oauth_error(
        token_request(http, oauth_client, again), 400, "invalid_dpop_proof"
    )
    clock.advance(11)
    later = key.proof("POST", TOKEN_URL, jti="j", iat=now + 71)
    assert token_request(http, oauth_client, later).status_code == 200


def test_a_replay_is_refused_by_another_app_on_the_database(
    make_app: t.Any, http: t.Any, oauth_client: t.Any
) -> None:
    """A second instance, or the same one after a restart: the jti is in
    the database, not in a process."""
    proof = DPoPKey().proof("POST", TOKEN_URL)
    assert token_request(http, oauth_client, proof).status_code == 200
    restarted = make_app(ROPC_ISSUER=ISSUER).test_client()
    assert_oauth_error(
        token_request(restarted, oauth_client, proof), 400, "invalid_dpop_proof"
    )


# -- per client --------------------------------------------------------------------


def test_a_required_client_without_a_proof_is_refused(
    http: t.Any, make_client: t.Any, validator: t.Any
) -> None:
    client = make_client(dpop="required")
    response = post_as(http, "/oauth/token", client, password_form())
    assert_oauth_error(response, 400, "invalid_dpop_proof")
    assert validator.calls == []
    proof = DPoPKey().proof("POST", TOKEN_URL)
    assert token_request(http, client, proof).json["token_type"] == "DPoP"


def test_an_allowed_client_without_a_proof_gets_bearer(
    http: t.Any, oauth_client: t.Any
) -> None:
    response = post_as(http, "/oauth/token", oauth_client, password_form())
    assert response.json["token_type"] == "Bearer"
    assert table_rows(http.application, "ropc_access_tokens")[0].dpop_jkt is None


def test_a_client_with_dpop_off_ignores_proofs(http: t.Any, make_client: t.Any) -> None:
    client = make_client(dpop="off")
    response = token_request(http, client, "not even a proof")
    assert response.status_code == 200
    assert response.json["token_type"] == "Bearer"


def test_an_unknown_dpop_setting_is_refused(ropc: t.Any, app: t.Any) -> None:
    with app.app_context(), pytest.raises(ValueError, match="DPoP setting"):
        ropc.clients.create("x", dpop="sometimes")


def test_the_cli_sets_and_shows_the_dpop_setting(runner: t.Any, app: t.Any) -> None:
    created = runner.invoke(
        args=["ropc", "create-client", "App", "--dpop", "required", "--json"]
    )
    assert created.exit_code == 0, created.output
    data = json.loads(created.output)
    assert data["dpop"] == "required"
    updated = runner.invoke(
        args=["ropc", "update-client", data["client_id"], "--dpop", "off"]
    )
    assert updated.exit_code == 0, updated.output
    assert "dpop:                  off" in updated.output
    refused = runner.invoke(
        args=["ropc", "update-client", data["client_id"], "--dpop", "x"]
    )
    assert refused.exit_code != 0


def test_discovery_lists_the_proof_algorithms(http: t.Any) -> None:
    metadata = http.get("/.well-known/oauth-authorization-server").json
    assert metadata["dpop_signing_alg_values_supported"] == [
        "ES256",
        "RS256",
        "PS256",
        "EdDSA",
    ]


def test_a_short_rsa_key_is_refused(http: t.Any, oauth_client: t.Any) -> None:
    key = DPoPKey("RS256")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # joserfc warns about the size
        key.key = RSAKey.import_key(rsa.generate_private_key(65537, 1024))  # noqa: S505
    response = token_request(http, oauth_client, key.proof("POST", TOKEN_URL))
    assert_oauth_error(response, 400, "invalid_dpop_proof")
    assert "too short" in response.json["error_description"]


@pytest.mark.parametrize(
    "app_config",
    [
        {
            "ROPC_ISSUER": ISSUER,
            "ROPC_THROTTLE_ENABLED": False,
            # Nothing listens on port 1: the replay cache is unreachable.
            "ROPC_RATELIMIT_STORAGE_URI": "redis://127.0.0.1:1/0",
        }
    ],
    ids=["redis-down"],
)
def test_an_unreachable_replay_cache_fails_closed(
    http: t.Any, oauth_client: t.Any, caplog: pytest.LogCaptureFixture
) -> None:
    response = token_request(http, oauth_client, DPoPKey().proof("POST", TOKEN_URL))
    assert_oauth_error(response, 503, "temporarily_unavailable")
    assert "DPoP replay cache unavailable" in caplog.text
    # Without a proof nothing needs the cache.
    plain = token_request(http, oauth_client, None)
    assert plain.status_code == 200
