"""Flask-ROPC's per-app state, and the app's callbacks.

:class:`State` is what ``init_app`` keeps at ``app.extensions["ropc"]``;
:func:`get_state` finds it for the current app. :class:`Callbacks` holds what
the app registered with the ``ROPC`` decorators (they may run before
``init_app``, so the extension owns the object and every app's state shares
it). Imports the services below it (``keyring``, ``throttle``), ``store``,
``config`` and leaves; never ``extension``.
"""

from __future__ import annotations

import dataclasses
import logging
import typing as t
from collections.abc import Callable
from collections.abc import Mapping

import flask

from .config import Settings
from .dpop_nonce import NonceSource
from .errors import ConfigurationError
from .keyring import KeyRing
from .mfa_contract import MfaRequest
from .mfa_contract import MfaResult
from .mfa_contract import StepLedger
from .mfa_contract import normalise_mfa_result
from .mfa_throttle import MfaThrottle
from .store import MfaTokens
from .store import ReplayCache
from .store import Store
from .throttle import Throttle
from .validation import GrantResult
from .validation import PasswordRequest
from .validation import RefreshRequest
from .validation import ThrottleRequest
from .validation import normalise_result

#: Where the state lives in ``app.extensions``.
EXTENSION_KEY = "ropc"

#: What is wrong, and how to fix it, when no validator is registered.
NO_VALIDATOR = (
    "no password validator is registered: decorate a function with "
    "@ropc.password_validator"
)

#: What is wrong when a validator asks for MFA and no verifier is registered.
NO_MFA_VERIFIER = (
    "a password validator returned GrantResult.mfa_required() but no MFA "
    "verifier is registered: decorate a function with @ropc.mfa_verifier"
)

log = logging.getLogger("flask_ropc")


@dataclasses.dataclass
class Callbacks:
    """The functions an app registered through the ``ROPC`` decorators."""

    #: ``@ropc.password_validator``.
    validator: Callable[[PasswordRequest], t.Any] | None = None
    #: ``@ropc.subject_is_active``.
    subject_is_active: Callable[[RefreshRequest], t.Any] | None = None
    #: ``@ropc.refresh_claims``.
    refresh_claims: Callable[[RefreshRequest], t.Any] | None = None
    #: ``@ropc.throttle_exempt``.
    throttle_exempt: Callable[[ThrottleRequest], t.Any] | None = None
    #: ``@ropc.mfa_verifier``.
    mfa_verifier: Callable[[MfaRequest], t.Any] | None = None

    def run_validator(self, request: PasswordRequest) -> GrantResult:
        """Call the app's validator and normalise what it returns.

        :raises ConfigurationError: no validator is registered.
        """
        if self.validator is None:
            raise ConfigurationError(NO_VALIDATOR)
        verdict = flask.current_app.ensure_sync(self.validator)(request)
        try:
            return normalise_result(verdict)
        except TypeError:
            log.warning(
                "the function decorated with @ropc.password_validator (%s) "
                "returned %s; it must return a GrantResult, a non-empty subject "
                "string or None. Every password grant answers 500 until it does.",
                getattr(self.validator, "__qualname__", repr(self.validator)),
                type(verdict).__name__,
            )
            raise

    def run_mfa_verifier(self, request: MfaRequest) -> MfaResult:
        """Call the app's MFA verifier and normalise what it returns.

        :raises ConfigurationError: no verifier is registered.
        """
        if self.mfa_verifier is None:
            raise ConfigurationError(NO_MFA_VERIFIER)
        verdict = flask.current_app.ensure_sync(self.mfa_verifier)(request)
        try:
            return normalise_mfa_result(verdict)
        except TypeError:
            log.warning(
                "the function decorated with @ropc.mfa_verifier (%s) returned "
                "%s; it must return an MfaResult, True or False",
                getattr(self.mfa_verifier, "__qualname__", repr(self.mfa_verifier)),
                type(verdict).__name__,
            )
            raise

    def run_throttle_exempt(self, request: ThrottleRequest) -> bool:
        """Ask the app's ``throttle_exempt`` hook, if any (default: no)."""
        return _yes_or_no(self.throttle_exempt, request, "throttle_exempt", False)

    def run_subject_check(self, request: RefreshRequest) -> bool:
        """Ask the app's ``subject_is_active`` hook, if any (default: yes)."""
        return _yes_or_no(self.subject_is_active, request, "subject_is_active", True)

    def run_refresh_claims(self, request: RefreshRequest) -> Mapping[str, t.Any]:
        """The claims for a refreshed token: the hook's answer, else unchanged."""
        if self.refresh_claims is None:
            return request.claims
        claims = flask.current_app.ensure_sync(self.refresh_claims)(request)
        if claims is None:
            return request.claims
        if not isinstance(claims, Mapping):
            raise TypeError(
                "a refresh_claims hook must return a mapping or None, not "
                f"{type(claims).__name__}"
            )
        return claims


