"""Brute-force protection of the password grant (RFC 6749 §4.3.2, RFC 6819 §4.4.3.6).

Every test goes through the real token endpoint (Flask test client) with the
counters in the real database (SQLite, and PostgreSQL when
``ROPC_TEST_DATABASE_URL`` is set) or in the real Redis (when
``ROPC_TEST_REDIS_URL`` is set). Time is shifted with the app's test clock
(conftest's ``clock``, frozen here), which the database counters read.
"""

from __future__ import annotations

import logging
import os
import secrets
import typing as t
from collections.abc import Iterator

import flask
import pytest
from authlib.oauth2 import OAuth2Error
from werkzeug.middleware.proxy_fix import ProxyFix

from flask_ropc import ROPC
from flask_ropc import ConfigurationError
from flask_ropc import GrantResult
from flask_ropc.errors import ThrottledError

from conftest import SECRET_KEY
from conftest import USERS
from conftest import WRONG_PASSWORD
from conftest import Clock
from conftest import OAuthClient
from conftest import delete_redis_keys
from conftest import password_attempt as attempt
from conftest import ropc_of
from conftest import table_rows

WRONG = WRONG_PASSWORD
REDIS_URL = os.environ.get("ROPC_TEST_REDIS_URL")
needs_redis = pytest.mark.skipif(
    not REDIS_URL, reason="set ROPC_TEST_REDIS_URL to run the Redis storage tests"
)


# -- helpers ------------------------------------------------------------------


def create_client(app: flask.Flask, **options: t.Any) -> OAuthClient:
    options.setdefault("scopes", ["api", "profile"])
    with app.app_context():
        client, secret = ropc_of(app).clients.create("Client", **options)
    return OAuthClient(client.client_id, secret)


def assert_wrong_password(response: t.Any) -> None:
    assert response.status_code == 400, response.get_data(as_text=True)
    assert response.json["error"] == "invalid_grant"


def assert_throttled(response: t.Any) -> int:
    """Check a 429 slow_down response; return its Retry-After."""
    assert response.status_code == 429, response.get_data(as_text=True)
    assert response.mimetype == "application/json"
    assert response.json["error"] == "slow_down"
    assert response.headers["Cache-Control"] == "no-store"
    retry_after = response.headers["Retry-After"]
    assert retry_after.isdigit(), retry_after
    return int(retry_after)


def fail_times(http: t.Any, client: OAuthClient, n: int, **kwargs: t.Any) -> None:
    for _ in range(n):
        assert_wrong_password(attempt(http, client, **kwargs))


def lock_out(http: t.Any, client: OAuthClient) -> int:
    """Five wrong passwords for ann (the default username limit), then a sixth
    attempt that must be refused; return its Retry-After."""
    fail_times(http, client, 5)
    return assert_throttled(attempt(http, client))


def calls(app: flask.Flask) -> int:
    return len(app.extensions["test_validator"].calls)


def throttle_rows(app: flask.Flask) -> list[t.Any]:
    return table_rows(app, "ropc_throttle")


def cli(app: flask.Flask, *args: str) -> t.Any:
    return app.test_cli_runner().invoke(args=["ropc", *args])


# -- fixtures -----------------------------------------------------------------


@pytest.fixture
def clock(clock: Clock) -> Clock:
    """The app's clock (conftest's ``clock``), frozen at a whole second:
    ``clock.advance(s)`` then moves it ``s`` seconds on."""
    clock.freeze()
    return clock


def config(**values: t.Any) -> t.Any:
    """Parametrize the ``app_config`` fixture with ``values``."""
    return pytest.mark.parametrize("app_config", [values], ids=["config"])


@pytest.fixture
def redis_prefix() -> Iterator[str]:
    """A key prefix of this test's own in Redis; its keys are deleted after."""
    if not REDIS_URL:
        pytest.skip("set ROPC_TEST_REDIS_URL to run the Redis storage tests")
    prefix = f"ropc-test-{secrets.token_hex(6)}"
    yield prefix
    delete_redis_keys(REDIS_URL, prefix)


