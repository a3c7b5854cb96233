"""The breached-password helper against a real range server on 127.0.0.1.

A stub of the Pwned Passwords range API runs in a thread (``http.server``):
it serves padded ranges, withholds answers for timeouts, and sends errors
and garbage. The end-to-end tests run the real token endpoint with a
validator that calls :meth:`BreachCheck.review` after checking the password.
"""

from __future__ import annotations

import dataclasses
import hashlib
import http.server
import logging
import re
import threading
import typing as t
from collections.abc import Iterator

import flask
import pytest

from flask_ropc import GrantResult
from flask_ropc import signals
from flask_ropc.breach import BreachCheck
from flask_ropc.breach import BreachLookupError
from flask_ropc.errors import ConfigurationError

from conftest import USERS
from conftest import Clock
from conftest import OAuthClient
from conftest import assert_oauth_error
from conftest import bearer
from conftest import login
from conftest import ropc_of
from mfa_helpers import MFA_GRANTS
from mfa_helpers import send_otp

ANN_PASSWORD = USERS["ann"][0]
BOB_PASSWORD = USERS["bob"][0]


def sha1(password: str) -> str:
    return (
        hashlib.sha1(password.encode("utf-8"), usedforsecurity=False)
        .hexdigest()
        .upper()
    )


def padding(count: int = 3) -> list[str]:
    """Zero-count decoy lines, as ``Add-Padding: true`` adds them."""
    return [f"{index:035X}:0" for index in range(count)]


@dataclasses.dataclass
class Answer:
    status: int = 200
    body: str = ""
    headers: dict[str, str] = dataclasses.field(default_factory=dict)
    #: Hold the answer until this is set (a request that times out).
    hold: threading.Event | None = None


class RangeServer:
    """The stub: ``answers[prefix]`` (or ``default``) decides each answer."""

    def __init__(self) -> None:
        self.answers: dict[str, Answer] = {}
        self.default = Answer(body="\r\n".join(["0" * 35 + ":1", *padding()]))
        self.requests: list[tuple[str, dict[str, str]]] = []
        self.url = ""

    def breached(self, password: str, count: int = 42) -> None:
        """Serve a padded range in which ``password`` has ``count`` hits."""
        digest = sha1(password)
        lines = [f"{'F' * 35}:7", f"{digest[5:]}:{count}", *padding()]
        self.answers[digest[:5]] = Answer(body="\r\n".join(lines) + "\r\n")

    def answer(self, path: str) -> Answer:
        return self.answers.get(path.rpartition("/")[2], self.default)


def _handler(stub: RangeServer) -> type[http.server.BaseHTTPRequestHandler]:
    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            stub.requests.append((self.path, dict(self.headers.items())))
            answer = stub.answer(self.path)
            if answer.hold is not None:
                answer.hold.wait(timeout=30)
            body = answer.body.encode()
            try:
                self.send_response(answer.status)
                for name, value in answer.headers.items():
                    self.send_header(name, value)
                self.send_header("Content-Type", "text/plain")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)
            except (BrokenPipeError, ConnectionResetError):
                pass  # a held answer's client has timed out and gone

        def log_message(self, format: str, *args: t.Any) -> None:
            pass  # the stub's access log would only be noise

    return Handler


@pytest.fixture
def range_server() -> Iterator[RangeServer]:
    stub = RangeServer()
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _handler(stub))
    server.daemon_threads = True
    stub.url = f"http://127.0.0.1:{server.server_port}"
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield stub
    finally:
        for answer in [stub.default, *stub.answers.values()]:
            if answer.hold is not None:
                answer.hold.set()
        server.shutdown()
        server.server_close()
        thread.join(timeout=10)


def checker(stub: RangeServer, **options: t.Any) -> BreachCheck:
    return BreachCheck(base_url=stub.url, **options)


# -- The range lookup ------------------------------------------------------------


def test_a_breached_password_counts_its_appearances(range_server: RangeServer) -> None:
    range_server.breached(ANN_PASSWORD, count=1234)
    assert checker(range_server).count(ANN_PASSWORD) == 1234


