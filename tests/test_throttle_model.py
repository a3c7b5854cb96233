"""The throttling model of issue 13: nothing an attacker can turn against users.

Each test drives the real token endpoint with the counters in the database
(SQLite, PostgreSQL when configured) and in the real Redis (when
``ROPC_TEST_REDIS_URL`` is set). The source address is the WSGI peer
(``REMOTE_ADDR``), ProxyFix's ``X-Forwarded-For`` or a trusted backend's
end-user header. See ``test_throttle_live.py`` for the same model on live
gunicorn workers.
"""

from __future__ import annotations

import concurrent.futures
import logging
import math
import os
import secrets
import threading
import typing as t
from collections.abc import Iterator

import flask
import pytest
import requests
from werkzeug.middleware.proxy_fix import ProxyFix

from flask_ropc import GrantResult
from flask_ropc.errors import Throttled
from flask_ropc.state import get_state

from conftest import USERS
from conftest import WRONG_PASSWORD
from conftest import LiveServer
from conftest import OAuthClient
from conftest import build_app
from conftest import clock_of
from conftest import delete_redis_keys
from conftest import dispose_app
from conftest import password_attempt as attempt
from conftest import ropc_of

TOKEN_URL = "/oauth/token"
WRONG = WRONG_PASSWORD
RIGHT = USERS["ann"][0]
REDIS_URL = os.environ.get("ROPC_TEST_REDIS_URL")
STORAGES = ["database"] + (["redis"] if REDIS_URL else [])
ATTACKER, VICTIM = "198.51.100.7", "203.0.113.9"


@pytest.fixture(params=STORAGES)
def make(
    request: pytest.FixtureRequest, database_uri: str, tmp_path: t.Any
) -> Iterator[t.Callable[..., flask.Flask]]:
    """Build apps whose counters live in the database or in Redis; each
    app's clock is frozen at a whole second."""
    built: list[flask.Flask] = []
    prefix = f"ropc-model-{secrets.token_hex(6)}"

    def build(**config: t.Any) -> flask.Flask:
        if request.param == "redis":
            config.setdefault("ROPC_RATELIMIT_STORAGE_URI", REDIS_URL)
            config.setdefault("ROPC_RATELIMIT_KEY_PREFIX", prefix)
        app = build_app(database_uri, str(tmp_path / f"i{len(built)}"), **config)
        clock_of(app).freeze()
        built.append(app)
        return app

    yield build
    for app in built:
        dispose_app(app)
    if request.param == "redis":
        assert REDIS_URL is not None
        delete_redis_keys(REDIS_URL, prefix)


def client_of(app: flask.Flask, **options: t.Any) -> OAuthClient:
    options.setdefault("scopes", ["api"])
    with app.app_context():
        client, secret = ropc_of(app).clients.create("Client", **options)
    return OAuthClient(client.client_id, secret)


def outcome(response: t.Any) -> str:
    """``ok``, ``wrong`` or the throttling budget named by the description."""
    if response.status_code == 200:
        return "ok"
    body = response.get_json()
    if response.status_code == 400 and body["error"] == "invalid_grant":
        return "wrong"
    assert response.status_code == 429, response.get_data(as_text=True)
    assert body["error"] == "slow_down"
    retry_after = response.headers["Retry-After"]
    assert retry_after.isdigit()
    # Redis expires keys on real time: the wait may be a second shorter.
    return str(body["error_description"]).replace(retry_after, "N")


FAILED = "Too many failed attempts; try again in N s."


def calls(app: flask.Flask) -> int:
    return len(app.extensions["test_validator"].calls)


# -- item 2: the lock applies to the (username, network) pair -----------------


def test_a_lock_holds_for_the_network_that_failed_not_for_the_user_elsewhere(
    make: t.Callable[..., flask.Flask],
) -> None:
    app = make()
    http, client = app.test_client(), client_of(app)
    for _ in range(5):
        assert outcome(attempt(http, client, ip=ATTACKER)) == "wrong"

    assert outcome(attempt(http, client, password=RIGHT, ip=ATTACKER)) == FAILED
    assert outcome(attempt(http, client, password=RIGHT, ip=VICTIM)) == "ok"
    assert calls(app) == 6


def test_an_attacker_guessing_on_cannot_keep_the_user_out(
    make: t.Callable[..., flask.Flask],
) -> None:
    """The measured attack: guesses from one network, the right password from
    another, interleaved, through and past the attacker's locks."""
    app = make()
    http, client, clock = app.test_client(), client_of(app), clock_of(app)
    victim = []
    for _ in range(19):
        for _ in range(6):
            attempt(http, client, ip=ATTACKER)
        victim.append(outcome(attempt(http, client, password=RIGHT, ip=VICTIM)))
        clock.advance(1.3)
    assert victim == ["ok"] * 19


