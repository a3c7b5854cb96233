"""MFA continuation (Auth0's wire format) through the real token endpoint.

The password step answers ``mfa_required`` with an ``mfa_token``; the
``mfa-otp`` and ``mfa-recovery-code`` grants finish the login. Every test runs
on SQLite and PostgreSQL (``database_uri``); the Redis tests keep the
``mfa_token`` and counters in the real Redis.
"""

from __future__ import annotations

import hashlib
import json
import os
import secrets
import threading
import typing as t
from concurrent.futures import ThreadPoolExecutor

import flask
import pytest

from flask_ropc import MfaResult
from flask_ropc import current_token
from flask_ropc import signals

from conftest import assert_oauth_error
from conftest import basic_auth
from conftest import bearer
from conftest import clock_of
from conftest import delete_redis_keys
from conftest import introspect
from conftest import password_form
from conftest import ropc_of
from conftest import table_rows
from dpop_proofs import TOKEN_URL
from dpop_proofs import DPoPKey
from mfa_helpers import MFA_GRANTS
from mfa_helpers import MFA_OTP
from mfa_helpers import enable_mfa
from mfa_helpers import mfa_client_of
from mfa_helpers import mfa_token
from mfa_helpers import otp_now
from mfa_helpers import post_form
from mfa_helpers import send_otp
from mfa_helpers import send_recovery
from mfa_helpers import start_login

REDIS_URL = os.environ.get("ROPC_TEST_REDIS_URL")
needs_redis = pytest.mark.skipif(not REDIS_URL, reason="needs ROPC_TEST_REDIS_URL")


@pytest.fixture
def factors(app: flask.Flask) -> t.Any:
    clock_of(app).freeze()
    return enable_mfa(app)


@pytest.fixture
def mfa_client(make_client: t.Any, factors: t.Any) -> t.Any:
    return make_client("MFA app", grant_types=MFA_GRANTS)


@pytest.fixture
def events(app: flask.Flask) -> t.Iterator[list[tuple[str, dict[str, t.Any]]]]:
    seen: list[tuple[str, dict[str, t.Any]]] = []
    names = ["mfa_required", "mfa_succeeded", "mfa_failed", "mfa_locked"]
    names += ["recovery_code_used", "throttled", "token_issued"]
    receivers = []
    for name in names:

        def receiver(sender: t.Any, _name: str = name, **payload: t.Any) -> None:
            seen.append((_name, payload))

        getattr(signals, name).connect(receiver, sender=app, weak=False)
        receivers.append((getattr(signals, name), receiver))
    yield seen
    for signal, receiver in receivers:
        signal.disconnect(receiver, sender=app)


def test_a_right_password_answers_mfa_required_in_auth0s_format(
    app: flask.Flask, http: t.Any, mfa_client: t.Any
) -> None:
    response = start_login(http, mfa_client, scope="api")
    assert_oauth_error(response, 403, "mfa_required")
    body = response.get_json()
    assert body["error_description"] == "Multifactor authentication required"
    assert body["mfa_requirements"] == {
        "challenge": [{"type": "otp"}, {"type": "recovery-code"}]
    }
    assert len(body["mfa_token"]) >= 43 and "access_token" not in body
    (row,) = table_rows(app, "ropc_mfa_tokens")
    # Only the digest is stored, with what the password step established.
    assert row.token_digest == hashlib.sha256(body["mfa_token"].encode()).hexdigest()
    assert body["mfa_token"] not in repr(tuple(row))
    assert (row.client_id, row.subject, row.scope) == (
        mfa_client.client_id,
        "user-1",
        "api",
    )
    assert row.expires_at - row.auth_time == 300


def test_a_wrong_password_is_invalid_grant_and_gets_no_mfa_token(
    app: flask.Flask, http: t.Any, mfa_client: t.Any, factors: t.Any
) -> None:
    response = start_login(http, mfa_client, password="wrong")
    assert_oauth_error(response, 400, "invalid_grant")
    assert "mfa_token" not in response.get_json()
    assert table_rows(app, "ropc_mfa_tokens") == []
    assert factors.calls == []


def test_the_status_is_configurable_to_400(make_app: t.Any, database_uri: str) -> None:
    app = make_app(ROPC_MFA_REQUIRED_STATUS=400)
    enable_mfa(app)
    response = start_login(app.test_client(), mfa_client_of(app))
    assert_oauth_error(response, 400, "mfa_required")


