"""Property-based fuzzing of every endpoint with Hypothesis.

Each test throws generated requests at one endpoint of a real app (SQLite,
and PostgreSQL when ``ROPC_TEST_DATABASE_URL`` is set): near-valid requests
with a few mutations, arbitrary form bodies (repeated keys, empty, huge and
NUL values, invalid UTF-8, invalid percent-encoding), arbitrary content
types, methods, query strings and ``Authorization`` headers (bad base64, no
colon, latin-1, enormous), truncated or tampered real tokens, forged JWTs
whose JOSE header is any JSON value (a string, an array, ...) or an object
with members of any type and kids of any Unicode (lone surrogates, NUL, very
long), and Host and X-Forwarded-Host values from an RFC 3986 / IDNA grammar
with invalid variants (labels over 63 characters, empty labels, bad
Punycode, bad IPv6 literals, bad characters and ports). The apps run behind
werkzeug's ``ProxyFix``, as deployed. Token and protected requests may carry a
``DPoP`` header: a valid proof, a mutated one, claims of any JSON type, a JWS
with a hostile JOSE header, or any text. Every answer must keep the promises of
the README:

* no 5xx but a designed 503 ``temporarily_unavailable``;
* a JSON body; for errors an object whose ``error`` comes from the
  endpoint's registry (for the token endpoint RFC 6749 §5.2's codes,
  ``slow_down``, ``server_error`` and ``temporarily_unavailable``: the
  OpenAPI document's ``TokenErrorCode``; RFC 6750's codes or ``{}`` for
  bearer errors), with an ``error_description`` in RFC 6749's character set;
* ``Cache-Control: no-store`` on the POST endpoints, ``Allow`` on 405,
  ``WWW-Authenticate`` on 401, ``Retry-After`` on 429;
* a rejected request writes nothing: every client, token and key row is
  the same before and after (throttling counters excepted, by design; and a
  reused refresh token may only revoke its family, RFC 9700 §4.14.2);
  introspection, the JWKS and bearer checks never write at all;
* no submitted password, client secret, credential or token comes back in
  the body or the headers;
* a host Werkzeug cannot use gets 400 ``invalid_request`` from every route
  we own, and only such a host does; without ``ROPC_ISSUER`` a usable host
  names the issuer of the discovery document and the tokens, and one
  Werkzeug drops is refused too.

``ROPC_FUZZ_EXAMPLES`` (default 200) sets the examples per test and backend.
One app per backend serves the whole module, so that examples cost a request
rather than an app.

Bugs found by fuzzing (HTML 405 pages for methods Flask does not list, a 500
from discovery during a database outage) are kept at the end as regression
tests; those of issue 13 (JOSE headers, kids, hosts) in
``test_hostile_requests.py``. Requests go through ``conftest.wsgi_open``:
the test client itself raises on some hosts.
"""

from __future__ import annotations

import base64
import contextlib
import dataclasses
import json
import os
import re
import typing as t
from collections.abc import Iterator
from urllib.parse import urlencode

import flask
import pytest
import sqlalchemy as sa
from hypothesis import HealthCheck
from hypothesis import event
from hypothesis import given
from hypothesis import settings
from hypothesis import strategies as st
from werkzeug.middleware.proxy_fix import ProxyFix
from werkzeug.urls import iri_to_uri

from flask_ropc import ROPC
from flask_ropc.views import BODY_ONLY_PARAMETERS

from conftest import BACKENDS
from conftest import SECRET_KEY
from conftest import USERS
from conftest import basic_auth
from conftest import bearer
from conftest import build_app
from conftest import dispose_app
from conftest import new_pg_database
from conftest import password_form
from conftest import ropc_of
from conftest import wsgi_open
from dpop_proofs import DPoPKey
from mfa_helpers import MFA_GRANTS
from mfa_helpers import MFA_OTP
from mfa_helpers import MFA_RECOVERY
from mfa_helpers import enable_mfa
from mfa_helpers import otp_now

FUZZ = settings(
    max_examples=int(os.environ.get("ROPC_FUZZ_EXAMPLES", "200")),
    deadline=None,
    suppress_health_check=[
        HealthCheck.function_scoped_fixture,
        HealthCheck.too_slow,
        HealthCheck.data_too_large,
    ],
)

FORM = "application/x-www-form-urlencoded"
#: The tables a rejected request must leave as they were.
SNAPSHOT_TABLES = (
    "ropc_clients",
    "ropc_access_tokens",
    "ropc_refresh_tokens",
    "ropc_signing_keys",
)
ISSUER = "https://auth.example.com"
TOKEN_ERRORS = {
    # RFC 6749 §5.2
    "invalid_request",
    "invalid_client",
    "invalid_grant",
    "unauthorized_client",
    "unsupported_grant_type",
    "invalid_scope",
    # RFC 8628 §3.5, for throttling
    "slow_down",
    # RFC 9449 §5, §8
    "invalid_dpop_proof",
    "use_dpop_nonce",
    # RFC 6749 §4.1.2.1, for failures on our side
    "server_error",
    "temporarily_unavailable",
}
CLIENT_ENDPOINT_ERRORS = {
    "invalid_request",
    "invalid_client",
    "server_error",
    "temporarily_unavailable",
}
BEARER_ERRORS = {"invalid_token", "insufficient_scope", "invalid_request"}
#: RFC 9449 §7.1 at a protected view.
DPOP_ERRORS = {"invalid_token", "invalid_dpop_proof", "use_dpop_nonce"}
# RFC 6749 §5.2: error_description is 1*( %x20-21 / %x23-5B / %x5D-7E ).
ERROR_DESCRIPTION = re.compile(r"[\x20\x21\x23-\x5b\x5d-\x7e]+")
PRIVATE_JWK_MEMBERS = {"d", "p", "q", "dp", "dq", "qi", "oth", "k"}

#: Generated secrets carry this mark, so that finding one in a response can
#: only mean it was echoed: a bare "password" occurs in error texts, and
#: Hypothesis draws string constants from our own source too.
MARK = "Zq7~Kp3!"


class Secret(str):
    """A submitted value that must never come back in a response."""


class TokenLike(Secret):
    """A real token or a variant of one. A new JWT shares its header with a
    truncated old one, so these are not looked for in token responses."""


# -- the app under fuzz ---------------------------------------------------------


@dataclasses.dataclass
class Client:
    client_id: str
    secret: str | None


@dataclasses.dataclass
class FuzzEnv:
    """One app per backend, its clients and a pool of real tokens."""

    app: flask.Flask
    http: t.Any
    confidential: Client  # Basic, password + refresh_token, scopes api profile
    post: Client  # client_secret_post
    public: Client  # no secret
    reference: Client  # Basic, reference access tokens
    resource_server: Client  # may introspect everyone's tokens
    #: The engine our tables live on (``ropc.engine``).
    engine: sa.Engine
    #: Our client, token and signing key tables, reflected from the database
    #: once (throttle counters excepted), for :func:`snapshot`.
    tables: list[sa.Table]
    #: Every access and refresh token issued so far.
    access_tokens: list[str] = dataclasses.field(default_factory=list)
    refresh_tokens: list[str] = dataclasses.field(default_factory=list)

    def issue(self, client: Client, **form: str) -> dict[str, t.Any]:
        """A password grant for ``ann`` that must succeed."""
        body = {
            "grant_type": "password",
            "username": "ann",
            "password": USERS["ann"][0],
            **form,
        }
        headers = {}
        if client is self.post:
            body |= {"client_id": client.client_id, "client_secret": client.secret}
        elif client is self.public:
            body["client_id"] = client.client_id
        else:
            headers = basic_auth(client.client_id, t.cast(str, client.secret))
        response = self.http.post("/oauth/token", data=body, headers=headers)
        assert response.status_code == 200, response.get_data(as_text=True)
        tokens: dict[str, t.Any] = response.get_json()
        self.access_tokens.append(tokens["access_token"])
        if "refresh_token" in tokens:
            self.refresh_tokens.append(tokens["refresh_token"])
        return tokens

    def fresh_pool(self) -> Pool:
        """New live tokens of every kind, for one test to fuzz with."""
        with self.app.app_context():
            # An earlier test's wrong passwords may have locked ann.
            ropc_of(self.app).unlock("ann")
        before = len(self.access_tokens), len(self.refresh_tokens)
        for _ in range(2):
            self.issue(self.confidential, scope="api offline_access")
        self.issue(self.reference)
        self.issue(self.public)
        self.issue(self.post, scope="profile")
        return Pool(
            access=self.access_tokens[before[0] :],
            refresh=self.refresh_tokens[before[1] :],
        )


@dataclasses.dataclass
class Pool:
    """Live tokens issued for one test."""

    access: list[str]
    refresh: list[str]

    @property
    def all(self) -> list[str]:
        return self.access + self.refresh