def redis_keys(prefix: str) -> list[str]:
    import redis

    assert REDIS_URL is not None
    connection = redis.Redis.from_url(REDIS_URL)
    try:
        return [key.decode() for key in connection.scan_iter(f"*{prefix}*")]
    finally:
        connection.close()


# -- the username budget ------------------------------------------------------


@pytest.mark.parametrize("scope", sorted(ThrottledError.DESCRIPTIONS))
def test_every_429_description_is_one_rfc_6749_allows(scope: str) -> None:
    # ThrottledError skips Authlib's character check (it runs on every
    # refused attempt): Authlib's own error must accept the same text.
    error = ThrottledError(3600, scope)

    assert OAuth2Error(description=error.description).description == error.description
    assert "3600" in error.description
    assert str(error) == f"slow_down: {error.description}"


def test_sixth_attempt_is_refused_with_429_slow_down_without_calling_the_validator(
    app: flask.Flask, http: t.Any, oauth_client: OAuthClient, clock: Clock
) -> None:
    fail_times(http, oauth_client, 5)
    assert calls(app) == 5

    response = attempt(http, oauth_client)

    assert assert_throttled(response) == 60  # ROPC_THROTTLE_LOCKOUT_BASE
    assert response.headers["Pragma"] == "no-cache"
    assert set(response.json) == {"error", "error_description"}
    assert "60" in response.json["error_description"]
    assert calls(app) == 5


def test_locked_username_is_refused_even_with_the_right_password(
    app: flask.Flask, http: t.Any, oauth_client: OAuthClient, clock: Clock
) -> None:
    fail_times(http, oauth_client, 5)

    response = attempt(http, oauth_client, "ann", USERS["ann"][0])

    assert_throttled(response)
    assert "access_token" not in response.get_data(as_text=True)
    assert calls(app) == 5


def test_lock_looks_the_same_for_an_existing_and_an_unknown_username(
    app: flask.Flask, http: t.Any, oauth_client: OAuthClient, clock: Clock
) -> None:
    """Counters are kept for every submitted name, so a lock is no oracle
    for which usernames exist."""
    fail_times(http, oauth_client, 5, username="ann")
    fail_times(http, oauth_client, 5, username="nobody-by-that-name")

    known = attempt(http, oauth_client, "ann")
    unknown = attempt(http, oauth_client, "nobody-by-that-name")

    assert known.status_code == unknown.status_code == 429
    assert known.json == unknown.json
    assert known.headers["Retry-After"] == unknown.headers["Retry-After"]
    assert calls(app) == 10


@pytest.mark.parametrize("variant", ["Ann", " ann ", "ANN", "aNn\t"])
def test_username_variants_share_one_budget_trimmed_and_case_folded(
    app: flask.Flask,
    http: t.Any,
    oauth_client: OAuthClient,
    clock: Clock,
    variant: str,
) -> None:
    for username in ["ann", "Ann", " ann ", "ANN", "ann "]:
        assert_wrong_password(attempt(http, oauth_client, username))

    assert_throttled(attempt(http, oauth_client, variant))
    assert_throttled(attempt(http, oauth_client, "ann", USERS["ann"][0]))
    assert calls(app) == 5


@config(ROPC_THROTTLE_LOCKOUT_BASE=60, ROPC_THROTTLE_LOCKOUT_MAX=300)
def test_lockout_doubles_with_each_lock_up_to_the_maximum(
    app: flask.Flask, http: t.Any, oauth_client: OAuthClient, clock: Clock
) -> None:
    expected = [60, 120, 240, 300, 300]
    seen = []
    for lock_number, backoff in enumerate(expected, start=1):
        # A fresh set of attempts once the previous lock has expired...
        fail_times(http, oauth_client, 5)
        assert calls(app) == 5 * lock_number
        # ...then the next lock, twice as long as the last.
        seen.append(assert_throttled(attempt(http, oauth_client)))
        assert calls(app) == 5 * lock_number
        clock.advance(backoff - 1)
        assert_throttled(attempt(http, oauth_client))  # still locked
        clock.advance(2)
    assert seen == expected


