"""RFC 9068 JWT access tokens, signed and checked with joserfc.

Authlib 1.9's ``JWTBearerTokenGenerator`` and ``JWTBearerTokenValidator``
call joserfc without ``algorithms=``, so only joserfc's "recommended"
algorithms work through them (EdDSA fails at issuance), their validator
accepts a token with no ``typ`` header, they know nothing of per-client
lifetimes or audiences, and they cannot pick a key by ``kid`` from a rotating
key set. So we call joserfc directly, always with an explicit list of our
asymmetric algorithms: never HS256, never ``none``.

Imports :mod:`~flask_ropc.keyring`, :mod:`~flask_ropc.tokens` and leaves.
"""

from __future__ import annotations

import base64
import functools
import json
import secrets
import typing as t
from collections.abc import Mapping

from joserfc import jws
from joserfc.errors import JoseError
from joserfc.jws import JWSRegistry
from joserfc.jwt import JWTClaimsRegistry

from . import hashing
from .errors import ConfigurationError
from .keyring import KeyRing
from .keys import SUPPORTED_ALGORITHMS
from .keys import SigningKey
from .tokens import IssuedToken
from .tokens import TokenGrant

#: The JWT header ``typ`` of access tokens (RFC 9068 §2.1); the media-type
#: form is accepted on input too (§4).
ACCESS_TOKEN_TYPES = ("at+jwt", "application/at+jwt")

#: Claims we set ourselves; a validator's ``claims`` may not use these names.
REGISTERED_CLAIMS = frozenset(
    {
        "iss",
        "sub",
        "aud",
        "exp",
        "nbf",
        "iat",
        "jti",
        "client_id",
        "scope",
        "auth_time",
        "acr",
        "amr",
        "cnf",
        "typ",
    }
)


class _QuietEdDSA(type(JWSRegistry.algorithms["EdDSA"])):  # type: ignore[misc]
    # RFC 9864 deprecates the "EdDSA" name in favour of "Ed25519", and joserfc
    # warns on every use. Stock JWT libraries (PyJWT, jose, Microsoft's) still
    # only know "EdDSA", so we keep that name for interoperability and drop
    # the per-token warning, which would otherwise flood logs (or, under
    # -W error, fail every request).
    security_warning = None


class _Registry(JWSRegistry):
    algorithms = {**JWSRegistry.algorithms, "EdDSA": _QuietEdDSA()}


@functools.lru_cache(maxsize=8)  # one per algorithm we support
def _registry(alg: str) -> JWSRegistry:
    """A registry allowing exactly ``alg``."""
    return _Registry(algorithms=[alg])


class _Signer(t.NamedTuple):
    """What joserfc's ``jwt.encode`` works out anew for every token, done
    once per signing key: the checked header, encoded, and the algorithm."""

    #: The joserfc key (also tells a key apart from one reusing its kid).
    key: t.Any
    #: ``BASE64URL(UTF8(header)) + "."``.
    header_segment: bytes
    #: joserfc's algorithm, its ``check_key`` passed.
    alg: t.Any


_SIGNERS: dict[tuple[str, str], _Signer] = {}


def _signer(key: SigningKey) -> _Signer:
    found = _SIGNERS.get((key.kid, key.alg))
    if found is not None and found.key is key.key:
        return found
    # jwt.encode's header: its default "typ" first, overridden by ours.
    header = {"typ": "at+jwt", "alg": key.alg, "kid": key.kid}
    registry = _registry(key.alg)
    registry.check_header(header)
    alg = registry.get_alg(key.alg)
    alg.check_key(key.key)
    encoded = json.dumps(header, ensure_ascii=True, separators=(",", ":"))
    signer = _Signer(key.key, _b64(encoded.encode("ascii")) + b".", alg)
    if len(_SIGNERS) >= 16:  # rotated keys: never many live at once
        _SIGNERS.clear()
    _SIGNERS[(key.kid, key.alg)] = signer
    return signer


def _b64(data: bytes) -> bytes:
    return base64.urlsafe_b64encode(data).rstrip(b"=")


