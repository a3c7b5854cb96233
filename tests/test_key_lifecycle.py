"""The automatic signing-key lifecycle (``ROPC_KEY_ROTATION_ENABLED``).

With the injected clock: every transition at its boundary (a new key a
propagation time before the signer's interval ends, the switch at the end
of it, the old key leaving the JWKS after the retention), restarts that
change nothing, one key from workers due at the same moment, a key no
secret decrypts skipped without minting another, ``keys rotate --if-due``
and the settings it refuses. Runs on SQLite and, when configured,
PostgreSQL. The two-process 200-day run is ``test_key_simulation.py``.
"""

from __future__ import annotations

import json
import logging
import threading
import typing as t
from concurrent.futures import ThreadPoolExecutor

import flask
import pytest
from joserfc.jwk import ECKey

from flask_ropc import ConfigurationError

from conftest import Clock
from conftest import app_token
from conftest import basic_auth
from conftest import bearer
from conftest import build_app
from conftest import clock_of
from conftest import dispose_app
from conftest import kid_of
from conftest import new_client
from conftest import password_form
from conftest import table_rows

DAY = 24 * 3600
INTERVAL, PROPAGATION, RETENTION = 90 * DAY, 14 * DAY, 14 * DAY
POLICY = {"ROPC_KEY_ROTATION_ENABLED": True, "ROPC_THROTTLE_ENABLED": False}


def jwks(app: flask.Flask) -> list[str]:
    response = app.test_client().get("/oauth/jwks")
    assert response.status_code == 200
    return [key["kid"] for key in response.json["keys"]]


def stored(app: flask.Flask) -> list[tuple[str, str, int | None]]:
    rows = table_rows(app, "ropc_signing_keys")
    return [(row.kid, row.status, row.publish_until) for row in rows]


def frozen(app: flask.Flask) -> tuple[Clock, float]:
    clock = clock_of(app)
    return clock, clock.freeze()


def test_every_transition_happens_at_its_boundary(
    make_app: t.Any, caplog: pytest.LogCaptureFixture
) -> None:
    app = make_app(**POLICY)
    clock, t0 = frozen(app)
    client = new_client(app)
    with caplog.at_level(logging.WARNING, logger="flask_ropc"):
        first = kid_of(app_token(app, client))  # cold start: signs at once, warns
    assert first in caplog.text and "signs at once" in caplog.text
    assert jwks(app) == [first]

    due = INTERVAL - PROPAGATION  # the signer has the propagation time left
    clock.at(due - 1)
    assert kid_of(app_token(app, client)) == first
    clock.at(due + 30)  # due, but checked less than a minute ago
    assert kid_of(app_token(app, client)) == first
    assert [kid for kid, *_ in stored(app)] == [first]
    clock.at(due + 59)  # the next check publishes the successor, unused
    assert kid_of(app_token(app, client)) == first
    second = stored(app)[1][0]
    assert stored(app) == [(first, "active", None), (second, "pending", None)]
    assert jwks(app) == [first, second]

    clock.at(INTERVAL - 1)
    assert kid_of(app_token(app, client)) == first
    # The old key's interval is over, but its successor was made 59 s late:
    # the old key carries on until the successor has propagated.
    clock.at(INTERVAL)
    assert kid_of(app_token(app, client)) == first
    clock.at(INTERVAL + 58)
    assert kid_of(app_token(app, client)) == first
    clock.at(INTERVAL + 59)
    assert kid_of(app_token(app, client)) == second
    # That request's check stored the switch: retention from then, plus the
    # minute a worker may sign with what it read before.
    until = int(t0) + INTERVAL + 59 + RETENTION + 60
    assert stored(app) == [(first, "previous", until), (second, "active", None)]

    clock.at(until - int(t0) - 1)
    assert jwks(app) == [first, second]
    clock.at(until - int(t0))  # the retention is over: out of the JWKS
    assert jwks(app) == [second]
    assert kid_of(app_token(app, client)) == second