def test_failures_older_than_the_username_window_are_forgotten(
    app: flask.Flask, http: t.Any, oauth_client: OAuthClient, clock: Clock
) -> None:
    """Windows slide (issue 13): a failure fades out over the window after
    its own, so two windows on it is forgotten whatever the alignment."""
    fail_times(http, oauth_client, 4)
    clock.advance(2 * 15 * 60 + 1)  # twice ROPC_THROTTLE_USERNAME_WINDOW

    lock_out(http, oauth_client)
    assert calls(app) == 9


def test_backoff_restarts_from_base_once_past_locks_are_forgotten(
    app: flask.Flask, http: t.Any, oauth_client: OAuthClient, clock: Clock
) -> None:
    assert lock_out(http, oauth_client) == 60
    clock.advance(61)
    assert lock_out(http, oauth_client) == 120

    clock.advance(121 + 24 * 3600)  # ROPC_THROTTLE_STRIKE_MEMORY after the last lock

    assert lock_out(http, oauth_client) == 60


def test_right_password_works_again_once_the_lock_has_expired(
    app: flask.Flask, http: t.Any, oauth_client: OAuthClient, clock: Clock
) -> None:
    assert lock_out(http, oauth_client) == 60
    clock.advance(30)
    assert assert_throttled(attempt(http, oauth_client)) == 30  # counts down
    clock.advance(31)

    response = attempt(http, oauth_client, "ann", USERS["ann"][0])

    assert response.status_code == 200, response.get_data(as_text=True)
    assert "access_token" in response.json


def test_success_resets_the_username_counter(
    app: flask.Flask, http: t.Any, oauth_client: OAuthClient, clock: Clock
) -> None:
    fail_times(http, oauth_client, 4)
    ok = attempt(http, oauth_client, "ann", USERS["ann"][0])
    assert ok.status_code == 200, ok.get_data(as_text=True)

    lock_out(http, oauth_client)
    assert calls(app) == 10


def test_validator_error_with_count_failure_false_does_not_count_towards_the_lock(
    app: flask.Flask, http: t.Any, oauth_client: OAuthClient, clock: Clock
) -> None:
    """E.g. the password was right but it has expired: the client must act,
    and the user must not be locked out for retrying."""
    conftest_validator = app.extensions["test_validator"]
    ext = ropc_of(app)
    not_counted: list[t.Any] = []

    @ext.password_validator
    def expired(req: t.Any) -> GrantResult:
        not_counted.append(req)
        return GrantResult.error(
            "password_expired",
            "Change your password first.",
            reason="expired-on-2024-01-01",
            count_failure=False,
        )

    for _ in range(12):
        response = attempt(http, oauth_client, "ann", USERS["ann"][0])
        assert response.status_code == 400, response.get_data(as_text=True)
        assert response.json["error"] == "password_expired"
    assert len(not_counted) == 12

    # The username's budget is untouched: five counted failures still pass.
    ext.password_validator(conftest_validator)
    lock_out(http, oauth_client)


@pytest.mark.parametrize("count_failure", [True, False])
def test_validator_reason_never_appears_in_the_response(
    app: flask.Flask,
    http: t.Any,
    oauth_client: OAuthClient,
    clock: Clock,
    count_failure: bool,
) -> None:
    reason = "account-flagged-by-fraud-team-7731"

    @ropc_of(app).password_validator
    def refuse(req: t.Any) -> GrantResult:
        return GrantResult.error(
            "invalid_grant",
            "invalid username or password",
            reason=reason,
            count_failure=count_failure,
        )

    response = attempt(http, oauth_client, "ann", USERS["ann"][0])

    assert_wrong_password(response)
    assert reason not in response.get_data(as_text=True)
    assert reason not in str(response.headers)
    assert response.json == {
        "error": "invalid_grant",
        "error_description": "invalid username or password",
    }


