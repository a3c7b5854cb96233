"""OpenTelemetry metrics: every path counted exactly once, closed attributes.

Each test app gets its own SDK ``MeterProvider`` with an in-memory reader
(``ROPC(meter_provider=...)``), so no test touches the global provider.
Requests go through the real endpoints; a test compares what the reader
holds with the exact series it expects, so a path counted twice, or a stray
series, fails it.
"""

from __future__ import annotations

import base64
import json
import os
import subprocess
import sys
import typing as t
from collections.abc import Iterator
from pathlib import Path

import flask
import pytest
from joserfc.jwk import ECKey
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader

from flask_ropc import ROPC
from flask_ropc import GrantResult
from flask_ropc import MfaResult
from flask_ropc import signals

from conftest import SECRET_KEY
from conftest import WRONG_PASSWORD
from conftest import Clock
from conftest import OAuthClient
from conftest import Validator
from conftest import _schema_app
from conftest import basic_auth
from conftest import dispose_app
from conftest import login
from conftest import password_form
from conftest import post_as
from mfa_helpers import MFA_GRANTS
from mfa_helpers import MFA_OTP
from mfa_helpers import MFA_RECOVERY
from mfa_helpers import enable_mfa
from mfa_helpers import otp_now
from mfa_helpers import send_otp
from mfa_helpers import send_recovery
from mfa_helpers import start_login

ROOT = Path(__file__).resolve().parent.parent
TOKEN_URL = "/oauth/token"
REVOKE_URL = "/oauth/revoke"
OFFLINE = ["password", "refresh_token"]
WRONG = "a wrong password, for sure"

REQUESTS = "flask_ropc.token.requests"
VALIDATIONS = "flask_ropc.password.validations"
DURATION = "flask_ropc.password.validation.duration"
THROTTLED = "flask_ropc.throttle.refusals"
REUSE = "flask_ropc.refresh.reuse_detections"
REVOCATIONS = "flask_ropc.token.revocations"
MFA = "flask_ropc.mfa.outcomes"
KEY_AGE = "flask_ropc.signing_key.age"

Series = dict[str, dict[tuple[tuple[str, str], ...], t.Any]]


# -- helpers ------------------------------------------------------------------


def metered_app(
    database_uri: str, instance_path: str, provider: MeterProvider, **config: t.Any
) -> flask.Flask:
    """Like conftest's ``build_app``, with our metrics going to ``provider``."""
    app = flask.Flask("ropc_metrics_app", instance_path=instance_path)
    app.config.update(TESTING=True, ROPC_DATABASE_URI=database_uri)
    app.config.update({"SECRET_KEY": SECRET_KEY, **config})
    clock = Clock()
    ropc = ROPC(app, clock=clock, meter_provider=provider)
    validator = Validator()
    ropc.password_validator(validator)
    app.extensions.update(test_ropc=ropc, test_clock=clock, test_validator=validator)
    schema, schema_ropc = _schema_app(database_uri, instance_path)
    with schema.app_context():
        schema_ropc.create_all()
        schema_ropc.dispose()
    return app


@pytest.fixture
def reader() -> InMemoryMetricReader:
    """The test app's metric reader."""
    return InMemoryMetricReader()


@pytest.fixture
def meter_provider(reader: InMemoryMetricReader) -> Iterator[MeterProvider]:
    """An SDK meter provider of the test's own, read by ``reader``."""
    provider = MeterProvider(metric_readers=[reader], shutdown_on_exit=False)
    yield provider
    provider.shutdown()


@pytest.fixture
def app(
    database_uri: str,
    tmp_path: t.Any,
    app_config: dict[str, t.Any],
    meter_provider: MeterProvider,
) -> Iterator[flask.Flask]:
    """This module's app: conftest's, with the test's meter provider."""
    application = metered_app(
        database_uri, str(tmp_path / "instance"), meter_provider, **app_config
    )
    yield application
    dispose_app(application)