def test_a_success_elsewhere_is_invisible_to_the_attacker(
    make: t.Callable[..., flask.Flask],
) -> None:
    """Item 6: the real user's login does not reset the attacker's count, so
    the attacker cannot tell that the account exists and was just used."""
    app = make()
    http, client = app.test_client(), client_of(app)
    for _ in range(4):
        attempt(http, client, ip=ATTACKER)
    assert outcome(attempt(http, client, password=RIGHT, ip=VICTIM)) == "ok"

    seen = [outcome(attempt(http, client, ip=ATTACKER)) for _ in range(2)]

    assert seen == ["wrong", FAILED]


def test_a_success_clears_only_its_own_network(
    make: t.Callable[..., flask.Flask],
) -> None:
    app = make()
    http, client = app.test_client(), client_of(app)
    for ip in (ATTACKER, VICTIM):
        for _ in range(4):
            attempt(http, client, ip=ip)
    assert outcome(attempt(http, client, password=RIGHT, ip=VICTIM)) == "ok"

    assert [outcome(attempt(http, client, ip=VICTIM)) for _ in range(4)] == [
        "wrong"
    ] * 4
    assert outcome(attempt(http, client, ip=ATTACKER)) == "wrong"
    assert outcome(attempt(http, client, ip=ATTACKER)) == FAILED


def test_unlock_frees_the_username_on_every_network(
    make: t.Callable[..., flask.Flask],
) -> None:
    app = make()
    http, client = app.test_client(), client_of(app)
    for ip in (ATTACKER, VICTIM):
        for _ in range(5):
            attempt(http, client, username="ANN", ip=ip)
    assert outcome(attempt(http, client, password=RIGHT, ip=VICTIM)) == FAILED

    result = app.test_cli_runner().invoke(args=["ropc", "unlock", "ann"])

    assert result.exit_code == 0, result.output
    for ip in (ATTACKER, VICTIM):
        assert outcome(attempt(http, client, ip=ip)) == "wrong"
    assert outcome(attempt(http, client, password=RIGHT, ip=VICTIM)) == "ok"


# -- the account-wide budget: distributed stuffing slows, never locks ---------


def test_failures_from_many_networks_slow_the_account_down_but_never_lock_it(
    make: t.Callable[..., flask.Flask],
) -> None:
    app = make(ROPC_THROTTLE_ACCOUNT_LIMIT=10, ROPC_THROTTLE_ACCOUNT_INTERVAL=10)
    http, client, clock = app.test_client(), client_of(app), clock_of(app)
    for n in range(10):
        assert outcome(attempt(http, client, ip=f"192.0.2.{n + 1}")) == "wrong"

    # Past the limit: one attempt per interval gets through, from anywhere.
    assert outcome(attempt(http, client, ip="192.0.2.100")) == "wrong"
    slowed = outcome(attempt(http, client, password=RIGHT, ip=VICTIM))
    assert slowed.startswith("Too many failed attempts for this account")
    assert calls(app) == 11
    if app.config["ROPC_RATELIMIT_STORAGE_URI"] is None:
        # Database counters follow the app's clock (Redis keeps real time).
        clock.advance(10)
        assert outcome(attempt(http, client, password=RIGHT, ip=VICTIM)) == "ok"


# -- item 3: attempts in flight are not failures --------------------------------


@pytest.fixture
def slow_app(database_uri: str, tmp_path: t.Any) -> Iterator[flask.Flask]:
    """An app whose validator waits until the test lets it answer."""
    app = build_app(database_uri, str(tmp_path / "slow"))
    app.extensions["release"] = threading.Event()
    app.extensions["entered"] = threading.Semaphore(0)
    ropc = ropc_of(app)

    @ropc.password_validator
    def check(req: t.Any) -> t.Any:
        app.extensions["entered"].release()
        assert app.extensions["release"].wait(timeout=30)
        if req.password == RIGHT:
            return GrantResult.success(subject="user-1")
        return None

    yield app
    app.extensions["release"].set()
    dispose_app(app)