def test_validator_crash_does_not_count_towards_the_lock(
    app: flask.Flask, http: t.Any, oauth_client: OAuthClient, clock: Clock
) -> None:
    conftest_validator = app.extensions["test_validator"]
    ext = ropc_of(app)

    @ext.password_validator
    def crash(req: t.Any) -> None:
        raise RuntimeError("user directory unreachable")

    for _ in range(8):
        assert attempt(http, oauth_client).status_code == 500

    ext.password_validator(conftest_validator)
    lock_out(http, oauth_client)


@config(ROPC_THROTTLE_RESPONSE="invalid_grant")
def test_invalid_grant_mode_makes_a_lock_look_exactly_like_a_wrong_password(
    app: flask.Flask, http: t.Any, oauth_client: OAuthClient, clock: Clock
) -> None:
    """Keycloak-style: a locked attempt gets the same 400 as a wrong password,
    so the response tells an attacker nothing, and costs no validator call."""
    fail_times(http, oauth_client, 4)
    wrong = attempt(http, oauth_client)  # the fifth, which locks
    assert_wrong_password(wrong)
    assert calls(app) == 5

    for password in [WRONG, USERS["ann"][0]]:
        locked = attempt(http, oauth_client, "ann", password)
        assert locked.status_code == wrong.status_code == 400
        assert locked.get_data() == wrong.get_data()
        assert "Retry-After" not in locked.headers
        assert sorted(h for h, _ in locked.headers if h != "Date") == sorted(
            h for h, _ in wrong.headers if h != "Date"
        )
    assert calls(app) == 5


# -- unlocking ----------------------------------------------------------------


@pytest.mark.parametrize("spelling", ["ann", "ANN", "  Ann "])
def test_unlock_method_clears_a_lock_in_any_spelling(
    app: flask.Flask,
    http: t.Any,
    oauth_client: OAuthClient,
    clock: Clock,
    spelling: str,
) -> None:
    fail_times(http, oauth_client, 5)
    assert_throttled(attempt(http, oauth_client, "ann", USERS["ann"][0]))

    with app.app_context():
        ropc_of(app).unlock(spelling)

    response = attempt(http, oauth_client, "ann", USERS["ann"][0])
    assert response.status_code == 200, response.get_data(as_text=True)


def test_cli_unlock_clears_a_lock_and_prints_a_message(
    app: flask.Flask, http: t.Any, oauth_client: OAuthClient, clock: Clock
) -> None:
    lock_out(http, oauth_client)

    result = cli(app, "unlock", "ANN")

    assert result.exit_code == 0, result.output
    assert "Unlocked" in result.output
    assert "ANN" in result.output
    # A full new budget: five attempts reach the validator before a lock.
    lock_out(http, oauth_client)
    assert calls(app) == 10


def test_unlock_forgets_past_locks_so_the_next_lock_is_short_again(
    app: flask.Flask, http: t.Any, oauth_client: OAuthClient, clock: Clock
) -> None:
    assert lock_out(http, oauth_client) == 60
    clock.advance(61)
    assert lock_out(http, oauth_client) == 120

    with app.app_context():
        ropc_of(app).unlock("ann")

    assert lock_out(http, oauth_client) == 60


@config(ROPC_THROTTLE_ENABLED=False)
def test_cli_unlock_fails_when_throttling_is_off(app: flask.Flask) -> None:
    result = cli(app, "unlock", "ann")
    assert result.exit_code != 0
    assert "ROPC_THROTTLE_ENABLED" in result.output


# -- the per-IP and per-client budgets -----------------------------------------


@config(ROPC_THROTTLE_IP_LIMIT=10)
def test_ip_budget_stops_guessing_across_many_usernames(
    app: flask.Flask, http: t.Any, oauth_client: OAuthClient, clock: Clock
) -> None:
    for n in range(10):
        assert_wrong_password(attempt(http, oauth_client, f"user{n}"))
    assert calls(app) == 10

    response = attempt(http, oauth_client, "user10")

    retry_after = assert_throttled(response)
    assert 0 < retry_after <= 15 * 60  # the IP window
    assert calls(app) == 10
    # Known usernames with the right password too: the IP is throttled.
    assert_throttled(attempt(http, oauth_client, "ann", USERS["ann"][0]))
    assert calls(app) == 10


