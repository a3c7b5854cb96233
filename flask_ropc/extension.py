"""The :class:`ROPC` extension object and its per-app state."""

from __future__ import annotations

import dataclasses
import functools
import logging
import os
import time
import typing as t
from collections.abc import Callable
from collections.abc import Mapping

import flask
import sqlalchemy as sa

from .config import DEFAULTS
from .config import Settings
from .errors import ConfigurationError
from .jwt_tokens import issue_jwt
from .key_encryption import KeyCipher
from .keys import ConfigKeyRing
from .keys import DatabaseKeyRing
from .keys import KeyRing
from .models import Client
from .models import tables_for
from .resource import BearerProtector
from .server import ROPCAuthorizationServer
from .server import build_server
from .store import Clock
from .store import Store
from .throttle import CounterStorage
from .throttle import DatabaseCounters
from .throttle import Throttle
from .tokens import AccessToken
from .tokens import TokenFormat
from .tokens import issue_reference
from .tokens import load_access_token
from .validation import GrantResult
from .validation import PasswordRequest
from .validation import RefreshRequest
from .validation import normalise_result

if t.TYPE_CHECKING:  # pragma: no cover
    from flask_sqlalchemy import SQLAlchemy

log = logging.getLogger("flask_ropc")

#: What a password validator may return; see :func:`normalise_result`.
ValidatorReturn = GrantResult | str | None
#: A password validator: ``(PasswordRequest) -> GrantResult | str | None``.
PasswordValidator = Callable[[PasswordRequest], t.Any]
V = t.TypeVar("V", bound=PasswordValidator)
F = t.TypeVar("F", bound=Callable[..., t.Any])

_EXTENSION_KEY = "ropc"


@dataclasses.dataclass
class _State:
    """Everything Flask-ROPC keeps per app, at ``app.extensions["ropc"]``.

    Internal: its attributes may change between releases.
    """

    extension: ROPC
    settings: Settings
    store: Store
    keyring: KeyRing
    server: ROPCAuthorizationServer = dataclasses.field(init=False)
    #: Brute-force protection, or ``None`` when ROPC_THROTTLE_ENABLED is off.
    throttle: Throttle | None = None
    #: The engine we created ourselves (embedded database), to dispose of.
    owned_engine: sa.Engine | None = None

    def issuer(self) -> str:
        """``ROPC_ISSUER``, else the current request's base URL.

        IdentityServer does the same; the discovery document, the tokens'
        ``iss`` and their validation all call this, so they always agree.
        """
        if self.settings.issuer is not None:
            return self.settings.issuer
        return flask.request.url_root.rstrip("/")

    def audience_for(self, client: Client | None) -> str:
        """The ``aud`` for ``client``'s tokens: its own, else the app's."""
        if client is not None and client.audience:
            return client.audience
        return self.settings.audience or self.issuer()

    def token_format_for(self, client: Client) -> TokenFormat:
        """How ``client``'s access tokens are issued."""
        name = client.access_token_format or self.settings.access_token_format
        if name == "reference":
            return issue_reference
        return functools.partial(issue_jwt, keyring=self.keyring)

    def load_token(
        self, value: str, *, check_audience: bool = True
    ) -> AccessToken | None:
        """The live access token for ``value`` (either format), or ``None``.

        JWTs must carry the app's default audience unless ``check_audience``
        is false (introspection reports the audience instead).
        """
        default_audience = self.audience_for(None)
        return load_access_token(
            value,
            self.store,
            self.keyring,
            issuer=self.issuer(),
            audience=default_audience if check_audience else None,
            default_audience=default_audience,
        )

    def run_validator(self, request: PasswordRequest) -> GrantResult:
        """Call the app's validator and normalise what it returns."""
        validator = self.extension._validator
        if validator is None:
            raise ConfigurationError(
                "no password validator is registered: decorate a function "
                "with @ropc.password_validator"
            )
        return normalise_result(flask.current_app.ensure_sync(validator)(request))

    def run_subject_check(self, request: RefreshRequest) -> bool:
        """Ask the app's ``subject_is_active`` hook, if any (default: yes)."""
        hook = self.extension._subject_is_active
        if hook is None:
            return True
        verdict = flask.current_app.ensure_sync(hook)(request)
        if not isinstance(verdict, bool):
            raise TypeError(
                "a subject_is_active hook must return True or False, not "
                f"{type(verdict).__name__}"
            )
        return verdict

    def run_refresh_claims(self, request: RefreshRequest) -> Mapping[str, t.Any]:
        """The claims for a refreshed token: the hook's answer, else unchanged."""
        hook = self.extension._refresh_claims
        if hook is None:
            return request.claims
        claims = flask.current_app.ensure_sync(hook)(request)
        if claims is None:
            return request.claims
        if not isinstance(claims, Mapping):
            raise TypeError(
                "a refresh_claims hook must return a mapping or None, not "
                f"{type(claims).__name__}"
            )
        return claims