def test_the_otp_grant_issues_the_tokens_of_the_login(
    app: flask.Flask, http: t.Any, mfa_client: t.Any, events: t.Any
) -> None:
    token = mfa_token(http, mfa_client, scope="api offline_access")
    response = send_otp(http, mfa_client, token, otp_now(app))
    assert response.status_code == 200, response.get_data(as_text=True)
    assert response.headers["Cache-Control"] == "no-store"
    body = response.get_json()
    assert body["token_type"] == "Bearer" and body["scope"] == "api offline_access"
    assert body["display_name"] == "Ann" and "refresh_token" in body
    me = http.get("/api/me", headers=bearer(body["access_token"]))
    assert me.status_code == 200
    assert me.get_json()["sub"] == "user-1"
    assert me.get_json()["claims"]["role"] == "member"
    # The refresh token works as any other.
    refreshed = post_form(
        http,
        mfa_client,
        {"grant_type": "refresh_token", "refresh_token": body["refresh_token"]},
    )
    assert refreshed.status_code == 200, refreshed.get_data(as_text=True)
    names = [name for name, _ in events]
    assert names == ["mfa_required", "mfa_succeeded", "token_issued", "token_issued"]
    assert events[2][1]["grant_type"] == MFA_OTP
    # No payload carries the mfa_token, the code or a token.
    text = repr(events)
    assert token not in text and body["access_token"] not in text


def test_an_mfa_token_is_single_use(
    app: flask.Flask, http: t.Any, mfa_client: t.Any, factors: t.Any
) -> None:
    factors.totp = lambda req: MfaResult.success()  # any code: only use counts
    token = mfa_token(http, mfa_client)
    assert send_otp(http, mfa_client, token, "123456").status_code == 200
    assert_oauth_error(
        send_otp(http, mfa_client, token, "123456"), 400, "invalid_grant"
    )


def test_two_concurrent_continuations_with_a_right_code_get_tokens_once(
    app: flask.Flask, mfa_client: t.Any, factors: t.Any
) -> None:
    # Both pass every check and the verifier before either consumes the
    # token: only the atomic consume can tell them apart.
    barrier = threading.Barrier(2, timeout=30)

    def verify(req: t.Any) -> t.Any:
        barrier.wait()
        return MfaResult.success()

    factors.totp = verify
    token = mfa_token(app.test_client(), mfa_client)

    def continue_login(_: int) -> int:
        return int(send_otp(app.test_client(), mfa_client, token, "123456").status_code)

    with ThreadPoolExecutor(2) as pool:
        statuses = sorted(pool.map(continue_login, range(2)))
    assert statuses == [200, 400]
    assert len(table_rows(app, "ropc_access_tokens")) == 1


def test_another_client_cannot_use_the_mfa_token(
    http: t.Any, mfa_client: t.Any, make_client: t.Any, app: flask.Flask
) -> None:
    other = make_client("Other", grant_types=MFA_GRANTS)
    public = make_client("Public", grant_types=MFA_GRANTS, auth_method="none")
    token = mfa_token(http, mfa_client)
    code = otp_now(app)
    assert_oauth_error(send_otp(http, other, token, code), 400, "invalid_grant")
    # A public client naming itself: the token is not its own either.
    assert_oauth_error(send_otp(http, public, token, code), 400, "invalid_grant")
    # Without authentication, a confidential client's token is refused.
    anonymous = http.post(
        "/oauth/token",
        data={
            "grant_type": MFA_OTP,
            "mfa_token": token,
            "otp": code,
            "client_id": mfa_client.client_id,
        },
    )
    assert_oauth_error(anonymous, 401, "invalid_client")
    # None of that spent it or counted against it.
    assert send_otp(http, mfa_client, token, code).status_code == 200


def test_a_public_client_continues_its_own_login(
    http: t.Any, make_client: t.Any, app: flask.Flask, factors: t.Any
) -> None:
    public = make_client("Public", grant_types=MFA_GRANTS, auth_method="none")
    token = mfa_token(http, public)
    assert send_otp(http, public, token, otp_now(app)).status_code == 200