@config(ROPC_THROTTLE_IP_LIMIT=10)
def test_ip_budget_does_not_affect_other_addresses(
    app: flask.Flask, http: t.Any, oauth_client: OAuthClient, clock: Clock
) -> None:
    for n in range(10):
        assert_wrong_password(attempt(http, oauth_client, f"user{n}"))
    assert_throttled(attempt(http, oauth_client, "user10"))

    assert_wrong_password(attempt(http, oauth_client, "user10", ip="10.0.0.2"))
    ok = attempt(http, oauth_client, "ann", USERS["ann"][0], ip="10.0.0.2")
    assert ok.status_code == 200, ok.get_data(as_text=True)
    assert calls(app) == 12


@config(ROPC_THROTTLE_IP_LIMIT=3)
def test_successes_do_not_count_against_the_ip_budget(
    app: flask.Flask, http: t.Any, oauth_client: OAuthClient, clock: Clock
) -> None:
    for _ in range(6):
        for user in USERS:
            ok = attempt(http, oauth_client, user, USERS[user][0])
            assert ok.status_code == 200, ok.get_data(as_text=True)

    for n in range(3):
        assert_wrong_password(attempt(http, oauth_client, f"user{n}"))
    assert_throttled(attempt(http, oauth_client, "user3"))


@config(ROPC_THROTTLE_IP_LIMIT=3)
def test_a_place_given_back_after_its_window_ended_adds_no_extra_attempt(
    app: flask.Flask, http: t.Any, oauth_client: OAuthClient, clock: Clock
) -> None:
    """A success gives its IP place back. When the validator answers after
    the IP window has ended (a slow user directory at the window's edge),
    giving the place back must not credit the *next* window with an extra
    attempt: the budget stays at ROPC_THROTTLE_IP_LIMIT failures."""
    conftest_validator = app.extensions["test_validator"]
    ext = ropc_of(app)

    @ext.password_validator
    def slow(req: t.Any) -> t.Any:
        clock.advance(15 * 60 + 1)  # the IP window (900 s) ends meanwhile
        return conftest_validator(req)

    ok = attempt(http, oauth_client, "ann", USERS["ann"][0])
    assert ok.status_code == 200, ok.get_data(as_text=True)
    ext.password_validator(conftest_validator)

    for n in range(3):
        assert_wrong_password(attempt(http, oauth_client, f"user{n}"))
    assert_throttled(attempt(http, oauth_client, "user3"))
    assert calls(app) == 4  # the success and three failures


@config(ROPC_THROTTLE_CLIENT_LIMIT=3)
def test_client_budget_spans_ip_addresses_and_spares_other_clients(
    app: flask.Flask, http: t.Any, clock: Clock
) -> None:
    noisy = create_client(app)
    quiet = create_client(app)
    ok = attempt(http, noisy, "ann", USERS["ann"][0], ip="192.0.2.50")
    assert ok.status_code == 200  # a success does not use up the budget
    for n in range(3):
        assert_wrong_password(attempt(http, noisy, f"user{n}", ip=f"192.0.2.{n}"))

    assert_throttled(attempt(http, noisy, "user9", ip="192.0.2.9"))
    assert_throttled(attempt(http, noisy, "bob", USERS["bob"][0], ip="192.0.2.10"))
    assert calls(app) == 4

    assert_wrong_password(attempt(http, quiet, "user9", ip="192.0.2.9"))
    ok = attempt(http, quiet, "bob", USERS["bob"][0], ip="192.0.2.10")
    assert ok.status_code == 200, ok.get_data(as_text=True)


def test_without_a_client_limit_a_client_is_not_throttled_as_a_whole(
    app: flask.Flask, http: t.Any, oauth_client: OAuthClient, clock: Clock
) -> None:
    for n in range(30):
        assert_wrong_password(attempt(http, oauth_client, f"user{n}", ip=f"10.1.0.{n}"))
    assert calls(app) == 30


