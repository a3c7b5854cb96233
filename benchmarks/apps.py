"""The servers the benchmark measures, and the set-up of their databases.

Each server is a separate gunicorn process running ``apps:from_env()``; the
environment variable ``BENCH_APP`` picks the app and ``BENCH_DATABASE_URI``
its database:

``bare``
    A bare Flask ``POST`` endpoint that parses the same form as a token
    request and returns a small JSON: the ceiling for any Flask token endpoint.
``authlib-docs``
    A password-grant server written the way Authlib's documentation shows it:
    Flask-SQLAlchemy models with ``OAuth2ClientMixin``/``OAuth2TokenMixin``
    (plaintext ``client_secret`` column), ``AuthorizationServer`` with
    ``create_query_client_func``/``create_save_token_func``, a
    ``ResourceOwnerPasswordCredentialsGrant`` subclass, opaque tokens. SQLite
    gets the same journal settings as Flask-ROPC's embedded database (WAL and
    ``synchronous=NORMAL``, set by an engine ``connect`` event).
``ropc``
    Flask-ROPC with a trivial validator (no password hashing, so that the
    framework is measured), throttling on with its default database counters,
    and a route protected by ``@ropc.require_token("api")``.
``floor``
    Not Flask-ROPC: the statements and the signatures of Flask-ROPC's
    password grant with a refresh token, its refresh grant and
    ``require_token``, hand-written on ``sqlite3`` in plain Flask views, with
    no Authlib, no SQLAlchemy and no checks beyond the happy path. It is the
    most any implementation of the same design (hashed secrets, throttle
    places reserved and committed before the password is checked, a stored
    row per token, revocation read on every call) can get from Flask and
    SQLite on this machine.

The ``setup_*`` functions create a server's tables and its client *before*
gunicorn starts, and return what the load generator needs to send.
"""

from __future__ import annotations

import os
import typing as t

import sqlalchemy as sa
from flask import Flask
from flask import jsonify
from flask import request

if t.TYPE_CHECKING:
    from flask_ropc import ROPC

#: The one user every benchmark logs in as, and its password. The validators
#: compare strings: hashing would measure the hash, not the framework.
USERNAME = "alice"
PASSWORD = "benchmark-password"
#: ``ropc-throttled``: a username whose pair with 127.0.0.1 is locked (five
#: wrong passwords), for a lock that outlasts the run.
LOCKED_USERNAME = "mallory"
LOCK_SECONDS = 86400
#: ``iss`` of Flask-ROPC's tokens (set, so that no warning is logged).
ISSUER = "https://auth.bench.example"
#: Token endpoint and protected route paths.
TOKEN_PATH = "/oauth/token"
API_PATH = "/api/me"


def from_env() -> Flask:
    """Build the app named by ``BENCH_APP`` on ``BENCH_DATABASE_URI``.

    gunicorn calls this: ``gunicorn 'apps:from_env()'``.
    """
    name = os.environ["BENCH_APP"]
    uri = os.environ.get("BENCH_DATABASE_URI", "")
    if name == "bare":
        return create_bare_app()
    if name == "authlib-docs":
        return create_authlib_docs_app(uri)
    if name == "ropc":
        return create_ropc_app(uri)
    if name == "floor":
        return create_floor_app(uri)
    raise ValueError(f"unknown BENCH_APP {name!r}")


# -- bare -------------------------------------------------------------------


def create_bare_app() -> Flask:
    """A Flask POST endpoint that parses the token form and returns JSON."""
    app = Flask("bench_bare")

    @app.post(TOKEN_PATH)
    def token() -> t.Any:
        form = request.form
        auth = request.authorization
        response = jsonify(
            access_token="bare",
            token_type="Bearer",
            expires_in=3600,
            scope=form.get("scope", ""),
            grant_type=form.get("grant_type"),
            user=form.get("username"),
            client=auth.username if auth else None,
            has_password=bool(form.get("password")),
        )
        response.headers["Cache-Control"] = "no-store"
        return response

    return app


# -- Authlib, as its documentation shows ---------------------------------------


def _sqlite_pragmas(dbapi_connection: t.Any, connection_record: t.Any) -> None:
    """WAL and synchronous=NORMAL, like Flask-ROPC's embedded SQLite."""
    cursor = dbapi_connection.cursor()
    try:
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA synchronous=NORMAL")
    finally:
        cursor.close()