def test_scope_may_only_narrow(
    http: t.Any, mfa_client: t.Any, app: flask.Flask
) -> None:
    token = mfa_token(http, mfa_client, scope="api")
    wider = send_otp(http, mfa_client, token, otp_now(app), scope="api profile")
    assert_oauth_error(wider, 400, "invalid_scope")
    token = mfa_token(http, mfa_client, scope="api profile")
    narrower = send_otp(http, mfa_client, token, otp_now(app), scope="api")
    assert narrower.status_code == 200 and narrower.get_json()["scope"] == "api"


def test_a_client_without_the_mfa_grant_is_refused(
    http: t.Any, make_client: t.Any, factors: t.Any, app: flask.Flask
) -> None:
    plain = make_client("Plain")  # password only
    response = start_login(http, plain)
    assert_oauth_error(response, 400, "unauthorized_client")
    assert table_rows(app, "ropc_mfa_tokens") == []
    otp_only = make_client("OTP", grant_types=["password", MFA_OTP])
    token = mfa_token(http, otp_only)
    assert_oauth_error(
        send_recovery(http, otp_only, token, "RC-user-1"), 400, "unauthorized_client"
    )


def test_missing_and_oversized_parameters_are_invalid_request(
    http: t.Any, mfa_client: t.Any, app: flask.Flask
) -> None:
    token = mfa_token(http, mfa_client)
    for data in (
        {"grant_type": MFA_OTP, "otp": "123456"},
        {"grant_type": MFA_OTP, "mfa_token": token},
        {"grant_type": MFA_OTP, "mfa_token": token, "otp": ""},
        {"grant_type": MFA_OTP, "mfa_token": "x" * 300, "otp": "123456"},
    ):
        assert_oauth_error(post_form(http, mfa_client, data), 400, "invalid_request")
    unknown = send_otp(http, mfa_client, "made-up", "123456")
    assert_oauth_error(unknown, 400, "invalid_grant")
    # The query string is refused for the new secrets too (CWE-598).
    query = http.post(
        f"/oauth/token?mfa_token={token}",
        data={"grant_type": MFA_OTP, "otp": "123456"},
        headers=basic_auth(*mfa_client),
    )
    assert_oauth_error(query, 400, "invalid_request")


def test_five_wrong_codes_kill_the_token(
    http: t.Any, mfa_client: t.Any, app: flask.Flask, events: t.Any
) -> None:
    token = mfa_token(http, mfa_client)
    for _ in range(5):
        wrong = send_otp(http, mfa_client, token, "000000")
        assert_oauth_error(wrong, 400, "invalid_grant")
        assert wrong.get_json()["error_description"] == "Invalid otp_code."
    dead = send_otp(http, mfa_client, token, otp_now(app))
    assert_oauth_error(dead, 400, "invalid_grant")
    assert [name for name, _ in events].count("mfa_locked") == 1
    failed = [p for name, p in events if name == "mfa_failed"]
    assert len(failed) == 5 and failed[-1]["token_dead"] is True
    assert all("000000" not in repr(p) for p in failed)


def test_fresh_mfa_tokens_do_not_reset_the_users_code_budget(
    http: t.Any, mfa_client: t.Any, app: flask.Flask, events: t.Any
) -> None:
    # 10 wrong codes per hour per user, whatever the mfa_token: 3 tokens
    # with 4 wrong codes each reach it, and the 11th code is slowed.
    statuses = []
    for _ in range(3):
        token = mfa_token(http, mfa_client)
        for _ in range(4):
            statuses.append(send_otp(http, mfa_client, token, "000000").status_code)
    assert statuses[:10] == [400] * 10
    assert statuses[10] == 400  # the one slowed code of this interval
    assert statuses[11] == 429
    token = mfa_token(http, mfa_client)
    slowed = send_otp(http, mfa_client, token, otp_now(app))
    assert_oauth_error(slowed, 429, "slow_down")
    assert 1 <= int(slowed.headers["Retry-After"]) <= 360
    # Another user is not affected; the slowed user gets one code per interval.
    bob = mfa_token(http, mfa_client, "bob")
    assert send_otp(http, mfa_client, bob, otp_now(app, "user-2")).status_code == 200
    clock_of(app).advance(361)
    token = mfa_token(http, mfa_client)
    assert send_otp(http, mfa_client, token, otp_now(app)).status_code == 200
    throttled = [p for name, p in events if name == "throttled"]
    assert throttled and throttled[0]["scope"] == "mfa"