@config(ROPC_THROTTLE_ENABLED=False)
def test_with_throttling_disabled_nothing_is_throttled_or_stored(
    app: flask.Flask, http: t.Any, oauth_client: OAuthClient
) -> None:
    fail_times(http, oauth_client, 30)
    ok = attempt(http, oauth_client, "ann", USERS["ann"][0])
    assert ok.status_code == 200, ok.get_data(as_text=True)
    assert calls(app) == 31
    assert throttle_rows(app) == []


# -- which address is counted ---------------------------------------------------


@config(ROPC_THROTTLE_IP_LIMIT=3)
def test_x_forwarded_for_is_ignored_by_default(
    app: flask.Flask, http: t.Any, oauth_client: OAuthClient, clock: Clock
) -> None:
    """Without ProxyFix a client cannot dodge the IP budget by sending a
    different X-Forwarded-For each time."""
    for n in range(3):
        forwarded = {"X-Forwarded-For": f"198.51.100.{n}"}
        assert_wrong_password(
            attempt(http, oauth_client, f"user{n}", headers=forwarded)
        )

    response = attempt(
        http, oauth_client, "user3", headers={"X-Forwarded-For": "198.51.100.3"}
    )

    assert_throttled(response)
    assert calls(app) == 3


@config(ROPC_THROTTLE_IP_LIMIT=3)
def test_with_proxyfix_the_forwarded_address_is_counted(
    app: flask.Flask, http: t.Any, oauth_client: OAuthClient, clock: Clock
) -> None:
    app.wsgi_app = ProxyFix(app.wsgi_app, x_for=1)  # type: ignore[method-assign]
    first = {"X-Forwarded-For": "198.51.100.1"}
    for n in range(3):
        assert_wrong_password(attempt(http, oauth_client, f"user{n}", headers=first))

    assert_throttled(attempt(http, oauth_client, "user3", headers=first))
    second = {"X-Forwarded-For": "198.51.100.2"}
    assert_wrong_password(attempt(http, oauth_client, "user3", headers=second))
    assert calls(app) == 4


@config(ROPC_THROTTLE_IP_LIMIT=3)
def test_trusted_backend_end_user_ip_is_the_one_counted(
    app: flask.Flask, http: t.Any, clock: Clock
) -> None:
    """Two end users behind one backend do not lock each other's IP budget."""
    backend = create_client(app, trusted_backend=True)
    first = {"X-End-User-IP": "203.0.113.7"}
    for n in range(3):
        assert_wrong_password(attempt(http, backend, f"user{n}", headers=first))
    assert_throttled(attempt(http, backend, "user3", headers=first))

    second = {"X-End-User-IP": "203.0.113.8"}
    for n in range(3):
        assert_wrong_password(attempt(http, backend, f"other{n}", headers=second))
    ok = attempt(
        http, backend, "ann", USERS["ann"][0], headers={"X-End-User-IP": "2001:db8::1"}
    )
    assert ok.status_code == 200, ok.get_data(as_text=True)
    assert calls(app) == 7


@config(ROPC_THROTTLE_IP_LIMIT=3)
def test_end_user_ip_header_from_a_normal_client_is_ignored(
    app: flask.Flask, http: t.Any, oauth_client: OAuthClient, clock: Clock
) -> None:
    for n in range(3):
        header = {"X-End-User-IP": f"203.0.113.{n}"}
        assert_wrong_password(attempt(http, oauth_client, f"user{n}", headers=header))

    response = attempt(
        http, oauth_client, "user3", headers={"X-End-User-IP": "203.0.113.3"}
    )

    assert_throttled(response)
    assert calls(app) == 3


@config(ROPC_THROTTLE_IP_LIMIT=3)
def test_invalid_end_user_ip_from_a_trusted_backend_is_ignored(
    app: flask.Flask, http: t.Any, clock: Clock
) -> None:
    """A malformed value is not a key of its own: the backend's address counts."""
    backend = create_client(app, trusted_backend=True)
    bad = ["not-an-ip", "203.0.113.300", "203.0.113.7, 10.0.0.1", "999.1.1.1"]
    for n, value in enumerate(bad[:3]):
        header = {"X-End-User-IP": value}
        assert_wrong_password(attempt(http, backend, f"user{n}", headers=header))

    response = attempt(http, backend, "user3", headers={"X-End-User-IP": bad[3]})

    assert_throttled(response)
    assert calls(app) == 3