def fuzz_database(request: pytest.FixtureRequest, folder: t.Any) -> str:
    """An empty database for one module-scoped fixture, dropped after it.

    On PostgreSQL a database of its own, not the suite's: that one is
    emptied before each test that asks for ``database_uri``, but these
    fixtures live for the whole module, and they would start from whatever
    the last test of an earlier module left there (signing keys the
    fixture must be able to read) and see each other's rows.
    """
    if request.param == "sqlite":
        return f"sqlite:///{folder / 'fuzz.sqlite3'}"
    stack = contextlib.ExitStack()
    url = stack.enter_context(new_pg_database("ropc_fuzz_"))
    request.addfinalizer(stack.close)
    return url.render_as_string(hide_password=False)


def fuzz_app(
    request: pytest.FixtureRequest, tmp: t.Any, **config: t.Any
) -> flask.Flask:
    """An app for a module-scoped fuzz fixture, on a database of its own."""
    app = build_app(
        fuzz_database(request, tmp),
        str(tmp / "instance"),
        ROPC_ISSUER=ISSUER,
        # Generated usernames are many and come from one IP: keep the per-IP
        # budget out of the way. Per-username locks stay on (429 happens).
        ROPC_THROTTLE_IP_LIMIT=1_000_000_000,
        **config,
    )
    # Behind a proxy, as deployed: X-Forwarded-Host and -Proto count.
    app.wsgi_app = ProxyFix(app.wsgi_app, x_proto=1, x_host=1)
    return app


def client_maker(ropc: ROPC, **defaults: t.Any) -> t.Callable[..., Client]:
    """``client(name, **options)``: create a client (inside an app context),
    ``defaults`` and the scopes ``api profile`` filling what is not given."""

    def client(name: str, **options: t.Any) -> Client:
        for key, value in {"scopes": ["api", "profile"], **defaults}.items():
            options.setdefault(key, value)
        made, secret = ropc.clients.create(name, **options)
        return Client(made.client_id, secret)

    return client


