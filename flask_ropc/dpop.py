"""DPoP proofs (RFC 9449): parsing and every check of §4.3, in order.

:func:`verify_proof` takes the values of the request's ``DPoP`` headers and
what the proof must match (the method, our own URL for the request, the
access token presented with it, the nonces we accept) and returns a
:class:`Proof`, or raises :class:`ProofError` naming the first problem. The
``jti`` replay check is not here: the caller records the ``jti`` only once
every other check (including its own) has passed, so that a rejected proof
does not burn its ``jti``.

URLs are compared after RFC 3986 §6.2.2 and §6.2.3 normalisation
(:func:`normalise_url`): scheme and host in lower case, the default port
dropped, percent-encoding in upper case with unreserved characters decoded,
dot segments removed, an empty path as ``/``; query and fragment ignored.
The path stays case-sensitive and a trailing slash is significant
(``/token/`` is another resource than ``/token``).

A leaf: imports only joserfc and :mod:`~flask_ropc.hashing`.
"""

from __future__ import annotations

import base64
import dataclasses
import hashlib
import json
import re
import typing as t
from collections.abc import Callable
from collections.abc import Sequence
from urllib.parse import urlsplit

from joserfc import jws
from joserfc.errors import JoseError
from joserfc.jwk import JWKRegistry
from joserfc.jws import JWSRegistry

#: The proof algorithms we accept (asymmetric only: never ``none`` or a
#: MAC), also ``dpop_signing_alg_values_supported`` in discovery.
ALGORITHMS = ("ES256", "RS256", "PS256", "EdDSA")

#: The key type each algorithm needs.
_KEY_TYPES = {"ES256": "EC", "RS256": "RSA", "PS256": "RSA", "EdDSA": "OKP"}

#: Shortest RSA key we accept (RFC 7518 §3.3 requires 2048 bits).
MIN_RSA_BITS = 2048

#: Longest proof we parse: a proof with a 4096-bit RSA key is under 2 KB.
MAX_PROOF_LENGTH = 8192

INVALID = "invalid_dpop_proof"
USE_NONCE = "use_dpop_nonce"

_PERCENT = re.compile(r"%[0-9A-Fa-f]{2}")
_UNRESERVED = frozenset(
    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-._~"
)
_DEFAULT_PORTS = {"https": 443, "http": 80}


class ProofError(Exception):
    """A proof failed a check: ``error`` is ``invalid_dpop_proof`` or
    ``use_dpop_nonce``; the message is safe to send (no proof content)."""

    def __init__(self, description: str, error: str = INVALID) -> None:
        super().__init__(description)
        #: The OAuth error code.
        self.error = error
        #: The ``error_description``.
        self.description = description


@dataclasses.dataclass(frozen=True)
class Proof:
    """A proof that passed every check of :func:`verify_proof`."""

    #: RFC 7638 SHA-256 thumbprint of its key (``cnf.jkt``).
    jkt: str
    jti: str
    iat: int
    #: The normalised ``htu``: the replay cache keeps ``jti`` per URL.
    htu: str
    #: The nonce it carried, if any.
    nonce: str | None


class _QuietEdDSA(type(JWSRegistry.algorithms["EdDSA"])):  # type: ignore[misc]
    # joserfc warns on every use of the "EdDSA" name (RFC 9864 prefers
    # "Ed25519"); clients still send "EdDSA" (see jwt_tokens.py).
    security_warning = None


class _Registry(JWSRegistry):
    algorithms = {**JWSRegistry.algorithms, "EdDSA": _QuietEdDSA()}
    # joserfc's 512-byte default is less than a header with an RSA jwk.
    max_header_length = 4096


def thumbprint(jwk: t.Mapping[str, t.Any]) -> str:
    """The RFC 7638 SHA-256 thumbprint of a public JWK (base64url)."""
    return str(JWKRegistry.import_key(dict(jwk)).thumbprint())


def access_token_hash(value: str) -> str:
    """``ath``: base64url SHA-256 of the access token (RFC 9449 §4.2)."""
    digest = hashlib.sha256(value.encode("ascii")).digest()
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode()


def normalise_url(url: str) -> str:
    """``url`` after RFC 3986 syntax- and scheme-based normalisation, without
    query and fragment. Raises :class:`ValueError` for no absolute URL."""
    parts = urlsplit(url)
    scheme = parts.scheme.lower()
    host = (parts.hostname or "").lower()
    if not scheme or not host or parts.username is not None:
        raise ValueError("not an absolute URL")
    port = parts.port  # ValueError for a bad port
    if ":" in host:
        host = f"[{host}]"
    netloc = host if port in (None, _DEFAULT_PORTS.get(scheme)) else f"{host}:{port}"
    path = _remove_dot_segments(_PERCENT.sub(_normalise_escape, parts.path) or "/")
    return f"{scheme}://{netloc}{path}"


def _remove_dot_segments(path: str) -> str:
    """RFC 3986 §5.2.4 for an absolute path."""
    segments = path.split("/")[1:]
    kept: list[str] = []
    for segment in segments:
        if segment == "..":
            if kept:
                kept.pop()
        elif segment != ".":
            kept.append(segment)
    if segments and segments[-1] in (".", ".."):
        kept.append("")
    return "/" + "/".join(kept)