@config(ROPC_THROTTLE_IP_LIMIT=3, ROPC_END_USER_IP_HEADER="X-Client-Address")
def test_end_user_ip_header_name_is_configurable(
    app: flask.Flask, http: t.Any, clock: Clock
) -> None:
    backend = create_client(app, trusted_backend=True)
    for n in range(3):
        header = {"X-Client-Address": f"203.0.113.{n}", "X-End-User-IP": "192.0.2.1"}
        assert_wrong_password(attempt(http, backend, f"user{n}", headers=header))
    # The default header name is not read, the configured one is.
    response = attempt(
        http,
        backend,
        "user3",
        headers={"X-Client-Address": "203.0.113.3", "X-End-User-IP": "192.0.2.1"},
    )
    assert_wrong_password(response)
    assert calls(app) == 4


def test_public_client_cannot_be_a_trusted_backend(app: flask.Flask) -> None:
    with app.app_context(), pytest.raises(ValueError, match="confidential"):
        ropc_of(app).clients.create(
            "Mobile app", auth_method="none", trusted_backend=True
        )

    result = cli(app, "create-client", "Mobile app", "--public", "--trusted-backend")

    assert result.exit_code != 0
    assert "Traceback" not in result.output
    with app.app_context():
        assert ropc_of(app).clients.list() == []


def test_public_client_cannot_be_made_a_trusted_backend_later(
    app: flask.Flask,
) -> None:
    public = create_client(app, auth_method="none")

    result = cli(app, "update-client", "--trusted-backend", "--", public.client_id)

    assert result.exit_code != 0
    with app.app_context():
        assert not ropc_of(app).clients.require(public.client_id).trusted_backend


# -- storage ------------------------------------------------------------------


@config(ROPC_RATELIMIT_STORAGE_URI="redis://127.0.0.1:1/0")
def test_unreachable_storage_fails_closed_with_503(
    app: flask.Flask,
    http: t.Any,
    oauth_client: OAuthClient,
    caplog: pytest.LogCaptureFixture,
) -> None:
    with caplog.at_level(logging.ERROR, logger="flask_ropc"):
        response = attempt(http, oauth_client, "ann", USERS["ann"][0])

    assert response.status_code == 503, response.get_data(as_text=True)
    assert response.json["error"] == "temporarily_unavailable"
    assert "access_token" not in response.json
    assert calls(app) == 0
    errors = [r for r in caplog.records if r.levelno >= logging.ERROR]
    assert errors, "the storage failure must be logged as an error"
    assert any(r.exc_info for r in errors)


@config(
    ROPC_RATELIMIT_STORAGE_URI="redis://127.0.0.1:1/0",
    ROPC_THROTTLE_ON_STORAGE_ERROR="open",
)
def test_unreachable_storage_with_open_policy_lets_attempts_through_loudly(
    app: flask.Flask,
    http: t.Any,
    oauth_client: OAuthClient,
    caplog: pytest.LogCaptureFixture,
) -> None:
    with caplog.at_level(logging.ERROR, logger="flask_ropc"):
        ok = attempt(http, oauth_client, "ann", USERS["ann"][0])
        wrong = attempt(http, oauth_client)

    assert ok.status_code == 200, ok.get_data(as_text=True)
    assert "access_token" in ok.json
    assert_wrong_password(wrong)
    assert calls(app) == 2
    errors = [r for r in caplog.records if r.levelno >= logging.ERROR]
    assert len(errors) >= 2  # one per attempt at least
    assert all(r.exc_info for r in errors)
    assert "UNTHROTTLED" in caplog.text


