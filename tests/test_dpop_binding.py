"""DPoP-bound tokens (RFC 9449 §5-§7): ``cnf.jkt`` in JWTs, reference rows
and introspection; refresh binding for public and confidential clients;
``Authorization: DPoP`` at ``require_token``, downgrade and confusion."""

from __future__ import annotations

import typing as t

import pytest
from joserfc import jwt
from joserfc.jwk import KeySet

from conftest import assert_oauth_error
from conftest import basic_auth
from conftest import bearer
from conftest import introspect
from conftest import password_form
from conftest import table_rows
from dpop_proofs import ISSUER
from dpop_proofs import TOKEN_URL
from dpop_proofs import DPoPKey
from dpop_proofs import token_request

API_URL = ISSUER + "/api/me"


@pytest.fixture
def app_config() -> dict[str, t.Any]:
    return {"ROPC_ISSUER": ISSUER}


def dpop_get(
    http: t.Any, token: str, key: DPoPKey, url: str = API_URL, **kw: t.Any
) -> t.Any:
    """A protected GET with ``Authorization: DPoP`` and a proof by ``key``."""
    proof = key.proof("GET", url, token=token, **kw)
    path = url.removeprefix(ISSUER)
    return http.get(path, headers={"Authorization": f"DPoP {token}", "DPoP": proof})


def bound_login(
    http: t.Any, client: t.Any, key: DPoPKey, scope: str = "api offline_access"
) -> dict[str, t.Any]:
    response = token_request(
        http, client, key.proof("POST", TOKEN_URL), password_form(scope=scope)
    )
    assert response.status_code == 200, response.json
    return t.cast(dict[str, t.Any], response.json)


def refresh_with(
    http: t.Any, client: t.Any, refresh_token: str, proof: str | None
) -> t.Any:
    data = {"grant_type": "refresh_token", "refresh_token": refresh_token}
    return token_request(http, client, proof, data)


@pytest.fixture
def public_client(make_client: t.Any) -> t.Any:
    return make_client(auth_methods=["none"], grant_types=["password", "refresh_token"])


@pytest.fixture
def offline_client(make_client: t.Any) -> t.Any:
    return make_client(grant_types=["password", "refresh_token"])


# -- the bound access token --------------------------------------------------------


def test_a_bound_jwt_carries_cnf_jkt(http: t.Any, oauth_client: t.Any) -> None:
    key = DPoPKey()
    body = bound_login(http, oauth_client, key, scope="api")
    assert body["token_type"] == "DPoP"
    claims = jwt.decode(body["access_token"], _jwks(http)).claims
    assert claims["cnf"] == {"jkt": key.jkt}


def _jwks(http: t.Any) -> t.Any:
    return KeySet.import_key_set(http.get("/oauth/jwks").json)


@pytest.mark.parametrize("token_format", ["jwt", "reference"])
def test_introspection_reports_the_binding(
    http: t.Any, make_client: t.Any, token_format: str
) -> None:
    client = make_client(access_token_format=token_format)
    key = DPoPKey()
    body = bound_login(http, client, key, scope="api")
    info = introspect(http, client, body["access_token"]).json
    assert info["active"] is True
    assert info["token_type"] == "DPoP"
    assert info["cnf"] == {"jkt": key.jkt}
    assert table_rows(http.application, "ropc_access_tokens")[0].dpop_jkt == key.jkt


@pytest.mark.parametrize("token_format", ["jwt", "reference"])
def test_a_bound_token_works_with_its_key_at_require_token(
    http: t.Any, make_client: t.Any, token_format: str
) -> None:
    client = make_client(access_token_format=token_format)
    key = DPoPKey()
    token = bound_login(http, client, key, scope="api")["access_token"]
    response = dpop_get(http, token, key)
    assert response.status_code == 200, response.json
    assert response.json["sub"] == "user-1"


def test_a_bound_token_can_be_revoked(http: t.Any, oauth_client: t.Any) -> None:
    key = DPoPKey()
    token = bound_login(http, oauth_client, key, scope="api")["access_token"]
    revoked = http.post(
        "/oauth/revoke", data={"token": token}, headers=basic_auth(*oauth_client)
    )
    assert revoked.status_code == 200
    response = dpop_get(http, token, key)
    assert_oauth_error(response, 401, "invalid_token")
    assert response.headers.getlist("WWW-Authenticate")[0].startswith(
        'DPoP error="invalid_token"'
    )
    assert introspect(http, oauth_client, token).json == {"active": False}