def test_the_password_step_stays_throttled_as_before(
    make_app: t.Any, database_uri: str
) -> None:
    app = make_app(ROPC_THROTTLE_USERNAME_LIMIT=3)
    clock_of(app).freeze()
    enable_mfa(app)
    creds = mfa_client_of(app)
    http = app.test_client()
    for _ in range(3):
        assert start_login(http, creds, password="wrong").status_code == 400
    assert_oauth_error(start_login(http, creds), 429, "slow_down")


def test_a_totp_code_is_accepted_once_in_its_window(
    http: t.Any, mfa_client: t.Any, app: flask.Flask, events: t.Any
) -> None:
    clock = clock_of(app)
    clock.at(30 - clock() % 30 + 10)  # 10 s into a step: deterministic
    code = otp_now(app)
    assert (
        send_otp(http, mfa_client, mfa_token(http, mfa_client), code).status_code == 200
    )
    # The same code under a second mfa_token, still in its step: a replay.
    replay = send_otp(http, mfa_client, mfa_token(http, mfa_client), code)
    assert_oauth_error(replay, 400, "invalid_grant")
    reasons = [p["reason"] for name, p in events if name == "mfa_failed"]
    assert reasons == ["replayed"]
    # The previous step's code is inside the ±1 window but older: refused.
    older = send_otp(
        http, mfa_client, mfa_token(http, mfa_client), otp_now(app, offset_steps=-1)
    )
    assert_oauth_error(older, 400, "invalid_grant")
    # The next step's code (clock skew the other way) is accepted once.
    newer = otp_now(app, offset_steps=1)
    assert (
        send_otp(http, mfa_client, mfa_token(http, mfa_client), newer).status_code
        == 200
    )
    clock.advance(30)  # now it is the current step's code: still used
    again = send_otp(http, mfa_client, mfa_token(http, mfa_client), newer)
    assert_oauth_error(again, 400, "invalid_grant")


def test_totp_step_boundaries_follow_the_clock(
    http: t.Any, mfa_client: t.Any, app: flask.Flask, factors: t.Any
) -> None:
    clock = clock_of(app)
    clock.at(30 - clock() % 30)  # exactly at the start of a step
    code = otp_now(app)
    clock.advance(59)  # last second of the next step: code is one step old
    token = mfa_token(http, mfa_client)
    assert send_otp(http, mfa_client, token, code).status_code == 200
    # Another user (nothing accepted yet): a code two steps old is outside
    # the window, the code of the step before is inside it.
    clock.advance(1)  # first second of the step two after the code's
    token = mfa_token(http, mfa_client, "bob")
    old = otp_now(app, "user-2", offset_steps=-2)
    assert_oauth_error(send_otp(http, mfa_client, token, old), 400, "invalid_grant")
    reasons = [call.factor for call in factors.calls]
    assert reasons  # the verifier judged it: not a replay, a wrong code
    assert factors.totp(factors.calls[-1]).reason == "invalid_code"
    previous = otp_now(app, "user-2", offset_steps=-1)
    assert send_otp(http, mfa_client, token, previous).status_code == 200


def test_an_mfa_token_expires_exactly_at_its_lifetime(
    http: t.Any, mfa_client: t.Any, app: flask.Flask, factors: t.Any
) -> None:
    factors.totp = lambda req: MfaResult.success()
    clock = clock_of(app)
    token = mfa_token(http, mfa_client)
    clock.advance(299)
    assert send_otp(http, mfa_client, token, "123456").status_code == 200
    token = mfa_token(http, mfa_client)
    clock.advance(300)
    assert_oauth_error(
        send_otp(http, mfa_client, token, "123456"), 400, "invalid_grant"
    )


def test_a_user_disabled_between_the_steps_gets_no_tokens(
    http: t.Any, mfa_client: t.Any, app: flask.Flask, events: t.Any, factors: t.Any
) -> None:
    active = {"user-1": True}
    ropc_of(app).subject_is_active(lambda req: active[req.subject])
    token = mfa_token(http, mfa_client)
    active["user-1"] = False
    refused = send_otp(http, mfa_client, token, otp_now(app))
    assert_oauth_error(refused, 400, "invalid_grant")
    assert factors.calls == []  # the code was never checked
    active["user-1"] = True  # the token died with the refusal
    assert_oauth_error(
        send_otp(http, mfa_client, token, otp_now(app)), 400, "invalid_grant"
    )