def test_database_counters_hold_no_username_or_ip_in_clear(
    app: flask.Flask, http: t.Any, oauth_client: OAuthClient, clock: Clock
) -> None:
    username = "Carol.Example@Mail.test"
    fail_times(http, oauth_client, 5, username=username, ip="198.51.100.77")
    assert_throttled(attempt(http, oauth_client, username, ip="198.51.100.77"))

    rows = throttle_rows(app)
    assert len(rows) >= 3  # failures, lock, strikes (and the IP's)
    dump = repr(rows).casefold()
    assert "carol" not in dump
    assert "mail.test" not in dump
    assert "198.51.100.77" not in dump


def test_cleanup_purges_expired_counters(
    app: flask.Flask, http: t.Any, oauth_client: OAuthClient, clock: Clock
) -> None:
    lock_out(http, oauth_client)
    stored = len(throttle_rows(app))
    assert stored >= 3

    early = cli(app, "cleanup")
    assert early.exit_code == 0, early.output
    assert "ropc_throttle: deleted 0" in early.output
    assert len(throttle_rows(app)) == stored
    assert_throttled(attempt(http, oauth_client))  # the lock survived

    clock.advance(25 * 3600)  # past the strike memory, the longest expiry
    result = cli(app, "cleanup")

    assert result.exit_code == 0, result.output
    assert f"ropc_throttle: deleted {stored}" in result.output
    assert throttle_rows(app) == []


@pytest.fixture
def redis_app(make_app: t.Callable[..., flask.Flask], redis_prefix: str) -> flask.Flask:
    """An app whose throttle counters live in Redis under ``redis_prefix``."""
    return make_app(
        ROPC_RATELIMIT_STORAGE_URI=REDIS_URL, ROPC_RATELIMIT_KEY_PREFIX=redis_prefix
    )


@needs_redis
def test_lockout_works_with_counters_in_redis(
    redis_app: flask.Flask, redis_prefix: str
) -> None:
    app = redis_app
    http = app.test_client()
    client = create_client(app)
    fail_times(http, client, 5)

    response = attempt(http, client, "ANN", USERS["ann"][0])

    assert 55 <= assert_throttled(response) <= 60
    assert calls(app) == 5
    assert throttle_rows(app) == []  # nothing in the database table
    assert redis_keys(redis_prefix)

    result = cli(app, "unlock", "Ann")
    assert result.exit_code == 0, result.output
    ok = attempt(http, client, "ann", USERS["ann"][0])
    assert ok.status_code == 200, ok.get_data(as_text=True)


@needs_redis
def test_redis_keys_hold_no_username_or_ip_in_clear(
    redis_app: flask.Flask, redis_prefix: str
) -> None:
    http = redis_app.test_client()
    client = create_client(redis_app)
    username = "Carol.Example@Mail.test"
    fail_times(http, client, 5, username=username, ip="198.51.100.77")
    assert_throttled(attempt(http, client, username, ip="198.51.100.77"))

    keys = redis_keys(redis_prefix)
    assert len(keys) >= 3
    dump = " ".join(keys).casefold()
    assert "carol" not in dump
    assert "mail.test" not in dump
    assert "198.51.100.77" not in dump


def test_memory_storage_throttles_within_one_process(
    make_app: t.Callable[..., flask.Flask], caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.WARNING, logger="flask_ropc"):
        app = make_app(ROPC_RATELIMIT_STORAGE_URI="memory://")
    assert "per process" in caplog.text  # the documented warning
    http = app.test_client()
    client = create_client(app)
    fail_times(http, client, 5)
    assert_throttled(attempt(http, client, "ann", USERS["ann"][0]))
    assert calls(app) == 5


def test_memcached_counter_storage_is_refused_at_start_up(tmp_path: t.Any) -> None:
    """memcached cannot decrement: giving a place back would fail every time."""
    app = flask.Flask(__name__, instance_path=str(tmp_path))
    app.config["ROPC_RATELIMIT_STORAGE_URI"] = "memcached://127.0.0.1:11211"
    app.config["SECRET_KEY"] = SECRET_KEY
    with pytest.raises(ConfigurationError, match="memcached cannot decrement"):
        ROPC(app)