class ROPC:
    """The OAuth 2.0 password grant for a Flask app.

    ::

        ropc = ROPC(app)            # or ROPC() and later ropc.init_app(app)

        @ropc.password_validator
        def check(req):
            user = find_user(req.username)
            if user is None or not user.verify(req.password):
                return None
            return GrantResult.success(subject=str(user.id))

    :param app: the app to initialise now; see :meth:`init_app`.
    :param db: the app's Flask-SQLAlchemy object. Our tables then join its
        metadata (so its migrations see them) and use its engine. Without it,
        an app that registered Flask-SQLAlchemy before us is used the same
        way; otherwise we keep our own engine on ``ROPC_DATABASE_URI``,
        ``SQLALCHEMY_DATABASE_URI`` or an SQLite file in the instance folder.
    :param clock: returns the current Unix time; for tests.
    """

    def __init__(
        self,
        app: flask.Flask | None = None,
        *,
        db: SQLAlchemy | None = None,
        clock: Clock = time.time,
    ) -> None:
        self._db = db
        self._clock = clock
        #: The registered password validator, see :meth:`password_validator`.
        self._validator: PasswordValidator | None = None
        self._subject_is_active: Callable[[RefreshRequest], t.Any] | None = None
        self._refresh_claims: Callable[[RefreshRequest], t.Any] | None = None
        self._protector = BearerProtector()
        if app is not None:
            self.init_app(app)

    def init_app(self, app: flask.Flask) -> None:
        """Register the blueprint, the CLI group and our per-app state.

        :raises RuntimeError: Flask-ROPC is already registered on ``app``.
        :raises ConfigurationError: a ``ROPC_*`` setting is invalid.
        """
        if _EXTENSION_KEY in app.extensions:
            raise RuntimeError(
                "Flask-ROPC is already registered on this app; use the "
                "existing ROPC instance (app.extensions['ropc'].extension)."
            )
        for key, value in DEFAULTS.items():
            app.config.setdefault(key, value)
        settings = Settings.from_config(app.config)
        tables, get_engine, owned = self._database(app, settings)
        store = Store(tables, get_engine, self._clock)
        if settings.key_encryption_keys:
            store.cipher = KeyCipher(settings.key_encryption_keys)
        keyring: KeyRing
        if settings.signing_keys:
            keyring = ConfigKeyRing(settings.signing_keys)
        else:
            keyring = DatabaseKeyRing(store, settings.signing_alg)
        state = _State(
            extension=self,
            settings=settings,
            store=store,
            keyring=keyring,
            owned_engine=owned,
        )
        if settings.throttle_enabled:
            state.throttle = Throttle(
                _counter_storage(settings, store),
                settings,
                settings.ratelimit_key_prefix,
            )
        if settings.issuer is None:
            log.warning(
                "ROPC_ISSUER is not set: tokens name the request's own base "
                "URL as issuer. Set ROPC_ISSUER to your public HTTPS URL in "
                "production, so that the issuer cannot vary with the Host header."
            )
        state.server = build_server(state)
        app.extensions[_EXTENSION_KEY] = state

        from .cli import ropc_cli
        from .views import create_blueprint
        from .views import create_discovery_blueprint

        app.register_blueprint(create_blueprint(settings.url_prefix))
        app.register_blueprint(create_discovery_blueprint())
        app.cli.add_command(ropc_cli)

    def _database(
        self, app: flask.Flask, settings: Settings
    ) -> tuple[t.Any, Callable[[], sa.Engine], sa.Engine | None]:
        db = self._db if self._db is not None else app.extensions.get("sqlalchemy")
        if db is not None and settings.database_uri is None:
            # Flask-SQLAlchemy looks its engine up per app context.
            return tables_for(db.metadata), lambda: db.engine, None
        uri = (
            settings.database_uri
            or app.config.get("SQLALCHEMY_DATABASE_URI")
            or _instance_sqlite_uri(app)
        )
        engine = create_engine(uri)
        return tables_for(sa.MetaData()), lambda: engine, engine

    # -- callbacks ------------------------------------------------------------

    def password_validator(self, func: V) -> V:
        """Register the function that checks a username and password.

        It receives a :class:`~flask_ropc.PasswordRequest` and returns a
        :class:`~flask_ropc.GrantResult`, a subject string for success, or
        ``None`` for wrong credentials (``invalid_grant``). It may be async.
        Only one validator is kept; registering again replaces it.
        """
        self._validator = func
        return func

    def subject_is_active(self, func: F) -> F:
        """Register a check run on every refresh, before new tokens are issued.

        It receives a :class:`~flask_ropc.RefreshRequest` and returns ``True``
        if the user may still get tokens. ``False`` fails the refresh with
        ``invalid_grant`` and revokes the whole refresh token family: a
        disabled or deleted user is signed out at the next refresh
        (IdentityServer's ``IProfileService.IsActiveAsync``).
        """
        self._subject_is_active = func
        return func

    def refresh_claims(self, func: F) -> F:
        """Register a hook that updates the claims of refreshed tokens.

        It receives a :class:`~flask_ropc.RefreshRequest` and returns the new
        claims (a mapping), or ``None`` to keep them. The new claims go into
        the new access token and are kept for later refreshes
        (IdentityServer's ``UpdateAccessTokenClaimsOnRefresh``).
        """
        self._refresh_claims = func
        return func

    def unlock(self, username: str) -> None:
        """Clear the failed attempts and lock of ``username`` in the current
        app (any case or surrounding spaces: names are normalised)."""
        throttle = get_state().throttle
        if throttle is not None:
            throttle.unlock(username)

    def revoke_subject(self, subject: str) -> int:
        """Sign a user out everywhere: revoke all their access and refresh
        tokens in the current app. Returns how many were revoked."""
        return get_state().store.revoke_subject(subject)

    def require_token(
        self, scope: str | t.Sequence[str] | None | Callable[..., t.Any] = None
    ) -> t.Any:
        """Protect a view with a bearer token (RFC 6750).

        ``@ropc.require_token("api")`` requires a live token granted the
        ``api`` scope (several space-separated scopes: all of them);
        ``@ropc.require_token()`` or bare ``@ropc.require_token`` any live
        token. Inside the view, :data:`~flask_ropc.current_token` describes it.
        """
        if callable(scope):
            return self._protector.protect(None)(scope)
        return self._protector.protect(scope)