def create_authlib_docs_app(uri: str) -> Flask:
    """The password grant the way Authlib's Flask documentation builds it.

    The only departures: ``authenticate_user`` does a trivial string check
    instead of querying a ``User`` table and hashing (Flask-ROPC's validator
    here is just as trivial), and SQLite gets WAL/``synchronous=NORMAL``.
    """
    from authlib.integrations.flask_oauth2 import AuthorizationServer
    from authlib.integrations.sqla_oauth2 import OAuth2ClientMixin
    from authlib.integrations.sqla_oauth2 import OAuth2TokenMixin
    from authlib.integrations.sqla_oauth2 import create_query_client_func
    from authlib.integrations.sqla_oauth2 import create_save_token_func
    from authlib.oauth2.rfc6749 import grants
    from flask_sqlalchemy import SQLAlchemy

    app = Flask("bench_authlib_docs")
    app.config["SQLALCHEMY_DATABASE_URI"] = uri
    # The docs' switch for refresh tokens, so that both servers issue one.
    app.config["OAUTH2_REFRESH_TOKEN_GENERATOR"] = True
    db = SQLAlchemy(app)

    class User(db.Model):  # type: ignore[name-defined]
        """The docs' user model."""

        id = db.Column(db.Integer, primary_key=True)
        username = db.Column(db.String(40), unique=True)

        def get_user_id(self) -> int:
            """Authlib: the id stored with the token."""
            return int(self.id)

    class Client(db.Model, OAuth2ClientMixin):  # type: ignore[name-defined]
        """The docs' client model (plaintext ``client_secret`` column)."""

        __tablename__ = "oauth2_client"
        id = db.Column(db.Integer, primary_key=True)
        user_id = db.Column(db.Integer, db.ForeignKey("user.id", ondelete="CASCADE"))
        user = db.relationship("User")

    class Token(db.Model, OAuth2TokenMixin):  # type: ignore[name-defined]
        """The docs' token model (opaque tokens stored in clear)."""

        __tablename__ = "oauth2_token"
        id = db.Column(db.Integer, primary_key=True)
        user_id = db.Column(db.Integer, db.ForeignKey("user.id", ondelete="CASCADE"))
        user = db.relationship("User")

    class PasswordGrant(grants.ResourceOwnerPasswordCredentialsGrant):
        """The docs' password grant, with a trivial credential check."""

        TOKEN_ENDPOINT_AUTH_METHODS = ["client_secret_basic"]

        def authenticate_user(self, username: str, password: str) -> t.Any:
            if username == USERNAME and password == PASSWORD:
                return User(id=1, username=username)
            return None

    with app.app_context():
        sa.event.listen(db.engine, "connect", _sqlite_pragmas)

    authorization = AuthorizationServer(
        app,
        query_client=create_query_client_func(db.session, Client),
        save_token=create_save_token_func(db.session, Token),
    )
    authorization.register_grant(PasswordGrant)

    @app.post(TOKEN_PATH)
    def issue_token() -> t.Any:
        return authorization.create_token_response()

    app.extensions["bench_models"] = (db, User, Client)
    return app


def setup_authlib_docs(uri: str) -> tuple[str, str]:
    """Create the docs app's tables, its user and client; return id, secret."""
    import secrets

    app = create_authlib_docs_app(uri)
    db, user_model, client_model = app.extensions["bench_models"]
    client_id = secrets.token_urlsafe(18)
    client_secret = secrets.token_urlsafe(36)
    with app.app_context():
        db.create_all()
        db.session.add(user_model(id=1, username=USERNAME))
        client = client_model(
            client_id=client_id, client_secret=client_secret, user_id=1
        )
        client.set_client_metadata(
            {
                "client_name": "Benchmark",
                "grant_types": ["password", "refresh_token"],
                "scope": "api offline_access",
                "token_endpoint_auth_method": "client_secret_basic",
            }
        )
        db.session.add(client)
        db.session.commit()
        db.engine.dispose()
    return client_id, client_secret


# -- Flask-ROPC -------------------------------------------------------------------


def create_ropc_app(uri: str) -> Flask:
    """Flask-ROPC with a trivial validator and a protected route."""
    return ropc_app(uri)[0]


