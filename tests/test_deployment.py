"""Two gunicorn instances sharing PostgreSQL and Redis act as one server.

This is the deployment of ``examples/deploy``: a token issued by one
instance validates on the other, a refresh token rotated on one is detected
as reused on the other, and failed passwords are counted across both.
"""

from __future__ import annotations

import os
import secrets
import typing as t
from pathlib import Path

import pytest
import redis
import requests
import sqlalchemy as sa

from conftest import PG_URL
from conftest import Deployment
from conftest import deploy_client
from conftest import deploy_env

REDIS_URL = os.environ.get("ROPC_TEST_REDIS_URL")

pytestmark = [
    pytest.mark.live,
    pytest.mark.skipif(
        not (PG_URL and REDIS_URL),
        reason="needs ROPC_TEST_DATABASE_URL and ROPC_TEST_REDIS_URL",
    ),
]

PASSWORD = "correct horse battery staple"


@pytest.fixture
def cluster(tmp_path: Path) -> t.Iterator[dict[str, t.Any]]:
    """Two gunicorn instances (2 workers each) on one database and Redis."""
    assert PG_URL is not None and REDIS_URL is not None
    admin_url = sa.make_url(PG_URL).set(drivername="postgresql+psycopg")
    name = "ropc_deploy_" + secrets.token_hex(5)
    admin = sa.create_engine(admin_url, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(sa.text(f'CREATE DATABASE "{name}"'))
    prefix = "ropc-deploy-" + secrets.token_hex(5)
    env = deploy_env(
        DATABASE_URL=admin_url.set(database=name).render_as_string(hide_password=False),
        REDIS_URL=REDIS_URL,
        ROPC_ISSUER="https://auth.example.test",
        ROPC_RATELIMIT_KEY_PREFIX=prefix,
    )
    servers = [Deployment(env), Deployment(env)]
    try:
        client = deploy_client(env, "--offline-access")
        for server in servers:
            server.start()
        yield {"urls": [server.url for server in servers], "client": client}
    finally:
        for server in servers:
            server.stop()
        store = redis.Redis.from_url(REDIS_URL)
        for redis_key in store.scan_iter(f"*{prefix}*"):
            store.delete(redis_key)
        with admin.connect() as conn:
            conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


def _token(url: str, client: dict[str, str], password: str = PASSWORD, **form: str):
    return requests.post(
        f"{url}/oauth/token",
        data={
            "grant_type": "password",
            "username": "ann",
            "password": password,
            **form,
        },
        auth=(client["client_id"], client["client_secret"]),
        timeout=30,
    )


def test_a_token_issued_by_one_instance_validates_on_the_other(
    cluster: dict[str, t.Any],
) -> None:
    a, b = cluster["urls"]
    token = _token(a, cluster["client"]).json()["access_token"]
    me = requests.get(
        f"{b}/api/me", headers={"Authorization": f"Bearer {token}"}, timeout=30
    )
    assert me.status_code == 200
    assert me.json()["sub"] == "1"


def test_a_refresh_rotated_on_one_instance_is_reuse_on_the_other(
    cluster: dict[str, t.Any],
) -> None:
    a, b = cluster["urls"]
    client = cluster["client"]
    auth = (client["client_id"], client["client_secret"])
    first = _token(a, client, scope="api offline_access").json()
    rotated = requests.post(
        f"{a}/oauth/token",
        data={"grant_type": "refresh_token", "refresh_token": first["refresh_token"]},
        auth=auth,
        timeout=30,
    )
    assert rotated.status_code == 200
    replay = requests.post(
        f"{b}/oauth/token",
        data={"grant_type": "refresh_token", "refresh_token": first["refresh_token"]},
        auth=auth,
        timeout=30,
    )
    assert replay.status_code == 400
    assert replay.json()["error"] == "invalid_grant"
    # The family is revoked everywhere: the token rotated on A is dead on A.
    again = requests.post(
        f"{a}/oauth/token",
        data={
            "grant_type": "refresh_token",
            "refresh_token": rotated.json()["refresh_token"],
        },
        auth=auth,
        timeout=30,
    )
    assert again.status_code == 400
    me = requests.get(
        f"{a}/api/me",
        headers={"Authorization": f"Bearer {rotated.json()['access_token']}"},
        timeout=30,
    )
    assert me.status_code == 401


def test_failed_passwords_are_counted_across_both_instances(
    cluster: dict[str, t.Any],
) -> None:
    a, b = cluster["urls"]
    client = cluster["client"]
    statuses = [
        _token(url, client, password="wrong").status_code for url in (a, b, a, b, a)
    ]
    assert statuses == [400] * 5
    # Five failures in total reached the limit: both instances now refuse,
    # even the right password.
    for url in (b, a):
        locked = _token(url, client)
        assert locked.status_code == 429
        assert locked.json()["error"] == "slow_down"
        assert int(locked.headers["Retry-After"]) > 0
