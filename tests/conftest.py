"""Shared fixtures: a fresh app per test on SQLite and, when configured, PostgreSQL.

Set ``ROPC_TEST_DATABASE_URL`` (e.g. ``postgresql+psycopg://postgres@127.0.0.1/test``)
to run every database test on PostgreSQL too. The suite creates its own
database there (``ropc_test_<random>``) and drops it at the end, so it never
touches existing data.
"""

from __future__ import annotations

import base64
import contextlib
import json
import os
import secrets
import shutil
import socket
import subprocess
import sys
import threading
import time
import typing as t
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import quote_plus

import flask
import pytest
import sqlalchemy as sa
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from joserfc.jwk import ECKey
from werkzeug.serving import make_server
from werkzeug.test import EnvironBuilder
from werkzeug.test import TestResponse
from werkzeug.test import run_wsgi_app
from werkzeug.wrappers import Request

from flask_ropc import ROPC
from flask_ropc import GrantResult
from flask_ropc import current_token

PG_URL = os.environ.get("ROPC_TEST_DATABASE_URL")

#: The repository, where ``examples/deploy`` runs from.
ROOT = Path(__file__).resolve().parent.parent

#: The users every test app knows: username -> (password, subject).
USERS = {
    "ann": ("correct horse battery staple", "user-1"),
    "bob": ("hunter2-but-longer", "user-2"),
}

BACKENDS = ["sqlite"] + (["postgresql"] if PG_URL else [])

#: The SECRET_KEY of every test app, from which the key that encrypts stored
#: signing keys is derived. One per run: apps on one database share it, as
#: the workers of one deployment do.
SECRET_KEY = secrets.token_urlsafe(32)


def _pg_admin_url() -> sa.URL:
    assert PG_URL is not None
    url = sa.make_url(PG_URL)
    if url.drivername == "postgresql":
        url = url.set(drivername="postgresql+psycopg")
    return url