def _yes_or_no(
    hook: Callable[[t.Any], t.Any] | None, request: t.Any, name: str, default: bool
) -> bool:
    """Call a hook that must answer ``True`` or ``False``; ``default`` without one.

    :raises TypeError: it answered something else.
    """
    if hook is None:
        return default
    verdict = flask.current_app.ensure_sync(hook)(request)
    if not isinstance(verdict, bool):
        raise TypeError(
            f"a {name} hook must return True or False, not {type(verdict).__name__}"
        )
    return verdict


@dataclasses.dataclass
class State:
    """Everything Flask-ROPC keeps per app, at ``app.extensions["ropc"]``.

    Internal: its attributes may change between releases.
    """

    settings: Settings
    store: Store
    keyring: KeyRing
    callbacks: Callbacks
    #: Brute-force protection, or ``None`` when ROPC_THROTTLE_ENABLED is off.
    throttle: Throttle | None = None
    #: Where DPoP proofs' ``jti`` are remembered (see ``dpop_binding.setup``).
    dpop_replay: ReplayCache | None = None
    #: DPoP nonces, or ``None`` without a secret to make them.
    dpop_nonces: NonceSource | None = None
    #: Pending MFA logins (SQL, or the throttle's Redis).
    mfa_tokens: MfaTokens | None = None
    #: The per-user budget of MFA codes, or ``None`` without throttling.
    mfa_throttle: MfaThrottle | None = None
    #: The default store of accepted TOTP steps.
    mfa_steps: StepLedger | None = None
    #: Whether :meth:`check_first_request` has run.
    first_request_checked: bool = False

    def check_first_request(self) -> None:
        """Run before the app's first request: warn if no password validator
        is registered. The decorators run after ``init_app``, so the first
        request is the first moment a missing one is known; without this,
        the first sign would be a 500 at the first login."""
        if self.first_request_checked:
            return
        self.first_request_checked = True
        if self.callbacks.validator is None:
            log.warning("%s; until then every password grant answers 500", NO_VALIDATOR)

    def issuer(self) -> str:
        """``ROPC_ISSUER``, else the current request's base URL.

        IdentityServer does the same; the discovery document, the tokens'
        ``iss`` and their validation all call this, so they always agree.
        """
        if self.settings.issuer is not None:
            return self.settings.issuer
        return flask.request.url_root.rstrip("/")

    def audience_for(self, client_audience: str | None) -> str:
        """The ``aud`` for a client's tokens: its own, else the app's."""
        if client_audience:
            return client_audience
        return self.settings.audience or self.issuer()


def get_state(app: flask.Flask | None = None) -> State:
    """Return Flask-ROPC's state for ``app`` (default: the current app).

    :raises RuntimeError: the extension was not initialised on the app.
    """
    app = app or flask.current_app
    try:
        return t.cast(State, app.extensions[EXTENSION_KEY])
    except KeyError:
        raise RuntimeError(
            "Flask-ROPC is not initialised on this app: call ROPC(app) or "
            "ropc.init_app(app) first."
        ) from None