def ropc_app(uri: str) -> tuple[Flask, ROPC]:
    """:func:`create_ropc_app`, with its :class:`~flask_ropc.ROPC` object for
    the admin API."""
    from flask_ropc import ROPC
    from flask_ropc import GrantResult
    from flask_ropc import PasswordRequest
    from flask_ropc import current_token

    app = Flask("bench_ropc")
    app.config.update(
        # The signing key's own encryption secret rather than SECRET_KEY:
        # with a SECRET_KEY Flask opens a signed-cookie session on every
        # request, work neither Flask-ROPC nor the floors do.
        ROPC_KEY_ENCRYPTION_KEYS="benchmark-encryption-secret-not-for-production",
        ROPC_DATABASE_URI=uri,
        ROPC_ISSUER=ISSUER,
        ROPC_THROTTLE_ENABLED=True,
        # Only locked pairs see these (ropc-throttled's); a login that
        # succeeds does the same work whatever they are.
        ROPC_THROTTLE_LOCKOUT_BASE=LOCK_SECONDS,
        ROPC_THROTTLE_LOCKOUT_MAX=LOCK_SECONDS,
    )
    ropc = ROPC(app)

    @ropc.password_validator
    def check(req: PasswordRequest) -> GrantResult | None:
        if req.username == USERNAME and req.password == PASSWORD:
            return GrantResult.success(subject="1")
        return None

    @app.get(API_PATH)
    @ropc.require_token("api")
    def me() -> dict[str, t.Any]:
        return {"sub": current_token.subject, "scopes": list(current_token.scopes)}

    return app, ropc


def setup_ropc(uri: str, *, client_name: str = "Benchmark") -> tuple[str, str]:
    """Create Flask-ROPC's tables and a client with offline access.

    Returns the client's id and secret. The client may use the password and
    refresh token grants and the ``api`` scope.
    """
    app, ropc = ropc_app(uri)
    with app.app_context():
        ropc.create_all()
        client, secret = ropc.clients.create(
            client_name,
            scopes=["api"],
            grant_types=["password", "refresh_token"],
        )
        assert secret is not None
        ropc.dispose()
    return client.client_id, secret


# -- The floors: Flask-ROPC's statements without the frameworks ---------------------

#: Seconds: the default access token lifetime, refresh sliding and absolute
#: lifetimes, and the throttle windows (username and IP 15 min, account 1 h).
_ACCESS, _SLIDING, _ABSOLUTE = 3600, 14 * 86400, 30 * 86400
_PAIR_WINDOW, _IP_WINDOW, _ACCOUNT_WINDOW, _RUN = 900, 900, 3600, 60
#: The ``acr`` of a password login (``ROPC_ACR_PASSWORD``'s default).
_ACR = "urn:flask-ropc:acr:pwd"

_FLOOR_UPSERT = (
    "INSERT INTO ropc_throttle (key, count, expires_at) VALUES {rows} "
    "ON CONFLICT (key) DO UPDATE SET count = CASE WHEN "
    "ropc_throttle.expires_at <= ? THEN excluded.count ELSE ropc_throttle.count "
    "+ excluded.count END, expires_at = CASE WHEN ropc_throttle.expires_at <= ? "
    "THEN excluded.expires_at ELSE ropc_throttle.expires_at END "
    "RETURNING key, count, expires_at"
)


