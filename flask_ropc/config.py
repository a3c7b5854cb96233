"""Configuration keys, their defaults, and the frozen settings read from them.

Every key Flask-ROPC reads lives in :data:`DEFAULTS` (kept in
``config_defaults``); :meth:`ROPC.init_app` calls ``app.config.setdefault``
for each one so that ``app.config`` shows the values in effect, then reads
them once into a :class:`Settings` object that is never re-read per request.
A leaf: imports ``config_defaults``, ``config_values``, ``config_checks``,
``auth_context``, ``errors``, ``keys``, ``key_encryption``, ``key_policy``
and ``scopes`` (to check values) only. Besides ``ROPC_`` keys it reads
Flask's ``SECRET_KEY`` and ``SECRET_KEY_FALLBACKS``, from which the key that
encrypts stored signing keys is derived by default.
"""

from __future__ import annotations

import dataclasses
import typing as t

from .auth_context import is_acr_value
from .config_checks import check_bounds
from .config_checks import warn_unknown_keys
from .config_defaults import DEFAULTS as DEFAULTS
from .config_mfa import MfaSettings
from .config_mfa import mfa_settings

# The generic checks, under the names every line below uses.
from .config_values import boolean as _bool
from .config_values import choice as _choice
from .config_values import keyword_arguments as kwargs
from .config_values import optional_str as _optional_str
from .config_values import positive_int as _positive_int
from .config_values import seconds
from .errors import ConfigurationError
from .key_encryption import explicit_secrets
from .key_encryption import flask_secret_keys
from .key_encryption import require_secret_key
from .key_policy import KeyPolicy
from .key_policy import policy_from_config
from .keys import import_signing_keys
from .scopes import check_scope_tokens