def collect(reader: InMemoryMetricReader) -> Series:
    """Every series now: instrument -> {sorted attributes: value}.

    Counters give their sum; histograms ``(count, bucket counts)``; gauges
    their value.
    """
    found: Series = {}
    data = reader.get_metrics_data()
    for resource in data.resource_metrics if data else ():
        for scope in resource.scope_metrics:
            assert scope.scope.name == "flask_ropc"
            for metric in scope.metrics:
                series = found.setdefault(metric.name, {})
                for point in metric.data.data_points:
                    key = tuple(sorted((point.attributes or {}).items()))
                    if hasattr(point, "bucket_counts"):
                        series[key] = point.count
                    else:
                        series[key] = point.value
    return found


def counted(reader: InMemoryMetricReader, action: t.Callable[[], t.Any]) -> Series:
    """What ``action`` added to each counter and histogram (count of points);
    instruments it did not touch are left out."""
    before = collect(reader)
    action()
    after = collect(reader)
    added: Series = {}
    for name, series in after.items():
        if name == KEY_AGE:
            continue
        for key, value in series.items():
            change = value - before.get(name, {}).get(key, 0)
            if change:
                added.setdefault(name, {})[key] = change
    return added


def counted_call(
    reader: InMemoryMetricReader, action: t.Callable[[], t.Any]
) -> tuple[t.Any, Series]:
    """What ``action`` returned, and what it added (see :func:`counted`)."""
    returned: list[t.Any] = []
    added = counted(reader, lambda: returned.append(action()))
    return returned[0], added


def login_series(client: str, result: str, validated: str) -> Series:
    """What one password login adds: a request that ended in ``result``, one
    validation and its duration that ended in ``validated``."""
    return {
        REQUESTS: {request(client, "password", result): 1},
        VALIDATIONS: {validation(client, validated): 1},
        DURATION: {attrs(result=validated): 1},
    }


def attrs(**values: str) -> tuple[tuple[str, str], ...]:
    """A series key: ``attrs(result="success")``; ``_`` for ``.`` in names."""
    return tuple(sorted((name.replace("__", "."), v) for name, v in values.items()))


def request(client: str, grant_type: str, result: str) -> tuple[t.Any, ...]:
    return attrs(oauth__client_id=client, oauth__grant_type=grant_type, result=result)


def validation(client: str, result: str) -> tuple[t.Any, ...]:
    return attrs(oauth__client_id=client, result=result)


@pytest.fixture
def offline_client(make_client: t.Any) -> OAuthClient:
    return t.cast(OAuthClient, make_client("Offline app", grant_types=OFFLINE))


def refresh(http: t.Any, client: OAuthClient, token: str) -> t.Any:
    data = {"grant_type": "refresh_token", "refresh_token": token}
    return post_as(http, TOKEN_URL, client, data)


# -- the password grant -----------------------------------------------------------


def test_a_successful_login_is_one_request_one_validation_one_duration(
    http: t.Any, oauth_client: OAuthClient, reader: InMemoryMetricReader
) -> None:
    added = counted(reader, lambda: login(http, oauth_client))
    cid = oauth_client.client_id
    assert added == login_series(cid, "success", "success")


def test_a_wrong_password_is_one_invalid_grant_and_one_invalid_credentials(
    http: t.Any, oauth_client: OAuthClient, reader: InMemoryMetricReader
) -> None:
    response, added = counted_call(
        reader, lambda: login(http, oauth_client, password=WRONG)
    )
    assert response.status_code == 400
    cid = oauth_client.client_id
    assert added == login_series(cid, "invalid_grant", "invalid_credentials")


def test_a_validators_own_refusal_is_refused_and_an_unknown_code_other(
    app: flask.Flask,
    http: t.Any,
    oauth_client: OAuthClient,
    reader: InMemoryMetricReader,
) -> None:
    verdicts = iter(
        [
            GrantResult.error("invalid_grant", "no", reason="disabled"),
            GrantResult.error("account_on_fire", "no", reason="user ann is odd"),
        ]
    )
    app.extensions["test_ropc"].password_validator(lambda req: next(verdicts))
    cid = oauth_client.client_id
    assert counted(reader, lambda: login(http, oauth_client)) == login_series(
        cid, "invalid_grant", "refused"
    )
    # A code of the app's own is no attribute value: the set stays closed.
    assert counted(reader, lambda: login(http, oauth_client)) == login_series(
        cid, "other", "refused"
    )


