"""Throttling holds across server processes under concurrent guessing.

Two real server processes (``tests/throttle_server.py``) share their
counters: in Redis, in PostgreSQL, or in one SQLite file. 200 wrong guesses
for one username, sent at once from 40 threads and split across both
servers, must reach the validator no more than ROPC_THROTTLE_USERNAME_LIMIT
times in total; the validator of each process appends a line per call to a
shared file.
"""

from __future__ import annotations

import os
import secrets
import selectors
import subprocess
import sys
import threading
import time
import typing as t
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
import requests

# Internals on purpose: the deadlock test drives the Throttle itself and
# computes its counter keys (see that test's docstring).
from flask_ropc.normalise import ip_bucket
from flask_ropc.state import get_state
from flask_ropc.throttle import _digest

from conftest import build_app
from conftest import delete_redis_keys
from conftest import dispose_app
from conftest import ropc_of

pytestmark = pytest.mark.live

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
REDIS_URL = os.environ.get("ROPC_TEST_REDIS_URL")
USERNAME_LIMIT = 5  # the default ROPC_THROTTLE_USERNAME_LIMIT
GUESSES = 200
WORKERS = 40
TIMEOUT = 60


def start_server(
    env: dict[str, str], log: t.IO[str]
) -> tuple[subprocess.Popen[str], str]:
    """Start one server process; return it and its base URL once it listens."""
    proc = subprocess.Popen(
        [sys.executable, str(HERE / "throttle_server.py")],
        cwd=ROOT,
        env={**os.environ, **env, "PYTHONPATH": str(ROOT), "PYTHONUNBUFFERED": "1"},
        stdout=subprocess.PIPE,
        stderr=log,
        text=True,
    )
    assert proc.stdout is not None
    deadline = time.monotonic() + TIMEOUT
    with selectors.DefaultSelector() as selector:
        selector.register(proc.stdout, selectors.EVENT_READ)
        while time.monotonic() < deadline:
            if selector.select(timeout=deadline - time.monotonic()):
                line = proc.stdout.readline()
                if line.startswith("listening on "):
                    return proc, f"http://127.0.0.1:{int(line.split()[-1])}"
                if not line:  # the process exited
                    break
    stop(proc)
    raise AssertionError("the server did not start; see its log")


def stop(proc: subprocess.Popen[str]) -> None:
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=10)
    if proc.stdout is not None:
        proc.stdout.close()


@pytest.fixture(params=["redis", "postgresql", "sqlite"])
def shared(
    request: pytest.FixtureRequest, tmp_path: Path
) -> t.Iterator[dict[str, str]]:
    """The shared database and counter storage of both server processes,
    with tables created and a client registered."""
    env: dict[str, str] = {}
    if request.param == "postgresql":
        pg = request.getfixturevalue("pg_database")
        if pg is None:
            pytest.skip("set ROPC_TEST_DATABASE_URL to run the PostgreSQL case")
        database_uri = pg.render_as_string(hide_password=False)
    else:
        database_uri = f"sqlite:///{tmp_path / 'shared.sqlite3'}"
    prefix = f"ropc-test-{secrets.token_hex(6)}"
    if request.param == "redis":
        if not REDIS_URL:
            pytest.skip("set ROPC_TEST_REDIS_URL to run the Redis case")
        env["ROPC_SERVER_STORAGE_URI"] = REDIS_URL
    app = build_app(database_uri, str(tmp_path / "instance"))
    with app.app_context():
        client, secret = ropc_of(app).clients.create("Guesser", scopes=["api"])
    assert secret is not None
    env.update(
        ROPC_SERVER_DATABASE_URI=database_uri,
        ROPC_SERVER_PORT="0",
        ROPC_SERVER_KEY_PREFIX=prefix,
        ROPC_SERVER_CALLS_FILE=str(tmp_path / "calls.txt"),
        CLIENT_ID=client.client_id,
        CLIENT_SECRET=secret,
    )
    try:
        yield env
    finally:
        dispose_app(app)
        if request.param == "redis":
            assert REDIS_URL is not None
            delete_redis_keys(REDIS_URL, prefix)