# -- downgrade and confusion at require_token -------------------------------------


def test_a_bound_token_as_bearer_is_refused(http: t.Any, oauth_client: t.Any) -> None:
    """RFC 9449 §7.2: no downgrade to Bearer."""
    token = bound_login(http, oauth_client, DPoPKey(), scope="api")["access_token"]
    response = http.get("/api/me", headers=bearer(token))
    assert_oauth_error(response, 401, "invalid_token")
    challenges = response.headers.getlist("WWW-Authenticate")
    assert challenges[0].startswith('DPoP error="invalid_token"')
    assert 'algs="ES256 RS256 PS256 EdDSA"' in challenges[0]
    assert challenges[1] == "Bearer"


def test_an_unbound_token_as_dpop_is_refused(http: t.Any, oauth_client: t.Any) -> None:
    plain = http.post(
        "/oauth/token",
        data=password_form(scope="api"),
        headers=basic_auth(*oauth_client),
    )
    token = plain.json["access_token"]
    assert_oauth_error(dpop_get(http, token, DPoPKey()), 401, "invalid_token")
    assert http.get("/api/me", headers=bearer(token)).status_code == 200


def test_an_unknown_token_with_dpop_gets_the_dpop_challenge(http: t.Any) -> None:
    response = dpop_get(http, "a" * 43, DPoPKey())
    assert_oauth_error(response, 401, "invalid_token")
    assert response.headers.getlist("WWW-Authenticate")[0].startswith("DPoP ")


@pytest.mark.parametrize(
    "change",
    [
        "other-key",
        "ath-mismatch",
        "no-ath",
        "wrong-url",
        "wrong-method",
        "no-proof",
        "two",
    ],
)
def test_a_bad_proof_at_require_token_is_401_invalid_dpop_proof(
    http: t.Any, oauth_client: t.Any, change: str
) -> None:
    key = DPoPKey()
    token = bound_login(http, oauth_client, key, scope="api")["access_token"]
    proofs = {
        "other-key": [DPoPKey().proof("GET", API_URL, token=token)],
        "ath-mismatch": [key.proof("GET", API_URL, token=token + "x")],
        "no-ath": [key.proof("GET", API_URL)],
        "wrong-url": [key.proof("GET", ISSUER + "/api/any", token=token)],
        "wrong-method": [key.proof("POST", API_URL, token=token)],
        "no-proof": [],
        "two": [key.proof("GET", API_URL, token=token)] * 2,
    }[change]
    headers = [("Authorization", f"DPoP {token}"), *(("DPoP", p) for p in proofs)]
    response = http.get("/api/me", headers=headers)
    assert_oauth_error(response, 401, "invalid_dpop_proof")
    challenges = response.headers.getlist("WWW-Authenticate")
    assert challenges[0].startswith('DPoP error="invalid_dpop_proof"')
    assert challenges[1] == "Bearer"


def test_a_proof_at_require_token_is_single_use(
    http: t.Any, oauth_client: t.Any
) -> None:
    key = DPoPKey()
    token = bound_login(http, oauth_client, key, scope="api")["access_token"]
    proof = key.proof("GET", API_URL, token=token)
    headers = {"Authorization": f"DPoP {token}", "DPoP": proof}
    assert http.get("/api/me", headers=headers).status_code == 200
    assert_oauth_error(http.get("/api/me", headers=headers), 401, "invalid_dpop_proof")


def test_a_proof_by_another_key_does_not_burn_its_jti(
    http: t.Any, oauth_client: t.Any
) -> None:
    key = DPoPKey()
    token = bound_login(http, oauth_client, key, scope="api")["access_token"]
    stolen = dpop_get(http, token, DPoPKey(), jti="shared")
    assert_oauth_error(stolen, 401, "invalid_dpop_proof")
    assert dpop_get(http, token, key, jti="shared").status_code == 200


def test_no_credentials_gets_both_challenges(http: t.Any) -> None:
    response = http.get("/api/me")
    assert response.status_code == 401
    assert response.headers.getlist("WWW-Authenticate") == [
        "Bearer",
        'DPoP algs="ES256 RS256 PS256 EdDSA"',
    ]


def test_insufficient_scope_with_dpop_is_403(http: t.Any, oauth_client: t.Any) -> None:
    key = DPoPKey()
    token = bound_login(http, oauth_client, key, scope="api")["access_token"]
    response = dpop_get(http, token, key, url=ISSUER + "/api/admin")
    assert_oauth_error(response, 403, "insufficient_scope")