def test_a_validator_exception_is_one_server_error_and_its_duration_is_recorded(
    app: flask.Flask,
    http: t.Any,
    oauth_client: OAuthClient,
    reader: InMemoryMetricReader,
) -> None:
    def broken(req: t.Any) -> t.Any:
        raise RuntimeError("the user directory is on fire")

    app.extensions["test_ropc"].password_validator(broken)
    response, added = counted_call(reader, lambda: login(http, oauth_client))
    assert response.status_code == 500
    cid = oauth_client.client_id
    assert added == login_series(cid, "server_error", "exception")


@pytest.mark.parametrize(
    ("form", "status", "grant_type", "result"),
    [
        ({"username": "ann", "password": "x"}, 400, "other", "invalid_request"),
        ({"grant_type": "password", "password": "x"}, 400, "password", None),
        ({"grant_type": "password", "username": "ann"}, 400, "password", None),
        ({"grant_type": "client_credentials"}, 400, "other", "unsupported"),
        ({"grant_type": "password", "scope": "nope"}, 400, "password", "scope"),
    ],
    ids=["no-grant-type", "no-username", "no-password", "bad-grant", "bad-scope"],
)
def test_an_early_refusal_is_one_request_and_no_validation(
    http: t.Any,
    oauth_client: OAuthClient,
    reader: InMemoryMetricReader,
    validator: Validator,
    form: dict[str, str],
    status: int,
    grant_type: str,
    result: str | None,
) -> None:
    expected = {
        None: "invalid_request",
        "unsupported": "unsupported_grant_type",
        "scope": "invalid_scope",
    }.get(result, result)
    # Before the grant type is known the client is not looked up yet.
    client = "unknown" if grant_type == "other" else oauth_client.client_id
    response, added = counted_call(
        reader, lambda: post_as(http, TOKEN_URL, oauth_client, form)
    )
    assert added == {REQUESTS: {request(client, grant_type, str(expected)): 1}}
    assert response.status_code == status
    assert response.get_json()["error"] == expected
    assert validator.calls == []


def test_refusals_before_any_grant_logic_are_counted_once(
    http: t.Any, oauth_client: OAuthClient, reader: InMemoryMetricReader
) -> None:
    def answers() -> None:
        assert http.get(TOKEN_URL).status_code == 405
        assert http.post(TOKEN_URL, json={"grant_type": "x"}).status_code == 400
        query = TOKEN_URL + "?grant_type=password"
        assert http.post(query, data={"username": "a"}).status_code == 400

    assert counted(reader, answers) == {
        REQUESTS: {request("unknown", "other", "invalid_request"): 3}
    }


def test_a_failed_client_authentication_names_a_known_client_only(
    http: t.Any,
    oauth_client: OAuthClient,
    reader: InMemoryMetricReader,
    validator: Validator,
) -> None:
    def attempts() -> None:
        wrong_secret = OAuthClient(oauth_client.client_id, "not-the-secret-at-all")
        made_up = OAuthClient("attacker-chosen-id-123", "whatever-secret-value")
        for client in (wrong_secret, made_up):
            assert login(http, client).status_code == 401
        no_credentials = http.post(
            TOKEN_URL, data={"grant_type": "password", "username": "ann"}
        )
        assert no_credentials.status_code == 401

    assert counted(reader, attempts) == {
        REQUESTS: {
            request(oauth_client.client_id, "password", "invalid_client"): 1,
            request("unknown", "password", "invalid_client"): 2,
        }
    }
    assert validator.calls == []


