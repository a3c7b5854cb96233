"""The throttling model on a live gunicorn: two workers of ten threads each,
a dual-stack socket.

``examples/deploy`` serves on ``[::]``, so every IPv4 client arrives as an
IPv4-mapped IPv6 address (``::ffff:127.0.0.2``); requests leave from two
loopback addresses, 127.0.0.1 (the user) and 127.0.0.2 (the attacker). The
database is the test's own (SQLite file, or PostgreSQL), shared by both
workers.
"""

from __future__ import annotations

import base64
import concurrent.futures
import http.client
import json
import socket
import threading
import typing as t
import urllib.parse
from collections.abc import Iterator
from pathlib import Path

import pytest

from conftest import Deployment
from conftest import build_app
from conftest import deploy_env
from conftest import dispose_app
from conftest import ropc_of

RIGHT = "correct horse battery staple"  # examples/deploy/wsgi.py's ann
USER, ATTACKER = "127.0.0.1", "127.0.0.2"

pytestmark = pytest.mark.live


def _free_port() -> int:
    with socket.socket(socket.AF_INET6) as sock:
        sock.bind(("::", 0))
        return int(sock.getsockname()[1])


class Server(t.NamedTuple):
    port: int
    client_id: str
    secret: str


@pytest.fixture
def server(database_uri: str, tmp_path: Path) -> Iterator[Server]:
    """examples/deploy on gunicorn, 2 workers of 10 threads, bound to ``[::]``."""
    app = build_app(database_uri, str(tmp_path / "setup"))
    with app.app_context():
        client, secret = ropc_of(app).clients.create("Mobile", scopes=["api"])
    assert secret is not None
    env = deploy_env(
        DATABASE_URL=database_uri,
        ROPC_ISSUER="https://auth.example.test",
        ROPC_THROTTLE_IP_LIMIT="3",
        HOST="[::]",
        # Threads, so that the workers run many logins at once.
        GUNICORN_CMD_ARGS="--threads 10",
    )
    env.pop("REDIS_URL", None)
    port = _free_port()
    gunicorn = Deployment(env)
    try:
        gunicorn.start(port)
        yield Server(port, client.client_id, secret)
    finally:
        gunicorn.stop()
        dispose_app(app)


def token(server: Server, source: str, username: str, password: str) -> tuple[int, str]:
    """A password grant sent from the loopback address ``source``; returns the
    status and ``ok`` or the error description."""
    body = urllib.parse.urlencode(
        {"grant_type": "password", "username": username, "password": password}
    )
    basic = base64.b64encode(f"{server.client_id}:{server.secret}".encode()).decode()
    conn = http.client.HTTPConnection(
        "127.0.0.1", server.port, timeout=30, source_address=(source, 0)
    )
    try:
        conn.request(
            "POST",
            "/oauth/token",
            body=body,
            headers={
                "Authorization": f"Basic {basic}",
                "Content-Type": "application/x-www-form-urlencoded",
                # The deploy example trusts one proxy (ProxyFix): it says HTTPS.
                "X-Forwarded-Proto": "https",
            },
        )
        response = conn.getresponse()
        data = json.loads(response.read())
    finally:
        conn.close()
    if response.status == 200:
        return 200, "ok"
    return response.status, str(data.get("error_description", data["error"]))


def test_ipv4_clients_of_a_dual_stack_socket_have_budgets_of_their_own(
    server: Server,
) -> None:
    for name in ("u1", "u2", "u3"):
        assert token(server, ATTACKER, name, "wrong")[0] == 400
    status, text = token(server, ATTACKER, "u4", "wrong")
    assert status == 429
    assert text.startswith("Too many failed attempts from this network")

    assert token(server, USER, "ann", RIGHT) == (200, "ok")


def test_the_user_gets_in_while_an_attacker_keeps_guessing(server: Server) -> None:
    stop = threading.Event()
    guesses: list[int] = []

    def attack() -> None:
        while not stop.is_set() and len(guesses) < 200:
            guesses.append(token(server, ATTACKER, "ann", "wrong")[0])

    attacker = threading.Thread(target=attack)
    attacker.start()
    try:
        # Wait until the attacker holds ann locked on its own network.
        for _ in range(200):
            if 429 in guesses:
                break
            assert attacker.is_alive()
            attacker.join(timeout=0.05)
        assert 429 in guesses
        seen = [token(server, USER, "ann", RIGHT) for _ in range(19)]
    finally:
        stop.set()
        attacker.join(timeout=30)
    assert seen == [(200, "ok")] * 19


def test_concurrent_right_logins_are_never_told_they_failed(server: Server) -> None:
    barrier = threading.Barrier(20)

    def login(_: int) -> tuple[int, str]:
        barrier.wait(timeout=30)
        return token(server, USER, "ann", RIGHT)

    with concurrent.futures.ThreadPoolExecutor(max_workers=20) as pool:
        outcomes = list(pool.map(login, range(20)))

    assert (200, "ok") in outcomes
    for status, text in outcomes:
        assert (status, text) == (200, "ok") or (
            status == 429 and text.startswith("Too many attempts in progress")
        ), text