@pytest.fixture(scope="module", params=BACKENDS)
def env(
    request: pytest.FixtureRequest,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[FuzzEnv]:
    app = fuzz_app(request, tmp_path_factory.mktemp("fuzz"), ROPC_OPENAPI_ENABLED=True)
    ropc = ropc_of(app)
    with app.app_context():
        engine = ropc.engine
        # The signer exists before any request, as after init-db: the GET
        # endpoints are fuzzed on the promise that they write nothing, in
        # whatever order the tests run.
        ropc.keys.current()
        client = client_maker(ropc)
        fuzz = FuzzEnv(
            app=app,
            http=app.test_client(),
            confidential=client(
                "Confidential", grant_types=["password", "refresh_token"]
            ),
            post=client("Post", auth_method="client_secret_post"),
            public=client("Public", auth_method="none", scopes=["api"]),
            reference=client("Reference", access_token_format="reference"),
            resource_server=client("API", scopes=[], is_resource_server=True),
            engine=engine,
            tables=[
                sa.Table(name, sa.MetaData(), autoload_with=engine)
                for name in SNAPSHOT_TABLES
            ],
        )
    yield fuzz
    dispose_app(app)


@pytest.fixture
def pool(env: FuzzEnv) -> Pool:
    """Fresh tokens for this test: earlier tests may have revoked theirs."""
    return env.fresh_pool()


def snapshot(env: FuzzEnv) -> dict[str, list[tuple[t.Any, ...]]]:
    """Every client, token and signing key row (throttle counters excepted),
    as stored."""
    result = {}
    with env.engine.connect() as conn:
        for table in env.tables:
            rows = conn.execute(sa.select(table).order_by(*table.primary_key)).all()
            result[table.name] = [tuple(row) for row in rows]
    return result


def without_revocations(
    rows: dict[str, list[tuple[t.Any, ...]]], env: FuzzEnv
) -> dict[str, list[tuple[t.Any, ...]]]:
    """``rows`` with every ``revoked_at`` blanked out."""
    result = dict(rows)
    for table in env.tables:
        if table.name not in ("ropc_access_tokens", "ropc_refresh_tokens"):
            continue
        index = list(table.columns.keys()).index("revoked_at")
        result[table.name] = [
            row[:index] + (None,) + row[index + 1 :] for row in rows[table.name]
        ]
    return result


# -- generated requests ---------------------------------------------------------


@dataclasses.dataclass
class Request:
    method: str
    path: str
    body: bytes = b""
    content_type: str | None = None
    headers: dict[str, str] = dataclasses.field(default_factory=dict)
    query: list[tuple[str, str]] = dataclasses.field(default_factory=list)
    #: The form as sent, when it was urlencoded (None for other bodies).
    form: list[tuple[str, str]] | None = None
    #: Submitted values that must not come back.
    secrets: list[Secret] = dataclasses.field(default_factory=list)
    #: What Werkzeug makes of the host sent (see :class:`HostCase`), or
    #: ``None`` for the default ``localhost``.
    host_kind: str | None = None

    def send(self, app: flask.Flask) -> t.Any:
        """Send the request as a server would (the test client itself raises
        on some hosts)."""
        kwargs: dict[str, t.Any] = {
            "method": self.method,
            "headers": self.headers,
            "query_string": urlencode(self.query),
            "data": self.body,
        }
        if self.content_type is not None:
            kwargs["content_type"] = self.content_type
        return wsgi_open(app, self.path, base_url="http://localhost", **kwargs)

    def form_value(self, name: str) -> str | None:
        """The value of a parameter sent exactly once, else ``None``."""
        values = [v for k, v in self.form or () if k == name]
        return values[0] if len(values) == 1 else None


def one_of_weighted(*pairs: tuple[int, st.SearchStrategy[t.Any]]) -> t.Any:
    """Draw from one of the strategies, each ``weight`` times as likely.

    (``st.one_of`` would drop a strategy listed twice, hence the index.)
    """
    choices = [s for weight, s in pairs for _ in range(weight)]
    return st.sampled_from(range(len(choices))).flatmap(lambda i: choices[i])


# Header values: latin-1 (what WSGI carries) without CR and LF, which no
# HTTP server passes on.
header_text = st.text(
    st.characters(codec="latin-1", exclude_characters="\r\n"), max_size=60
)
suffix_text = st.text(
    st.characters(codec="latin-1", exclude_characters="\r\n"), min_size=1, max_size=5
)
any_text = st.text(max_size=40)
huge_text = st.integers(200, 20_000).map(lambda n: "x" * n)
nasty_text = st.sampled_from(
    ["", " ", "\x00", "a\x00b", "%00", "\ufeff", "é", "\u202e", '"', "\\", "+", "\t"]
)
marked_secret = st.builds(
    lambda a, b: Secret(a + MARK + b),
    st.text(max_size=8),
    st.text(max_size=30) | st.integers(1000, 1100).map(lambda n: "p" * n),
)
#: Every method a client may send, including ones Flask knows nothing of.
ALL_METHODS = ["GET", "POST", "PUT", "PATCH", "DELETE", "OPTIONS", "HEAD", "TRACE"]
methods = st.sampled_from(["POST"] * 6 + ALL_METHODS + ["PROPFIND", "QUERY"])
content_types = one_of_weighted(
    (5, st.just(FORM)),
    (
        3,
        st.sampled_from(
            [
                FORM + "; charset=UTF-8",
                FORM + ";charset=latin-1",
                "APPLICATION/X-WWW-FORM-URLENCODED",
                "application/json",
                "text/plain",
                "multipart/form-data; boundary=xyz",
                "application/x-www-form-urlencoded-not",
                "",
            ]
        ),
    ),
    (1, header_text),
    (1, st.none()),
)
# BODY_ONLY_PARAMETERS is internal on purpose: the names the endpoints refuse
# in a query string, which no public API lists.
queries = one_of_weighted(
    (3, st.just([])),
    (
        1,
        st.lists(
            st.tuples(
                st.sampled_from(sorted(BODY_ONLY_PARAMETERS)) | any_text, any_text
            ),
            min_size=1,
            max_size=3,
        ),
    ),
)
NONE_JWS_HEADER = (
    base64.urlsafe_b64encode(b'{"alg":"none","typ":"at+jwt"}').decode().rstrip("=")
)


@st.composite
def mutated(draw: st.DrawFn, values: list[str]) -> TokenLike:
    """A real token truncated, extended, with a character or segment changed."""
    value = draw(st.sampled_from(values))
    kind = draw(st.sampled_from(["truncate", "extend", "flip", "segments", "case"]))
    if kind == "truncate":
        return TokenLike(value[: draw(st.integers(0, len(value) - 1))])
    if kind == "extend":
        return TokenLike(value + draw(suffix_text))
    if kind == "flip":
        i = draw(st.integers(0, len(value) - 1))
        # The choices must not depend on the value: a DPoP proof is made
        # afresh (new jti, iat) on every replay, and a choice list that
        # changed with it made Hypothesis's data generation inconsistent.
        char = draw(st.sampled_from("A_-.=+/0é\x00 "))
        if char == value[i]:
            char = "#"
        return TokenLike(value[:i] + char + value[i + 1 :])
    if kind == "segments" and value.count(".") == 2:
        head, payload, signature = value.split(".")
        parts = draw(
            st.sampled_from(
                [
                    [head, payload, ""],
                    [head, signature, payload],
                    [NONE_JWS_HEADER, payload, ""],
                    [head, payload + "A", signature],
                    [head, payload, signature[::-1]],
                    [head, payload],
                ]
            )
        )
        return TokenLike(".".join(parts))
    swapped = value.swapcase()
    return TokenLike(swapped if swapped != value else value + "x")


def token_values(pool: Pool) -> st.SearchStrategy[str]:
    """Values for a ``token`` or ``refresh_token`` parameter."""
    return one_of_weighted(
        (4, st.sampled_from(pool.all).map(TokenLike)),
        (4, mutated(pool.all)),
        (4, forged_jwts(pool)),
        (1, any_text),
        (1, nasty_text),
        (1, huge_text),
    )


Credentials = tuple[dict[str, str], list[tuple[str, str]], list[Secret]]


def basic_for(client_id: str, secret: str) -> Credentials:
    """An HTTP Basic header; the secret and the encoded credentials are secret."""
    header = basic_auth(client_id, secret)
    encoded = header["Authorization"].partition(" ")[2]
    return header, [], [Secret(secret), Secret(encoded)]


@st.composite
def credentials(draw: st.DrawFn, env: FuzzEnv, modes: list[str]) -> Credentials:
    """Client credentials: (headers, body pairs, secrets sent)."""
    mode = draw(st.sampled_from(modes))
    event(f"credentials: {mode}")
    conf = env.confidential
    secret = t.cast(str, conf.secret)
    if mode == "basic":
        return basic_for(conf.client_id, secret)
    if mode == "basic resource server":
        rs = env.resource_server
        return basic_for(rs.client_id, t.cast(str, rs.secret))
    if mode == "basic reference":
        ref = env.reference
        return basic_for(ref.client_id, t.cast(str, ref.secret))
    if mode == "basic wrong secret":
        return basic_for(conf.client_id, draw(marked_secret))
    if mode == "basic unknown client":
        return basic_for(draw(any_text | nasty_text), draw(marked_secret))
    if mode == "basic garbage":
        header = draw(
            one_of_weighted(
                (2, st.builds(lambda s: "Basic " + s, header_text)),
                (
                    1,
                    st.builds(
                        lambda raw: "Basic " + base64.b64encode(raw).decode(),
                        st.binary(max_size=40),
                    ),
                ),
                (1, st.sampled_from(["Basic", "Basic ", "basic  ", "BASIC ===="])),
                (1, st.integers(1, 20_000).map(lambda n: "Basic " + "QUFB" * n)),
                (1, header_text),
            )
        )
        return {"Authorization": header}, [], []
    if mode == "post":
        post_secret = Secret(t.cast(str, env.post.secret))
        pairs = [("client_id", env.post.client_id), ("client_secret", post_secret)]
        return {}, pairs, [post_secret]
    if mode == "post wrong secret":
        wrong = draw(marked_secret)
        return (
            {},
            [("client_id", env.post.client_id), ("client_secret", wrong)],
            [wrong],
        )
    if mode == "public":
        return {}, [("client_id", env.public.client_id)], []
    if mode == "public with secret":
        wrong = draw(marked_secret)
        pairs = [("client_id", env.public.client_id), ("client_secret", wrong)]
        return {}, pairs, [wrong]
    if mode == "basic and body secret":
        headers, _, sent = basic_for(conf.client_id, secret)
        wrong = draw(marked_secret)
        return headers, [("client_secret", wrong)], [*sent, wrong]
    if mode == "basic and other body id":
        headers, _, sent = basic_for(conf.client_id, secret)
        return headers, [("client_id", draw(any_text))], sent
    assert mode == "none"
    return {}, [], []


@st.composite
def form_requests(
    draw: st.DrawFn,
    env: FuzzEnv,
    path: str,
    fields: list[tuple[str, str]],
    credential_modes: list[str],
    names: list[str],
    values: st.SearchStrategy[str],
) -> Request:
    """A request to a POST endpoint built from a near-valid form.

    ``fields`` is the valid core; credentials are added, then up to three
    mutations (drop, repeat, empty, replace or add a field), then the body is
    encoded: urlencoded mostly, else raw bytes, invalid percent-encoding or
    an oversized body. Two in three requests are "clean" (POST, the right content
    type, urlencoded, no query string, at most one mutation), so that the
    checks behind the request checks are reached often too. One in four
    carries a Host or X-Forwarded-Host (:func:`host_headers`).
    """
    clean = draw(st.sampled_from([True, True, False]))
    event(f"clean: {clean}")
    headers, pairs, sent = draw(credentials(env, credential_modes))
    pairs = list(fields) + pairs
    mutations = st.sampled_from([0, 0, 0, 1]) if clean else st.integers(0, 3)
    for _ in range(draw(mutations)):
        op = draw(st.sampled_from(["drop", "repeat", "empty", "replace", "add"]))
        if op == "add" or not pairs:
            name = draw(st.sampled_from(names) | any_text)
            pairs.insert(draw(st.integers(0, len(pairs))), (name, draw(values)))
            continue
        i = draw(st.integers(0, len(pairs) - 1))
        if op == "drop":
            del pairs[i]
        elif op == "repeat":
            pairs.insert(i, (pairs[i][0], draw(st.just(pairs[i][1]) | values)))
        elif op == "empty":
            pairs[i] = (pairs[i][0], "")
        else:
            pairs[i] = (pairs[i][0], draw(values))
    encoding = "urlencoded"
    if not clean:
        encoding = draw(
            st.sampled_from(["urlencoded"] * 6 + ["raw", "bad percent", "oversized"])
        )
    event(f"encoding: {encoding}")
    form: list[tuple[str, str]] | None = None
    if encoding == "urlencoded":
        form = pairs
        body = urlencode(pairs).encode()
    elif encoding == "raw":
        body = draw(st.binary(max_size=300))
    elif encoding == "bad percent":
        # Broken escapes as parameters of their own (say "%zz=%ff"), so that
        # the form's own parameters still parse as sent.
        junk = ["%", "%z", "%zz", "%f", "%ff", "%c3%28", "%00", "%e2%82", "%%", "+"]
        form = pairs
        parts = [urlencode([pair]) for pair in pairs]
        for _ in range(draw(st.integers(1, 4))):
            piece = draw(st.sampled_from(junk))
            if draw(st.booleans()):
                piece += "=" + draw(st.sampled_from(junk))
            parts.insert(draw(st.integers(0, len(parts))), piece)
        body = "&".join(parts).encode()
    else:
        # Around ROPC_MAX_BODY_SIZE (16384): the first two are still accepted.
        size = draw(st.sampled_from([16_383, 16_384, 16_385, 20_000, 100_000]))
        prefix = urlencode(pairs).encode() + b"&pad="
        pad = "y" * max(size - len(prefix), 0)
        form = [*pairs, ("pad", pad)]
        body = prefix + pad.encode()
    sent += [v for _, v in pairs if isinstance(v, Secret)]
    host, host_kind = draw(host_headers())
    headers = {**headers, **host}
    if clean:
        return Request("POST", path, body, FORM, headers, [], form, sent, host_kind)
    return Request(
        method=draw(methods),
        path=path,
        body=body,
        content_type=draw(content_types),
        headers=headers,
        query=draw(queries),
        form=form,
        secrets=sent,
        host_kind=host_kind,
    )


# -- hosts ------------------------------------------------------------------------

#: What Werkzeug makes of a host, and so what our routes must answer:
#: "valid" (RFC 3986 / IDNA: served as usual), "unusable" (Werkzeug raises:
#: refused with invalid_request everywhere we answer), "dropped" (Werkzeug
#: treats it as absent: refused only where the issuer comes from the
#: request), "odd" (invalid by the RFCs but taken by Werkzeug: either).
HOST_KINDS = ("valid", "unusable", "dropped", "odd")
HOST_ERROR = "The Host (or X-Forwarded-Host) header is not a valid host."

#: Real IDNA labels (bücher, ☃, münchen, 日本, пример, ü) in their ACE form.
IDN_LABELS = [
    "xn--bcher-kva",
    "xn--n3h",
    "xn--mnchen-3ya",
    "xn--wgv71a",
    "xn--e1afmkfd",
]
#: ACE labels that are no valid Punycode.
BAD_ACE_LABELS = ["xn--a", "xn--ab", "xn--", "xn--zz-", "xn--1", "xn---", "XN--A"]


@dataclasses.dataclass(frozen=True)
class HostCase:
    value: str
    kind: str


ldh_label = st.from_regex(r"[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?", fullmatch=True).map(
    # "--" in positions 3 and 4 is reserved (RFC 5891 §4.2.3.1; "xn--" marks
    # IDNA labels): those come from IDN_LABELS and BAD_ACE_LABELS only.
    lambda label: "x" + label if label[2:4] == "--" else label
)
dns_label = one_of_weighted(
    (6, ldh_label),
    (2, st.sampled_from(IDN_LABELS)),
    (1, ldh_label.map(str.upper)),
)
reg_names = st.builds(
    lambda labels, dot: ".".join(labels) + dot,
    st.lists(dns_label, min_size=1, max_size=4),
    st.sampled_from([""] * 5 + ["."]),
)
ports = st.sampled_from([None, None, 443, 80]) | st.integers(1, 65535)


@st.composite
def valid_hosts(draw: st.DrawFn) -> HostCase:
    """A host by RFC 3986 §3.2.2 (a DNS name, IPv4, bracketed IPv6), with
    an optional port."""
    host = draw(
        one_of_weighted(
            (5, reg_names),
            (1, st.ip_addresses(v=4).map(str)),
            (1, st.ip_addresses(v=6).map(lambda a: f"[{a}]")),
        )
    )
    port = draw(ports)
    value = host if port is None else f"{host}:{port}"
    # RFC 1035 §2.3.4: 253 characters at most; Werkzeug takes longer ones.
    return HostCase(value, "valid" if len(host) <= 253 else "odd")


@st.composite
def hosts(draw: st.DrawFn) -> HostCase:
    """A valid host, or one broken in a known way."""
    if draw(st.integers(0, 2)) == 0:
        return t.cast(HostCase, draw(valid_hosts()))
    # Broken names are DNS names or IPv4 (one bracketed IPv6 with anything
    # added is no host at all to Werkzeug).
    name = draw(reg_names | st.ip_addresses(v=4).map(str))
    port = draw(ports)
    tail = "" if port is None else f":{port}"
    mutation = draw(
        st.sampled_from(
            ["long label", "empty label", "bad ace", "bad literal", "bad char"]
            + ["bad port", "unbracketed", "empty", "random ace", "hyphens"]
        )
    )
    event(f"host mutation: {mutation}")
    if mutation == "long label":
        label = "a" * draw(st.integers(64, 100))
        return HostCase(f"{label}.{name}{tail}", "unusable")
    if mutation == "empty label":
        broken = draw(st.sampled_from([f".{name}", f"a..{name}", f"{name}..b"]))
        return HostCase(broken + tail, "unusable")
    if mutation == "bad ace":
        return HostCase(
            f"{draw(st.sampled_from(BAD_ACE_LABELS))}.{name}{tail}", "unusable"
        )
    if mutation == "bad literal":
        literal = draw(
            st.sampled_from(["[1:2]", "[:::::]", "[1:2:3]", "[::1:2:3:4:5:6:7:8]"])
        )
        return HostCase(literal + tail, "unusable")
    if mutation == "bad char":
        # Inside the value, so that stripping by ProxyFix leaves it there.
        char = draw(
            st.sampled_from([" ", "_", "@", "/", "%", "\x00", "\t", "\x7f", "é", "*"])
        )
        return HostCase(f"{name}{char}x{tail}", "dropped")
    if mutation == "bad port":
        bad = draw(
            st.sampled_from([":0", ":65536", ":99999", ":08", ":", ":http", ":-1"])
        )
        return HostCase(name + bad, "dropped")
    if mutation == "unbracketed":
        return HostCase(
            draw(st.sampled_from(["::1", "[::1", "::1]", "[fe80::1%eth0]"])), "dropped"
        )
    if mutation == "empty":
        return HostCase("", "dropped")
    if mutation == "random ace":
        return HostCase(f"xn--{draw(ldh_label)}.{name}{tail}", "odd")
    return HostCase(f"-{name}-{tail}", "odd")


@st.composite
def host_headers(
    draw: st.DrawFn, always: bool = False
) -> tuple[dict[str, str], str | None]:
    """Host and X-Forwarded-Host headers (in one request in four unless
    ``always``), and the kind of the host Werkzeug ends up with (``None``:
    the default ``localhost``).

    The app runs behind ProxyFix(x_host=1): a non-empty X-Forwarded-Host
    wins, and of a list the last value counts.
    """
    if not always and draw(st.integers(0, 3)) != 0:
        return {}, None
    headers: dict[str, str] = {
        "X-Forwarded-Proto": draw(st.sampled_from(["https"] * 3 + ["http"]))
    }
    kind = None
    if draw(st.booleans()):
        host = draw(hosts())
        headers["Host"], kind = host.value, host.kind
    if draw(st.booleans()) or kind is None:
        forwarded = draw(hosts())
        if forwarded.value.strip():
            before = draw(st.sampled_from(["", "proxy.internal, ", "xn--a, "]))
            headers["X-Forwarded-Host"] = before + forwarded.value
            kind = forwarded.kind
    return headers, kind or "valid"


# -- forged JWTs ------------------------------------------------------------------

#: Characters of every category, lone surrogates and NUL included: JSON
#: escapes them all (``"\ud800"``), so a token header can carry any.
every_char = one_of_weighted(
    (5, st.characters(exclude_categories=())),
    (2, st.characters(min_codepoint=0xD800, max_codepoint=0xDFFF)),
    (1, st.sampled_from(["\x00", "\x7f", "\u200b", "\ufeff", "\uffff"])),
)
every_text = st.text(every_char, max_size=20)
json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=False, allow_infinity=False)
    | every_text,
    lambda children: (
        st.lists(children, max_size=3)
        | st.dictionaries(every_text, children, max_size=3)
    ),
    max_leaves=6,
)