# -- refresh binding ---------------------------------------------------------------


def test_a_public_clients_refresh_token_is_bound_to_its_key(
    http: t.Any, public_client: t.Any
) -> None:
    key = DPoPKey()
    body = bound_login(http, public_client, key)
    assert table_rows(http.application, "ropc_refresh_tokens")[0].dpop_jkt == key.jkt
    refreshed = refresh_with(
        http, public_client, body["refresh_token"], key.proof("POST", TOKEN_URL)
    )
    assert refreshed.status_code == 200, refreshed.json
    assert refreshed.json["token_type"] == "DPoP"
    assert dpop_get(http, refreshed.json["access_token"], key).status_code == 200
    assert table_rows(http.application, "ropc_refresh_tokens")[1].dpop_jkt == key.jkt


@pytest.mark.parametrize("proof", ["other-key", "none"])
def test_a_public_client_cannot_refresh_with_another_key_or_none(
    http: t.Any, public_client: t.Any, proof: str
) -> None:
    key = DPoPKey()
    body = bound_login(http, public_client, key)
    sent = DPoPKey().proof("POST", TOKEN_URL) if proof == "other-key" else None
    response = refresh_with(http, public_client, body["refresh_token"], sent)
    assert_oauth_error(response, 400, "invalid_grant")
    # The thief's attempt did not use the token up: its owner still can.
    again = refresh_with(
        http, public_client, body["refresh_token"], key.proof("POST", TOKEN_URL)
    )
    assert again.status_code == 200


def test_a_confidential_client_may_refresh_with_a_new_key(
    http: t.Any, offline_client: t.Any
) -> None:
    old, new = DPoPKey(), DPoPKey()
    body = bound_login(http, offline_client, old)
    assert table_rows(http.application, "ropc_refresh_tokens")[0].dpop_jkt is None
    refreshed = refresh_with(
        http, offline_client, body["refresh_token"], new.proof("POST", TOKEN_URL)
    )
    assert refreshed.status_code == 200
    token = refreshed.json["access_token"]
    assert refreshed.json["token_type"] == "DPoP"
    assert introspect(http, offline_client, token).json["cnf"] == {"jkt": new.jkt}
    assert dpop_get(http, token, new).status_code == 200
    assert_oauth_error(dpop_get(http, token, old), 401, "invalid_dpop_proof")


def test_a_confidential_client_refreshing_without_a_proof_gets_bearer(
    http: t.Any, offline_client: t.Any
) -> None:
    body = bound_login(http, offline_client, DPoPKey())
    refreshed = refresh_with(http, offline_client, body["refresh_token"], None)
    assert refreshed.json["token_type"] == "Bearer"


def test_reuse_detection_still_fires_with_valid_proofs(
    http: t.Any, public_client: t.Any
) -> None:
    key = DPoPKey()
    first = bound_login(http, public_client, key)["refresh_token"]
    second = refresh_with(http, public_client, first, key.proof("POST", TOKEN_URL)).json
    replay = refresh_with(http, public_client, first, key.proof("POST", TOKEN_URL))
    assert_oauth_error(replay, 400, "invalid_grant")
    # The whole family is revoked: the successor and its access token too.
    successor = refresh_with(
        http, public_client, second["refresh_token"], key.proof("POST", TOKEN_URL)
    )
    assert_oauth_error(successor, 400, "invalid_grant")
    assert_oauth_error(
        dpop_get(http, second["access_token"], key), 401, "invalid_token"
    )


def test_a_public_clients_unbound_family_binds_at_its_first_proof(
    http: t.Any, public_client: t.Any
) -> None:
    plain = http.post(
        "/oauth/token",
        data={
            "client_id": public_client.client_id,
            **password_form(scope="api offline_access"),
        },
    ).json
    assert plain["token_type"] == "Bearer"
    key = DPoPKey()
    bound = refresh_with(
        http, public_client, plain["refresh_token"], key.proof("POST", TOKEN_URL)
    ).json
    assert bound["token_type"] == "DPoP"
    response = refresh_with(http, public_client, bound["refresh_token"], None)
    assert_oauth_error(response, 400, "invalid_grant")


def test_a_required_client_must_send_a_proof_to_refresh(
    http: t.Any, make_client: t.Any
) -> None:
    client = make_client(grant_types=["password", "refresh_token"], dpop="required")
    body = bound_login(http, client, DPoPKey())
    response = refresh_with(http, client, body["refresh_token"], None)
    assert_oauth_error(response, 400, "invalid_dpop_proof")