@pytest.mark.parametrize(
    ("app_config", "status", "result"),
    [
        ({}, 429, "slow_down"),
        ({"ROPC_THROTTLE_RESPONSE": "invalid_grant"}, 400, "invalid_grant"),
    ],
    ids=["429", "invalid_grant"],
)
def test_a_throttled_attempt_is_one_refusal_and_no_validation(
    http: t.Any,
    oauth_client: OAuthClient,
    reader: InMemoryMetricReader,
    status: int,
    result: str,
) -> None:
    cid = oauth_client.client_id
    failures = counted(
        reader, lambda: [login(http, oauth_client, password=WRONG) for _ in range(5)]
    )
    assert failures[VALIDATIONS] == {validation(cid, "invalid_credentials"): 5}
    response, added = counted_call(
        reader, lambda: login(http, oauth_client, password=WRONG)
    )
    assert added == {
        REQUESTS: {request(cid, "password", result): 1},
        THROTTLED: {
            attrs(oauth__client_id=cid, flask_ropc__throttle__scope="username"): 1
        },
    }
    assert response.status_code == status


# -- refresh and revocation ---------------------------------------------------------


def test_a_refresh_is_one_request_and_no_validation(
    http: t.Any, offline_client: OAuthClient, reader: InMemoryMetricReader
) -> None:
    body = login(http, offline_client, scope="api offline_access").get_json()
    response, added = counted_call(
        reader, lambda: refresh(http, offline_client, body["refresh_token"])
    )
    assert added == {
        REQUESTS: {request(offline_client.client_id, "refresh_token", "success"): 1}
    }
    assert response.status_code == 200


def test_reuse_is_detected_once_per_family(
    http: t.Any, offline_client: OAuthClient, reader: InMemoryMetricReader
) -> None:
    first = login(http, offline_client, scope="api offline_access").get_json()
    assert refresh(http, offline_client, first["refresh_token"]).status_code == 200
    cid = offline_client.client_id
    replay = lambda: refresh(http, offline_client, first["refresh_token"])  # noqa: E731
    assert counted(reader, replay) == {
        REQUESTS: {request(cid, "refresh_token", "invalid_grant"): 1},
        REUSE: {attrs(oauth__client_id=cid): 1},
    }
    # The family is gone: another replay is a plain invalid_grant.
    assert counted(reader, replay) == {
        REQUESTS: {request(cid, "refresh_token", "invalid_grant"): 1}
    }


def test_each_revocation_is_counted_once_by_token_type(
    http: t.Any,
    offline_client: OAuthClient,
    make_client: t.Any,
    reader: InMemoryMetricReader,
) -> None:
    body = login(http, offline_client, scope="api offline_access").get_json()
    other = make_client("Other app")
    cid = offline_client.client_id

    def revoke(client: OAuthClient, token: str) -> None:
        response = post_as(http, REVOKE_URL, client, {"token": token})
        assert response.status_code == 200

    assert counted(reader, lambda: revoke(offline_client, body["access_token"])) == {
        REVOCATIONS: {attrs(oauth__client_id=cid, oauth__token_type="access_token"): 1}
    }
    # Another client's token, and a made-up one: answered 200, nothing revoked.
    assert counted(reader, lambda: revoke(other, body["refresh_token"])) == {}
    assert counted(reader, lambda: revoke(offline_client, "no-such-token")) == {}
    assert counted(reader, lambda: revoke(offline_client, body["refresh_token"])) == {
        REVOCATIONS: {attrs(oauth__client_id=cid, oauth__token_type="refresh_token"): 1}
    }


# -- MFA, in two steps ------------------------------------------------------------


@pytest.fixture
def mfa_client(app: flask.Flask, make_client: t.Any) -> OAuthClient:
    """A client whose users need a second factor (``mfa_helpers``)."""
    app.extensions["test_clock"].freeze()
    app.extensions["test_mfa"] = enable_mfa(app)
    return t.cast(OAuthClient, make_client("MFA app", grant_types=MFA_GRANTS))


def outcome(client: str, name: str, **more: str) -> tuple[t.Any, ...]:
    """An ``mfa.outcomes`` series key; ``factor=``, ``reason=`` as needed."""
    extra = {f"flask_ropc__mfa__{key}": value for key, value in more.items()}
    return attrs(oauth__client_id=client, flask_ropc__mfa__outcome=name, **extra)