def b64url_json(value: t.Any) -> str:
    raw = json.dumps(value).encode()  # ensure_ascii: surrogates as \ud800
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


#: Key ids no database can be asked about: one lone surrogate (SQLite and
#: PostgreSQL cannot encode it) or NUL (PostgreSQL refuses it) among other
#: characters.
hostile_kids = st.builds(
    lambda before, char, after: before + char + after,
    st.text(st.characters(exclude_categories=()), max_size=20),
    one_of_weighted(
        (1, st.just("\x00")),
        (1, st.characters(min_codepoint=0xD800, max_codepoint=0xDFFF)),
    ),
    st.text(st.characters(exclude_categories=()), max_size=20),
)


@st.composite
def jose_headers(draw: st.DrawFn, kids: list[str]) -> t.Any:
    """A JOSE header: any JSON value but an object (a third of them), or an
    object whose ``typ``, ``alg``, ``kid`` and other members are mostly
    right (so that the checks behind them are reached) and else of any
    JSON type, with kids of any Unicode."""
    if draw(st.integers(0, 2)) == 0:
        # A string, array, number, null, ... joserfc only asks whether
        # "alg" is `in` the header, so strings and arrays holding it get by.
        event("JOSE header: not an object")
        return draw(
            one_of_weighted(
                (2, st.builds(lambda a, b: f"{a}alg{b}", every_text, every_text)),
                (
                    2,
                    st.lists(json_values, max_size=3).flatmap(
                        lambda items: st.permutations([*items, "alg"])
                    ),
                ),
                (1, json_values),
            )
        )
    header: dict[str, t.Any] = {}
    members = {
        "typ": st.sampled_from(["at+jwt"] * 3 + ["application/at+jwt", "JWT"]),
        "alg": st.sampled_from(["ES256", "RS256", "EdDSA"] * 2 + ["none", "HS256"]),
        "kid": one_of_weighted(
            (2, st.sampled_from(kids)),
            (2, every_text),
            (3, hostile_kids),
            (1, st.integers(65, 5000).map(lambda n: "k" * n)),
        ),
    }
    for name, right in members.items():
        choice = draw(st.sampled_from(["right"] * 8 + ["any", "missing"]))
        if choice != "missing":
            header[name] = draw(right if choice == "right" else json_values)
    for name in draw(
        st.lists(
            st.sampled_from(["crit", "b64", "jku", "jwk", "x5c", "cty", "zip"]),
            max_size=2,
        )
    ):
        header[name] = draw(json_values)
    kid = header.get("kid")
    if isinstance(kid, str) and not (kid.isprintable() and len(kid) <= 64):
        event("JOSE header: a kid that cannot be ours")
    return header