def test_a_password_missing_from_its_range_counts_zero(
    range_server: RangeServer,
) -> None:
    range_server.breached(ANN_PASSWORD)
    assert checker(range_server).count(BOB_PASSWORD) == 0
    assert len(range_server.requests) == 1


def test_padding_lines_are_ignored(range_server: RangeServer) -> None:
    """A zero-count line is a decoy, even when it carries the suffix."""
    digest = sha1(ANN_PASSWORD)
    range_server.answers[digest[:5]] = Answer(
        body="\n".join([f"{'A' * 35}:3", f"{digest[5:]}:0", *padding()])
    )
    assert checker(range_server).count(ANN_PASSWORD) == 0


def test_only_five_uppercase_hex_characters_are_sent_with_padding_asked(
    range_server: RangeServer,
) -> None:
    password = "pässwörd ünïcode"  # hashed as UTF-8 bytes, as typed
    checker(range_server).count(password)
    [(path, headers)] = range_server.requests
    assert re.fullmatch(r"/range/[0-9A-F]{5}", path)
    assert path == "/range/" + sha1(password)[:5]
    assert headers["Add-Padding"] == "true"
    assert headers["User-Agent"]


def test_suffixes_match_whatever_their_case_and_line_endings(
    range_server: RangeServer,
) -> None:
    digest = sha1(ANN_PASSWORD)
    range_server.answers[digest[:5]] = Answer(
        body=f"{'b' * 35}:2\r\n{digest[5:].lower()}:9\r\n\r\n"
    )
    assert checker(range_server).count(ANN_PASSWORD) == 9


def test_a_cached_prefix_is_not_fetched_again(range_server: RangeServer) -> None:
    range_server.breached(ANN_PASSWORD)
    check = checker(range_server)
    assert check.count(ANN_PASSWORD) == 42
    assert check.count(ANN_PASSWORD) == 42
    assert len(range_server.requests) == 1


def test_a_cached_prefix_expires_after_its_ttl(range_server: RangeServer) -> None:
    clock = Clock()
    clock.freeze()
    check = checker(range_server, cache_ttl=600, clock=clock)
    check.count(ANN_PASSWORD)
    clock.advance(599)
    check.count(ANN_PASSWORD)
    assert len(range_server.requests) == 1
    clock.advance(1)
    check.count(ANN_PASSWORD)
    assert len(range_server.requests) == 2


def test_the_cache_keeps_at_most_cache_size_prefixes(
    range_server: RangeServer,
) -> None:
    passwords = ["first one", "second one", "third one"]
    assert len({sha1(p)[:5] for p in passwords}) == 3
    check = checker(range_server, cache_size=2)
    for password in passwords:
        check.count(password)
    check.count(passwords[2])  # still cached
    assert len(range_server.requests) == 3
    check.count(passwords[0])  # the least recently used went first
    assert len(range_server.requests) == 4


def test_a_custom_transport_is_called_with_the_url_headers_and_timeout() -> None:
    digest = sha1(ANN_PASSWORD)
    calls = []

    def transport(url: str, headers: t.Mapping[str, str], timeout: float) -> str:
        calls.append((url, dict(headers), timeout))
        return f"{digest[5:]}:5\n"

    check = BreachCheck(
        base_url="https://mirror.test/", transport=transport, timeout=1.5
    )
    assert check.count(ANN_PASSWORD) == 5
    [(url, headers, timeout)] = calls
    assert url == f"https://mirror.test/range/{digest[:5]}"
    assert headers["Add-Padding"] == "true"
    assert timeout == 1.5


@pytest.mark.parametrize(
    "answer",
    [
        Answer(status=503, body="busy"),
        Answer(status=200, body="<html>Sign in to the hotel wifi</html>"),
        Answer(status=200, body=""),
        Answer(status=200, body=f"{'A' * 34}:1"),
        Answer(status=302, headers={"Location": "http://elsewhere.test/"}),
        Answer(status=200, body="\xe9" * 10),
    ],
    ids=["5xx", "html", "empty", "short-suffix", "redirect", "not-ascii"],
)
def test_errors_and_garbage_are_lookup_failures(
    range_server: RangeServer, answer: Answer
) -> None:
    range_server.default = answer
    with pytest.raises(BreachLookupError):
        checker(range_server).count(ANN_PASSWORD)


