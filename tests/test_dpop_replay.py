"""A DPoP proof's ``jti`` is single-use across processes and restarts, on the
database and on Redis: in-process apps, and two gunicorn workers of the
deployment example restarted in between."""

from __future__ import annotations

import hashlib
import os
import secrets
import typing as t
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
import redis
import requests

from conftest import USERS
from conftest import Deployment
from conftest import OAuthClient
from conftest import assert_oauth_error
from conftest import clock_of
from conftest import delete_redis_keys
from conftest import deploy_client
from conftest import deploy_env
from conftest import table_rows
from dpop_proofs import ISSUER
from dpop_proofs import TOKEN_URL
from dpop_proofs import DPoPKey
from dpop_proofs import token_request

REDIS_URL = os.environ.get("ROPC_TEST_REDIS_URL")
needs_redis = pytest.mark.skipif(not REDIS_URL, reason="needs ROPC_TEST_REDIS_URL")


@pytest.fixture
def redis_prefix() -> t.Iterator[str]:
    prefix = "ropc-dpop-" + secrets.token_hex(4)
    yield prefix
    assert REDIS_URL is not None
    delete_redis_keys(REDIS_URL, prefix)


@needs_redis
def test_on_redis_a_replay_is_refused_by_every_instance(
    make_app: t.Any, make_client: t.Any, redis_prefix: str
) -> None:
    config = {
        "ROPC_ISSUER": ISSUER,
        "ROPC_RATELIMIT_STORAGE_URI": REDIS_URL,
        "ROPC_RATELIMIT_KEY_PREFIX": redis_prefix,
    }
    first, second = make_app(**config), make_app(**config)
    with first.app_context():
        client, secret = first.extensions["test_ropc"].clients.create(
            "App", scopes=["api"]
        )
    creds = OAuthClient(client.client_id, secret)
    proof = DPoPKey().proof("POST", TOKEN_URL)
    assert token_request(first.test_client(), creds, proof).status_code == 200
    for app in (first, second):
        response = token_request(app.test_client(), creds, proof)
        assert_oauth_error(response, 400, "invalid_dpop_proof")
    # In Redis, with an expiry of its own, and not in the database.
    store = redis.Redis.from_url(t.cast(str, REDIS_URL))
    keys = list(store.scan_iter(f"*{redis_prefix}:dpop:*"))
    assert len(keys) == 1
    assert 0 < store.ttl(keys[0]) <= 70
    assert dpop_rows(first) == []


def test_on_the_database_the_jti_is_a_digest_in_a_throttle_row(
    make_app: t.Any,
) -> None:
    """Kept until the proof expires (lifetime + 2 x skew), then cleaned up."""
    app = make_app(ROPC_ISSUER=ISSUER)
    now = int(clock_of(app).freeze())
    with app.app_context():
        client, secret = app.extensions["test_ropc"].clients.create("A")
    creds = OAuthClient(client.client_id, secret)
    proof = DPoPKey().proof("POST", TOKEN_URL, jti="the-jti", iat=now)
    assert token_request(app.test_client(), creds, proof).status_code == 200
    (row,) = dpop_rows(app)
    digest = hashlib.sha256(f"{TOKEN_URL}\0the-jti".encode()).hexdigest()
    assert row.key == f"ropc:dpop:{digest}"
    assert row.expires_at == now + 70
    clock_of(app).advance(71)
    with app.app_context():
        app.extensions["test_ropc"].cleanup()
    assert dpop_rows(app) == []


def dpop_rows(app: t.Any) -> list[t.Any]:
    return [row for row in table_rows(app, "ropc_throttle") if ":dpop:" in row.key]


# -- two gunicorn workers, restarted ---------------------------------------------


@pytest.fixture(
    params=["sqlite", pytest.param("redis", marks=needs_redis)],
)
def deployment(
    request: pytest.FixtureRequest, tmp_path: Path
) -> t.Iterator[tuple[Deployment, dict[str, t.Any]]]:
    prefix = "ropc-dpop-live-" + secrets.token_hex(4)
    env = deploy_env(
        DATABASE_URL=f"sqlite:///{tmp_path / 'deploy.sqlite3'}",
        ROPC_ISSUER=ISSUER,
        ROPC_RATELIMIT_KEY_PREFIX=prefix,
    )
    if request.param == "redis":
        env["REDIS_URL"] = t.cast(str, REDIS_URL)
    client = deploy_client(env)
    server = Deployment(env)
    server.start()
    try:
        yield server, client
    finally:
        server.stop()
        if request.param == "redis":
            delete_redis_keys(t.cast(str, REDIS_URL), prefix)


def _login(url: str, client: dict[str, str], proof: str) -> requests.Response:
    return requests.post(
        f"{url}/oauth/token",
        data={"grant_type": "password", "username": "ann", "password": USERS["ann"][0]},
        auth=(client["client_id"], client["client_secret"]),
        # The deployment's ProxyFix trusts 127.0.0.1 to say it was HTTPS.
        headers={"DPoP": proof, "X-Forwarded-Proto": "https"},
        timeout=60,
    )


@pytest.mark.live
def test_a_proof_is_single_use_across_workers_and_a_restart(
    deployment: tuple[Deployment, dict[str, t.Any]],
) -> None:
    server, client = deployment
    proof = DPoPKey().proof("POST", TOKEN_URL)
    # Eight connections at once with one proof, over both workers.
    with ThreadPoolExecutor(max_workers=8) as pool:
        answers = list(pool.map(lambda _: _login(server.url, client, proof), range(8)))
    statuses = sorted(answer.status_code for answer in answers)
    assert statuses == [200] + [400] * 7, [a.text for a in answers]
    assert {a.json()["error"] for a in answers if a.status_code == 400} == {
        "invalid_dpop_proof"
    }
    server.stop()
    server.start()
    replay = _login(server.url, client, proof)
    assert replay.status_code == 400
    assert replay.json()["error"] == "invalid_dpop_proof"
    fresh = _login(server.url, client, DPoPKey().proof("POST", TOKEN_URL))
    assert fresh.status_code == 200, fresh.text
    assert fresh.json()["token_type"] == "DPoP"