@st.composite
def forged_jwts(draw: st.DrawFn, pool: Pool) -> TokenLike:
    """A compact JWS with a hostile header, then a real, empty, any-JSON
    or undecodable payload, and a real, empty or junk signature."""
    real = [token.split(".") for token in pool.access if token.count(".") == 2]
    kids = [
        json.loads(base64.urlsafe_b64decode(h + "==")).get("kid") for h, _, _ in real
    ]
    _, payload, signature = draw(st.sampled_from(real))
    header = b64url_json(draw(jose_headers([k for k in kids if isinstance(k, str)])))
    payload = draw(
        st.sampled_from([payload, "", "e30", "bnVsbA", "!!"])
        | json_values.map(b64url_json)
    )
    signature = draw(
        st.sampled_from([signature, "", "AAAA"])
        | st.from_regex(r"[A-Za-z0-9_-]{0,90}", fullmatch=True)
    )
    return TokenLike(f"{header}.{payload}.{signature}")


#: The DPoP key of every generated proof (one: generating keys is slow).
DPOP_KEY = DPoPKey()


@st.composite
def dpop_headers(
    draw: st.DrawFn, method: str, url: str, token: str | None = None
) -> dict[str, str]:
    """A ``DPoP`` header, or none: a valid proof for the request, a mutated
    one, one with claims of any JSON type, a JWS with a hostile JOSE header,
    or any text."""
    kind = draw(
        st.sampled_from(
            ["none"] * 6 + ["valid"] * 2 + ["mutated", "claims", "forged", "text"]
        )
    )
    event(f"dpop: {kind}")
    if kind == "none":
        return {}
    if kind == "valid":
        return {"DPoP": DPOP_KEY.proof(method, url, token=token)}
    if kind == "mutated":
        return {"DPoP": str(draw(mutated([DPOP_KEY.proof(method, url, token=token)])))}
    if kind == "claims":
        name = draw(st.sampled_from(["jti", "htm", "htu", "iat", "ath", "nonce"]))
        claims = {name: draw(json_values)}
        return {"DPoP": DPOP_KEY.proof(method, url, token=token, claims=claims)}
    if kind == "forged":
        header = b64url_json(draw(jose_headers(["dpop-key"])))
        payload = b64url_json(draw(json_values))
        return {"DPoP": f"{header}.{payload}.{draw(st.sampled_from(['', 'AAAA']))}"}
    return {"DPoP": draw(header_text)}


# -- invariants -----------------------------------------------------------------


def assert_json_error(body: t.Any, registry: set[str]) -> str:
    """Check an error body; return its code."""
    assert isinstance(body, dict), body
    assert body.get("error") in registry, body
    description = body.get("error_description")
    if description is not None:
        assert ERROR_DESCRIPTION.fullmatch(description), description
    return t.cast(str, body["error"])


def parse_body(request: Request, response: t.Any) -> t.Any:
    """The JSON body (``None`` for HEAD), after checking the content type."""
    assert response.mimetype == "application/json", (
        response.status_code,
        response.headers,
        response.get_data()[:200],
    )
    if request.method == "HEAD":
        assert response.get_data() == b""
        return None
    return json.loads(response.get_data(as_text=True))


def assert_not_echoed(response: t.Any, values: list[Secret]) -> None:
    """No value in ``values`` occurs in the body or the headers."""
    text = response.get_data().decode("utf-8", "replace")
    headers = "\n".join(f"{k}: {v}" for k, v in response.headers.items())
    issued = response.status_code == 200 and "access_token" in text
    for value in values:
        if len(value) < 8 or (issued and isinstance(value, TokenLike)):
            continue
        assert value not in text, f"{value!r} echoed in the body"
        assert value not in headers, f"{value!r} echoed in a header"
        # JSON escapes non-ASCII and control characters: look for that too.
        escaped = json.dumps(value)[1:-1]
        assert escaped not in text, f"{value!r} echoed JSON-escaped in the body"


def assert_host_answer(request: Request, response: t.Any, body: t.Any) -> None:
    """A host Werkzeug cannot use is refused with invalid_request, and only
    such a host (this app has ROPC_ISSUER: one Werkzeug drops is fine)."""
    kind = request.host_kind
    event(f"host: {kind}")
    if kind == "unusable":
        assert response.status_code == 400, (request.headers, response.get_data())
        if body is not None:
            assert body == {"error": "invalid_request", "error_description": HOST_ERROR}
    elif kind != "odd" and isinstance(body, dict):
        assert body.get("error_description") != HOST_ERROR, request.headers


Rows = dict[str, list[tuple[t.Any, ...]]]


def check_form_endpoint(
    env: FuzzEnv,
    request: Request,
    registry: set[str],
    *,
    writes_on_success: bool,
    writes: t.Callable[[Request, int, t.Any, Rows, Rows], None] | None = None,
) -> t.Any:
    """Send ``request`` to a POST endpoint and check every invariant."""
    before = snapshot(env)
    response = request.send(env.app)
    after = snapshot(env)
    status = response.status_code
    event(f"status: {status}")
    assert status < 500 or status == 503, response.get_data()[:300]
    assert response.headers.get("Cache-Control") == "no-store"
    body = parse_body(request, response)
    assert_host_answer(request, response, body)
    if status == 405:
        assert response.headers.get("Allow") == "POST"
    if status == 401:
        assert response.headers.get("WWW-Authenticate", "").startswith("Basic ")
    if status == 429:
        assert response.headers.get("Retry-After", "").isdigit()
    if status >= 400 and body is not None:
        error = assert_json_error(body, registry)
        event(f"error: {error}")
        if status == 503:
            assert error == "temporarily_unavailable"
    if writes is not None:
        writes(request, status, body, before, after)
    elif status != 200 or not writes_on_success:
        if reuses_a_refresh_token(env, request):
            # RFC 9700 §4.14.2: a replayed refresh token revokes its family,
            # and nothing else changes.
            assert without_revocations(after, env) == without_revocations(before, env)
        else:
            assert after == before, f"a {status} answer changed the database"
    assert_not_echoed(response, request.secrets)
    return body


def reuses_a_refresh_token(env: FuzzEnv, request: Request) -> bool:
    return (
        request.path.endswith("/token")
        and request.form_value("grant_type") == "refresh_token"
        and request.form_value("refresh_token") in env.refresh_tokens
    )


# -- the token endpoint ---------------------------------------------------------

TOKEN_CREDENTIALS = [
    *["basic"] * 6,
    *["post"] * 2,
    *["public"] * 2,
    "basic wrong secret",
    "basic unknown client",
    "basic garbage",
    "post wrong secret",
    "public with secret",
    "basic and body secret",
    "basic and other body id",
    "none",
]
SCOPES = ["api", "profile", "api profile", "offline_access", "api offline_access"]


ACR_VALUES = [
    "urn:flask-ropc:acr:pwd",
    "urn:flask-ropc:acr:mfa",
    "urn:flask-ropc:acr:mfa urn:made:up",
    "urn:made:up",
    "",
    " ",
]
MAX_AGES = ["0", "1", "300", "-1", "01", "9999999999", "99999999999", "1.5", "", "١"]


@st.composite
def step_up_fields(draw: st.DrawFn) -> list[tuple[str, str]]:
    """``acr_values`` and ``max_age`` (our step-up extension), each one time
    in four: real values, near misses and any text."""
    fields = []
    acr = draw(
        one_of_weighted((6, st.none()), (2, st.sampled_from(ACR_VALUES)), (1, any_text))
    )
    if acr is not None:
        fields.append(("acr_values", acr))
    age = draw(
        one_of_weighted((6, st.none()), (2, st.sampled_from(MAX_AGES)), (1, any_text))
    )
    if age is not None:
        fields.append(("max_age", age))
    return fields


@st.composite
def token_requests(draw: st.DrawFn, env: FuzzEnv, pool: Pool) -> Request:
    grant = draw(st.sampled_from(["password"] * 5 + ["refresh_token", "other"]))
    event(f"grant: {grant}")
    fields: list[tuple[str, str]]
    if grant == "password":
        username = draw(
            one_of_weighted(
                (3, st.sampled_from(sorted(USERS))),
                (2, any_text),
                (1, nasty_text),
                (1, huge_text),
            )
        )
        right = Secret(USERS[username][0]) if username in USERS else None
        password = draw(
            one_of_weighted(
                (3, st.just(right) if right else marked_secret),
                (2, marked_secret),
                (1, nasty_text),
            )
        )
        fields = [
            ("grant_type", "password"),
            ("username", username),
            ("password", password),
        ]
        if password == right:
            # A locked username would hide the success path: start afresh.
            with env.app.app_context():
                ropc_of(env.app).unlock(username)
    elif grant == "refresh_token":
        fields = [
            ("grant_type", "refresh_token"),
            ("refresh_token", draw(token_values(pool))),
        ]
    else:
        other = draw(any_text | nasty_text | st.just("client_credentials"))
        fields = [("grant_type", other)]
    scope = draw(
        one_of_weighted(
            (3, st.none()),
            (3, st.sampled_from(SCOPES)),
            (1, st.sampled_from(["admin", "", "  api  ", 'a"b', "api\x00", "é"])),
            (1, any_text),
        )
    )
    if scope is not None:
        fields.append(("scope", scope))
    fields += draw(step_up_fields())
    names = ["grant_type", "username", "password", "scope", "refresh_token"]
    names += ["client_id", "client_secret", "token"]
    values = one_of_weighted(
        (2, any_text), (1, nasty_text), (1, huge_text), (1, marked_secret)
    )
    return t.cast(
        Request,
        draw(
            form_requests(env, "/oauth/token", fields, TOKEN_CREDENTIALS, names, values)
        ),
    )