def get_state(app: flask.Flask | None = None) -> _State:
    """Return Flask-ROPC's state for ``app`` (default: the current app).

    :raises RuntimeError: the extension was not initialised on the app.
    """
    app = app or flask.current_app
    try:
        return t.cast(_State, app.extensions[_EXTENSION_KEY])
    except KeyError:
        raise RuntimeError(
            "Flask-ROPC is not initialised on this app: call ROPC(app) or "
            "ropc.init_app(app) first."
        ) from None


def _counter_storage(settings: Settings, store: Store) -> CounterStorage:
    """Where throttling counters live: our database, or a ``limits`` storage."""
    if settings.ratelimit_storage_uri is None:
        return DatabaseCounters(store, store.tables.throttle)
    if settings.ratelimit_storage_uri.startswith("memcached"):
        # Taking back a reserved place is a negative increment, which
        # memcached refuses: every success would fail with a storage error.
        raise ConfigurationError(
            "ROPC_RATELIMIT_STORAGE_URI: memcached cannot decrement counters, "
            "which throttling needs; use Redis or leave it unset (the database)"
        )
    from limits.storage import storage_from_string

    storage = t.cast(
        CounterStorage, storage_from_string(settings.ratelimit_storage_uri)
    )
    if settings.ratelimit_storage_uri.startswith("memory://"):
        log.warning(
            "ROPC_RATELIMIT_STORAGE_URI is memory://: throttling counters are "
            "per process, so each worker allows the full number of guesses"
        )
    return storage


def create_engine(uri: str) -> sa.Engine:
    """Create the engine for the embedded database.

    SQLite gets WAL mode and ``synchronous=NORMAL`` (readers never wait for
    the writer; a commit is an order of magnitude cheaper and still durable
    against application crashes) and a busy timeout so that concurrent
    workers wait for the write lock instead of failing with "database is
    locked". Every engine checks connections before use so that a restarted
    database server does not fail the next request. Parameters are hidden
    from SQL error messages: they can hold token digests.
    """
    url = sa.make_url(uri)
    options: dict[str, t.Any] = {"hide_parameters": True}
    if url.get_backend_name() == "sqlite":
        options["connect_args"] = {"timeout": 30}
    else:
        options["pool_pre_ping"] = True
    engine = sa.create_engine(url, **options)
    if url.get_backend_name() == "sqlite":
        sa.event.listen(engine, "connect", _sqlite_pragmas)
    return engine


def _sqlite_pragmas(dbapi_connection: t.Any, connection_record: t.Any) -> None:
    cursor = dbapi_connection.cursor()
    try:
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.execute("PRAGMA foreign_keys=ON")
    finally:
        cursor.close()


def _instance_sqlite_uri(app: flask.Flask) -> str:
    os.makedirs(app.instance_path, exist_ok=True)
    return "sqlite:///" + os.path.join(app.instance_path, "ropc.sqlite3")
