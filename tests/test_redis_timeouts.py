"""Bounded waits on Redis: a frozen Redis costs a login seconds, not a worker.

Each test starts a private ``redis-server`` on a free loopback port and
freezes it with SIGSTOP: the kernel still accepts connections, but nothing
answers, as with a Redis stuck on a slow disk or swapping. Every Redis
storage we create has connect and socket timeouts by default
(``ROPC_RATELIMIT_STORAGE_OPTIONS`` changes them, the URI's query string
wins), so the password grant answers 503 ``temporarily_unavailable``
(``ROPC_THROTTLE_ON_STORAGE_ERROR=closed``) within seconds.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
import typing as t
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import flask
import pytest
import redis
import requests

from flask_ropc import ROPC
from flask_ropc import ConfigurationError

from conftest import OAuthClient
from conftest import build_app
from conftest import dispose_app
from conftest import free_port
from conftest import login
from conftest import pem_signing_key
from conftest import ropc_of
from conftest import wait_until_serving

ROOT = Path(__file__).resolve().parent.parent
PASSWORD = "correct horse battery staple"  # ann's, in examples/deploy

pytestmark = pytest.mark.skipif(
    shutil.which("redis-server") is None, reason="needs redis-server"
)


class PrivateRedis:
    """A redis-server of the test's own, which the test can freeze."""

    def __init__(self, proc: subprocess.Popen[bytes], port: int) -> None:
        self.proc = proc
        self.url = f"redis://127.0.0.1:{port}/0"

    def freeze(self) -> None:
        """SIGSTOP: connections are still accepted, nothing is answered."""
        os.kill(self.proc.pid, signal.SIGSTOP)

    def thaw(self) -> None:
        """SIGCONT: answer again (harmless if not frozen)."""
        if self.proc.poll() is None:
            os.kill(self.proc.pid, signal.SIGCONT)