def test_a_withheld_answer_times_out(range_server: RangeServer) -> None:
    range_server.default = Answer(body=f"{'A' * 35}:1", hold=threading.Event())
    with pytest.raises(BreachLookupError, match="TimeoutError|URLError"):
        checker(range_server, timeout=0.2).count(ANN_PASSWORD)


def test_failed_lookups_are_not_cached(range_server: RangeServer) -> None:
    range_server.default = Answer(status=500)
    check = checker(range_server)
    for _ in range(2):
        with pytest.raises(BreachLookupError):
            check.count(ANN_PASSWORD)
    assert len(range_server.requests) == 2


@pytest.mark.parametrize(
    "options",
    [
        {"policy": "deny"},
        {"fail": "sometimes"},
        {"timeout": 0},
        {"timeout": 60},
        {"min_count": 0},
        {"base_url": "file:///srv/pwned"},
        {"cache_size": -1},
        {"block_result": GrantResult.success("user-1")},
    ],
)
def test_bad_options_are_refused(options: dict[str, t.Any]) -> None:
    with pytest.raises(ConfigurationError):
        BreachCheck(**options)


def test_neither_the_hash_nor_its_suffix_is_logged_or_kept(
    range_server: RangeServer, caplog: pytest.LogCaptureFixture
) -> None:
    digest = sha1(ANN_PASSWORD)
    range_server.breached(ANN_PASSWORD)
    caplog.set_level(logging.DEBUG)
    check = checker(range_server)
    assert check.count(ANN_PASSWORD) == 42
    range_server.default = Answer(hold=threading.Event())
    with pytest.raises(BreachLookupError) as failure:
        checker(range_server, timeout=0.2).count(BOB_PASSWORD)
    logged = caplog.text + "".join(repr(r.args) for r in caplog.records)
    for secret in (digest, digest[5:], sha1(BOB_PASSWORD)[5:]):
        assert secret not in logged
        assert secret.lower() not in logged
        assert secret not in repr(check) + str(vars(check))
    assert sha1(BOB_PASSWORD)[:5] not in str(failure.value)


# -- Policies through the token endpoint -----------------------------------------


@pytest.fixture
def use_breach(
    app: flask.Flask, validator: t.Any
) -> t.Callable[[BreachCheck], list[GrantResult]]:
    """Register a validator that checks the password, then ``check.review``;
    returns the list of its verdicts."""

    def install(check: BreachCheck) -> list[GrantResult]:
        verdicts: list[GrantResult] = []

        def validate(req: t.Any) -> GrantResult:
            verdicts.append(check.review(req, validator(req)))
            return verdicts[-1]

        ropc_of(app).password_validator(validate)
        return verdicts

    return install


@pytest.fixture
def breaches(app: flask.Flask) -> Iterator[list[dict[str, t.Any]]]:
    received: list[dict[str, t.Any]] = []

    def receive(sender: t.Any, **payload: t.Any) -> None:
        received.append(payload)

    signals.password_breached.connect(receive, sender=app)
    yield received
    signals.password_breached.disconnect(receive, sender=app)


def test_block_answers_exactly_like_a_wrong_password(
    http: t.Any,
    oauth_client: t.Any,
    range_server: RangeServer,
    use_breach: t.Any,
    breaches: list[dict[str, t.Any]],
    caplog: pytest.LogCaptureFixture,
) -> None:
    range_server.breached(ANN_PASSWORD)
    use_breach(checker(range_server, policy="block"))
    caplog.set_level(logging.DEBUG)
    blocked = login(http, oauth_client)
    assert "breached_password" in caplog.text  # the internal reason, logged
    assert sha1(ANN_PASSWORD)[5:] not in caplog.text
    wrong = login(http, oauth_client, password="not the password")
    assert_oauth_error(blocked, 400, "invalid_grant")
    assert blocked.get_json() == wrong.get_json()
    assert blocked.headers.get("Content-Type") == wrong.headers.get("Content-Type")
    assert [b["policy"] for b in breaches] == ["block"]
    assert len(range_server.requests) == 1  # the wrong password was not looked up