@dataclasses.dataclass(frozen=True)
class Settings:
    """The configuration in effect for one app, read once by ``init_app``.

    Build it with :meth:`from_config`; the attribute names are the config keys
    without the ``ROPC_`` prefix, in lower case.
    """

    url_prefix: str
    database_uri: str | None
    access_token_lifetime: int
    max_username_length: int
    max_password_length: int
    max_body_size: int
    access_token_format: str
    issuer: str | None
    audience: str | None
    signing_keys: tuple[t.Any, ...]
    key_encryption_keys: tuple[str, ...] = dataclasses.field(repr=False)
    allow_plaintext_keys: bool
    #: ``SECRET_KEY`` then ``SECRET_KEY_FALLBACKS``, when SECRET_KEY is long
    #: enough to derive the key-encryption key from; else empty.
    secret_keys: tuple[str | bytes, ...] = dataclasses.field(repr=False)
    signing_alg: str
    jwks_max_age: int
    #: The ``ROPC_KEY_*`` lifecycle, or ``None`` (``ROPC_KEY_ROTATION_ENABLED``
    #: off).
    key_policy: KeyPolicy | None
    offline_access_scope: str
    refresh_token_sliding_lifetime: int
    refresh_token_absolute_lifetime: int
    refresh_token_reuse_interval: int
    throttle_enabled: bool
    throttle_username_limit: int
    throttle_username_window: int
    throttle_lockout_base: int
    throttle_lockout_max: int
    throttle_strike_memory: int
    throttle_account_limit: int
    throttle_account_window: int
    throttle_account_interval: int
    throttle_ip_limit: int
    throttle_ip_window: int
    throttle_client_limit: int | None
    throttle_client_window: int
    throttle_response: str
    throttle_on_storage_error: str
    ratelimit_storage_uri: str | None
    ratelimit_storage_options: dict[str, t.Any] = dataclasses.field(repr=False)
    ratelimit_key_prefix: str
    database_lock_timeout: float | None
    database_statement_timeout: float | None
    end_user_ip_header: str
    event_username: str
    openapi_enabled: bool
    metrics_enabled: bool
    dpop_proof_lifetime: int
    dpop_clock_skew: int
    dpop_nonce: bool
    #: The ``ROPC_MFA_*`` settings.
    mfa: MfaSettings
    dpop_nonce_secret: str | None = dataclasses.field(repr=False)
    acr_password: str
    acr_mfa: str

    @property
    def stores_plaintext_keys(self) -> bool:
        """Whether database signing keys are stored unencrypted (only with
        ``ROPC_ALLOW_PLAINTEXT_KEYS``)."""
        return not (self.signing_keys or self.key_encryption_keys or self.secret_keys)

    @classmethod
    def from_config(cls, config: t.Mapping[str, t.Any]) -> Settings:
        """Read and check every ``ROPC_`` key of ``config``.

        Warns (``UserWarning``) about an unknown ``ROPC_*`` key.

        :raises ConfigurationError: a value has the wrong type or range, or
            contradicts another; the message names the key.
        """
        warn_unknown_keys(config, DEFAULTS)
        prefix = config["ROPC_URL_PREFIX"]
        if not isinstance(prefix, str) or (prefix and not prefix.startswith("/")):
            raise ConfigurationError(
                "ROPC_URL_PREFIX must be a path starting with '/' (or '')"
            )
        database_uri = config["ROPC_DATABASE_URI"]
        if database_uri is not None and not isinstance(database_uri, str):
            raise ConfigurationError("ROPC_DATABASE_URI must be a string or None")
        settings = cls(
            url_prefix=prefix.rstrip("/"),
            database_uri=database_uri,
            access_token_lifetime=_positive_int(config, "ROPC_ACCESS_TOKEN_LIFETIME"),
            max_username_length=_positive_int(config, "ROPC_MAX_USERNAME_LENGTH"),
            max_password_length=_positive_int(config, "ROPC_MAX_PASSWORD_LENGTH"),
            max_body_size=_positive_int(config, "ROPC_MAX_BODY_SIZE"),
            access_token_format=_choice(
                config, "ROPC_ACCESS_TOKEN_FORMAT", ("jwt", "reference")
            ),
            issuer=_issuer(config),
            audience=_optional_str(config, "ROPC_AUDIENCE"),
            signing_keys=_signing_keys(config),
            key_encryption_keys=explicit_secrets(config),
            allow_plaintext_keys=_bool(config, "ROPC_ALLOW_PLAINTEXT_KEYS"),
            secret_keys=flask_secret_keys(config),
            signing_alg=_choice(
                config, "ROPC_SIGNING_ALG", ("ES256", "RS256", "EdDSA")
            ),
            jwks_max_age=_positive_int(config, "ROPC_JWKS_MAX_AGE"),
            key_policy=policy_from_config(config),
            offline_access_scope=_scope_name(config, "ROPC_OFFLINE_ACCESS_SCOPE"),
            refresh_token_sliding_lifetime=_positive_int(
                config, "ROPC_REFRESH_TOKEN_SLIDING_LIFETIME"
            ),
            refresh_token_absolute_lifetime=_positive_int(
                config, "ROPC_REFRESH_TOKEN_ABSOLUTE_LIFETIME"
            ),
            refresh_token_reuse_interval=_reuse_interval(config),
            throttle_enabled=_bool(config, "ROPC_THROTTLE_ENABLED"),
            throttle_username_limit=_positive_int(
                config, "ROPC_THROTTLE_USERNAME_LIMIT"
            ),
            throttle_username_window=_positive_int(
                config, "ROPC_THROTTLE_USERNAME_WINDOW"
            ),
            throttle_lockout_base=_positive_int(config, "ROPC_THROTTLE_LOCKOUT_BASE"),
            throttle_lockout_max=_positive_int(config, "ROPC_THROTTLE_LOCKOUT_MAX"),
            throttle_strike_memory=_positive_int(config, "ROPC_THROTTLE_STRIKE_MEMORY"),
            throttle_account_limit=_positive_int(config, "ROPC_THROTTLE_ACCOUNT_LIMIT"),
            throttle_account_window=_positive_int(
                config, "ROPC_THROTTLE_ACCOUNT_WINDOW"
            ),
            throttle_account_interval=_positive_int(
                config, "ROPC_THROTTLE_ACCOUNT_INTERVAL"
            ),
            throttle_ip_limit=_positive_int(config, "ROPC_THROTTLE_IP_LIMIT"),
            throttle_ip_window=_positive_int(config, "ROPC_THROTTLE_IP_WINDOW"),
            throttle_client_limit=(
                None
                if config["ROPC_THROTTLE_CLIENT_LIMIT"] is None
                else _positive_int(config, "ROPC_THROTTLE_CLIENT_LIMIT")
            ),
            throttle_client_window=_positive_int(config, "ROPC_THROTTLE_CLIENT_WINDOW"),
            throttle_response=_choice(
                config, "ROPC_THROTTLE_RESPONSE", ("429", "invalid_grant")
            ),
            throttle_on_storage_error=_choice(
                config, "ROPC_THROTTLE_ON_STORAGE_ERROR", ("closed", "open")
            ),
            ratelimit_storage_uri=_optional_str(config, "ROPC_RATELIMIT_STORAGE_URI"),
            ratelimit_storage_options=kwargs(config, "ROPC_RATELIMIT_STORAGE_OPTIONS"),
            ratelimit_key_prefix=_key_prefix(config),
            database_lock_timeout=seconds(config, "ROPC_DATABASE_LOCK_TIMEOUT"),
            database_statement_timeout=seconds(
                config, "ROPC_DATABASE_STATEMENT_TIMEOUT"
            ),
            end_user_ip_header=_optional_str(config, "ROPC_END_USER_IP_HEADER")
            or "X-End-User-IP",
            event_username=_choice(config, "ROPC_EVENT_USERNAME", ("hash", "plain")),
            openapi_enabled=_bool(config, "ROPC_OPENAPI_ENABLED"),
            metrics_enabled=_bool(config, "ROPC_METRICS_ENABLED"),
            dpop_proof_lifetime=_positive_int(config, "ROPC_DPOP_PROOF_LIFETIME"),
            dpop_clock_skew=_positive_int(config, "ROPC_DPOP_CLOCK_SKEW"),
            dpop_nonce=_bool(config, "ROPC_DPOP_NONCE"),
            mfa=mfa_settings(config),
            dpop_nonce_secret=_optional_str(config, "ROPC_DPOP_NONCE_SECRET"),
            acr_password=_acr(config, "ROPC_ACR_PASSWORD"),
            acr_mfa=_acr(config, "ROPC_ACR_MFA"),
        )
        if settings.acr_password == settings.acr_mfa:
            raise ConfigurationError(
                "ROPC_ACR_PASSWORD and ROPC_ACR_MFA must differ: an API asking "
                "for the second factor could not tell the two apart"
            )
        check_bounds(config)
        # Last, so that a wrong value of any other key is named first.
        if settings.stores_plaintext_keys and not settings.allow_plaintext_keys:
            require_secret_key(config)
        return settings