def first_step(http: t.Any, client: OAuthClient, reader: t.Any) -> tuple[str, Series]:
    """The password step: its ``mfa_token`` and what it counted."""
    response, added = counted_call(reader, lambda: start_login(http, client))
    assert response.status_code in (400, 403)
    assert response.get_json()["error"] == "mfa_required"
    return str(response.get_json()["mfa_token"]), added


@pytest.mark.parametrize(
    "app_config", [{}, {"ROPC_MFA_REQUIRED_STATUS": 400}], ids=["403", "400"]
)
def test_a_two_step_login_counts_each_step_once(
    app: flask.Flask,
    http: t.Any,
    mfa_client: OAuthClient,
    reader: InMemoryMetricReader,
) -> None:
    cid = mfa_client.client_id
    token, added = first_step(http, mfa_client, reader)
    assert added == {
        **login_series(cid, "mfa_required", "mfa_required"),
        MFA: {outcome(cid, "required"): 1},
    }
    response, added = counted_call(
        reader, lambda: send_otp(http, mfa_client, token, otp_now(app))
    )
    assert added == {
        REQUESTS: {request(cid, MFA_OTP, "success"): 1},
        MFA: {outcome(cid, "succeeded", factor="otp"): 1},
    }
    assert response.status_code == 200
    # The spent token again: a plain invalid_grant, no MFA outcome (it was
    # never checked against a code).
    again = lambda: send_otp(http, mfa_client, token, otp_now(app))  # noqa: E731
    assert counted(reader, again) == {
        REQUESTS: {request(cid, MFA_OTP, "invalid_grant"): 1}
    }


def test_wrong_codes_count_failed_and_the_last_one_locked(
    app: flask.Flask,
    http: t.Any,
    mfa_client: OAuthClient,
    reader: InMemoryMetricReader,
) -> None:
    cid = mfa_client.client_id
    token, _ = first_step(http, mfa_client, reader)
    wrong = lambda: send_otp(http, mfa_client, token, "000000")  # noqa: E731
    failed = outcome(cid, "failed", factor="otp", reason="invalid_code")
    for _ in range(4):
        assert counted(reader, wrong) == {
            REQUESTS: {request(cid, MFA_OTP, "invalid_grant"): 1},
            MFA: {failed: 1},
        }
    # The fifth wrong code is a failure that also kills the token.
    assert counted(reader, wrong) == {
        REQUESTS: {request(cid, MFA_OTP, "invalid_grant"): 1},
        MFA: {failed: 1, outcome(cid, "locked"): 1},
    }
    # A locked token is refused before any code is looked at: only the request.
    right = lambda: send_otp(http, mfa_client, token, otp_now(app))  # noqa: E731
    assert counted(reader, right) == {
        REQUESTS: {request(cid, MFA_OTP, "invalid_grant"): 1}
    }


def test_a_recovery_code_counts_one_success_of_its_factor(
    http: t.Any, mfa_client: OAuthClient, reader: InMemoryMetricReader
) -> None:
    cid = mfa_client.client_id
    token, _ = first_step(http, mfa_client, reader)
    response, added = counted_call(
        reader, lambda: send_recovery(http, mfa_client, token, "RC-user-1")
    )
    assert added == {
        REQUESTS: {request(cid, MFA_RECOVERY, "success"): 1},
        MFA: {outcome(cid, "succeeded", factor="recovery-code"): 1},
    }
    assert response.status_code == 200
    assert response.get_json()["recovery_code"].startswith("RC-")


def test_a_reason_of_the_apps_own_is_other(
    app: flask.Flask,
    http: t.Any,
    mfa_client: OAuthClient,
    reader: InMemoryMetricReader,
) -> None:
    app.extensions["test_ropc"].mfa_verifier(
        lambda req: MfaResult.failure("user ann typed 123456")
    )
    cid = mfa_client.client_id
    token, _ = first_step(http, mfa_client, reader)
    assert counted(reader, lambda: send_otp(http, mfa_client, token, "123456")) == {
        REQUESTS: {request(cid, MFA_OTP, "invalid_grant"): 1},
        MFA: {outcome(cid, "failed", factor="otp", reason="other"): 1},
    }