def test_a_wrong_password_is_never_looked_up(
    http: t.Any, oauth_client: t.Any, range_server: RangeServer, use_breach: t.Any
) -> None:
    range_server.breached("not the password")
    verdicts = use_breach(checker(range_server, fail="closed"))
    assert_oauth_error(
        login(http, oauth_client, password="not the password"), 400, "invalid_grant"
    )
    assert verdicts[0].reason == "invalid_credentials"
    assert range_server.requests == []


def test_a_blocked_login_counts_towards_throttling(
    make_app: t.Any, range_server: RangeServer
) -> None:
    app = make_app(ROPC_THROTTLE_USERNAME_LIMIT=2)
    range_server.breached(ANN_PASSWORD)
    check = checker(range_server, policy="block")
    ropc = ropc_of(app)
    validator = app.extensions["test_validator"]
    ropc.password_validator(lambda req: check.review(req, validator(req)))
    with app.app_context():
        created, secret = ropc.clients.create("c", scopes=["api"])
    client = OAuthClient(created.client_id, secret)
    http = app.test_client()
    for _ in range(2):
        assert_oauth_error(login(http, client), 400, "invalid_grant")
    assert_oauth_error(login(http, client), 429, "slow_down")


def test_block_with_a_block_result_sends_that_answer(
    http: t.Any, oauth_client: t.Any, range_server: RangeServer, use_breach: t.Any
) -> None:
    range_server.breached(ANN_PASSWORD)
    leaked = GrantResult.error(
        "password_leaked", "Change your password to sign in.", count_failure=False
    )
    use_breach(checker(range_server, block_result=leaked))
    response = login(http, oauth_client)
    assert_oauth_error(response, 400, "password_leaked")
    assert (
        response.get_json()["error_description"] == "Change your password to sign in."
    )


def test_flag_issues_tokens_and_sends_password_breached(
    http: t.Any,
    oauth_client: t.Any,
    range_server: RangeServer,
    use_breach: t.Any,
    breaches: list[dict[str, t.Any]],
) -> None:
    range_server.breached(ANN_PASSWORD)
    use_breach(checker(range_server, policy="flag", flag_claims={"pwd_breached": True}))
    response = login(http, oauth_client, scope="api")
    assert response.status_code == 200
    assert response.get_json()["display_name"] == "Ann"
    me = http.get("/api/me", headers=bearer(response.get_json()["access_token"]))
    assert me.get_json()["claims"] == {"role": "member", "pwd_breached": True}
    [payload] = breaches
    assert set(payload) == {
        "request_id",
        "client_ip",
        "client_id",
        "subject",
        "policy",
        "lookup_failed",
    }
    assert payload["client_id"] == oauth_client.client_id
    assert payload["subject"] == "user-1"
    assert payload["policy"] == "flag"
    assert payload["lookup_failed"] is False
    assert sha1(ANN_PASSWORD)[5:] not in repr(payload)


def test_a_clean_password_logs_in_without_an_event(
    http: t.Any,
    oauth_client: t.Any,
    range_server: RangeServer,
    use_breach: t.Any,
    breaches: list[dict[str, t.Any]],
) -> None:
    range_server.breached(BOB_PASSWORD)
    verdicts = use_breach(checker(range_server, policy="block"))
    assert login(http, oauth_client).status_code == 200
    assert verdicts[0].subject == "user-1"
    assert breaches == []


