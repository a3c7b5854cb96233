"""How an API checks Flask-ROPC's access tokens: the code shown in docs/tokens.md.

Four ways, each self-contained so that the docs can include it on its own:

* :class:`PyJWTChecker`: offline, with PyJWT, discovery and the JWKS;
* :func:`check_with_joserfc`: offline, with joserfc (what Authlib uses);
* :func:`create_authlib_api`: a Flask API protected by Authlib's RFC 9068
  ``JWTBearerTokenValidator``;
* :func:`introspect`: asking the introspection endpoint (RFC 7662), the only
  way for reference tokens and the way to see a revocation at once.

``tests/test_docs.py`` runs all four against a live Flask-ROPC server.
"""

from __future__ import annotations

import typing as t

# -- PyJWT ---------------------------------------------------------------------
import jwt
import requests


class PyJWTChecker:
    """Check our JWT access tokens offline with PyJWT.

    ``issuer`` is Flask-ROPC's ``ROPC_ISSUER``; ``audience`` is the ``aud``
    this API expects (``ROPC_AUDIENCE``, a client's ``--audience``, or by
    default the issuer).
    """

    def __init__(self, issuer: str, audience: str | None = None) -> None:
        meta = requests.get(
            f"{issuer}/.well-known/oauth-authorization-server", timeout=5
        ).json()
        self.issuer = meta["issuer"]
        self.audience = audience or self.issuer
        # Fetches the JWKS on first use and again for a kid it has not seen,
        # so a key published ahead of a rotation is picked up by itself.
        self.jwks = jwt.PyJWKClient(meta["jwks_uri"], cache_keys=True)

    def __call__(self, token: str) -> dict[str, t.Any]:
        """The token's claims; raises ``jwt.InvalidTokenError`` if it is bad."""
        if jwt.get_unverified_header(token).get("typ") != "at+jwt":
            raise jwt.InvalidTokenError("not an RFC 9068 access token")
        key = self.jwks.get_signing_key_from_jwt(token)
        return jwt.decode(
            token,
            key.key,
            algorithms=["ES256", "RS256", "EdDSA"],  # never HS256 or none
            audience=self.audience,
            issuer=self.issuer,
            options={"require": ["exp", "iat", "sub", "client_id", "jti"]},
        )


# -- joserfc -------------------------------------------------------------------
from joserfc import jwt as jose_jwt  # noqa: E402
from joserfc.errors import InvalidHeaderValueError  # noqa: E402
from joserfc.jwk import KeySet  # noqa: E402


def check_with_joserfc(
    token: str, *, issuer: str, audience: str, jwks: dict[str, t.Any]
) -> dict[str, t.Any]:
    """The token's claims; raises ``joserfc.errors.JoseError`` if it is bad.

    ``jwks`` is the JSON of ``{issuer}/oauth/jwks`` (cache it for
    ``ROPC_JWKS_MAX_AGE`` seconds, and fetch it again for an unknown kid).
    """
    decoded = jose_jwt.decode(
        token, KeySet.import_key_set(jwks), algorithms=["ES256", "RS256", "EdDSA"]
    )
    if decoded.header.get("typ") != "at+jwt":
        raise InvalidHeaderValueError("not an RFC 9068 access token")
    claims_registry = jose_jwt.JWTClaimsRegistry(
        iss={"essential": True, "value": issuer},
        aud={"essential": True, "value": audience},
        exp={"essential": True},
        sub={"essential": True},
        client_id={"essential": True},
    )
    claims_registry.validate(decoded.claims)
    return decoded.claims


# -- Authlib's resource server -------------------------------------------------
from authlib.integrations.flask_oauth2 import ResourceProtector  # noqa: E402
from authlib.integrations.flask_oauth2 import current_token  # noqa: E402
from authlib.oauth2.rfc9068 import JWTBearerTokenValidator  # noqa: E402
from flask import Flask  # noqa: E402
from joserfc.jwk import KeySet  # noqa: E402,F811 (imported again for this part)


class OurTokens(JWTBearerTokenValidator):  # type: ignore[misc]
    """Authlib's RFC 9068 validator, fed with Flask-ROPC's JWKS."""

    def __init__(self, issuer: str, audience: str) -> None:
        super().__init__(issuer=issuer, resource_server=audience)
        self.jwks_uri = f"{issuer}/oauth/jwks"
        self._jwks: KeySet | None = None

    def get_jwks(self) -> KeySet:
        # A real API caches this for ROPC_JWKS_MAX_AGE seconds (and fetches
        # it again when a token names a kid it does not know).
        if self._jwks is None:
            jwks = requests.get(self.jwks_uri, timeout=5).json()
            self._jwks = KeySet.import_key_set(jwks)
        return self._jwks


def create_authlib_api(issuer: str, audience: str | None = None) -> Flask:
    """A separate API (not the Flask-ROPC app) that accepts our tokens."""
    api = Flask(__name__)
    require_oauth = ResourceProtector()
    require_oauth.register_token_validator(OurTokens(issuer, audience or issuer))

    @api.get("/orders")
    @require_oauth("api")
    def orders() -> dict[str, t.Any]:
        return {"user": current_token["sub"], "client": current_token["client_id"]}

    return api


# -- Introspection (reference tokens, or immediate revocation) -----------------
def introspect(
    token: str, *, issuer: str, client_id: str, client_secret: str
) -> dict[str, t.Any] | None:
    """The token's RFC 7662 description if it is live, else ``None``.

    The API authenticates as a confidential client created with
    ``--resource-server``, so it may introspect every client's tokens.
    """
    answer = requests.post(
        f"{issuer}/oauth/introspect",
        data={"token": token},
        auth=(client_id, client_secret),
        timeout=5,
    )
    answer.raise_for_status()
    description: dict[str, t.Any] = answer.json()
    return description if description["active"] else None