def test_a_recovery_code_works_once_and_a_new_one_is_returned(
    http: t.Any, mfa_client: t.Any, app: flask.Flask, events: t.Any
) -> None:
    response = send_recovery(http, mfa_client, mfa_token(http, mfa_client), "RC-user-1")
    assert response.status_code == 200, response.get_data(as_text=True)
    new_code = response.get_json()["recovery_code"]
    assert new_code.startswith("RC-") and new_code != "RC-user-1"
    again = send_recovery(http, mfa_client, mfa_token(http, mfa_client), "RC-user-1")
    assert_oauth_error(again, 400, "invalid_grant")
    assert again.get_json()["error_description"] == "Invalid recovery_code."
    assert [n for n, _ in events].count("recovery_code_used") == 1
    assert new_code not in repr(events)


def test_a_factor_the_validator_did_not_allow_is_refused(
    make_app: t.Any, database_uri: str
) -> None:
    app = make_app()
    enable_mfa(app, factors=("otp",))
    creds = mfa_client_of(app)
    http = app.test_client()
    body = start_login(http, creds).get_json()
    assert body["mfa_requirements"] == {"challenge": [{"type": "otp"}]}
    refused = send_recovery(http, creds, body["mfa_token"], "RC-user-1")
    assert_oauth_error(refused, 400, "invalid_grant")


def test_without_a_verifier_the_login_fails_closed(
    make_app: t.Any, database_uri: str, caplog: pytest.LogCaptureFixture
) -> None:
    app = make_app()
    enable_mfa(app)
    ropc_of(app)._callbacks.mfa_verifier = None  # an app that forgot it
    creds = mfa_client_of(app)
    response = start_login(app.test_client(), creds)
    assert_oauth_error(response, 500, "server_error")
    assert "@ropc.mfa_verifier" in caplog.text
    assert table_rows(app, "ropc_mfa_tokens") == []


def test_a_verifier_that_crashes_is_a_500_and_no_failure(
    http: t.Any, mfa_client: t.Any, app: flask.Flask, factors: t.Any
) -> None:
    def crash(req: t.Any) -> t.Any:
        raise RuntimeError("directory down")

    factors.totp = crash
    token = mfa_token(http, mfa_client)
    assert_oauth_error(send_otp(http, mfa_client, token, "123456"), 500, "server_error")
    factors.totp = lambda req: MfaResult.success()
    assert send_otp(http, mfa_client, token, "123456").status_code == 200


def test_the_mfa_token_is_bound_to_the_password_steps_dpop_key(
    make_app: t.Any, database_uri: str
) -> None:
    app = make_app(ROPC_ISSUER="https://auth.example")
    clock_of(app)  # real time: proofs carry real iat
    enable_mfa(app).totp = lambda req: MfaResult.success()
    creds = mfa_client_of(app)
    http = app.test_client()
    key, other = DPoPKey(), DPoPKey()

    def with_proof(data: dict[str, str], signer: DPoPKey | None) -> t.Any:
        headers = [] if signer is None else [("DPoP", signer.proof("POST", TOKEN_URL))]
        return (
            post_form(http, creds, data, base_url="https://auth.example")
            if signer is None
            else http.post(
                "/oauth/token",
                data=data,
                headers=[*basic_auth(*creds).items(), *headers],
                base_url="https://auth.example",
            )
        )

    start = with_proof(password_form(), key)
    assert start.status_code == 403, start.get_data(as_text=True)
    token = start.get_json()["mfa_token"]
    data = {"grant_type": MFA_OTP, "mfa_token": token, "otp": "123456"}
    assert_oauth_error(with_proof(data, None), 400, "invalid_grant")
    assert_oauth_error(with_proof(data, other), 400, "invalid_grant")
    done = with_proof(data, key)
    assert done.status_code == 200, done.get_data(as_text=True)
    assert done.get_json()["token_type"] == "DPoP"


def test_discovery_lists_the_mfa_grants(http: t.Any) -> None:
    metadata = http.get("/.well-known/oauth-authorization-server").get_json()
    assert MFA_OTP in metadata["grant_types_supported"]
    assert (
        "http://auth0.com/oauth/grant-type/mfa-recovery-code"
        in metadata["grant_types_supported"]
    )


@pytest.fixture
def redis_prefix() -> t.Iterator[str]:
    prefix = "ropc-mfa-" + secrets.token_hex(4)
    yield prefix
    assert REDIS_URL is not None
    delete_redis_keys(REDIS_URL, prefix)