def test_guesses_from_40_threads_on_two_processes_reach_the_validator_at_most_5_times(
    shared: dict[str, str], tmp_path: Path
) -> None:
    calls_file = Path(shared["ROPC_SERVER_CALLS_FILE"])
    auth = (shared["CLIENT_ID"], shared["CLIENT_SECRET"])
    servers: list[subprocess.Popen[str]] = []
    with open(tmp_path / "servers.log", "w") as log:
        try:
            urls = []
            for _ in range(2):
                proc, url = start_server(shared, log)
                servers.append(proc)
                urls.append(url)

            barrier = threading.Barrier(WORKERS)

            def guess(i: int) -> tuple[int, str]:
                barrier.wait(timeout=TIMEOUT)
                response = requests.post(
                    f"{urls[i % 2]}/oauth/token",
                    data={
                        "grant_type": "password",
                        "username": "victim",
                        "password": f"guess-{i}",
                    },
                    auth=auth,
                    timeout=TIMEOUT,
                )
                error = ""
                if response.headers.get("Content-Type") == "application/json":
                    error = response.json().get("error", "")
                return response.status_code, error

            with ThreadPoolExecutor(max_workers=WORKERS) as pool:
                results = list(pool.map(guess, range(GUESSES)))
        finally:
            for proc in servers:
                stop(proc)

    outcomes = Counter(results)
    assert set(outcomes) <= {(400, "invalid_grant"), (429, "slow_down")}, (
        outcomes,
        (tmp_path / "servers.log").read_text()[-3000:],
    )
    lines = calls_file.read_text().splitlines() if calls_file.exists() else []
    assert 1 <= len(lines) <= USERNAME_LIMIT, lines
    # Every validator call was a wrong password, answered with invalid_grant.
    assert outcomes[(400, "invalid_grant")] == len(lines)
    assert outcomes[(429, "slow_down")] == GUESSES - len(lines)


def test_concurrent_logins_on_one_username_never_deadlock_on_postgresql(
    pg_database: t.Any, tmp_path: Path
) -> None:
    """Reservations, give-backs and successes racing on the same rows.

    Each login writes up to three counters (username, IP, client) in one
    statement, and a success clears and releases them in one transaction;
    PostgreSQL aborts one of two writers that lock shared rows in opposite
    orders ("deadlock detected"), which the throttle turns into a 503.

    Reaches into the app's ``Throttle`` on purpose: the race is between its
    own begin/succeeded/failed calls, without HTTP in between, and the
    check reads the IP and client counters under the keys it computes
    (``_key``, ``_digest``, ``ip_bucket``), which no public API exposes.
    """
    if pg_database is None:
        pytest.skip("set ROPC_TEST_DATABASE_URL to run the PostgreSQL case")
    app = build_app(
        pg_database.render_as_string(hide_password=False),
        str(tmp_path / "instance"),
        ROPC_THROTTLE_USERNAME_LIMIT=100_000,
        ROPC_THROTTLE_IP_LIMIT=100_000,
        ROPC_THROTTLE_CLIENT_LIMIT=100_000,
        ROPC_THROTTLE_ACCOUNT_LIMIT=100_000,
    )
    throttle = get_state(app).throttle  # internal on purpose: see the docstring
    assert throttle is not None
    threads, rounds = 12, 60
    barrier = threading.Barrier(threads)

    def login(worker: int) -> int:
        """Run ``rounds`` logins; return how many failures counted."""
        barrier.wait(timeout=TIMEOUT)
        counted = 0
        for n in range(rounds):
            attempt = throttle.begin("victim", "192.0.2.7", "the-client")
            outcome = (worker + n) % 3
            if outcome == 0:
                throttle.succeeded(attempt)
            else:
                throttle.failed(attempt, counts=outcome == 1)
                counted += outcome == 1
        return counted

    try:
        with ThreadPoolExecutor(max_workers=threads) as pool:
            counted = sum(pool.map(login, range(threads)))
        # Successes and uncounted failures gave their IP and client places
        # back; only the counted failures remain.
        ip_key = throttle._key("ip", _digest(ip_bucket("192.0.2.7")))
        client_key = throttle._key("client", "the-client")
        window = int(throttle.counters.now() // 900)  # ROPC_THROTTLE_*_WINDOW
        for key in (ip_key, client_key):
            # The current fixed window, and the previous one if the run
            # crossed a boundary.
            kept = [throttle.counters.get(f"{key}:{n}") for n in (window, window - 1)]
            assert sum(kept) == counted
    finally:
        dispose_app(app)