def test_tokens_signed_before_the_switch_verify_until_they_expire(
    make_app: t.Any,
) -> None:
    app = make_app(**POLICY)
    clock, _ = frozen(app)
    client = new_client(app)
    app_token(app, client)
    clock.at(INTERVAL - PROPAGATION)
    app_token(app, client)  # makes the successor
    clock.at(INTERVAL - 1)
    old = app_token(app, client)
    clock.at(INTERVAL + 3598)  # the old key no longer signs; its token lives
    assert kid_of(app_token(app, client)) != kid_of(old)
    assert app.test_client().get("/api/any", headers=bearer(old)).status_code == 200


def test_a_restart_at_any_moment_changes_nothing(make_app: t.Any) -> None:
    """A new worker (a restart) computes the same signer from the stored
    keys and the clock, and makes no key of its own."""
    app = make_app(**POLICY)
    clock, t0 = frozen(app)
    client = new_client(app)
    for moment in (0, INTERVAL - PROPAGATION, INTERVAL - 30, INTERVAL, 100 * DAY):
        clock.at(moment)
        signer = kid_of(app_token(app, client))
        kids = [kid for kid, *_ in stored(app)]
        snapshots = []
        for _ in range(2):  # a restart, then another at the same moment
            restarted = make_app(**POLICY)
            clock_of(restarted).frozen_at = t0
            clock_of(restarted).at(moment)
            assert kid_of(app_token(restarted, client)) == signer
            assert jwks(restarted) == jwks(app)
            snapshots.append(stored(restarted))
        assert [kid for kid, *_ in snapshots[0]] == kids  # no key of its own
        assert snapshots[1] == snapshots[0]  # and the second changed nothing


def test_workers_due_at_once_make_one_key(make_app: t.Any) -> None:
    """Eight workers (apps, each with its own key cache) on one database,
    all finding the successor due at the same moment: one key is made. RS256,
    slow to generate, widens the race a missing lock would lose."""
    config = {**POLICY, "ROPC_SIGNING_ALG": "RS256"}
    workers = [make_app(**config) for _ in range(8)]
    t0 = float(int(clock_of(workers[0]).freeze()))
    for worker in workers:
        clock_of(worker).frozen_at = t0
    client = new_client(workers[0])
    barrier = threading.Barrier(len(workers))

    def first(i: int) -> str:
        barrier.wait(timeout=60)
        return kid_of(app_token(workers[i], client))

    def due(i: int) -> str:
        clock_of(workers[i]).at(INTERVAL - PROPAGATION)
        barrier.wait(timeout=60)
        return jwks(workers[i])[-1]

    with ThreadPoolExecutor(len(workers)) as pool:
        kids = set(pool.map(first, range(len(workers))))
    assert len(kids) == 1 and len(stored(workers[0])) == 1
    with ThreadPoolExecutor(len(workers)) as pool:
        newest = set(pool.map(due, range(len(workers))))
    assert len(newest) == 1 and len(stored(workers[0])) == 2


def test_a_key_no_secret_decrypts_is_skipped_and_never_replaced(
    make_app: t.Any, caplog: pytest.LogCaptureFixture
) -> None:
    """A worker with another SECRET_KEY cannot read the keys: it serves no
    key it cannot read, logs each kid, fails to sign, and makes no key
    (each worker minting its own would never end)."""
    app = make_app(**POLICY)
    clock, t0 = frozen(app)
    client = new_client(app)
    app_token(app, client)
    clock.at(INTERVAL - PROPAGATION)
    app_token(app, client)
    kids = [kid for kid, *_ in stored(app)]

    stranger = make_app(**POLICY, SECRET_KEY="another secret, 32 bytes or longer!")
    clock_of(stranger).frozen_at = t0
    clock_of(stranger).at(INTERVAL + 5 * DAY)
    with caplog.at_level(logging.ERROR, logger="flask_ropc"):
        response = stranger.test_client().get("/oauth/jwks")
        refused = stranger.test_client().post(
            "/oauth/token", data=password_form(), headers=basic_auth(*client)
        )
    assert response.status_code == 200 and response.json["keys"] == []
    assert response.headers["Cache-Control"] == "no-store"
    assert refused.status_code == 500
    assert all(f"Skipping signing key {kid}" in caplog.text for kid in kids)
    assert [kid for kid, *_ in stored(app)] == kids
    clock.at(INTERVAL + 5 * DAY)
    assert kid_of(app_token(app, client)) == kids[1]


