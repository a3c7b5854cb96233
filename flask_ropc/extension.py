"""The :class:`ROPC` extension object: wiring, callbacks and the admin API.

``init_app`` builds one app's state (settings, store, key ring, throttle),
its Authlib server, blueprints and CLI group. The top of the package:
imported only by ``__init__``; it may import every module below it.
"""

from __future__ import annotations

import logging
import time
import typing as t
from collections.abc import Callable

import flask

from . import admin
from . import dpop_binding
from . import metrics
from .cli import ropc_cli
from .config import DEFAULTS
from .config import Settings
from .key_lifecycle import keyring_for
from .mfa_contract import MfaRequest
from .mfa_throttle import MfaThrottle
from .resource import BearerProtector
from .server import ROPCAuthorizationServer
from .state import EXTENSION_KEY
from .state import Callbacks
from .state import State
from .state import get_state
from .store import Clock
from .store_setup import build_store
from .throttle import Throttle
from .validation import PasswordRequest
from .validation import RefreshRequest
from .validation import ThrottleRequest
from .views import create_blueprint
from .views import create_discovery_blueprint

if t.TYPE_CHECKING:  # pragma: no cover
    import sqlalchemy as sa
    from flask_sqlalchemy import SQLAlchemy
    from opentelemetry.metrics import MeterProvider

log = logging.getLogger("flask_ropc")