def test_concurrent_right_logins_are_never_told_they_failed(
    slow_app: flask.Flask, tmp_path: t.Any
) -> None:
    from werkzeug.serving import make_server

    client = client_of(slow_app)
    server = make_server("127.0.0.1", 0, slow_app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    live = LiveServer(f"http://127.0.0.1:{server.server_port}", slow_app)

    def login() -> t.Any:
        assert client.secret is not None
        return requests.post(
            f"{live.url}{TOKEN_URL}",
            data={"grant_type": "password", "username": "ann", "password": RIGHT},
            auth=(client.client_id, client.secret),
            timeout=30,
        )

    try:
        with concurrent.futures.ThreadPoolExecutor(max_workers=20) as pool:
            first = [pool.submit(login) for _ in range(5)]
            for _ in range(5):  # the five places of the pair are taken
                assert slow_app.extensions["entered"].acquire(timeout=30)
            rest = [pool.submit(login) for _ in range(15)]
            refused = [future.result(timeout=30) for future in rest]
            slow_app.extensions["release"].set()
            admitted = [future.result(timeout=30) for future in first]
    finally:
        server.shutdown()
        thread.join(timeout=10)

    assert [response.status_code for response in admitted] == [200] * 5
    for response in refused:
        assert response.status_code == 429
        assert response.json()["error_description"] == (
            "Too many attempts in progress; try again in 1 s."
        )
        assert response.headers["Retry-After"] == "1"


# -- item 1: IPv4 clients behind a dual-stack socket, a proxy or a backend ------


@pytest.mark.parametrize(
    "address, other",
    [
        ("::ffff:192.0.2.1", "::ffff:192.0.2.2"),
        ("2002:c000:0201::1", "2002:c000:0202::1"),  # 6to4 of the same two
    ],
)
def test_ipv4_carried_in_ipv6_is_counted_as_that_ipv4_address(
    make: t.Callable[..., flask.Flask], address: str, other: str
) -> None:
    app = make(ROPC_THROTTLE_IP_LIMIT=3)
    http, client = app.test_client(), client_of(app)
    for name in ("u1", "u2", "u3"):
        assert outcome(attempt(http, client, name, ip=address)) == "wrong"

    from_there = outcome(attempt(http, client, "u4", ip=address))
    assert from_there.startswith("Too many failed attempts from this network")
    same_host = outcome(attempt(http, client, "u4", ip="192.0.2.1"))
    assert same_host.startswith("Too many failed attempts from this network")
    assert outcome(attempt(http, client, password=RIGHT, ip=other)) == "ok"


def test_ipv4_mapped_addresses_through_proxy_fix_and_a_trusted_backend(
    make: t.Callable[..., flask.Flask],
) -> None:
    app = make(ROPC_THROTTLE_IP_LIMIT=3)
    app.wsgi_app = ProxyFix(app.wsgi_app, x_for=1)  # type: ignore[method-assign]
    http, client = app.test_client(), client_of(app)
    backend = client_of(app, trusted_backend=True)

    def forwarded(address: str) -> dict[str, str]:
        return {"X-Forwarded-For": address}

    def end_user(address: str) -> dict[str, str]:
        return {"X-End-User-IP": address}

    for name in ("u1", "u2", "u3"):
        attempt(http, client, name, headers=forwarded("::ffff:192.0.2.1"))
    refused = outcome(attempt(http, client, "u4", headers=forwarded("192.0.2.1")))
    assert refused.startswith("Too many failed attempts from this network")
    other = attempt(http, client, password=RIGHT, headers=forwarded("::ffff:192.0.2.2"))
    assert outcome(other) == "ok"

    for name in ("v1", "v2", "v3"):
        attempt(http, backend, name, headers=end_user("::ffff:198.51.100.1"))
    refused = outcome(attempt(http, backend, "v4", headers=end_user("198.51.100.1")))
    assert refused.startswith("Too many failed attempts from this network")
    other = attempt(
        http, backend, password=RIGHT, headers=end_user("::ffff:198.51.100.2")
    )
    assert outcome(other) == "ok"


def test_an_attempt_without_a_client_address_is_refused_and_logged(
    make: t.Callable[..., flask.Flask], caplog: pytest.LogCaptureFixture
) -> None:
    """A unix socket without ProxyFix gives no address: no network budget and
    no pair could hold, so the attempt fails closed (and says why in the log)."""
    app = make()
    http, client = app.test_client(), client_of(app)
    with caplog.at_level(logging.ERROR, logger="flask_ropc"):
        response = attempt(http, client, password=RIGHT, ip="")

    assert response.status_code == 500
    assert response.get_json()["error"] == "server_error"
    assert calls(app) == 0
    assert any("ProxyFix" in record.getMessage() for record in caplog.records)


# -- item 4: invisible characters --------------------------------------------


INVISIBLE = ["\u200b", "\u200c", "\u200d", "\u2060", "\ufeff", "\u00ad"]


def test_invisible_characters_buy_no_fresh_budget(
    make: t.Callable[..., flask.Flask],
) -> None:
    app = make()
    http, client = app.test_client(), client_of(app)
    for _ in range(5):
        attempt(http, client, "ann")
    variants = [f"a{c}nn" for c in INVISIBLE] + [f"ann{c}" for c in INVISIBLE]
    variants += [f"{c}ANN" for c in INVISIBLE]

    seen = {outcome(attempt(http, client, name)) for name in variants * 2}

    assert seen == {FAILED}
    assert calls(app) == 5


def test_the_validator_still_gets_the_username_exactly_as_sent(
    make: t.Callable[..., flask.Flask],
) -> None:
    app = make()
    http, client = app.test_client(), client_of(app)
    attempt(http, client, "A\u200bnn\u00ad")
    assert app.extensions["test_validator"].calls[-1].username == "A\u200bnn\u00ad"


# -- item 5: no burst across a window boundary --------------------------------


def test_a_burst_across_a_window_boundary_gets_at_most_one_more_than_the_limit(
    make: t.Callable[..., flask.Flask],
) -> None:
    """Windows of old started with their first failure and restarted at
    their end: one guess, then 3 just before that window ended and 5 just
    after, 8 within a second, where the limit is 5."""
    app = make()
    http, client, clock = app.test_client(), client_of(app), clock_of(app)
    window = 15 * 60  # ROPC_THROTTLE_USERNAME_WINDOW
    start = clock()
    first = math.ceil(start / window) * window - 0.25
    clock.at(first - start)
    assert outcome(attempt(http, client)) == "wrong"
    clock.at(first + window - 0.5 - start)
    burst = [outcome(attempt(http, client)) for _ in range(3)]
    clock.at(first + window + 0.5 - start)
    burst += [outcome(attempt(http, client)) for _ in range(6)]

    reached = burst.count("wrong")
    assert reached <= 5 + 1
    assert burst == ["wrong"] * reached + [FAILED] * (len(burst) - reached)


# -- @ropc.throttle_exempt: the app's own networks ----------------------------


def test_an_exempt_network_skips_the_network_budgets_but_not_the_account_slow_down(
    make: t.Callable[..., flask.Flask],
) -> None:
    app = make(ROPC_THROTTLE_IP_LIMIT=3, ROPC_THROTTLE_ACCOUNT_LIMIT=8)
    seen: list[t.Any] = []

    @ropc_of(app).throttle_exempt
    def office(req: t.Any) -> bool:
        seen.append(req)
        return bool(req.client_ip.startswith("10."))

    http, client = app.test_client(), client_of(app)
    office_ip = "10.1.2.3"
    # Neither the pair lock (5) nor the network budget (3) holds for it...
    names = [outcome(attempt(http, client, f"user{n}", ip=office_ip)) for n in range(6)]
    assert names == ["wrong"] * 6
    for _ in range(8):
        assert outcome(attempt(http, client, ip=office_ip)) == "wrong"
    # ...but past the account's limit, ann is slowed even from the office:
    # one attempt per interval.
    assert outcome(attempt(http, client, ip=office_ip)) == "wrong"
    assert outcome(attempt(http, client, ip=office_ip)).startswith(
        "Too many failed attempts for this account"
    )
    # Elsewhere the budgets hold as ever.
    for n in range(3):
        attempt(http, client, f"other{n}", ip=ATTACKER)
    assert outcome(attempt(http, client, "other3", ip=ATTACKER)).startswith(
        "Too many failed attempts from this network"
    )
    assert seen[0].username == "user0" and seen[0].client.client_id == client.client_id
    assert not hasattr(seen[0], "password") and WRONG not in repr(seen[0])


# -- review findings: the account budget holds under hostile timing -----------


def test_a_source_refused_anyway_cannot_hold_the_account_slot(
    make: t.Callable[..., flask.Flask],
) -> None:
    """Past the account's limit one attempt per interval gets through; an
    attacker whose own network budget is spent must not take that place
    with requests that are refused anyway."""
    app = make(ROPC_THROTTLE_ACCOUNT_LIMIT=10, ROPC_THROTTLE_IP_LIMIT=3)
    http, client = app.test_client(), client_of(app)
    for n in range(10):
        attempt(http, client, ip=f"192.0.2.{n + 1}")
    for name in ("u1", "u2", "u3"):
        attempt(http, client, name, ip=ATTACKER)
    for _ in range(5):
        refused = outcome(attempt(http, client, ip=ATTACKER))
        assert refused.startswith("Too many failed attempts from this network")

    assert outcome(attempt(http, client, password=RIGHT, ip=VICTIM)) == "ok"


def test_attempts_in_flight_count_against_the_account_budget(
    make: t.Callable[..., flask.Flask],
) -> None:
    """Reaches into the app's Throttle on purpose: ten attempts from ten
    networks reserved before any of them is answered (a burst), which no
    request sequence can stage. At most the limit, plus the one slowed
    attempt per interval, may reach the validator."""
    app = make(ROPC_THROTTLE_ACCOUNT_LIMIT=3)
    throttle = get_state(app).throttle
    assert throttle is not None
    admitted, refused = [], []
    with app.app_context():
        for n in range(10):
            try:
                admitted.append(throttle.begin("ann", f"192.0.2.{n + 1}", "c"))
            except Throttled as error:
                refused.append(error.scope)
    assert len(admitted) == 3 + 1
    assert set(refused) == {"account"}