def test_rotate_if_due_for_cron(make_app: t.Any) -> None:
    app = make_app(**POLICY)
    clock, t0 = frozen(app)
    runner = app.test_cli_runner()
    made = runner.invoke(args=["ropc", "keys", "rotate", "--if-due"])
    assert made.exit_code == 0, made.output
    first = stored(app)[0][0]
    assert stored(app) == [(first, "active", None)]
    assert f"Generated key {first} (signs at once)" in made.output

    idle = runner.invoke(args=["ropc", "keys", "rotate", "--if-due"])
    assert idle.exit_code == 0, idle.output
    assert idle.output.startswith(f"No key change is due: key {first} signs")
    assert len(stored(app)) == 1

    clock.at(INTERVAL - PROPAGATION)
    made = runner.invoke(args=["ropc", "keys", "rotate", "--if-due", "--json"])
    assert made.exit_code == 0, made.output
    report = json.loads(made.output)
    assert report["due"] is True and report["signer"] == first
    assert report["created"] == stored(app)[1][0]

    clock.at(INTERVAL)
    switched = runner.invoke(args=["ropc", "keys", "rotate", "--if-due"])
    assert switched.exit_code == 0, switched.output
    assert f"Key {report['created']} now signs new tokens." in switched.output
    assert f"Key {first} stopped signing" in switched.output
    again = runner.invoke(args=["ropc", "keys", "rotate", "--if-due"])
    assert "No key change is due" in again.output


def test_rotate_if_due_refuses_when_the_lifecycle_is_off(app: flask.Flask) -> None:
    result = app.test_cli_runner().invoke(args=["ropc", "keys", "rotate", "--if-due"])
    assert result.exit_code != 0
    assert "ROPC_KEY_ROTATION_ENABLED" in result.output


KEY = ECKey.generate_key("P-256").as_dict(private=True)
BAD_SETTINGS = [
    ({"ROPC_KEY_PROPAGATION_TIME": INTERVAL}, "must be less than"),
    ({"ROPC_KEY_PROPAGATION_TIME": 200, "ROPC_JWKS_MAX_AGE": 300}, "at least"),
    ({"ROPC_KEY_RETENTION": 3600}, "ROPC_ACCESS_TOKEN_LIFETIME + ROPC_JWKS_MAX_AGE"),
    ({"ROPC_KEY_ROTATION_INTERVAL": 0}, "positive integer"),
    ({"ROPC_KEY_RETENTION": 11 * 365 * DAY}, "ten years"),
    ({"ROPC_KEY_ROTATION_ENABLED": "yes"}, "True or False"),
    (
        {"ROPC_KEY_ROTATION_ENABLED": True, "ROPC_SIGNING_KEYS": KEY},
        "ROPC_SIGNING_KEYS",
    ),
]


@pytest.mark.parametrize(("config", "message"), BAD_SETTINGS)
def test_bad_lifecycle_settings_are_refused_naming_the_rule(
    tmp_path: t.Any, config: dict[str, t.Any], message: str
) -> None:
    with pytest.raises(ConfigurationError) as error:
        build_app(
            f"sqlite:///{tmp_path / 'x.sqlite3'}", str(tmp_path), **{**POLICY, **config}
        )
    assert message in str(error.value)
    assert "ROPC_" in str(error.value)


def test_the_lifecycle_is_off_by_default_and_its_durations_still_checked(
    tmp_path: t.Any,
) -> None:
    app = build_app(f"sqlite:///{tmp_path / 'x.sqlite3'}", str(tmp_path))
    assert app.config["ROPC_KEY_ROTATION_ENABLED"] is False
    dispose_app(app)
    with pytest.raises(ConfigurationError, match="ROPC_KEY_RETENTION"):
        build_app(
            f"sqlite:///{tmp_path / 'y.sqlite3'}", str(tmp_path), ROPC_KEY_RETENTION=-1
        )