def test_step_up_answers_mfa_required_and_the_second_factor_gets_in(
    app: t.Any,
    http: t.Any,
    make_client: t.Any,
    range_server: RangeServer,
    use_breach: t.Any,
) -> None:
    range_server.breached(ANN_PASSWORD)
    verdicts = use_breach(checker(range_server, policy="step_up"))
    codes: list[t.Any] = []
    ropc_of(app).mfa_verifier(lambda req: codes.append(req) or req.code == "123456")
    client = make_client("MFA app", grant_types=MFA_GRANTS)
    response = login(http, client)
    [verdict] = verdicts
    assert not verdict.is_success and verdict.needs_mfa
    assert verdict.error_code == "mfa_required"
    assert_oauth_error(response, 403, "mfa_required")
    token = response.get_json()["mfa_token"]
    done = send_otp(http, client, token, "123456")
    assert done.status_code == 200, done.get_data(as_text=True)
    # The validator's extra fields come with the tokens, after the factor.
    assert done.get_json()["display_name"] == "Ann"
    assert [req.subject for req in codes] == ["user-1"]
    # A password that is not breached logs in without the second factor.
    assert login(http, client, "bob").status_code == 200


@pytest.mark.parametrize(
    ("fail", "status"), [("open", 200), ("closed", 400)], ids=["open", "closed"]
)
def test_a_timeout_fails_as_configured_with_a_warning_without_the_hash(
    http: t.Any,
    oauth_client: t.Any,
    range_server: RangeServer,
    use_breach: t.Any,
    breaches: list[dict[str, t.Any]],
    caplog: pytest.LogCaptureFixture,
    fail: str,
    status: int,
) -> None:
    range_server.default = Answer(hold=threading.Event())
    use_breach(checker(range_server, policy="block", fail=fail, timeout=0.2))
    caplog.set_level(logging.DEBUG, logger="flask_ropc")
    response = login(http, oauth_client)
    assert response.status_code == status
    warnings = [r for r in caplog.records if "breached-password" in r.getMessage()]
    assert [w.levelno for w in warnings] == [logging.WARNING]
    assert f"fail='{fail}'" in warnings[0].getMessage()
    digest = sha1(ANN_PASSWORD)
    assert digest[:5] not in caplog.text and digest[5:] not in caplog.text
    if fail == "closed":
        assert_oauth_error(response, 400, "invalid_grant")
        assert [b["lookup_failed"] for b in breaches] == [True]
    else:
        assert breaches == []


def test_a_server_error_fails_open_by_default(
    http: t.Any, oauth_client: t.Any, range_server: RangeServer, use_breach: t.Any
) -> None:
    range_server.default = Answer(status=502, body="bad gateway")
    use_breach(checker(range_server))
    assert login(http, oauth_client).status_code == 200


def test_an_outage_logs_one_warning_a_minute(
    http: t.Any,
    oauth_client: t.Any,
    use_breach: t.Any,
    caplog: pytest.LogCaptureFixture,
) -> None:
    def down(url: str, headers: t.Mapping[str, str], timeout: float) -> str:
        raise ConnectionRefusedError(f"cannot reach {url}")

    clock = Clock()
    clock.freeze()
    use_breach(BreachCheck(transport=down, clock=clock))
    caplog.set_level(logging.WARNING, logger="flask_ropc")
    for _ in range(3):
        assert login(http, oauth_client).status_code == 200
    clock.advance(60)
    assert login(http, oauth_client).status_code == 200
    warnings = [
        r.getMessage() for r in caplog.records if "breached-password" in r.getMessage()
    ]
    assert len(warnings) == 2
    assert "(ConnectionRefusedError)" in warnings[0]
    assert "more since" not in warnings[0]
    assert warnings[1].endswith("(2 more since the last warning)")
    assert "/range/" not in caplog.text  # the transport's message is not logged


def test_fewer_appearances_than_min_count_are_not_a_breach(
    http: t.Any,
    oauth_client: t.Any,
    range_server: RangeServer,
    use_breach: t.Any,
    breaches: list[dict[str, t.Any]],
) -> None:
    range_server.breached(ANN_PASSWORD, count=42)
    use_breach(checker(range_server, min_count=43))
    assert login(http, oauth_client).status_code == 200
    assert breaches == []


def test_an_unknown_policy_is_refused_up_front() -> None:
    """Not at the first breached login: BreachCheck() itself says so."""
    assert BreachCheck(policy="step_up").policy == "step_up"
    with pytest.raises(ConfigurationError, match="block, step_up, flag"):
        BreachCheck(policy="stepup")