@needs_redis
def test_on_redis_the_flow_the_single_use_and_the_budget_hold(
    make_app: t.Any, database_uri: str, redis_prefix: str
) -> None:
    config = {
        "ROPC_RATELIMIT_STORAGE_URI": REDIS_URL,
        "ROPC_RATELIMIT_KEY_PREFIX": redis_prefix,
        "ROPC_MFA_FAILURE_LIMIT": 3,
    }
    first, second = make_app(**config), make_app(**config)
    barrier = threading.Barrier(2, timeout=30)
    verdicts = {"ok": True}

    def verify(req: t.Any) -> t.Any:
        if verdicts["ok"] == "race":
            barrier.wait()
            return True
        return verdicts["ok"]

    for app in (first, second):
        enable_mfa(app)
        ropc_of(app).mfa_verifier(verify)
    creds = mfa_client_of(first)
    # Issued by one instance, continued on the other; nothing in SQL.
    token = mfa_token(first.test_client(), creds)
    assert table_rows(first, "ropc_mfa_tokens") == []
    assert send_otp(second.test_client(), creds, token, "1").status_code == 200
    assert_oauth_error(
        send_otp(first.test_client(), creds, token, "1"), 400, "invalid_grant"
    )
    # Double spend across the two instances.
    verdicts["ok"] = "race"
    token = mfa_token(first.test_client(), creds)
    with ThreadPoolExecutor(2) as pool:
        statuses = sorted(
            pool.map(
                lambda app: send_otp(app.test_client(), creds, token, "1").status_code,
                (first, second),
            )
        )
    assert statuses == [200, 400]
    # The per-user budget counts across instances and tokens.
    verdicts["ok"] = False
    codes = []
    for app in (first, second, first):
        token = mfa_token(app.test_client(), creds)
        codes += [
            send_otp(app.test_client(), creds, token, "0").status_code for _ in range(2)
        ]
    assert codes[:4] == [400] * 4 and 429 in codes[4:]


def test_cleanup_deletes_used_and_expired_mfa_tokens(
    app: flask.Flask, http: t.Any, mfa_client: t.Any, factors: t.Any
) -> None:
    factors.totp = lambda req: MfaResult.success()
    used = mfa_token(http, mfa_client)
    assert send_otp(http, mfa_client, used, "123456").status_code == 200
    mfa_token(http, mfa_client)  # expires below
    clock_of(app).advance(300)
    live = mfa_token(http, mfa_client)
    with app.app_context():
        deleted = ropc_of(app).cleanup()
    assert deleted["ropc_mfa_tokens"] == 2
    (row,) = table_rows(app, "ropc_mfa_tokens")
    assert row.token_digest == hashlib.sha256(live.encode()).hexdigest()


@pytest.mark.parametrize("token_format", ["jwt", "reference"])
def test_mfa_tokens_carry_the_mfa_context_and_pass_an_mfa_step_up(
    app: flask.Flask,
    http: t.Any,
    make_client: t.Any,
    factors: t.Any,
    token_format: str,
) -> None:
    ropc = ropc_of(app)
    mfa_acr = "urn:flask-ropc:acr:mfa"

    @ropc.require_token("api", acr=mfa_acr)
    def strong() -> dict[str, t.Any]:
        return {"amr": list(current_token.amr)}

    app.add_url_rule("/api/strong", "strong", strong)
    client = make_client(
        "MFA app",
        grant_types=MFA_GRANTS,
        access_token_format=None if token_format == "jwt" else "reference",
    )
    login_time = clock_of(app)()
    token = mfa_token(http, client, scope="api offline_access")
    clock_of(app).advance(40)  # the code comes later; auth_time does not move
    tokens = send_otp(http, client, token, otp_now(app)).get_json()
    info = introspect(http, client, tokens["access_token"]).get_json()
    assert info["amr"] == ["pwd", "otp", "mfa"] and info["acr"] == mfa_acr
    assert info["auth_time"] == int(login_time)
    strong_call = http.get("/api/strong", headers=bearer(tokens["access_token"]))
    assert strong_call.status_code == 200
    assert strong_call.get_json()["amr"] == ["pwd", "otp", "mfa"]
    # A refresh keeps the context; a recovery code is the second factor too.
    refreshed = post_form(
        http,
        client,
        {"grant_type": "refresh_token", "refresh_token": tokens["refresh_token"]},
    ).get_json()
    info = introspect(http, client, refreshed["access_token"]).get_json()
    assert (info["amr"], info["acr"]) == (["pwd", "otp", "mfa"], mfa_acr)
    recovered = send_recovery(http, client, mfa_token(http, client), "RC-user-1")
    info = introspect(http, client, recovered.get_json()["access_token"]).get_json()
    assert (info["amr"], info["acr"]) == (["pwd", "mfa"], mfa_acr)