def _sign(key: SigningKey, claims: Mapping[str, t.Any]) -> str:
    """The JWS compact serialization joserfc's ``jwt.encode`` makes."""
    signer = _signer(key)
    payload = json.dumps(claims, ensure_ascii=False, separators=(",", ":"))
    signing_input = signer.header_segment + _b64(payload.encode("utf-8"))
    signature = _b64(signer.alg.sign(signing_input, signer.key))
    return (signing_input + b"." + signature).decode("ascii")


def issue_jwt(grant: TokenGrant, keyring: KeyRing) -> IssuedToken:
    """Sign an RFC 9068 access token for ``grant`` with the active key.

    :raises ConfigurationError: the validator's claims reuse a registered
        claim name; a silently overwritten ``sub`` or ``scope`` would be a
        wrong token, so this fails loudly instead.
    """
    clash = sorted(set(grant.claims) & REGISTERED_CLAIMS)
    if clash:
        raise ConfigurationError(
            "the password validator's claims may not overwrite registered JWT "
            f"claims: {', '.join(clash)}; rename them"
        )
    key = keyring.signing_key()
    claims: dict[str, t.Any] = dict(grant.claims)
    claims.update(
        iss=grant.issuer,
        sub=grant.subject,
        aud=grant.audience,
        exp=grant.expires_at,
        iat=grant.issued_at,
        jti=secrets.token_urlsafe(16),
        client_id=grant.client_id,
        scope=" ".join(grant.scopes),
    )
    context = grant.auth_context
    if context is not None:
        # RFC 9068 §2.2.1: auth_time, acr and amr (a JSON array, RFC 8176).
        claims.update(
            auth_time=context.auth_time, acr=context.acr, amr=list(context.amr)
        )
    if grant.dpop_jkt is not None:
        claims["cnf"] = {"jkt": grant.dpop_jkt}  # RFC 9449 §6.1
    value = _sign(key, claims)
    return IssuedToken(value=value, digest=hashing.digest(value), kid=key.kid)


def verify_jwt(
    value: str, keyring: KeyRing, *, issuer: str, audience: str | None, now: int
) -> Mapping[str, t.Any] | None:
    """Return the claims of a valid access token, or ``None``.

    Checks, in order: compact JWS syntax, with a JSON object as header;
    ``typ`` is ``at+jwt``; the ``kid`` is one of our published keys and
    ``alg`` is that key's algorithm (no algorithm confusion, no ``none``, no
    HS256 signed with a public key); the signature; then ``iss``, ``aud``,
    ``exp``, ``nbf``, ``iat`` and the claims RFC 9068 §2.2 makes mandatory.
    ``audience=None`` requires an ``aud`` but accepts any value.
    """
    try:
        # Extracted once: joserfc's jwt.decode would extract it again.
        compact = jws.extract_compact(value.encode("ascii"))
        header = compact.headers()
    except (JoseError, ValueError, UnicodeError):
        return None
    if not isinstance(header, dict):
        # Valid JSON that is not an object ("alg", [1], 5) is no JOSE header
        # (RFC 7515 §4); joserfc hands it back as it is.
        return None
    if header.get("typ") not in ACCESS_TOKEN_TYPES:
        return None
    kid, alg = header.get("kid"), header.get("alg")
    if not isinstance(kid, str) or alg not in SUPPORTED_ALGORITHMS:
        return None
    key = keyring.key_for(kid)
    if key is None or key.alg != alg:
        return None
    try:
        # jwt.decode's steps: the signature, then a JSON object as payload.
        if not jws.validate_compact(compact, key.key, registry=_registry(key.alg)):
            return None
        claims = json.loads(compact.payload or b"")
        if not isinstance(claims, dict):
            return None
        registry = JWTClaimsRegistry(
            now=now,
            iss={"essential": True, "value": issuer},
            aud=(
                {"essential": True}
                if audience is None
                else {"essential": True, "value": audience}
            ),
            exp={"essential": True},
            iat={"essential": True},
            sub={"essential": True},
            jti={"essential": True},
            client_id={"essential": True},
        )
        registry.validate(claims)
    except (JoseError, ValueError, TypeError):
        return None
    if claims["iat"] > now:
        return None
    return claims