def _reuse_interval(config: t.Mapping[str, t.Any]) -> int:
    key = "ROPC_REFRESH_TOKEN_REUSE_INTERVAL"
    value = config[key]
    # Long enough to retry a lost response, short enough that a stolen token
    # is of little use: Cognito allows up to 60 s, we allow up to 300.
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= 300:
        raise ConfigurationError(
            f"{key} must be an integer from 0 to 300 seconds, got {value!r}"
        )
    return value


def _issuer(config: t.Mapping[str, t.Any]) -> str | None:
    issuer = _optional_str(config, "ROPC_ISSUER")
    if issuer is None:
        return None
    # RFC 8414 §2: an https URL without query or fragment.
    if not issuer.startswith(("https://", "http://")) or "?" in issuer or "#" in issuer:
        raise ConfigurationError(
            "ROPC_ISSUER must be an https:// URL without query or fragment"
        )
    return issuer.rstrip("/")


def _signing_keys(config: t.Mapping[str, t.Any]) -> tuple[t.Any, ...]:
    return import_signing_keys(config["ROPC_SIGNING_KEYS"], "ROPC_SIGNING_KEYS")


def _key_prefix(config: t.Mapping[str, t.Any]) -> str:
    key = "ROPC_RATELIMIT_KEY_PREFIX"
    value = _optional_str(config, key) or "ropc"
    # Counter keys are the prefix plus up to 90 characters, in a column of 128.
    if len(value) > 32:
        raise ConfigurationError(f"{key} may be at most 32 characters")
    return value


def _acr(config: t.Mapping[str, t.Any], key: str) -> str:
    value = config[key]
    # One token: it is compared as a whole and quoted in WWW-Authenticate's
    # acr_values (RFC 9470 §3), a space-separated list.
    if isinstance(value, str) and value and is_acr_value(value):
        return value
    raise ConfigurationError(
        f"{key} must be a non-empty string without whitespace or quotes, got {value!r}"
    )


def _scope_name(config: t.Mapping[str, t.Any], key: str) -> str:
    value = config[key]
    try:
        if isinstance(value, str) and check_scope_tokens([value]) == [value]:
            return value
    except ValueError:
        pass
    raise ConfigurationError(f"{key} must be a single scope name, got {value!r}")