@pytest.mark.parametrize("app_config", [{"ROPC_MFA_FAILURE_LIMIT": 2}], ids=["limit-2"])
def test_a_throttled_code_is_one_refusal_of_scope_mfa(
    http: t.Any, mfa_client: OAuthClient, reader: InMemoryMetricReader
) -> None:
    cid = mfa_client.client_id
    token, _ = first_step(http, mfa_client, reader)
    # Two wrong codes reach the budget, a third is the one slowed code of
    # the interval; the fourth is refused before the verifier.
    statuses = [send_otp(http, mfa_client, token, "000000").status_code]
    statuses += [send_otp(http, mfa_client, token, "000000").status_code]
    statuses += [send_otp(http, mfa_client, token, "000000").status_code]
    assert statuses == [400, 400, 400]
    response, added = counted_call(
        reader, lambda: send_otp(http, mfa_client, token, "000000")
    )
    assert added == {
        REQUESTS: {request(cid, MFA_OTP, "slow_down"): 1},
        THROTTLED: {attrs(oauth__client_id=cid, flask_ropc__throttle__scope="mfa"): 1},
    }
    assert response.status_code == 429


# -- attributes, the gauge, switching off -------------------------------------------


def test_no_attribute_carries_a_username_an_ip_a_jti_or_a_kid(
    app: flask.Flask,
    http: t.Any,
    offline_client: OAuthClient,
    reader: InMemoryMetricReader,
) -> None:
    body = login(http, offline_client, scope="api offline_access").get_json()
    login(http, offline_client, password=WRONG)
    login(http, OAuthClient("made-up-client", "made-up-secret-123456"))
    post_as(http, REVOKE_URL, offline_client, {"token": body["access_token"]})
    assert refresh(http, offline_client, body["refresh_token"]).status_code == 200
    assert refresh(http, offline_client, body["refresh_token"]).status_code == 400
    header, payload, _ = body["access_token"].split(".")
    jti = json.loads(_b64(payload))["jti"]
    kid = json.loads(_b64(header))["kid"]
    allowed = {
        offline_client.client_id,
        "unknown",
        "password",
        "refresh_token",
        "success",
        "invalid_grant",
        "invalid_client",
        "invalid_credentials",
        "access_token",
    }
    values = {
        value
        for series in collect(reader).values()
        for key in series
        for _, value in key
    }
    assert values == allowed
    assert not values & {"ann", "127.0.0.1", "made-up-client", jti, kid}


def _b64(part: str) -> str:
    return base64.urlsafe_b64decode(part + "=" * (-len(part) % 4)).decode()


def test_the_gauge_reports_the_signing_keys_age(
    app: flask.Flask,
    http: t.Any,
    oauth_client: OAuthClient,
    reader: InMemoryMetricReader,
) -> None:
    clock = app.extensions["test_clock"]
    clock.freeze()
    login(http, oauth_client)  # makes the first key
    assert collect(reader)[KEY_AGE] == {(): 0}
    clock.advance(3600)
    assert collect(reader)[KEY_AGE] == {(): 3600}
    with app.app_context():
        app.extensions["test_ropc"].keys.rotate()
    assert collect(reader)[KEY_AGE] == {(): 0}


@pytest.mark.parametrize(
    "app_config",
    [{"ROPC_SIGNING_KEYS": ECKey.generate_key("P-256").as_dict(private=True)}],
    ids=["configured-key"],
)
def test_the_gauge_reports_nothing_for_a_configured_key(
    http: t.Any, oauth_client: OAuthClient, reader: InMemoryMetricReader
) -> None:
    """A key from the configuration has no creation time: no made-up age."""
    assert login(http, oauth_client).status_code == 200
    assert KEY_AGE not in collect(reader)
    assert REQUESTS in collect(reader)


@pytest.mark.parametrize(
    "app_config", [{"ROPC_METRICS_ENABLED": False}], ids=["disabled"]
)
def test_metrics_can_be_switched_off(
    http: t.Any, oauth_client: OAuthClient, reader: InMemoryMetricReader
) -> None:
    assert login(http, oauth_client).status_code == 200
    assert collect(reader) == {}