@contextlib.contextmanager
def new_pg_database(prefix: str = "ropc_test_") -> Iterator[sa.URL]:
    """A new, empty PostgreSQL database (``<prefix><random>``), dropped after."""
    admin_url = _pg_admin_url()
    name = prefix + secrets.token_hex(6)
    admin = sa.create_engine(admin_url, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(sa.text(f'CREATE DATABASE "{name}"'))
    try:
        yield admin_url.set(database=name)
    finally:
        with admin.connect() as conn:
            conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


@pytest.fixture(scope="session")
def pg_database() -> Iterator[sa.URL | None]:
    """A PostgreSQL database of the suite's own, dropped when the run ends."""
    if not PG_URL:
        yield None
        return
    with new_pg_database() as url:
        yield url


#: Our tables, children first: the order in which rows can be deleted.
TABLES = (
    "ropc_mfa_tokens",
    "ropc_mfa_steps",
    "ropc_access_tokens",
    "ropc_refresh_tokens",
    "ropc_signing_keys",
    "ropc_throttle",
    "ropc_clients",
)


def _schema_app(uri: str, instance_path: str) -> tuple[flask.Flask, ROPC]:
    """An app whose only job is to create our tables on ``uri``: its signing
    key comes from configuration, so ``create_all`` stores no key row."""
    app = flask.Flask("ropc_schema", instance_path=instance_path)
    app.config.update(
        ROPC_DATABASE_URI=uri,
        ROPC_ISSUER="https://schema.test",
        ROPC_SIGNING_KEYS=ECKey.generate_key("P-256").as_dict(private=True),
    )
    return app, ROPC(app)


@pytest.fixture(scope="session")
def sqlite_template(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """An SQLite file with our tables, made once: each test gets a copy.

    Copying a file costs a fraction of creating the tables (21 DDL
    statements) for every test.
    """
    folder = tmp_path_factory.mktemp("schema")
    path = folder / "ropc.sqlite3"
    app, ropc = _schema_app(f"sqlite:///{path}", str(folder / "instance"))
    with app.app_context():
        ropc.create_all()
        with ropc.engine.connect() as conn:
            # Fold the write-ahead log into the file, so that the file alone
            # holds the schema.
            conn.exec_driver_sql("PRAGMA wal_checkpoint(TRUNCATE)")
        ropc.dispose()
    yield str(path)


@pytest.fixture(scope="session")
def pg_schema(pg_database: sa.URL | None) -> Iterator[t.Any]:
    """Our tables on the suite's PostgreSQL database, created once.

    Yields a function that makes the tables empty (and whole again, if a
    test dropped one): each test starts from empty tables instead of
    creating and dropping them.
    """
    if pg_database is None:
        yield None
        return
    uri = pg_database.render_as_string(hide_password=False)
    app, ropc = _schema_app(uri, "/nonexistent")
    with app.app_context():
        ropc.create_all()
        engine = ropc.engine

    def empty() -> None:
        with app.app_context():
            ropc.create_all()
        with engine.begin() as conn:
            for name in TABLES:
                conn.exec_driver_sql(f"DELETE FROM {name}")  # noqa: S608 (our names)

    yield empty
    with app.app_context():
        ropc.dispose()


@pytest.fixture(params=BACKENDS)
def database_uri(
    request: pytest.FixtureRequest,
    tmp_path: t.Any,
    pg_database: sa.URL | None,
    sqlite_template: str,
    pg_schema: t.Any,
) -> str:
    """The database of one test, with our tables, empty.

    SQLite: a copy of the session's template file. PostgreSQL: the suite's
    database, its tables emptied first.
    """
    if request.param == "sqlite":
        path = tmp_path / "ropc.sqlite3"
        shutil.copyfile(sqlite_template, path)
        return f"sqlite:///{path}"
    assert pg_database is not None
    pg_schema()
    return pg_database.render_as_string(hide_password=False)


class Validator:
    """A password validator over :data:`USERS` that records its calls."""

    def __init__(self) -> None:
        self.calls: list[t.Any] = []

    def __call__(self, req: t.Any) -> t.Any:
        self.calls.append(req)
        user = USERS.get(req.username)
        if user is None or user[0] != req.password:
            return None
        return GrantResult.success(
            subject=user[1],
            claims={"role": "member"},
            extra={"display_name": req.username.title()},
        )


class Clock:
    """The one test clock: real time plus an offset, or frozen.

    Every test app's extension gets one (``ROPC(clock=...)``), so every
    timestamp it takes (token lifetimes, counters, keys) follows it: use the
    ``clock`` fixture, or :func:`clock_of` for an app made by ``make_app``.
    """

    def __init__(self) -> None:
        #: The frozen base time, or ``None`` while it follows real time.
        self.frozen_at: float | None = None
        #: Seconds added to the base time.
        self.offset = 0.0

    def __call__(self) -> float:
        base = time.time() if self.frozen_at is None else self.frozen_at
        return base + self.offset

    def freeze(self) -> float:
        """Stop the clock at the current whole second; return that time."""
        self.frozen_at = float(int(time.time()))
        self.offset = 0.0
        return self.frozen_at

    def advance(self, seconds: float) -> None:
        """Move the clock ``seconds`` forward (backward if negative)."""
        self.offset += seconds

    def at(self, seconds: float) -> None:
        """Set the clock to ``seconds`` after its base time (see :meth:`freeze`)."""
        self.offset = seconds


def build_app(database_uri: str, instance_path: str, **config: t.Any) -> flask.Flask:
    """A small app protected by Flask-ROPC, with tables created."""
    app = flask.Flask("ropc_test_app", instance_path=instance_path)
    app.config.update(TESTING=True, ROPC_DATABASE_URI=database_uri)
    app.config.update({"SECRET_KEY": SECRET_KEY, **config})
    clock = Clock()
    ropc = ROPC(app, clock=clock)
    app.extensions["test_ropc"] = ropc
    app.extensions["test_clock"] = clock
    validator = Validator()
    ropc.password_validator(validator)
    app.extensions["test_validator"] = validator

    @app.get("/api/me")
    @ropc.require_token("api")
    def me() -> dict[str, t.Any]:
        return {
            "sub": current_token.subject,
            "client_id": current_token.client_id,
            "scopes": list(current_token.scopes),
            "claims": dict(current_token.claims),
        }

    @app.get("/api/any")
    @ropc.require_token
    def any_token() -> dict[str, t.Any]:
        return {"sub": current_token.subject}

    @app.get("/api/admin")
    @ropc.require_token("api admin")
    def admin() -> dict[str, t.Any]:
        return {"sub": current_token.subject}

    # Tables only, as a deployment that ran init-db before signing keys were
    # made up front: the first token (or JWKS request) still makes the key.
    schema, schema_ropc = _schema_app(database_uri, instance_path)
    with schema.app_context():
        schema_ropc.create_all()
        schema_ropc.dispose()
    return app


def ropc_of(app: flask.Flask) -> ROPC:
    """The :class:`ROPC` instance :func:`build_app` made for ``app``."""
    return t.cast(ROPC, app.extensions["test_ropc"])


def clock_of(app: flask.Flask) -> Clock:
    """The :class:`Clock` :func:`build_app` gave ``app``'s extension."""
    return t.cast(Clock, app.extensions["test_clock"])


def dispose_app(app: flask.Flask) -> None:
    """Close an app's engine (the end of every test app).

    Its rows stay: the next test gets a fresh copy of the SQLite template,
    or emptied PostgreSQL tables (see ``database_uri``).
    """
    with app.app_context():
        ropc_of(app).dispose()


@pytest.fixture
def app_config() -> dict[str, t.Any]:
    """Extra configuration for ``app``; override or parametrize it to vary."""
    return {}


@pytest.fixture
def app(
    database_uri: str, tmp_path: t.Any, app_config: dict[str, t.Any]
) -> Iterator[flask.Flask]:
    """A fresh app with empty tables on the test's database."""
    application = build_app(database_uri, str(tmp_path / "instance"), **app_config)
    yield application
    dispose_app(application)


@pytest.fixture
def make_app(
    database_uri: str, tmp_path: t.Any
) -> Iterator[t.Callable[..., flask.Flask]]:
    """Build more apps on the test's database: ``make_app(ROPC_X=...)``."""
    built: list[flask.Flask] = []

    def make(**config: t.Any) -> flask.Flask:
        application = build_app(
            database_uri, str(tmp_path / f"instance-{len(built)}"), **config
        )
        built.append(application)
        return application

    yield make
    for application in built:
        dispose_app(application)


@pytest.fixture
def http(app: flask.Flask) -> t.Any:
    """The Flask test client (named so as not to clash with OAuth clients)."""
    return app.test_client()


@pytest.fixture
def runner(app: flask.Flask) -> t.Any:
    """The Flask CLI runner."""
    return app.test_cli_runner()


@pytest.fixture
def ropc(app: flask.Flask) -> ROPC:
    """The test app's extension object, for its public admin API."""
    return ropc_of(app)


@pytest.fixture
def clock(app: flask.Flask) -> Clock:
    """The test app's clock: ``clock.advance(61)`` moves every timestamp."""
    return clock_of(app)


@pytest.fixture
def validator(app: flask.Flask) -> Validator:
    """The test app's validator, to count calls."""
    return t.cast(Validator, app.extensions["test_validator"])


class OAuthClient(t.NamedTuple):
    """A registered client's credentials."""

    client_id: str
    secret: str | None


@pytest.fixture
def make_client(app: flask.Flask) -> t.Callable[..., OAuthClient]:
    """Register a client: ``make_client(scopes=["api"], auth_method=...)``."""

    def make(name: str = "Test client", **options: t.Any) -> OAuthClient:
        options.setdefault("scopes", ["api", "profile"])
        with app.app_context():
            client, secret = ropc_of(app).clients.create(name, **options)
        return OAuthClient(client.client_id, secret)

    return make


@pytest.fixture
def oauth_client(make_client: t.Callable[..., OAuthClient]) -> OAuthClient:
    """A confidential client using HTTP Basic, scopes ``api profile``."""
    return make_client()


def basic_auth(client_id: str, secret: str) -> dict[str, str]:
    """An Authorization header per RFC 6749 §2.3.1 (form-encode, then base64)."""
    raw = f"{quote_plus(client_id)}:{quote_plus(secret)}".encode()
    return {"Authorization": "Basic " + base64.b64encode(raw).decode()}


def password_form(username: str = "ann", **extra: str) -> dict[str, str]:
    """A password-grant body for a known user."""
    form = {
        "grant_type": "password",
        "username": username,
        "password": USERS[username][0] if username in USERS else "x",
    }
    form.update(extra)
    return form


def issue_token(http: t.Any, client: t.Any, **form: str) -> str:
    """A fresh access token for ann; a public client sends its id in the body."""
    if client.secret is None:
        form.setdefault("client_id", client.client_id)
        response = http.post("/oauth/token", data=password_form(**form))
    else:
        response = http.post(
            "/oauth/token", data=password_form(**form), headers=basic_auth(*client)
        )
    assert response.status_code == 200, response.get_data(as_text=True)
    return str(response.get_json()["access_token"])


def kid_of(token: str) -> str:
    """The ``kid`` of a compact JWS, unverified."""
    header = token.split(".")[0]
    padded = header + "=" * (-len(header) % 4)
    return str(json.loads(base64.urlsafe_b64decode(padded))["kid"])


def new_client(app: flask.Flask) -> OAuthClient:
    """A confidential client ``App`` of scope ``api`` on ``app``."""
    with app.app_context():
        client, secret = ropc_of(app).clients.create("App", scopes=["api"])
    return OAuthClient(client.client_id, secret)


def app_token(app: flask.Flask, client: OAuthClient) -> str:
    """An access token for ann from ``app``'s token endpoint (Basic auth)."""
    response = app.test_client().post(
        "/oauth/token", data=password_form(), headers=basic_auth(*client)
    )
    assert response.status_code == 200, response.get_data(as_text=True)
    return str(response.json["access_token"])


#: A password no test user has.
WRONG_PASSWORD = "definitely not the password"


def password_attempt(
    http: t.Any,
    client: OAuthClient,
    username: str = "ann",
    password: str = WRONG_PASSWORD,
    *,
    ip: str | None = None,
    headers: dict[str, str] | None = None,
) -> t.Any:
    """One password-grant request (a wrong password by default); ``ip``
    sets the TCP peer address (the test client's default is 127.0.0.1)."""
    assert client.secret is not None
    kwargs: dict[str, t.Any] = {}
    if ip is not None:
        kwargs["environ_base"] = {"REMOTE_ADDR": ip}
    return http.post(
        "/oauth/token",
        data={"grant_type": "password", "username": username, "password": password},
        headers={**basic_auth(client.client_id, client.secret), **(headers or {})},
        **kwargs,
    )


def post_client_token(
    http: t.Any, make_client: t.Callable[..., OAuthClient]
) -> tuple[OAuthClient, dict[str, str], str]:
    """A ``client_secret_post`` client, its body credentials, and the access
    token for ann it got by sending them."""
    client = make_client(auth_method="client_secret_post")
    assert client.secret is not None
    credentials = {"client_id": client.client_id, "client_secret": client.secret}
    issued = http.post("/oauth/token", data=password_form(**credentials))
    return client, credentials, str(issued.get_json()["access_token"])


def post_as(http: t.Any, url: str, client: t.Any, data: dict[str, str]) -> t.Any:
    """POST ``data`` as ``client``: HTTP Basic, or ``client_id`` in the body
    for a public client (no secret)."""
    if client.secret is None:
        return http.post(url, data={"client_id": client.client_id, **data})
    return http.post(url, data=data, headers=basic_auth(*client))


def login(
    http: t.Any,
    client: t.Any,
    username: str = "ann",
    password: str | None = None,
    **form: str,
) -> t.Any:
    """A password-grant request as ``client``; the response, whatever it is.

    ``password`` defaults to the user's right one (``"x"`` for an unknown
    user); ``form`` adds or overrides fields (``scope="api offline_access"``).
    """
    data = password_form(username, **form)
    if password is not None:
        data["password"] = password
    return post_as(http, "/oauth/token", client, data)


def wsgi_open(
    app: t.Any, path: str = "/", base_url: str = "https://localhost", **kwargs: t.Any
) -> TestResponse:
    """One request straight to the WSGI ``app``, as a server would make it.

    For requests with a Host header Werkzeug cannot decode: the test client
    rebuilds every request's URL afterwards, for its cookie jar, and raises
    on such a host itself. ``kwargs`` are ``EnvironBuilder``'s (``method``,
    ``headers``, ``data``...); the client address is 127.0.0.1, as there.
    """
    kwargs.setdefault("environ_base", {"REMOTE_ADDR": "127.0.0.1"})
    builder = EnvironBuilder(path=path, base_url=base_url, **kwargs)
    try:
        environ = builder.get_environ()
    finally:
        builder.close()
    body, status, headers = run_wsgi_app(app, environ, buffered=True)
    return TestResponse(body, status, headers, request=Request(environ))


def introspect(http: t.Any, caller: t.Any, token: str, **form: str) -> t.Any:
    """POST ``token`` to the introspection endpoint as ``caller`` (HTTP Basic)."""
    return http.post(
        "/oauth/introspect", data={"token": token, **form}, headers=basic_auth(*caller)
    )


def bearer(token: str) -> dict[str, str]:
    """An ``Authorization: Bearer`` header (RFC 6750 §2.1)."""
    return {"Authorization": f"Bearer {token}"}


def token_client(make_client: t.Any, token_format: str, **options: t.Any) -> t.Any:
    """A confidential client whose access tokens have ``token_format``."""
    if token_format == "reference":
        options["access_token_format"] = "reference"
    return make_client(**options)


@contextlib.contextmanager
def clock_shifted(app: flask.Flask, seconds: int) -> Iterator[None]:
    """Run the block with the app's clock ``seconds`` in the future."""
    clock = clock_of(app)
    clock.advance(seconds)
    try:
        yield
    finally:
        clock.advance(-seconds)


def assert_oauth_error(response: t.Any, status: int, error: str) -> None:
    """A JSON OAuth error with ``status`` and ``error``, never cached."""
    assert response.status_code == status, response.get_data(as_text=True)
    assert response.mimetype == "application/json"
    assert response.headers["Cache-Control"] == "no-store"
    assert response.get_json()["error"] == error


def delete_redis_keys(url: str, prefix: str) -> None:
    """Delete every Redis key a test made under its own ``prefix``."""
    import redis

    connection = redis.Redis.from_url(url)
    try:
        for key in connection.scan_iter(f"*{prefix}*"):
            connection.delete(key)
    finally:
        connection.close()


def table_rows(app: flask.Flask, name: str) -> list[t.Any]:
    """Every row of our table ``name`` as stored, in primary-key order.

    Tests that check what is stored (digests, never plaintext) read the
    database themselves, through the engine the extension publishes, with
    plain SQL on the documented table names (reflecting the table each time
    would cost more than the test).
    """
    assert name in TABLES, name
    order = {
        "ropc_throttle": "key",
        "ropc_mfa_tokens": "token_digest",
        "ropc_mfa_steps": "subject_digest",
    }.get(name, "id")
    with app.app_context():
        engine = ropc_of(app).engine
        with engine.connect() as conn:
            query = f"SELECT * FROM {name} ORDER BY {order}"  # noqa: S608 (ours)
            return list(conn.exec_driver_sql(query).all())


def count_rows(app: flask.Flask) -> dict[str, int]:
    """Row counts of our tables, to prove a request wrote nothing."""
    return {
        name: len(table_rows(app, name))
        for name in ("ropc_clients", "ropc_access_tokens")
    }


def client_snapshot(app: flask.Flask) -> list[tuple[t.Any, ...]]:
    """Every client row as stored, to prove a request changed nothing."""
    return [tuple(row) for row in table_rows(app, "ropc_clients")]


class LiveServer(t.NamedTuple):
    """A real HTTP server on 127.0.0.1 serving an app in a thread."""

    url: str
    app: flask.Flask


@pytest.fixture
def live_server(app: flask.Flask) -> Iterator[LiveServer]:
    """Serve ``app`` over real HTTP on a free loopback port."""
    server = make_server("127.0.0.1", 0, app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield LiveServer(f"http://127.0.0.1:{server.server_port}", app)
    finally:
        server.shutdown()
        thread.join(timeout=10)


def wait_for_lock_waits(engine: sa.Engine, count: int) -> None:
    """Return once ``count`` sessions of this database wait for a row lock.

    This polls PostgreSQL for the state the test needs next; it waits for
    no fixed time.
    """
    deadline = time.monotonic() + 60
    query = sa.text(
        "SELECT count(*) FROM pg_stat_activity "
        "WHERE datname = current_database() AND wait_event_type = 'Lock'"
    )
    with engine.connect() as conn:
        while conn.execute(query).scalar_one() < count:
            assert time.monotonic() < deadline, f"{count} lock waits never came"
            conn.rollback()  # a new snapshot of pg_stat_activity


class HeldAfterRead:
    """Holds one thread right after its first read of ``ropc_clients``.

    Listens on the engine for executed statements; the thread given to
    :meth:`start` stops after its first ``SELECT`` from ``ropc_clients`` (so
    it has read the client and holds no lock) until :meth:`finish`.
    """

    def __init__(self, engine: sa.Engine) -> None:
        self.engine = engine
        self.held: threading.Thread | None = None
        self.read = threading.Event()
        self.go_on = threading.Event()
        self.result: t.Any = None
        self.error: BaseException | None = None

    def _after_execute(
        self, conn: t.Any, cursor: t.Any, statement: str, *_: t.Any
    ) -> None:
        if threading.current_thread() is not self.held or self.read.is_set():
            return
        if statement.lstrip().upper().startswith("SELECT") and (
            "FROM ropc_clients" in statement
        ):
            self.read.set()
            assert self.go_on.wait(60), "never released"

    def start(self, task: t.Callable[[], t.Any]) -> None:
        """Run ``task`` in a thread; return once it has read the client."""

        def run() -> None:
            try:
                self.result = task()
            except BaseException as error:  # noqa: BLE001 (reported by finish)
                self.error = error

        sa.event.listen(self.engine, "after_cursor_execute", self._after_execute)
        self.held = threading.Thread(target=run)
        self.held.start()
        assert self.read.wait(60), "the held thread never read the client"

    def finish(self) -> t.Any:
        """Let the held thread go on; its result (or raise its error)."""
        self.go_on.set()
        assert self.held is not None
        self.held.join(60)
        sa.event.remove(self.engine, "after_cursor_execute", self._after_execute)
        if self.error is not None:
            raise self.error
        return self.result


@pytest.fixture
def hold(app: flask.Flask, ropc: ROPC) -> Iterator[HeldAfterRead]:
    """A :class:`HeldAfterRead` on the app's engine, released at teardown."""
    with app.app_context():
        engine = ropc.engine
    held = HeldAfterRead(engine)
    yield held
    held.go_on.set()
    if held.held is not None:
        held.held.join(60)
    if sa.event.contains(engine, "after_cursor_execute", held._after_execute):
        sa.event.remove(engine, "after_cursor_execute", held._after_execute)


def wait_until_serving(proc: subprocess.Popen[str], port: int) -> None:
    """Poll the port (bounded); fail with the server's output if it died."""
    for _ in range(300):
        if proc.poll() is not None:
            raise AssertionError(f"gunicorn exited: {proc.communicate()[0]}")
        with socket.socket() as sock:
            sock.settimeout(0.1)
            if sock.connect_ex(("127.0.0.1", port)) == 0:
                return
        try:
            proc.wait(timeout=0.1)  # a bounded wait for start-up, not a race fix
        except subprocess.TimeoutExpired:
            pass
    raise AssertionError("gunicorn did not start")


# -- examples/deploy under gunicorn ------------------------------------------------


def free_port() -> int:
    """A TCP port free on 127.0.0.1 just now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def pem_signing_key() -> str:
    """A new P-256 private key in PKCS#8 PEM, as ``ROPC_SIGNING_KEY`` takes it."""
    key = ec.generate_private_key(ec.SECP256R1())
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    ).decode()


def deploy_env(**values: str) -> dict[str, str]:
    """The environment ``examples/deploy`` runs in: this process's, a new
    signing key, two workers, and ``values`` on top (``DATABASE_URL`` ...)."""
    return dict(
        os.environ,
        ROPC_SIGNING_KEY=pem_signing_key(),
        WEB_CONCURRENCY="2",
        PYTHONPATH=str(ROOT),
        **values,
    )


def deploy_client(env: dict[str, str], *options: str) -> dict[str, t.Any]:
    """``flask ropc init-db``, then ``create-client Mobile --scope api`` with
    ``options``, run as ``examples/deploy`` in ``env``; the new client."""
    flask_cli = [sys.executable, "-m", "flask", "--app", "examples.deploy.wsgi"]
    subprocess.run([*flask_cli, "ropc", "init-db"], env=env, check=True, cwd=ROOT)
    created = subprocess.run(
        [*flask_cli, "ropc", "create-client", "Mobile", "--scope", "api"]
        + [*options, "--json"],
        env=env,
        check=True,
        cwd=ROOT,
        capture_output=True,
        text=True,
    )
    return t.cast(dict[str, t.Any], json.loads(created.stdout))


class Deployment:
    """``examples/deploy`` under gunicorn in ``env``; restartable."""

    def __init__(self, env: dict[str, str]) -> None:
        self.env = env
        self.proc: subprocess.Popen[str] | None = None
        self.url = ""

    def start(self, port: int | None = None) -> None:
        """Start gunicorn on ``port`` (a free one by default); return once
        it serves."""
        port = free_port() if port is None else port
        self.proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "gunicorn",
                "-c",
                "examples/deploy/gunicorn.conf.py",
                "examples.deploy.wsgi:app",
            ],
            env=dict(self.env, PORT=str(port)),
            cwd=ROOT,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        try:
            wait_until_serving(self.proc, port)
        except BaseException:
            self.stop()
            raise
        self.url = f"http://127.0.0.1:{port}"

    def stop(self) -> None:
        """Terminate gunicorn and wait for it (bounded); harmless if stopped."""
        if self.proc is not None:
            self.proc.terminate()
            self.proc.communicate(timeout=30)
            self.proc = None