@FUZZ
@given(data=st.data())
def test_token_endpoint(env: FuzzEnv, pool: Pool, data: st.DataObject) -> None:
    request = data.draw(token_requests(env, pool), label="request")
    proof = data.draw(dpop_headers("POST", f"{ISSUER}/oauth/token"), label="dpop")
    request.headers.update(proof)
    body = check_form_endpoint(env, request, TOKEN_ERRORS, writes_on_success=True)
    if body is not None and "access_token" in body:
        assert request.method == "POST"
        assert body["token_type"] in (("Bearer", "DPoP") if proof else ("Bearer",))
        env.access_tokens.append(body["access_token"])
        if "refresh_token" in body:
            env.refresh_tokens.append(body["refresh_token"])


# -- MFA continuation ---------------------------------------------------------------

MFA_SNAPSHOT_TABLES = (*SNAPSHOT_TABLES, "ropc_mfa_tokens", "ropc_mfa_steps")
#: Auth0's code, answered by the password step of a user who needs MFA.
MFA_TOKEN_ERRORS = TOKEN_ERRORS | {"mfa_required"}
#: "basic reference" is a client that may not use the MFA grants.
MFA_CREDENTIALS = [
    *["basic"] * 6,
    *["public"] * 2,
    "post",
    "basic reference",
    "basic wrong secret",
    "basic unknown client",
    "public with secret",
    "none",
]


@dataclasses.dataclass
class MfaEnv(FuzzEnv):
    """An app whose users need a second factor (``mfa_helpers``)."""

    factors: t.Any = None
    #: Live mfa_tokens minted so far, with their subject.
    mfa_tokens: list[tuple[str, str]] = dataclasses.field(default_factory=list)

    def mint(self, username: str) -> tuple[str, str]:
        """A fresh ``mfa_token`` of the confidential client for ``username``."""
        with self.app.app_context():
            ropc_of(self.app).unlock(username)
        password, subject = USERS[username]
        form = {"grant_type": "password", "username": username, "password": password}
        conf = self.confidential
        headers = basic_auth(conf.client_id, t.cast(str, conf.secret))
        response = self.http.post("/oauth/token", data=form, headers=headers)
        assert response.status_code == 403, response.get_data(as_text=True)
        minted = (response.get_json()["mfa_token"], subject)
        self.mfa_tokens.append(minted)
        return minted


