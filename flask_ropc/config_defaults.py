"""Every configuration key Flask-ROPC reads, with its default.

A leaf with no imports: :mod:`flask_ropc.config` validates these keys into
:class:`~flask_ropc.config.Settings` and re-exports :data:`DEFAULTS`; the
README's configuration table is checked against this dict.
"""

from __future__ import annotations

import typing as t

#: Each key Flask-ROPC reads and its default; ``init_app`` sets any missing.
DEFAULTS: dict[str, t.Any] = {
    # Where the blueprint is mounted: the token endpoint is ``{prefix}/token``.
    "ROPC_URL_PREFIX": "/oauth",
    # Database for our tables when no Flask-SQLAlchemy ``db`` is passed.
    # ``None`` means SQLALCHEMY_DATABASE_URI if set, else an SQLite file in the
    # app's instance folder.
    "ROPC_DATABASE_URI": None,
    # Access token lifetime in seconds, unless the client overrides it.
    # Authlib's default for the password grant is ten days; ours is one hour.
    "ROPC_ACCESS_TOKEN_LIFETIME": 3600,
    # Input caps, checked before the validator runs. IdentityServer caps both
    # at 100 characters; ours are more generous (passphrases, e-mail logins).
    "ROPC_MAX_USERNAME_LENGTH": 256,
    "ROPC_MAX_PASSWORD_LENGTH": 1024,
    # Largest request body the endpoints parse, in bytes.
    "ROPC_MAX_BODY_SIZE": 16 * 1024,
    # "jwt" (RFC 9068, signed) or "reference" (opaque); clients may override.
    "ROPC_ACCESS_TOKEN_FORMAT": "jwt",
    # The "iss" of our tokens and discovery document. None means the request's
    # own base URL (with a warning at start-up: set it in production).
    "ROPC_ISSUER": None,
    # The default JWT "aud"; None means the issuer. Clients may override.
    "ROPC_AUDIENCE": None,
    # Private signing keys (PEM text or JWK), the first signs. None means keys
    # kept in the database and managed with `flask ropc keys`.
    "ROPC_SIGNING_KEYS": None,
    # Secrets (one, or a list; the first encrypts) under which signing keys
    # kept in the database are encrypted. None: a key derived from SECRET_KEY.
    "ROPC_KEY_ENCRYPTION_KEYS": None,
    # With neither SECRET_KEY nor ROPC_KEY_ENCRYPTION_KEYS, init_app refuses
    # to keep signing keys in the database unless this is True (then they
    # are stored unencrypted, with a warning at start-up).
    "ROPC_ALLOW_PLAINTEXT_KEYS": False,
    # Algorithm of keys we generate: ES256, RS256 or EdDSA.
    "ROPC_SIGNING_ALG": "ES256",
    # Cache-Control max-age of the JWKS and discovery documents, in seconds.
    "ROPC_JWKS_MAX_AGE": 300,
    # Automatic rotation of the database keys (see key_policy.py): a new key
    # is published a propagation time before it signs, signs for at most
    # the interval, and stays published for the retention after.
    "ROPC_KEY_ROTATION_ENABLED": False,
    "ROPC_KEY_ROTATION_INTERVAL": 90 * 24 * 3600,
    "ROPC_KEY_PROPAGATION_TIME": 14 * 24 * 3600,
    "ROPC_KEY_RETENTION": 14 * 24 * 3600,
    # The scope that asks for a refresh token (clients need offline access).
    "ROPC_OFFLINE_ACCESS_SCOPE": "offline_access",
    # A refresh token expires this long after it was issued, unless used...
    "ROPC_REFRESH_TOKEN_SLIDING_LIFETIME": 14 * 24 * 3600,
    # ...and a chain of rotations never outlives this, from the password login.
    "ROPC_REFRESH_TOKEN_ABSOLUTE_LIFETIME": 30 * 24 * 3600,
    # Seconds after its exchange during which a refresh token may be exchanged
    # again, for a client whose response was lost; 0 (off): a second use is
    # always reuse.
    "ROPC_REFRESH_TOKEN_REUSE_INTERVAL": 0,
    # Brute-force protection of the password grant (see throttle.py).
    "ROPC_THROTTLE_ENABLED": True,
    # Failed attempts per (username, source network) within the (sliding)
    # window before that pair is locked...
    "ROPC_THROTTLE_USERNAME_LIMIT": 5,
    "ROPC_THROTTLE_USERNAME_WINDOW": 15 * 60,
    # ...which lasts this long, doubling with every further lock, up to max.
    "ROPC_THROTTLE_LOCKOUT_BASE": 60,
    "ROPC_THROTTLE_LOCKOUT_MAX": 60 * 60,
    # How long past locks are remembered for the doubling.
    "ROPC_THROTTLE_STRIKE_MEMORY": 24 * 3600,
    # Failed attempts per username from all networks within the window
    # (distributed stuffing) before the username is slowed down, never locked:
    "ROPC_THROTTLE_ACCOUNT_LIMIT": 50,
    "ROPC_THROTTLE_ACCOUNT_WINDOW": 3600,
    # then one attempt per this many seconds, from anywhere.
    "ROPC_THROTTLE_ACCOUNT_INTERVAL": 10,
    # Failed attempts per client IP address within the window.
    "ROPC_THROTTLE_IP_LIMIT": 100,
    "ROPC_THROTTLE_IP_WINDOW": 15 * 60,
    # Failed attempts per OAuth client within the window; None: unlimited.
    "ROPC_THROTTLE_CLIENT_LIMIT": None,
    "ROPC_THROTTLE_CLIENT_WINDOW": 15 * 60,
    # "429" (with Retry-After) or "invalid_grant" (Keycloak-style, uniform).
    "ROPC_THROTTLE_RESPONSE": "429",
    # If the counter storage fails: "closed" (503) or "open" (let it through).
    "ROPC_THROTTLE_ON_STORAGE_ERROR": "closed",
    # None: counters in our database. Else a `limits` storage URI, e.g.
    # "redis://host:6379/0" for many machines or "memory://" for one process.
    "ROPC_RATELIMIT_STORAGE_URI": None,
    # `limits` storage options (Redis: redis-py's), over our Redis defaults
    # socket_connect_timeout=1, socket_timeout=2 (s); the URI's query wins.
    "ROPC_RATELIMIT_STORAGE_OPTIONS": None,
    # Prefix of every counter key.
    "ROPC_RATELIMIT_KEY_PREFIX": "ropc",
    # Seconds a statement of ours may wait for a lock (SQLite: busy timeout)
    # or run (PostgreSQL), then 503; None: no limit of ours.
    "ROPC_DATABASE_LOCK_TIMEOUT": 3,
    "ROPC_DATABASE_STATEMENT_TIMEOUT": 5,
    # The header a trusted backend client may use to pass the end user's IP.
    "ROPC_END_USER_IP_HEADER": "X-End-User-IP",
    # Usernames in audit events: "hash" (SHA-256 of the normalised name) or
    # "plain" (the normalised name).
    "ROPC_EVENT_USERNAME": "hash",
    # DPoP (RFC 9449): a proof's greatest age and the clock skew allowed
    # either way, in seconds; its jti is remembered that long.
    "ROPC_DPOP_PROOF_LIFETIME": 60,
    "ROPC_DPOP_CLOCK_SKEW": 5,
    # Require DPoP nonces (token endpoint and require_token) of clients whose
    # own --dpop-nonce is "default", made from this secret shared by every
    # instance; None: derived from SECRET_KEY.
    "ROPC_DPOP_NONCE": False,
    "ROPC_DPOP_NONCE_SECRET": None,
    # MFA continuation (docs/mfa.md): an mfa_token's lifetime (at most 600 s)
    # and the wrong codes it survives (at most 10); wrong codes per user
    # across every mfa_token in a window, then one more per interval; the
    # status of the mfa_required answer (403 as Auth0, or 400).
    "ROPC_MFA_TOKEN_LIFETIME": 300,
    "ROPC_MFA_MAX_ATTEMPTS": 5,
    "ROPC_MFA_FAILURE_LIMIT": 10,
    "ROPC_MFA_FAILURE_WINDOW": 3600,
    "ROPC_MFA_SLOW_INTERVAL": 360,
    "ROPC_MFA_REQUIRED_STATUS": 403,
    # The "acr" (authentication context class) of tokens from a password
    # login, and of those a second factor completed; listed in discovery
    # and required with require_token(acr=...) (RFC 9470).
    "ROPC_ACR_PASSWORD": "urn:flask-ropc:acr:pwd",
    "ROPC_ACR_MFA": "urn:flask-ropc:acr:mfa",
    # Serve the OpenAPI 3.1 description of our endpoints at {prefix}/openapi.json.
    "ROPC_OPENAPI_ENABLED": False,
    # OpenTelemetry metrics, when opentelemetry-api is installed (docs/metrics.md).
    "ROPC_METRICS_ENABLED": True,
}