def test_the_token_request_event_names_only_what_the_server_knows(
    app: flask.Flask, http: t.Any, oauth_client: OAuthClient
) -> None:
    seen: list[dict[str, t.Any]] = []

    def record(sender: t.Any, **payload: t.Any) -> None:
        seen.append(payload)

    signals.token_request_handled.connect(record, sender=app, weak=False)
    try:
        login(http, oauth_client)
        http.post(
            TOKEN_URL,
            data={"grant_type": "urn:made:up"},
            headers=basic_auth("someone-else", "secret-secret-secret"),
        )
    finally:
        signals.token_request_handled.disconnect(record, sender=app)
    common = {"request_id", "client_ip"}
    assert [{k: v for k, v in e.items() if k not in common} for e in seen] == [
        {
            "grant_type": "password",
            "client_id": oauth_client.client_id,
            "status": 200,
            "error": None,
        },
        {
            "grant_type": None,
            "client_id": None,
            "status": 400,
            "error": "unsupported_grant_type",
        },
    ]


def test_the_token_request_event_names_the_error_each_refusal_answered(
    app: flask.Flask, http: t.Any, oauth_client: OAuthClient
) -> None:
    """The event's ``error`` is the code in the body, for every kind of
    refusal (the server notes it as it answers, without reading the body)."""
    seen: list[dict[str, t.Any]] = []

    def record(sender: t.Any, **payload: t.Any) -> None:
        seen.append(payload)

    auth = basic_auth(*oauth_client)
    refusals = [
        lambda: login(http, oauth_client, password=WRONG_PASSWORD),
        lambda: http.post(
            TOKEN_URL, data=password_form(), headers=basic_auth("nobody", "wrong!")
        ),
        lambda: http.post(TOKEN_URL, data={"username": "ann"}, headers=auth),
        lambda: http.post(TOKEN_URL, json={"grant_type": "password"}, headers=auth),
        lambda: login(http, oauth_client, acr_values="urn:made:up"),
        lambda: http.get(TOKEN_URL, headers=auth),
        *[lambda: login(http, oauth_client, "bob", WRONG_PASSWORD)] * 6,
    ]
    signals.token_request_handled.connect(record, sender=app, weak=False)
    try:
        answers = [refuse() for refuse in refusals]
    finally:
        signals.token_request_handled.disconnect(record, sender=app)
    errors = [answer.get_json()["error"] for answer in answers]
    assert [event["error"] for event in seen] == errors
    assert [event["status"] for event in seen] == [a.status_code for a in answers]
    assert {"invalid_grant", "invalid_client", "invalid_request"} <= set(errors)
    assert errors[-1] == "slow_down"  # the sixth wrong password for bob


def test_without_opentelemetry_the_extension_works_and_subscribes_nothing(
    tmp_path: Path, database_uri: str
) -> None:
    """In a fresh interpreter where ``import opentelemetry`` fails."""
    script = f"""
import sys
sys.modules["opentelemetry"] = None  # as if the otel extra were not installed
sys.path.insert(0, {str(ROOT / "tests")!r})
import flask
from conftest import build_app, basic_auth, password_form, ropc_of
from flask_ropc import metrics, signals
assert not metrics.AVAILABLE
# This run's SECRET_KEY, not the fresh one conftest makes on import: the
# signing key it stores stays readable to the apps on this database.
app = build_app(
    {database_uri!r}, {str(tmp_path / "instance")!r}, SECRET_KEY={SECRET_KEY!r}
)
with app.app_context():
    client, secret = ropc_of(app).clients.create("App", scopes=["api"])
http = app.test_client()
auth = basic_auth(client.client_id, secret)
ok = http.post("/oauth/token", data=password_form(), headers=auth)
assert ok.status_code == 200, ok.get_data(as_text=True)
assert not signals.token_request_handled.receivers
assert not signals.password_validated.receivers
print("ok")
"""
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    result = subprocess.run(
        [sys.executable, "-c", script],
        capture_output=True,
        text=True,
        env=env,
        cwd=tmp_path,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "ok"