def test_concurrent_wrong_codes_under_one_token_get_at_most_five_verified(
    app: flask.Flask, mfa_client: t.Any, factors: t.Any
) -> None:
    # The five that are counted meet at the barrier inside the verifier; a
    # sixth must be refused before it, by the token's own count.
    barrier = threading.Barrier(5, timeout=30)
    judged: list[t.Any] = []

    def verify(req: t.Any) -> t.Any:
        judged.append(req)
        barrier.wait()
        return MfaResult.failure()

    factors.totp = verify
    token = mfa_token(app.test_client(), mfa_client)

    def guess(_: int) -> int:
        return int(send_otp(app.test_client(), mfa_client, token, "000000").status_code)

    with ThreadPoolExecutor(6) as pool:
        statuses = list(pool.map(guess, range(6)))
    assert statuses == [400] * 6
    assert len(judged) == 5


def test_without_password_throttling_the_code_budget_still_holds(
    unthrottled_budget_app: flask.Flask,
) -> None:
    app = unthrottled_budget_app
    assert spend_budget(app, mfa_client_of(app)) == [400, 400, 400, 429]


def test_the_cli_allows_the_mfa_grants(
    app: flask.Flask, http: t.Any, make_client: t.Any, factors: t.Any
) -> None:
    client = make_client("Plain")
    runner = app.test_cli_runner()
    result = runner.invoke(
        args=[
            "ropc",
            "update-client",
            client.client_id,
            "--grant-type",
            "password",
            "--grant-type",
            MFA_OTP,
        ]
    )
    assert result.exit_code == 0, result.output
    token = mfa_token(http, client)
    assert send_otp(http, client, token, otp_now(app)).status_code == 200
    bad = runner.invoke(
        args=["ropc", "update-client", client.client_id, "--grant-type", "mfa-otp"]
    )
    assert bad.exit_code != 0 and "mfa-otp" in bad.output


@needs_redis
def test_on_redis_an_mfa_token_expires_exactly_at_its_lifetime(
    make_app: t.Any, database_uri: str, redis_prefix: str
) -> None:
    app = make_app(
        ROPC_RATELIMIT_STORAGE_URI=REDIS_URL, ROPC_RATELIMIT_KEY_PREFIX=redis_prefix
    )
    clock_of(app).freeze()
    active = {"user-1": True}
    enable_mfa(app).totp = lambda req: MfaResult.success()
    ropc_of(app).subject_is_active(lambda req: active[req.subject])
    creds = mfa_client_of(app)
    http = app.test_client()
    token = mfa_token(http, creds)
    clock_of(app).advance(299)
    assert send_otp(http, creds, token, "1").status_code == 200
    token = mfa_token(http, creds)
    clock_of(app).advance(300)
    assert_oauth_error(send_otp(http, creds, token, "1"), 400, "invalid_grant")
    token = mfa_token(http, creds)
    active["user-1"] = False
    assert_oauth_error(send_otp(http, creds, token, "1"), 400, "invalid_grant")
    active["user-1"] = True
    assert_oauth_error(send_otp(http, creds, token, "1"), 400, "invalid_grant")


# -- clearing the code budget -------------------------------------------------


@pytest.fixture(params=["database", "redis"])
def budget_app(request: pytest.FixtureRequest, make_app: t.Any) -> flask.Flask:
    """An MFA app whose code budget (two wrong codes) is counted in the
    database (SQLite, PostgreSQL) or in Redis."""
    config: dict[str, t.Any] = {}
    if request.param == "redis":
        if not REDIS_URL:
            pytest.skip("needs ROPC_TEST_REDIS_URL")
        config["ROPC_RATELIMIT_STORAGE_URI"] = REDIS_URL
        config["ROPC_RATELIMIT_KEY_PREFIX"] = request.getfixturevalue("redis_prefix")
    return _budget_app(make_app, **config)