@pytest.fixture(scope="module", params=BACKENDS)
def mfa_env(
    request: pytest.FixtureRequest,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[MfaEnv]:
    app = fuzz_app(
        request,
        tmp_path_factory.mktemp("fuzz-mfa"),
        # The per-user code budget would soon answer every code with 429.
        ROPC_MFA_FAILURE_LIMIT=1000,
    )
    factors = enable_mfa(app)
    ropc = ropc_of(app)
    with app.app_context():
        ropc.keys.current()
        client = client_maker(ropc, grant_types=MFA_GRANTS)
        fuzz = MfaEnv(
            app=app,
            http=app.test_client(),
            confidential=client("MFA confidential"),
            post=client("MFA post", auth_method="client_secret_post"),
            public=client("MFA public", auth_method="none", scopes=["api"]),
            reference=client("No MFA grant", grant_types=["password"]),
            resource_server=client("API", scopes=[], is_resource_server=True),
            engine=ropc.engine,
            tables=[
                sa.Table(name, sa.MetaData(), autoload_with=ropc.engine)
                for name in MFA_SNAPSHOT_TABLES
            ],
            factors=factors,
        )
    yield fuzz
    dispose_app(app)


@st.composite
def mfa_requests(draw: st.DrawFn, env: MfaEnv) -> Request:
    """The password step (with step-up fields) or an MFA continuation."""
    grant = draw(st.sampled_from(["otp"] * 3 + ["recovery"] * 2 + ["password"]))
    event(f"mfa grant: {grant}")
    username = draw(st.sampled_from(sorted(USERS)))
    if grant == "password":
        with env.app.app_context():
            ropc_of(env.app).unlock(username)
        fields = list(password_form(username).items()) + draw(step_up_fields())
    else:
        # Indices, not sampled_from: what is drawn must not depend on how
        # many tokens earlier examples minted (Hypothesis replays draws).
        fresh, index = draw(st.booleans()), draw(st.integers(0, 1000))
        if fresh or not env.mfa_tokens:
            token, subject = env.mint(username)
        else:
            token, subject = env.mfa_tokens[index % len(env.mfa_tokens)]
        value = draw(
            one_of_weighted(
                (4, st.just(TokenLike(token))),
                (2, mutated([token])),
                (1, any_text),
                (1, nasty_text),
                (1, huge_text),
            )
        )
        if grant == "otp":
            right = otp_now(env.app, subject)
            code = draw(
                one_of_weighted(
                    (3, st.just(right)),
                    (2, st.sampled_from(["000000", "12345", "1234567", right + " "])),
                    (1, any_text),
                    (1, nasty_text),
                    (1, huge_text),
                )
            )
            fields = [("grant_type", MFA_OTP), ("mfa_token", value), ("otp", code)]
        else:
            codes = sorted(env.factors.recovery.get(subject, ()))
            right_code = Secret(codes[index % len(codes)])
            code = draw(
                one_of_weighted(
                    (3, st.just(right_code)),
                    (2, marked_secret),
                    (1, nasty_text),
                    (1, huge_text),
                )
            )
            fields = [("grant_type", MFA_RECOVERY), ("mfa_token", value)]
            fields.append(("recovery_code", code))
    scope = draw(st.none() | st.sampled_from([*SCOPES, "admin", ""]))
    if scope is not None:
        fields.append(("scope", scope))
    names = ["grant_type", "mfa_token", "otp", "recovery_code", "scope"]
    names += ["acr_values", "max_age", "client_id", "client_secret"]
    values = one_of_weighted((2, any_text), (1, nasty_text), (1, marked_secret))
    return t.cast(
        Request,
        draw(
            form_requests(env, "/oauth/token", fields, MFA_CREDENTIALS, names, values)
        ),
    )


def mfa_writes(env: MfaEnv) -> t.Callable[[Request, int, t.Any, Rows, Rows], None]:
    """What an MFA-app answer may have written: a success anything; the
    ``mfa_required`` answer exactly one new ``mfa_token``; a wrong code one
    more failure on one ``mfa_token``; every other refusal nothing."""
    table = next(t for t in env.tables if t.name == "ropc_mfa_tokens")
    failures = list(table.columns.keys()).index("failures")

    def check(
        request: Request, status: int, body: t.Any, before: Rows, after: Rows
    ) -> None:
        if status == 200:
            return
        old, new = before.pop("ropc_mfa_tokens"), after.pop("ropc_mfa_tokens")
        assert after == before, f"a {status} answer changed the database"
        if isinstance(body, dict) and body.get("error") == "mfa_required":
            assert request.form_value("grant_type") == "password"
            assert body["mfa_token"] and body["mfa_requirements"]["challenge"]
            assert set(old) < set(new) and len(new) == len(old) + 1
            return
        if old == new:
            return
        assert (status, body and body.get("error")) == (400, "invalid_grant")
        assert request.form_value("grant_type") in (MFA_OTP, MFA_RECOVERY)
        changed = [(a, b) for a, b in zip(old, new, strict=True) if a != b]
        assert len(changed) == 1, changed
        ((was, now),) = changed
        assert now[failures] == was[failures] + 1
        assert (
            now[:failures] + now[failures + 1 :] == was[:failures] + was[failures + 1 :]
        )

    return check


@FUZZ
@given(data=st.data())
def test_mfa_grants(mfa_env: MfaEnv, data: st.DataObject) -> None:
    request = data.draw(mfa_requests(mfa_env), label="request")
    proof = data.draw(dpop_headers("POST", f"{ISSUER}/oauth/token"), label="dpop")
    request.headers.update(proof)
    body = check_form_endpoint(
        mfa_env,
        request,
        MFA_TOKEN_ERRORS,
        writes_on_success=True,
        writes=mfa_writes(mfa_env),
    )
    if body is not None and "access_token" in body:
        assert request.form_value("grant_type") in (MFA_OTP, MFA_RECOVERY)
        if "recovery_code" in body:
            assert request.form_value("grant_type") == MFA_RECOVERY


# -- introspection ----------------------------------------------------------------

INTROSPECTION_CREDENTIALS = [
    "basic",
    "basic",
    "basic resource server",
    "basic resource server",
    "basic reference",
    "basic wrong secret",
    "basic unknown client",
    "basic garbage",
    "post",
    "post wrong secret",
    "public",
    "basic and body secret",
    "none",
]
HINTS = ["access_token", "refresh_token", "id_token", "", "bogus"]


@st.composite
def token_param_requests(
    draw: st.DrawFn, env: FuzzEnv, pool: Pool, path: str, modes: list[str]
) -> Request:
    """A request to the introspection or revocation endpoint."""
    fields = [("token", draw(token_values(pool)))]
    hint = draw(st.none() | st.sampled_from(HINTS) | any_text)
    if hint is not None:
        fields.append(("token_type_hint", hint))
    names = ["token", "token_type_hint", "client_id", "client_secret"]
    values = one_of_weighted((2, token_values(pool)), (1, any_text), (1, marked_secret))
    return t.cast(Request, draw(form_requests(env, path, fields, modes, names, values)))


@FUZZ
@given(data=st.data())
def test_introspection_endpoint(env: FuzzEnv, pool: Pool, data: st.DataObject) -> None:
    request = data.draw(
        token_param_requests(env, pool, "/oauth/introspect", INTROSPECTION_CREDENTIALS),
        label="request",
    )
    body = check_form_endpoint(
        env, request, CLIENT_ENDPOINT_ERRORS, writes_on_success=False
    )
    if body is not None and "active" in body:
        assert request.method == "POST"
        event(f"active: {body['active']}")
        if body["active"]:
            token = request.form_value("token")
            assert token in env.access_tokens + env.refresh_tokens
            assert body["iss"] == ISSUER
        else:
            assert body == {"active": False}


# -- revocation -------------------------------------------------------------------

REVOCATION_CREDENTIALS = [
    "basic",
    "basic",
    "basic",
    "basic reference",
    "basic wrong secret",
    "basic unknown client",
    "basic garbage",
    "post",
    "post wrong secret",
    "public",
    "public",
    "public with secret",
    "basic and body secret",
    "none",
]


@FUZZ
@given(data=st.data())
def test_revocation_endpoint(env: FuzzEnv, pool: Pool, data: st.DataObject) -> None:
    request = data.draw(
        token_param_requests(env, pool, "/oauth/revoke", REVOCATION_CREDENTIALS),
        label="request",
    )
    body = check_form_endpoint(
        env, request, CLIENT_ENDPOINT_ERRORS, writes_on_success=True
    )
    if body is not None and "error" not in body:
        assert request.method == "POST"
        assert body == {}


# -- JWKS -------------------------------------------------------------------------


@st.composite
def get_requests(draw: st.DrawFn, path: str) -> Request:
    """A GET (or HEAD) with arbitrary headers, query string and body."""
    headers = {}
    if draw(st.booleans()):
        headers["Authorization"] = draw(
            header_text
            | st.builds(lambda s: "Bearer " + s, header_text)
            | st.integers(1, 20_000).map(lambda n: "Basic " + "QUFB" * n)
        )
    for name in ("Accept", "If-None-Match", "If-Modified-Since", "Accept-Encoding"):
        if draw(st.integers(0, 4)) == 0:
            headers[name] = draw(header_text)
    body = draw(st.just(b"") | st.binary(max_size=200))
    host, host_kind = draw(host_headers())
    return Request(
        method=draw(st.sampled_from(["GET"] * 5 + ["HEAD"])),
        path=path,
        body=body,
        content_type=draw(st.none() | content_types) if body else None,
        headers={**headers, **host},
        query=draw(st.lists(st.tuples(any_text, any_text), max_size=3)),
        host_kind=host_kind,
    )


def check_get_endpoint(
    env: FuzzEnv, request: Request, *, cacheable: bool = True
) -> t.Any:
    """Send a GET for a public document; its body, ``None`` for HEAD or when
    refused for the host. An error is never cached."""
    before = snapshot(env)
    response = request.send(env.app)
    assert snapshot(env) == before
    body = parse_body(request, response)
    assert_host_answer(request, response, body)
    odd_refused = request.host_kind == "odd" and response.status_code == 400
    if request.host_kind == "unusable" or odd_refused:
        assert response.headers["Cache-Control"] == "no-store"
        if body is not None:
            assert_json_error(body, {"invalid_request"})
        return None
    assert response.status_code == 200, response.get_data()[:300]
    if cacheable:
        cache = response.headers["Cache-Control"]
        assert re.fullmatch(r"public, max-age=\d+", cache)
    return body


@FUZZ
@given(data=st.data())
def test_jwks_endpoint(env: FuzzEnv, data: st.DataObject) -> None:
    request = data.draw(get_requests("/oauth/jwks"), label="request")
    body = check_get_endpoint(env, request)
    if body is not None:
        assert set(body) == {"keys"} and body["keys"]
        for key in body["keys"]:
            assert not PRIVATE_JWK_MEMBERS & set(key), key
            assert key["use"] == "sig"


DISCOVERY_PATHS = [
    "/.well-known/oauth-authorization-server",
    "/.well-known/openid-configuration",
]


@FUZZ
@given(data=st.data())
def test_discovery_documents(env: FuzzEnv, data: st.DataObject) -> None:
    path = data.draw(st.sampled_from([*DISCOVERY_PATHS, "/oauth/openapi.json"]))
    request = data.draw(get_requests(path), label="request")
    body = check_get_endpoint(env, request, cacheable=path in DISCOVERY_PATHS)
    if body is not None and path in DISCOVERY_PATHS:
        assert body["issuer"] == ISSUER
        assert body["token_endpoint"] == f"{ISSUER}/oauth/token"
    elif body is not None:
        assert body["servers"] == [{"url": f"{ISSUER}/oauth"}]


# -- require_token ----------------------------------------------------------------


@st.composite
def bearer_headers(draw: st.DrawFn, pool: Pool) -> dict[str, str]:
    """An Authorization header, mostly Bearer with a real or mangled token."""
    credential = draw(
        one_of_weighted(
            (4, st.sampled_from(pool.access).map(TokenLike)),
            (5, mutated(pool.access)),
            (6, forged_jwts(pool)),
            (1, st.sampled_from(pool.refresh).map(TokenLike)),
            (1, header_text),
            (1, st.integers(1, 20_000).map(lambda n: "e" * n)),
        )
    )
    scheme = draw(
        st.sampled_from(
            ["Bearer"] * 8 + ["bearer", "BEARER", "Basic", "MAC", "", "DPoP", "dpop"]
        )
    )
    layout = draw(
        st.sampled_from(
            ["{s} {c}"] * 8 + ["{s}  {c}", "{s}\t{c}", "{s}", "{c}", " {s} {c} "]
        )
    )
    if draw(st.integers(0, 9)) == 0:
        return {}
    return {"Authorization": layout.format(s=scheme, c=credential)}


@FUZZ
@given(data=st.data())
def test_require_token(env: FuzzEnv, pool: Pool, data: st.DataObject) -> None:
    headers = data.draw(bearer_headers(pool), label="headers")
    path = data.draw(st.sampled_from(["/api/me"] * 3 + ["/api/any", "/api/admin"]))
    token = headers.get("Authorization", "").strip().partition(" ")[2].strip()
    proof = data.draw(dpop_headers("GET", ISSUER + path, token), label="dpop")
    headers = {**headers, **proof}
    host, host_kind = data.draw(host_headers(), label="host")
    request = Request("GET", path, headers={**headers, **host}, host_kind=host_kind)
    before = snapshot(env)
    response = request.send(env.app)
    assert snapshot(env) == before
    status = response.status_code
    event(f"status: {status}")
    assert status in (200, 400, 401, 403), response.get_data()[:300]
    assert response.mimetype == "application/json"
    body = response.get_json()
    assert_host_answer(request, response, body)
    header = headers.get("Authorization", "")
    scheme, _, rest = header.strip().partition(" ")
    presented = rest.strip() if scheme.lower() == "bearer" else None
    as_dpop = scheme.lower() == "dpop"
    # Which tokens must open which doors: the JWTs and the reference token
    # have "api", the post client's has only "profile"; none has "admin".
    live_api = {token for token in pool.access if token != pool.access[-1]}
    if status == 200:
        assert presented in pool.access, header
        assert path != "/api/admin"
        event("accepted")
    else:
        assert response.headers.get("Cache-Control") == "no-store"
        challenges = response.headers.getlist("WWW-Authenticate")
        # Both schemes are accepted: both are challenged (RFC 9449 §7.1).
        assert {c.partition(" ")[0] for c in challenges} == {"Bearer", "DPoP"}
        challenge = challenges[0]
        if body == {}:
            assert status == 401 and challenge == "Bearer"
            assert presented is None and not as_dpop
        elif challenge.startswith("DPoP"):
            # A DPoP answer: the DPoP scheme, or a bound token as Bearer
            # (none in the pool is bound, so only the scheme).
            error = assert_json_error(body, DPOP_ERRORS)
            event(f"dpop error: {error}")
            assert status == 401 and as_dpop
        else:
            error = assert_json_error(body, BEARER_ERRORS)
            event(f"error: {error}")
            assert (status, error) in {
                (401, "invalid_token"),
                (403, "insufficient_scope"),
                (400, "invalid_request"),
            }
    if presented in live_api and host_kind in (None, "valid", "dropped"):
        assert status == (403 if path == "/api/admin" else 200)
    credential = TokenLike(rest.strip())
    sent = presented is not None or as_dpop
    assert_not_echoed(response, [credential] if sent else [])


# -- forged tokens ----------------------------------------------------------------


@FUZZ
@given(data=st.data())
def test_forged_tokens_are_refused(
    env: FuzzEnv, pool: Pool, data: st.DataObject
) -> None:
    """A JWT with a hostile header (any JSON type, kids of any Unicode) is
    invalid at a protected view and inactive at introspection: never a 500."""
    token = data.draw(forged_jwts(pool), label="token")
    before = snapshot(env)
    response = wsgi_open(env.app, "/api/any", headers=bearer(token))
    assert response.status_code == 401, response.get_data()[:300]
    assert response.get_json()["error"] == "invalid_token"
    assert response.headers["WWW-Authenticate"].startswith(
        'Bearer error="invalid_token"'
    )
    rs = env.resource_server
    response = wsgi_open(
        env.app,
        "/oauth/introspect",
        method="POST",
        data={"token": token},
        headers=basic_auth(rs.client_id, t.cast(str, rs.secret)),
    )
    assert response.status_code == 200, response.get_data()[:300]
    assert response.get_json() == {"active": False}
    assert snapshot(env) == before


# -- hosts, with the issuer taken from the request ----------------------------------


@dataclasses.dataclass
class OpenEnv:
    """An app without ROPC_ISSUER behind ProxyFix, and one client."""

    app: flask.Flask
    client: Client


@pytest.fixture(scope="module", params=BACKENDS)
def open_env(
    request: pytest.FixtureRequest,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[OpenEnv]:
    tmp = tmp_path_factory.mktemp("fuzz_hosts")
    uri = fuzz_database(request, tmp)
    app = build_app(uri, str(tmp / "instance"), ROPC_THROTTLE_IP_LIMIT=1_000_000_000)
    app.wsgi_app = ProxyFix(app.wsgi_app, x_proto=1, x_host=1)
    with app.app_context():
        made, secret = ropc_of(app).clients.create("Hosts", scopes=["api"])
    yield OpenEnv(app, Client(made.client_id, secret))
    dispose_app(app)


def expected_issuer(headers: dict[str, str]) -> str:
    """The base URL Werkzeug builds for a usable host, as a URI."""
    host = headers.get("X-Forwarded-Host", "").rpartition(", ")[2]
    host = host or headers.get("Host", "localhost")
    scheme = headers["X-Forwarded-Proto"]
    default = {"https": ":443", "http": ":80"}[scheme]
    return f"{scheme}://{host.lower().removesuffix(default)}"


@FUZZ
@given(data=st.data())
def test_hosts_when_the_issuer_comes_from_the_request(
    open_env: OpenEnv, data: st.DataObject
) -> None:
    """Without ROPC_ISSUER, a usable host names the issuer everywhere; one
    Werkzeug raises on or drops is refused everywhere."""
    app, client = open_env.app, open_env.client
    host, kind = data.draw(host_headers(always=True), label="host")
    route = data.draw(st.sampled_from(["discovery", "jwks", "token", "api"]))
    credentials = basic_auth(client.client_id, t.cast(str, client.secret))

    def token_request(headers: dict[str, str]) -> Request:
        body = urlencode(password_form()).encode()
        return Request("POST", "/oauth/token", body, FORM, {**headers, **credentials})

    if route == "discovery":
        request = Request("GET", DISCOVERY_PATHS[0], headers=host)
    elif route == "jwks":
        request = Request("GET", "/oauth/jwks", headers=host)
    elif route == "token":
        request = token_request(host)
    else:
        # A token issued at this very host, or (if refused there) at the
        # default one.
        issued = token_request(host).send(app)
        if issued.status_code != 200:
            issued = token_request({}).send(app)
        token = issued.get_json()["access_token"]
        request = Request("GET", "/api/me", headers={**host, **bearer(token)})
    response = request.send(app)
    event(f"{route}: {kind} {response.status_code}")
    assert response.status_code < 500, response.get_data()[:300]
    assert response.mimetype == "application/json"
    body = response.get_json()
    if kind in ("unusable", "dropped"):
        assert response.status_code == 400, (host, body)
        assert body == {"error": "invalid_request", "error_description": HOST_ERROR}
        if route == "api":
            challenge = response.headers["WWW-Authenticate"]
            assert challenge.startswith('Bearer error="invalid_request"')
        return
    if response.status_code >= 400:
        assert_json_error(body, TOKEN_ERRORS | BEARER_ERRORS)
    if kind != "valid":
        return
    secure = host["X-Forwarded-Proto"] == "https"
    if route == "discovery":
        assert response.status_code == 200
        assert iri_to_uri(body["issuer"]) == expected_issuer(request.headers)
    elif route == "jwks":
        assert response.status_code == 200 and body["keys"]
    elif route == "token" and secure:
        assert response.status_code == 200, body
        claims = json.loads(
            base64.urlsafe_b64decode(body["access_token"].split(".")[1] + "==")
        )
        assert iri_to_uri(claims["iss"]) == expected_issuer(request.headers)
    elif route == "api" and secure:
        assert response.status_code == 200, body
        assert body["sub"] == USERS["ann"][1]


# -- regressions: bugs found by fuzzing, not fixed yet ------------------------------


@pytest.fixture
def plain_http(tmp_path: t.Any) -> Iterator[t.Any]:
    """A test client of a small app of its own (these need no database)."""
    app = build_app(f"sqlite:///{tmp_path / 'db.sqlite3'}", str(tmp_path / "i"))
    yield app.test_client()
    dispose_app(app)


@pytest.mark.parametrize("method", ["TRACE", "PROPFIND", "QUERY"])
@pytest.mark.parametrize("path", ["/oauth/token", "/oauth/introspect", "/oauth/revoke"])
def test_regression_unlisted_method_is_json_405(
    plain_http: t.Any, path: str, method: str
) -> None:
    response = plain_http.open(path, method=method)
    assert response.status_code == 405
    assert response.mimetype == "application/json"
    assert response.get_json()["error"] == "invalid_request"


@pytest.mark.parametrize(
    "path", ["/oauth/jwks", "/.well-known/oauth-authorization-server"]
)
def test_regression_get_endpoints_answer_other_methods_with_json(
    plain_http: t.Any, path: str
) -> None:
    response = plain_http.post(path, data={"a": "b"})
    assert response.status_code == 405
    assert response.mimetype == "application/json"


def test_regression_discovery_database_outage_is_503(tmp_path: t.Any) -> None:
    app = flask.Flask("outage", instance_path=str(tmp_path))
    app.config["ROPC_DATABASE_URI"] = "postgresql+psycopg://postgres@127.0.0.1:1/x"
    app.config["ROPC_ISSUER"] = ISSUER
    app.config["SECRET_KEY"] = SECRET_KEY
    ROPC(app)
    response = app.test_client().get("/.well-known/oauth-authorization-server")
    assert response.status_code == 503
    assert response.mimetype == "application/json"
    assert response.get_json()["error"] == "temporarily_unavailable"


@pytest.mark.parametrize("app_config", [{"ROPC_ISSUER": ISSUER}], ids=["issuer"])
def test_regression_a_lone_surrogate_jti_is_no_500(
    http: t.Any, oauth_client: t.Any
) -> None:
    """Found by ``test_mfa_grants``: a proof whose JSON ``jti`` is ``"\\ud800"``
    made the replay key's encoding raise. It is a distinct jti, used once."""
    proof = DPoPKey().proof("POST", f"{ISSUER}/oauth/token", jti="\ud800")
    headers = {**basic_auth(*oauth_client), "DPoP": proof}
    first = http.post("/oauth/token", data=password_form(), headers=headers)
    assert first.status_code == 200, first.get_data(as_text=True)
    assert first.get_json()["token_type"] == "DPoP"
    again = http.post("/oauth/token", data=password_form(), headers=headers)
    assert again.status_code == 400
    assert again.get_json()["error"] == "invalid_dpop_proof"