#: A password validator: ``(PasswordRequest) -> GrantResult | str | None``.
PasswordValidator = Callable[[PasswordRequest], t.Any]
#: A refresh hook: ``(RefreshRequest) -> ...``.
RefreshHook = Callable[[RefreshRequest], t.Any]
V = t.TypeVar("V", bound=PasswordValidator)
H = t.TypeVar("H", bound=RefreshHook)
#: A throttle exemption check: ``(ThrottleRequest) -> bool``.
ExemptionCheck = Callable[[ThrottleRequest], t.Any]
E = t.TypeVar("E", bound=ExemptionCheck)
#: An MFA verifier: ``(MfaRequest) -> MfaResult | bool``.
MfaVerifier = Callable[[MfaRequest], t.Any]
M = t.TypeVar("M", bound=MfaVerifier)
F = t.TypeVar("F", bound=Callable[..., t.Any])
P = t.ParamSpec("P")
R = t.TypeVar("R")


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
    :param meter_provider: the OpenTelemetry ``MeterProvider`` our metrics
        go to; default: the global one. Used only with ``opentelemetry-api``
        installed and ``ROPC_METRICS_ENABLED`` on (see :doc:`metrics`).
    """

    def __init__(
        self,
        app: flask.Flask | None = None,
        *,
        db: SQLAlchemy | None = None,
        clock: Clock = time.time,
        meter_provider: MeterProvider | None = None,
    ) -> None:
        self._db = db
        self._clock = clock
        self._meter_provider = meter_provider
        self._callbacks = Callbacks()
        self._protector = BearerProtector()
        #: Manage OAuth clients: see :class:`~flask_ropc.admin.ClientAdmin`.
        self.clients = admin.ClientAdmin()
        #: Manage signing keys: see :class:`~flask_ropc.admin.KeyAdmin`.
        self.keys = admin.KeyAdmin()
        if app is not None:
            self.init_app(app)

    def init_app(self, app: flask.Flask) -> None:
        """Register the blueprint, the CLI group and our per-app state.

        :raises RuntimeError: Flask-ROPC is already registered on ``app``.
        :raises ConfigurationError: a ``ROPC_*`` setting is invalid.
        """
        if EXTENSION_KEY in app.extensions:
            raise RuntimeError(
                "Flask-ROPC is already registered on this app; use the "
                "existing ROPC instance."
            )
        for key, value in DEFAULTS.items():
            app.config.setdefault(key, value)
        settings = Settings.from_config(app.config)
        store = build_store(app, settings, self._db, self._clock)
        keyring = keyring_for(settings, store)
        state = State(
            settings=settings, store=store, keyring=keyring, callbacks=self._callbacks
        )
        counters = store.counters(
            settings.ratelimit_storage_uri, settings.ratelimit_storage_options
        )
        if settings.throttle_enabled:
            if settings.ratelimit_storage_uri is not None and (
                settings.ratelimit_storage_uri.startswith("memory://")
            ):
                log.warning(
                    "ROPC_RATELIMIT_STORAGE_URI is memory://: throttling counters "
                    "are per process, so each worker allows the full number of "
                    "guesses"
                )
            state.throttle = Throttle(counters, settings, settings.ratelimit_key_prefix)
        # The code budget stays on without password throttling: an mfa_token
        # costs only the password, so without it a code could be guessed.
        code_counters = state.throttle or Throttle(
            counters, settings, settings.ratelimit_key_prefix
        )
        state.mfa_throttle = MfaThrottle(code_counters, settings.mfa)
        state.mfa_tokens = store.mfa_tokens(
            settings.ratelimit_storage_uri,
            settings.ratelimit_storage_options,
            settings.ratelimit_key_prefix,
        )
        state.mfa_steps = store.mfa_steps()
        if settings.issuer is None:
            log.warning(
                "ROPC_ISSUER is not set: tokens name the request's own base "
                "URL as issuer. Set ROPC_ISSUER to your public HTTPS URL in "
                "production, so that the issuer cannot vary with the Host header."
            )
        dpop_binding.setup(state)
        server = ROPCAuthorizationServer(state)
        app.extensions[EXTENSION_KEY] = state
        app.before_request(state.check_first_request)
        app.register_blueprint(create_blueprint(server))
        app.register_blueprint(create_discovery_blueprint(server))
        app.cli.add_command(ropc_cli)
        if settings.metrics_enabled and metrics.AVAILABLE:
            metrics.subscribe(app, self._meter_provider)

    # -- callbacks ------------------------------------------------------------

    def password_validator(self, func: V) -> V:
        """Register the function that checks a username and password.

        It receives a :class:`~flask_ropc.PasswordRequest` and returns a
        :class:`~flask_ropc.GrantResult`, a subject string for success, or
        ``None`` for wrong credentials (``invalid_grant``). It may be async.
        Only one validator is kept; registering again replaces it.
        """
        self._callbacks.validator = func
        return func

    def mfa_verifier(self, func: M) -> M:
        """Register the function that checks a second factor's code.

        It receives a :class:`~flask_ropc.MfaRequest` (the subject, the
        factor ``"otp"`` or ``"recovery-code"``, the code, the client, the
        Flask request) after the password validator returned
        :meth:`GrantResult.mfa_required <flask_ropc.GrantResult.mfa_required>`
        and returns an :class:`~flask_ropc.MfaResult`, or ``True``/``False``.
        The library never stores the user's OTP secret; see
        :class:`~flask_ropc.totp.TotpVerifier` for TOTP with replay
        rejection, and :doc:`mfa`.
        """
        self._callbacks.mfa_verifier = func
        return func

    def subject_is_active(self, func: H) -> H:
        """Register a check run on every refresh, before new tokens are issued.

        It receives a :class:`~flask_ropc.RefreshRequest` and returns ``True``
        if the user may still get tokens. ``False`` fails the refresh with
        ``invalid_grant`` and revokes the whole refresh token family: a
        disabled or deleted user is signed out at the next refresh
        (IdentityServer's ``IProfileService.IsActiveAsync``).
        """
        self._callbacks.subject_is_active = func
        return func

    def refresh_claims(self, func: H) -> H:
        """Register a hook that updates the claims of refreshed tokens.

        It receives a :class:`~flask_ropc.RefreshRequest` and returns the new
        claims (a mapping), or ``None`` to keep them. The new claims go into
        the new access token and are kept for later refreshes
        (IdentityServer's ``UpdateAccessTokenClaimsOnRefresh``).
        """
        self._callbacks.refresh_claims = func
        return func

    def throttle_exempt(self, func: E) -> E:
        """Register a check that exempts the app's own networks from throttling.

        It receives a :class:`~flask_ropc.ThrottleRequest` (never the
        password) and returns ``True`` for a source the app trusts, such as
        its office or VPN range (Auth0's IP allow-list). An exempt attempt
        skips the per-network budgets and the (username, network) lock; the
        per-username slow-down and the client budget still apply.

        It runs while the token endpoint holds one of Flask-ROPC's pooled
        database connections (client lookup and throttle reservation share
        it): keep it to address checks, without queries on the same engine.
        """
        self._callbacks.throttle_exempt = func
        return func

    # -- admin API (acts on the current app) ----------------------------------

    @property
    def engine(self) -> sa.Engine:
        """The SQLAlchemy engine our tables live on in the current app."""
        return get_state().store.db.engine

    def create_all(self) -> None:
        """Create any of our tables that do not exist yet; keeps existing rows.

        With keys kept in the database, also the first signing key if no key
        is active, so that the JWKS lists it before the first token. With
        Alembic (Flask-Migrate), use its migrations instead (the first key
        is then made by the first token or JWKS request).
        """
        admin.create_all(get_state())

    def drop_all(self) -> None:
        """Drop our tables with every client and token in them.

        The app's own tables are never touched.
        """
        get_state().store.drop_all()

    def revoke(
        self, *, subject: str | None = None, client_id: str | None = None
    ) -> int:
        """Revoke every access and refresh token of a user (``subject``) or of
        a client (``client_id``); return how many were revoked.

        :raises ValueError: not exactly one of the two is given.
        :raises ClientNotFoundError: ``client_id`` names no client.
        """
        return admin.revoke(get_state(), subject=subject, client_id=client_id)

    def revoke_subject(self, subject: str) -> int:
        """Sign a user out everywhere: ``revoke(subject=subject)``."""
        return self.revoke(subject=subject)

    def cleanup(
        self, *, revoked_for: int = 86400, batch_size: int = 1000
    ) -> dict[str, int]:
        """Delete expired tokens, tokens revoked at least ``revoked_for``
        seconds ago and expired throttle counters; return the count per table.

        Each batch of ``batch_size`` rows is its own short transaction, so it
        can run while the server is serving (``flask ropc cleanup`` from cron).
        """
        return admin.cleanup(
            get_state(), revoked_for=revoked_for, batch_size=batch_size
        )

    def unlock(self, username: str) -> int | None:
        """Clear the failed attempts and lock of ``username`` in the current
        app (any case or surrounding spaces: names are normalised).

        Returns how many throttle counters that cleared (0: nothing was
        recorded for this user), or ``None`` when throttling is off.
        """
        return admin.unlock(get_state(), username)

    def unlock_mfa(self, subject: str) -> int:
        """Clear the MFA code budget of the user ``subject`` in the current app
        (its wrong codes, across every ``mfa_token``, and the slow-down).

        Returns how many counters that cleared (0: none were recorded).
        """
        return admin.unlock_mfa(get_state(), subject)

    def dispose(self) -> None:
        """Close the connections of the engine we created for the current app
        (the embedded database); an app's own engine is left alone."""
        get_state().store.db.dispose()

    @t.overload
    def require_token(self, scope: Callable[P, R]) -> Callable[P, R]: ...

    @t.overload
    def require_token(
        self,
        scope: str | t.Sequence[str] | None = None,
        *,
        acr: str | t.Sequence[str] | None = None,
        max_age: int | None = None,
    ) -> Callable[[Callable[P, R]], Callable[P, R]]: ...

    def require_token(
        self,
        scope: str | t.Sequence[str] | None | Callable[P, R] = None,
        *,
        acr: str | t.Sequence[str] | None = None,
        max_age: int | None = None,
    ) -> Callable[P, R] | Callable[[Callable[P, R]], Callable[P, R]]:
        """Protect a view with a bearer token (RFC 6750).

        ``@ropc.require_token("api")`` requires a live token granted the
        ``api`` scope (several space-separated scopes: all of them);
        ``@ropc.require_token()`` or bare ``@ropc.require_token`` any live
        token. Inside the view, :data:`~flask_ropc.current_token` describes it.
        The decorated view keeps its signature for type checkers.

        Step-up (RFC 9470): ``acr`` (one value, or several meaning any of
        them) requires the token's ``acr``; ``max_age`` a login at most that
        many seconds ago. Otherwise 401 ``insufficient_user_authentication``.

        :raises TypeError: ``acr`` or ``max_age`` of the wrong type.
        :raises ValueError: an empty ``acr`` or a negative ``max_age``.
        """
        if callable(scope):
            return self._protector.protect(None)(scope)
        return self._protector.protect(scope, acr, max_age)