@pytest.fixture
def unthrottled_budget_app(make_app: t.Any) -> flask.Flask:
    """:func:`budget_app` in the database with password throttling off."""
    return _budget_app(make_app, ROPC_THROTTLE_ENABLED=False)


def _budget_app(make_app: t.Any, **config: t.Any) -> flask.Flask:
    app: flask.Flask = make_app(ROPC_MFA_FAILURE_LIMIT=2, **config)
    clock_of(app).freeze()
    enable_mfa(app)
    return app


def spend_budget(app: flask.Flask, creds: t.Any, username: str = "ann") -> list[int]:
    """Four wrong codes, each under a fresh mfa_token: the statuses."""
    http = app.test_client()
    return [
        send_otp(http, creds, mfa_token(http, creds, username), "000000").status_code
        for _ in range(4)
    ]


def test_cli_unlock_subject_clears_the_users_mfa_code_budget(
    budget_app: flask.Flask,
) -> None:
    app, creds = budget_app, mfa_client_of(budget_app)
    runner, http = app.test_cli_runner(), app.test_client()
    assert spend_budget(app, creds) == [400, 400, 400, 429]
    assert spend_budget(app, creds, "bob") == [400, 400, 400, 429]

    result = runner.invoke(args=["ropc", "unlock", "--subject", "user-1"])

    assert result.exit_code == 0, result.output
    assert "Cleared the MFA code budget of subject user-1" in result.output
    # A right code goes through at once, and the full budget is back.
    token = mfa_token(http, creds)
    assert send_otp(http, creds, token, otp_now(app)).status_code == 200
    assert spend_budget(app, creds) == [400, 400, 400, 429]
    # Only that user's: bob is still slowed.
    token = mfa_token(http, creds, "bob")
    assert send_otp(http, creds, token, otp_now(app, "user-2")).status_code == 429
    nobody = runner.invoke(args=["ropc", "unlock", "--subject", "nobody", "--json"])
    assert json.loads(nobody.stdout) == {
        "subject": "nobody",
        "unlocked": False,
        "cleared": 0,
    }
    again = runner.invoke(args=["ropc", "unlock", "--subject", "nobody"])
    assert "Nothing to unlock: no wrong MFA codes for subject nobody" in again.output


def test_unlock_mfa_from_python_and_with_a_username(
    budget_app: flask.Flask,
) -> None:
    app, creds = budget_app, mfa_client_of(budget_app)
    http = app.test_client()
    spend_budget(app, creds, "bob")
    with app.app_context():
        assert ropc_of(app).unlock_mfa("user-2") >= 1
        assert ropc_of(app).unlock_mfa("user-2") == 0
    token = mfa_token(http, creds, "bob")
    assert send_otp(http, creds, token, otp_now(app, "user-2")).status_code == 200
    # USERNAME and --subject together: both cleared, one JSON object.
    spend_budget(app, creds)
    for _ in range(5):  # and a password lock for ann
        post_form(http, creds, password_form(password="wrong"))
    assert start_login(http, creds).status_code == 429
    both = app.test_cli_runner().invoke(
        args=["ropc", "unlock", "ann", "--subject", "user-1", "--json"]
    )
    answer = json.loads(both.stdout)
    assert answer["username"] == "ann" and answer["subject"] == "user-1"
    assert answer["unlocked"] is True and answer["cleared"] >= 3
    token = mfa_token(http, creds)  # the password lock is gone too
    assert send_otp(http, creds, token, otp_now(app)).status_code == 200


def test_unlock_subject_works_with_password_throttling_off(
    unthrottled_budget_app: flask.Flask,
) -> None:
    app = unthrottled_budget_app
    creds = mfa_client_of(app)
    runner, http = app.test_cli_runner(), app.test_client()
    assert spend_budget(app, creds) == [400, 400, 400, 429]

    result = runner.invoke(args=["ropc", "unlock", "--subject", "user-1"])

    assert result.exit_code == 0, result.output
    token = mfa_token(http, creds)
    assert send_otp(http, creds, token, otp_now(app)).status_code == 200
    # A username still needs throttling; and something must be named.
    username = runner.invoke(args=["ropc", "unlock", "ann"])
    assert username.exit_code != 0 and "ROPC_THROTTLE_ENABLED" in username.output
    neither = runner.invoke(args=["ropc", "unlock"])
    assert neither.exit_code != 0 and "--subject" in neither.output