@pytest.fixture
def private_redis(tmp_path: Path) -> Iterator[PrivateRedis]:
    """Start redis-server on a free port; resume and kill it at the end."""
    port = free_port()
    proc = subprocess.Popen(
        [
            "redis-server",
            *("--port", str(port), "--bind", "127.0.0.1"),
            *("--save", "", "--appendonly", "no", "--dir", str(tmp_path)),
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    server = PrivateRedis(proc, port)
    try:
        probe = redis.Redis.from_url(server.url, socket_timeout=1)
        for _ in range(200):
            assert proc.poll() is None, "redis-server exited"
            try:
                if probe.ping():
                    break
            except redis.ConnectionError:
                try:
                    proc.wait(timeout=0.05)  # a bounded wait for start-up
                except subprocess.TimeoutExpired:
                    pass
        else:
            raise AssertionError("redis-server did not start")
        probe.close()
        yield server
    finally:
        server.thaw()
        proc.kill()
        proc.wait(timeout=10)


def test_a_frozen_redis_gets_a_503_in_seconds_from_a_live_gunicorn(
    private_redis: PrivateRedis, tmp_path: Path
) -> None:
    """gunicorn with 2 sync workers (examples/deploy) counting in our Redis:
    once Redis freezes, a login answers 503 with Retry-After in seconds,
    well under gunicorn's 30 s worker timeout, no worker is killed or
    replaced, and once Redis answers again so does the login."""
    database_uri = f"sqlite:///{tmp_path / 'ropc.sqlite3'}"
    setup = build_app(database_uri, str(tmp_path / "instance"))
    with setup.app_context():
        client, secret = ropc_of(setup).clients.create("Mobile", scopes=["api"])
    dispose_app(setup)
    port = free_port()
    env = dict(
        os.environ,
        DATABASE_URL=database_uri,
        REDIS_URL=private_redis.url,
        ROPC_ISSUER="https://auth.example.test",
        ROPC_SIGNING_KEY=pem_signing_key(),
        WEB_CONCURRENCY="2",
        PORT=str(port),
        PYTHONPATH=str(ROOT),
    )
    log_path = tmp_path / "gunicorn.log"
    with log_path.open("w") as log:
        proc = subprocess.Popen(
            [
                *(sys.executable, "-m", "gunicorn"),
                *("-c", "examples/deploy/gunicorn.conf.py"),
                "examples.deploy.wsgi:app",
            ],
            env=env,
            cwd=ROOT,
            stdout=log,
            stderr=subprocess.STDOUT,
        )

    def token() -> requests.Response:
        return requests.post(
            f"http://127.0.0.1:{port}/oauth/token",
            data={"grant_type": "password", "username": "ann", "password": PASSWORD},
            auth=(client.client_id, secret or ""),
            timeout=60,
        )

    try:
        wait_until_serving(proc, port)
        assert token().status_code == 200
        private_redis.freeze()
        start = time.monotonic()
        frozen = token()
        elapsed = time.monotonic() - start
        assert frozen.status_code == 503, frozen.text
        assert frozen.json()["error"] == "temporarily_unavailable"
        assert int(frozen.headers["Retry-After"]) > 0
        assert elapsed < 10, elapsed
        private_redis.thaw()
        assert token().status_code == 200
    finally:
        private_redis.thaw()
        proc.terminate()
        proc.wait(timeout=30)
    output = log_path.read_text()
    assert "WORKER TIMEOUT" not in output
    assert output.count("Booting worker") == 2, output


@pytest.mark.parametrize(
    ("query", "options", "expected"),
    [
        ("", {"socket_timeout": 3}, 3.0),
        ("?socket_timeout=2.5", {"socket_timeout": 0.5}, 2.5),
    ],
    ids=["options-over-defaults", "uri-over-options"],
)
def test_the_options_and_the_uri_set_how_long_a_frozen_redis_is_waited_for(
    private_redis: PrivateRedis,
    tmp_path: Path,
    query: str,
    options: dict[str, t.Any],
    expected: float,
) -> None:
    """``ROPC_RATELIMIT_STORAGE_OPTIONS`` replaces our default timeouts, and a
    ``socket_timeout`` in the URI itself wins over both: the frozen login
    answers 503 once that timeout expired, and soon after."""
    app = build_app(
        f"sqlite:///{tmp_path / 'ropc.sqlite3'}",
        str(tmp_path / "instance"),
        ROPC_RATELIMIT_STORAGE_URI=private_redis.url + query,
        ROPC_RATELIMIT_STORAGE_OPTIONS=options,
    )
    try:
        with app.app_context():
            made, secret = ropc_of(app).clients.create("Mobile", scopes=["api"])
        client = OAuthClient(made.client_id, secret)
        http = app.test_client()
        assert login(http, client).status_code == 200
        private_redis.freeze()
        pool = ThreadPoolExecutor(max_workers=1)
        try:

            def frozen_login() -> tuple[t.Any, float]:
                start = time.monotonic()
                return login(http, client), time.monotonic() - start

            # A login that waits for ever fails here; thawing below ends it.
            response, elapsed = pool.submit(frozen_login).result(timeout=20)
        finally:
            private_redis.thaw()
            pool.shutdown(wait=True)
        assert response.status_code == 503
        assert response.get_json()["error"] == "temporarily_unavailable"
        assert expected * 0.95 <= elapsed < expected + 4, elapsed
    finally:
        dispose_app(app)


@pytest.mark.parametrize(
    "value", ["socket_timeout=1", ["socket_timeout"], {"password": "s3cret!", 1: 2}]
)
def test_storage_options_must_be_keyword_arguments(
    value: t.Any, tmp_path: Path
) -> None:
    """A wrong value is refused at start-up, naming the key and never
    quoting the value (it may hold Redis's password)."""
    app = flask.Flask("bad_options", instance_path=str(tmp_path))
    app.config.update(
        ROPC_DATABASE_URI="sqlite://",
        ROPC_RATELIMIT_STORAGE_URI="redis://127.0.0.1:1/0",
        ROPC_RATELIMIT_STORAGE_OPTIONS=value,
    )
    with pytest.raises(
        ConfigurationError, match="ROPC_RATELIMIT_STORAGE_OPTIONS"
    ) as info:
        ROPC(app)
    assert "s3cret" not in str(info.value)