def _normalise_escape(match: re.Match[str]) -> str:
    char = chr(int(match.group()[1:], 16))
    return char if char in _UNRESERVED else match.group().upper()


def verify_proof(
    values: Sequence[str],
    *,
    method: str,
    url: str,
    now: int,
    lifetime: int,
    skew: int,
    access_token: str | None = None,
    nonce_valid: Callable[[str], bool] | None = None,
) -> Proof:
    """Check the ``DPoP`` header values of a request (RFC 9449 §4.3).

    ``url`` is our own URL for the request (never built from ``Host`` by
    the caller when an issuer is configured). ``iat`` may be up to
    ``lifetime`` seconds old and ``skew`` in the future (and ``skew``
    older). With ``access_token`` the proof must carry its ``ath``; with
    ``nonce_valid`` a ``nonce`` it accepts (else ``use_dpop_nonce``).

    :raises ProofError: the first check that failed.
    """
    if len(values) != 1:
        raise ProofError("Send exactly one DPoP header.")
    value = values[0].strip()
    if len(value) > MAX_PROOF_LENGTH:
        raise ProofError("The DPoP proof is too long.")
    header, claims = _parse(value)
    if header.get("typ") != "dpop+jwt":
        raise ProofError("The DPoP proof's typ must be dpop+jwt.")
    alg, jwk = header.get("alg"), header.get("jwk")
    if alg not in ALGORITHMS:
        raise ProofError("The DPoP proof's alg is not supported.")
    if not isinstance(jwk, dict) or jwk.get("kty") != _KEY_TYPES[alg]:
        raise ProofError("The DPoP proof's jwk is missing or does not fit its alg.")
    if jwk["kty"] == "RSA" and _modulus_bits(jwk.get("n")) < MIN_RSA_BITS:
        # Before the import, which only warns about a short key.
        raise ProofError("The DPoP proof's RSA key is too short.")
    try:
        key = JWKRegistry.import_key(jwk)
        private = key.is_private
    except (JoseError, ValueError, TypeError, KeyError):
        raise ProofError("The DPoP proof's jwk is not a valid key.") from None
    if private or "d" in jwk or "p" in jwk:
        raise ProofError("The DPoP proof's jwk must be a public key.")
    try:
        registry = _Registry(algorithms=[alg], strict_check_header=False)
        jws.deserialize_compact(value, key, registry=registry)
    except (JoseError, ValueError, TypeError):
        raise ProofError("The DPoP proof's signature is invalid.") from None
    if claims["htm"] != method:
        raise ProofError("The DPoP proof's htm does not match the request.")
    try:
        htu = normalise_url(claims["htu"])
    except ValueError:
        raise ProofError("The DPoP proof's htu is not a URL.") from None
    expected = normalise_url(url)
    if htu != expected:
        raise ProofError("The DPoP proof's htu does not match the request URL.")
    nonce = claims.get("nonce")
    if nonce is not None and not isinstance(nonce, str):
        raise ProofError("The DPoP proof's nonce must be a string.")
    if nonce_valid is not None and (nonce is None or not nonce_valid(nonce)):
        raise ProofError("Resend the request with the DPoP-Nonce.", USE_NONCE)
    iat = claims["iat"]
    if iat > now + skew:
        raise ProofError("The DPoP proof was issued in the future.")
    if iat < now - lifetime - skew:
        raise ProofError("The DPoP proof has expired.")
    if access_token is not None and claims.get("ath") != access_token_hash(
        access_token
    ):
        raise ProofError("The DPoP proof's ath does not match the access token.")
    return Proof(
        jkt=str(key.thumbprint()), jti=claims["jti"], iat=iat, htu=htu, nonce=nonce
    )


def _modulus_bits(n: t.Any) -> int:
    """The size of an RSA JWK's modulus ``n`` in bits; 0 if it is no base64url."""
    if not isinstance(n, str):
        return 0
    try:
        raw = base64.urlsafe_b64decode(n + "=" * (-len(n) % 4))
    except ValueError:
        return 0
    return int.from_bytes(raw, "big").bit_length()


def _parse(value: str) -> tuple[dict[str, t.Any], dict[str, t.Any]]:
    """The header and claims of a compact JWS, with the claims §4.2 requires.

    :raises ProofError: not a JWS of two JSON objects, or a claim missing
        or of the wrong type.
    """
    try:
        token = jws.extract_compact(value.encode("ascii"), registry=_Registry())
        header = token.headers()
        claims = json.loads(token.payload)
    except (JoseError, ValueError, UnicodeError, TypeError):
        raise ProofError("The DPoP proof is not a well-formed JWT.") from None
    if not isinstance(header, dict) or not isinstance(claims, dict):
        raise ProofError("The DPoP proof is not a well-formed JWT.")
    for name, kind in (("jti", str), ("htm", str), ("htu", str), ("iat", int)):
        if not isinstance(claims.get(name), kind) or isinstance(claims[name], bool):
            raise ProofError(f"The DPoP proof lacks a valid {name} claim.")
    if not 0 < len(claims["jti"]) <= 256:
        raise ProofError("The DPoP proof lacks a valid jti claim.")
    return header, claims