def create_floor_app(uri: str, *, on_authlib: bool = False) -> Flask:
    """Flask-ROPC's database work and JWTs, hand-written on bare ``sqlite3``.

    Three endpoints, each doing what the matching Flask-ROPC scenario's
    guarantees need and nothing else (no Authlib, no SQLAlchemy, happy path
    only), on the same tables (made by :func:`setup_ropc`):

    * ``POST /oauth/token``, ``grant_type=password`` (``floor-password-refresh``):
      look the client up and compare its secret's SHA-256 digest; read the
      pair's lock and level and the previous windows; reserve the pair, IP
      and account places and the in-flight marks in one committed upsert;
      check the password; sign an ES256 JWT with the authentication context
      (``acr``, ``amr``, ``auth_time``, which step-up reads); then one
      transaction that inserts the access and refresh token rows (with that
      context), marks the client used, clears the pair and gives the other
      places back.
    * ``grant_type=refresh_token`` (``floor-refresh``): the client as above;
      the refresh row joined to its client; sign, keeping the login's
      authentication context; one transaction that
      claims the old token (``UPDATE ... WHERE used_at IS NULL``), inserts the
      new rows and marks the client used.
    * ``GET /api/me`` (``floor-require-token``): parse the bearer, check the
      JWT header, ES256-verify it with joserfc and check ``iss``, ``aud``,
      ``exp`` and ``iat``; one indexed row lookup joined to the client and
      the signing key (revocation, a disabled client, a retired key); JSON.

    ``on_authlib``: the same work behind Authlib's ``AuthorizationServer``
    (its password and refresh grants, client_secret_basic) and
    ``ResourceProtector``, to measure what those classes cost.
    """
    import hashlib
    import hmac
    import json
    import secrets
    import sqlite3
    import time

    from flask import Response
    from joserfc import jwt
    from joserfc.jwk import ECKey

    key = ECKey.generate_key("P-256")
    header = {"alg": "ES256", "kid": "floor", "typ": "at+jwt"}
    path = uri.removeprefix("sqlite:///")
    connection: list[sqlite3.Connection] = []

    def db() -> sqlite3.Connection:
        # One connection per process (gunicorn's sync worker has one thread).
        if not connection:
            conn = sqlite3.connect(path, isolation_level=None)
            for pragma in ("journal_mode=WAL", "synchronous=NORMAL", "foreign_keys=ON"):
                conn.execute(f"PRAGMA {pragma}")
            connection.append(conn)
        return connection[0]

    def sha(value: str) -> str:
        return hashlib.sha256(value.encode()).hexdigest()

    def json_response(body: dict[str, t.Any]) -> Response:
        return Response(
            json.dumps(body),
            content_type="application/json",
            headers={"Cache-Control": "no-store", "Pragma": "no-cache"},
        )

    def secret_is(client_id: str, secret: str) -> bool:
        row = (
            db()
            .execute(
                "SELECT secret_digest, enabled, scopes FROM ropc_clients "
                "WHERE client_id = ?",
                (client_id,),
            )
            .fetchone()
        )
        return bool(row and row[1] and hmac.compare_digest(row[0], sha(secret)))

    def client_of() -> str:
        auth = request.authorization
        assert auth is not None and auth.username and auth.password
        assert secret_is(auth.username, auth.password)
        return auth.username

    def sign(client_id: str, subject: str, scope: str, now: int, auth_time: int) -> str:
        claims = {
            "iss": ISSUER,
            "sub": subject,
            "aud": ISSUER,
            "exp": now + _ACCESS,
            "iat": now,
            "jti": secrets.token_urlsafe(16),
            "client_id": client_id,
            "scope": scope,
            "auth_time": auth_time,
            # The authentication context (RFC 9470 step-up reads it).
            "acr": _ACR,
            "amr": ["pwd"],
        }
        return jwt.encode(header, claims, key)

    def store(
        conn: sqlite3.Connection,
        client_id: str,
        grant: str,
        scope: str,
        access: str,
        family: str,
        now: int,
        family_expires: int,
        auth_time: int,
    ) -> str:
        refresh = secrets.token_urlsafe(32)
        conn.execute(
            "INSERT INTO ropc_access_tokens (token_digest, client_id, subject, "
            "grant_type, scope, claims, issued_at, expires_at, kid, family_id, "
            "amr, acr, auth_time) "
            "VALUES (?, ?, '1', ?, ?, '{}', ?, ?, 'floor', ?, 'pwd', ?, ?)",
            (
                sha(access),
                client_id,
                grant,
                scope,
                now,
                now + _ACCESS,
                family,
                _ACR,
                auth_time,
            ),
        )
        conn.execute(
            "INSERT INTO ropc_refresh_tokens (token_digest, family_id, client_id, "
            "subject, scope, claims, auth_time, issued_at, expires_at, "
            "family_expires_at, amr, acr) "
            "VALUES (?, ?, ?, '1', ?, '{}', ?, ?, ?, ?, 'pwd', ?)",
            (
                sha(refresh),
                family,
                client_id,
                scope,
                auth_time,
                now,
                min(now + _SLIDING, family_expires),
                family_expires,
                _ACR,
            ),
        )
        return refresh

    def token_body(access: str, scope: str, refresh: str) -> dict[str, t.Any]:
        return {
            "access_token": access,
            "token_type": "Bearer",
            "expires_in": _ACCESS,
            "scope": scope,
            "refresh_token": refresh,
        }

    def password_grant(client_id: str) -> dict[str, t.Any]:
        conn, clock = db(), time.time()
        now = int(clock)
        form = request.form
        username = form["username"]
        # The keys Flask-ROPC's throttle uses (its prefix "ropc", digests of
        # the normalised username and the client's network).
        user = "ropc:u:" + sha(username.strip().casefold())[:32] + ":"
        net = sha(request.remote_addr or "")[:32]
        pair = f"{user}p:{net}"
        lock, strikes = f"{pair}:lock", f"{pair}:strikes"
        pair_window = int(clock // _PAIR_WINDOW)
        ip_window, account_window = (
            int(clock // _IP_WINDOW),
            int(clock // _ACCOUNT_WINDOW),
        )
        pair_key = f"{pair}:fails:0:{pair_window}"
        ip_key = f"ropc:ip:{net}:{ip_window}"
        account_key = f"{user}fails:{account_window}"
        seen = dict(
            conn.execute(
                "SELECT key, count FROM ropc_throttle WHERE key IN (?, ?, ?, ?, ?) "
                "AND expires_at > ?",
                (
                    strikes,
                    lock,
                    f"{user}fails:{account_window - 1}",
                    f"ropc:ip:{net}:{ip_window - 1}",
                    f"{pair}:fails:0:{pair_window - 1}",
                    clock,
                ),
            ).fetchall()
        )
        assert not seen.get(lock)
        reserve = sorted(
            [
                (pair_key, clock + 2 * _PAIR_WINDOW),
                (f"{pair}:fails:0:run", clock + _RUN),
                (ip_key, clock + 2 * _IP_WINDOW),
                (f"ropc:ip:{net}:run", clock + _RUN),
                (account_key, clock + 2 * _ACCOUNT_WINDOW),
            ]
        )
        params: list[t.Any] = []
        for name, until in reserve:
            params += [name, until]
        counts = conn.execute(
            _FLOOR_UPSERT.format(rows=", ".join(["(?, 1, ?)"] * len(reserve))),
            (*params, clock, clock),
        ).fetchall()
        assert all(count <= 100 for _, count, _ in counts)
        assert username == USERNAME and form["password"] == PASSWORD
        scope = form.get("scope", "")
        access = sign(client_id, "1", scope, now, now)
        family = secrets.token_hex(16)
        conn.execute("BEGIN IMMEDIATE")
        refresh = store(
            conn,
            client_id,
            "password",
            scope,
            access,
            family,
            now,
            now + _ABSOLUTE,
            now,
        )
        conn.execute(
            "UPDATE ropc_clients SET last_used_at = ?, "
            "password_grant_count = password_grant_count + 1 WHERE client_id = ?",
            (now, client_id),
        )
        conn.execute(
            "DELETE FROM ropc_throttle WHERE key IN (?, ?, ?, ?)",
            (lock, strikes, pair_key, f"{pair}:fails:0:{pair_window - 1}"),
        )
        conn.execute(
            "UPDATE ropc_throttle SET count = count - 1 WHERE key IN (?, ?, ?, ?) "
            "AND expires_at > ? AND count > 0",
            (ip_key, f"ropc:ip:{net}:run", f"{pair}:fails:0:run", account_key, clock),
        )
        conn.execute("COMMIT")
        return token_body(access, scope, refresh)

    def refresh_grant(client_id: str) -> dict[str, t.Any]:
        conn, now = db(), int(time.time())
        row = conn.execute(
            "SELECT t.id, t.client_id, t.scope, t.used_at, t.revoked_at, "
            "t.expires_at, t.family_expires_at, t.family_id, t.subject, c.enabled, "
            "t.amr, t.acr, t.auth_time "
            "FROM ropc_refresh_tokens AS t JOIN ropc_clients AS c "
            "ON c.client_id = t.client_id WHERE t.token_digest = ?",
            (sha(request.form["refresh_token"]),),
        ).fetchone()
        assert row and row[1] == client_id and row[9]
        assert row[3] is None and row[4] is None and row[5] > now and row[6] > now
        scope = row[2]
        # A refresh keeps the login's authentication context.
        assert row[10] == "pwd" and row[11] == _ACR
        access = sign(client_id, row[8], scope, now, row[12])
        conn.execute("BEGIN IMMEDIATE")
        claimed = conn.execute(
            "UPDATE ropc_refresh_tokens SET used_at = ? WHERE id = ? "
            "AND used_at IS NULL AND revoked_at IS NULL",
            (now, row[0]),
        )
        assert claimed.rowcount == 1
        refresh = store(
            conn,
            client_id,
            "refresh_token",
            scope,
            access,
            row[7],
            now,
            row[6],
            row[12],
        )
        conn.execute(
            "UPDATE ropc_clients SET last_used_at = ? WHERE client_id = ?",
            (now, client_id),
        )
        conn.execute("COMMIT")
        return token_body(access, scope, refresh)

    def bearer(value: str) -> t.Any:
        """The checked claims' row: (subject, scope, ...)."""
        now = int(time.time())
        token = jwt.decode(value, key, algorithms=["ES256"])
        head, claims = token.header, token.claims
        assert head.get("typ") == "at+jwt" and head.get("kid") == "floor"
        assert claims["iss"] == ISSUER and claims["aud"] == ISSUER
        assert claims["exp"] > now >= claims["iat"]
        row = (
            db()
            .execute(
                "SELECT t.subject, t.scope, t.revoked_at, t.expires_at, c.enabled, "
                "k.status, t.amr, t.acr, t.auth_time "
                "FROM ropc_access_tokens AS t JOIN ropc_clients AS c "
                "ON c.client_id = t.client_id LEFT OUTER JOIN ropc_signing_keys AS k "
                "ON k.kid = t.kid WHERE t.token_digest = ?",
                (sha(value),),
            )
            .fetchone()
        )
        assert row and row[2] is None and row[3] > now and row[4]
        assert row[5] != "retired" and "api" in row[1].split()
        return row

    grants = {"password": password_grant, "refresh_token": refresh_grant}
    if on_authlib:
        return _floor_on_authlib(grants, bearer, secret_is, json_response)
    app = Flask("bench_floor")

    @app.post(TOKEN_PATH)
    def token() -> t.Any:
        client_id = client_of()
        return json_response(grants[request.form["grant_type"]](client_id))

    @app.get(API_PATH)
    def me() -> t.Any:
        scheme, _, value = request.headers["Authorization"].partition(" ")
        assert scheme.lower() == "bearer"
        row = bearer(value)
        return json_response({"sub": row[0], "scopes": row[1].split()})

    return app


def _floor_on_authlib(
    grants: dict[str, t.Callable[[str], dict[str, t.Any]]],
    bearer: t.Callable[[str], t.Any],
    secret_is: t.Callable[[str, str], bool],
    json_response: t.Callable[[dict[str, t.Any]], t.Any],
) -> Flask:
    """The floor's work behind Authlib's server classes (see
    :func:`create_floor_app`'s ``on_authlib``): what any server built on
    them pays before it does anything of its own."""
    from authlib.integrations.flask_oauth2 import AuthorizationServer
    from authlib.integrations.flask_oauth2 import ResourceProtector
    from authlib.integrations.flask_oauth2 import current_token
    from authlib.oauth2.rfc6749 import ClientMixin
    from authlib.oauth2.rfc6749 import TokenMixin
    from authlib.oauth2.rfc6749.grants import RefreshTokenGrant
    from authlib.oauth2.rfc6749.grants import ResourceOwnerPasswordCredentialsGrant
    from authlib.oauth2.rfc6750 import BearerTokenValidator

    class Client(ClientMixin):
        def __init__(self, client_id: str) -> None:
            self.client_id = client_id

        def get_client_id(self) -> str:
            return self.client_id

        def check_client_secret(self, client_secret: str) -> bool:
            return secret_is(self.client_id, client_secret)

        def check_endpoint_auth_method(self, method: str, endpoint: str) -> bool:
            return method == "client_secret_basic"

        def check_grant_type(self, grant_type: str) -> bool:
            return True

    class Password(ResourceOwnerPasswordCredentialsGrant):
        def validate_token_request(self) -> None:
            self.request.client = self.authenticate_token_endpoint_client()

        def create_token_response(self) -> t.Any:
            body = grants[self.GRANT_TYPE](self.request.client.client_id)
            return 200, body, self.TOKEN_RESPONSE_HEADER

    class Refresh(RefreshTokenGrant):
        validate_token_request = Password.validate_token_request
        create_token_response = Password.create_token_response

    class Token(TokenMixin):
        def __init__(self, row: t.Any) -> None:
            self.row = row

        def get_scope(self) -> str:
            return str(self.row[1])

        def is_expired(self) -> bool:
            return False  # checked by the floor's own lookup

        def is_revoked(self) -> bool:
            return False  # likewise

    class Validator(BearerTokenValidator):
        def authenticate_token(self, token_string: str) -> Token:
            return Token(bearer(token_string))

    app = Flask("bench_floor_authlib")
    server = AuthorizationServer(
        app,
        query_client=Client,  # the secret is checked against the row
        save_token=lambda token, request: None,  # the floor stores its own
    )
    server.register_grant(Password)
    server.register_grant(Refresh)
    protect = ResourceProtector()
    protect.register_token_validator(Validator())

    @app.post(TOKEN_PATH)
    def token() -> t.Any:
        return server.create_token_response()

    @app.get(API_PATH)
    @protect("api")
    def me() -> t.Any:
        row = current_token.row
        return json_response({"sub": row[0], "scopes": row[1].split()})

    return app
