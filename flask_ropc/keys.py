"""Asymmetric signing key material: generating, importing, describing keys.

Only asymmetric algorithms are supported (ES256, the default; RS256; EdDSA
with Ed25519): an API validating our tokens must never hold a key that can
also sign them. Which key signs, and where keys are kept, is
:mod:`flask_ropc.keyring`'s business. A leaf: imports ``errors`` and
``models`` (the key states) only.
"""

from __future__ import annotations

import dataclasses
import json
import typing as t
from collections.abc import Mapping

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric import ed25519
from cryptography.hazmat.primitives.asymmetric import rsa
from joserfc.jwk import ECKey
from joserfc.jwk import Key
from joserfc.jwk import OKPKey
from joserfc.jwk import RSAKey

from .errors import ConfigurationError
from .models import ACTIVE

#: Signing algorithms we issue and accept. Never HS256 or ``none``.
SUPPORTED_ALGORITHMS = ("ES256", "RS256", "EdDSA")

#: Smallest RSA modulus we sign with (RFC 7518 §3.3 requires 2048 bits).
MIN_RSA_BITS = 2048

#: Longest key id: the ``kid`` columns hold 64 characters.
MAX_KID_LENGTH = 64


@dataclasses.dataclass(frozen=True)
class SigningKey:
    """One signing key with its algorithm and state."""

    #: The key id, the RFC 7638 thumbprint of the public key.
    kid: str
    #: ``ES256``, ``RS256`` or ``EdDSA``.
    alg: str
    #: The joserfc private key. Never shown in a repr.
    key: Key = dataclasses.field(repr=False)
    #: ``pending``, ``active``, ``previous`` or ``retired``.
    status: str = ACTIVE
    #: Unix time of creation (0 for configured keys).
    created_at: int = 0
    #: For ``previous`` keys: published until then.
    publish_until: int | None = None

    def public_jwk(self) -> dict[str, t.Any]:
        """The public JWK with ``kid``, ``alg`` and ``use``; no private part."""
        data = dict(self.key.as_dict(private=False))
        data.update(kid=self.kid, alg=self.alg, use="sig")
        return data


def is_valid_kid(kid: object) -> bool:
    """Whether ``kid`` could name one of our keys: 1 to 64 printable characters.

    A token's header is attacker-controlled JSON, whose strings may hold NUL
    or lone surrogates (``"\\ud800"``) that no database can store or even be
    asked about; such an id is refused before any lookup. Our own ids are
    thumbprints (43 base64url characters); configured ones must pass too.
    """
    return isinstance(kid, str) and 0 < len(kid) <= MAX_KID_LENGTH and kid.isprintable()


def generate_key(alg: str = "ES256") -> Key:
    """Generate a new private key for ``alg`` with its thumbprint as ``kid``.

    :raises ConfigurationError: ``alg`` is not supported.
    """
    key: Key
    if alg == "ES256":
        key = ECKey.generate_key("P-256", auto_kid=True)
    elif alg == "RS256":
        key = RSAKey.generate_key(MIN_RSA_BITS, auto_kid=True)
    elif alg == "EdDSA":
        key = OKPKey.generate_key("Ed25519", auto_kid=True)
    else:
        raise ConfigurationError(
            f"unsupported signing algorithm {alg!r}; choose one of "
            + ", ".join(SUPPORTED_ALGORITHMS)
        )
    return key


def import_signing_key(value: str | Mapping[str, t.Any]) -> SigningKey:
    """Load a private key from PEM text or a JWK (dict or JSON text).

    The algorithm follows from the key: P-256 → ES256, RSA (2048 bits or
    more) → RS256, Ed25519 → EdDSA. A ``kid`` in the JWK is kept; otherwise
    the thumbprint is used.

    :raises ConfigurationError: not a private key of a supported type, or a
        ``kid`` that :func:`is_valid_kid` refuses (tokens it signed could
        never be verified).
    """
    if isinstance(value, str) and value.lstrip().startswith("-----BEGIN"):
        key = _import_pem(value)
    else:
        key = _import_jwk(_jwk_data(value))
    alg = _algorithm_of(key)
    if not key.is_private:
        raise ConfigurationError("a signing key must be a private key")
    kid = key.kid or key.thumbprint()
    if not is_valid_kid(kid):
        raise ConfigurationError(
            f"a signing key's kid must be 1 to {MAX_KID_LENGTH} printable characters"
        )
    return SigningKey(kid=kid, alg=alg, key=key)


def import_signing_keys(value: object, setting: str) -> tuple[SigningKey, ...]:
    """The keys of the ``setting`` configuration value: ``None`` (none), one
    key (PEM text or a JWK) or a list of them; see :func:`import_signing_key`.

    :raises ConfigurationError: naming ``setting`` (and the entry of a list);
        never quoting the value, which is a private key.
    """
    if value is None:
        return ()
    items = [value] if isinstance(value, str | Mapping) else value
    if not isinstance(items, list | tuple) or not items:
        raise ConfigurationError(
            f"{setting} must be a PEM string, a JWK, or a list of them"
        )
    keys = []
    for number, item in enumerate(items, 1):
        try:
            keys.append(import_signing_key(item))
        except ConfigurationError as error:
            where = f", entry {number}" if len(items) > 1 else ""
            raise ConfigurationError(f"{setting}{where}: {error}") from None
    return tuple(keys)


def _import_pem(pem: str) -> Key:
    try:
        private = serialization.load_pem_private_key(pem.encode(), password=None)
    except (ValueError, TypeError) as error:
        raise ConfigurationError(
            f"cannot read the PEM signing key ({type(error).__name__}); it must "
            "be an unencrypted private key"
        ) from None
    if isinstance(private, ec.EllipticCurvePrivateKey):
        return ECKey.import_key(pem)
    if isinstance(private, rsa.RSAPrivateKey):
        # Checked before joserfc sees the key: it only warns about short ones.
        _check_rsa_bits(private.key_size)
        return RSAKey.import_key(pem)
    if isinstance(private, ed25519.Ed25519PrivateKey):
        return OKPKey.import_key(pem)
    raise ConfigurationError("unsupported PEM key type; use P-256, RSA or Ed25519")


def _jwk_data(value: object) -> dict[str, t.Any]:
    """A JWK as a dict, from a mapping or JSON text; never quotes the value."""
    if isinstance(value, str):
        try:
            value = json.loads(value)
        except ValueError:
            raise ConfigurationError(
                "a signing key must be PEM text (-----BEGIN PRIVATE KEY-----) "
                "or a JWK (a dict, or JSON text); this is neither"
            ) from None
    if not isinstance(value, Mapping):
        raise ConfigurationError(
            "a signing key must be PEM text or a JWK (a dict, or JSON text), "
            f"got {type(value).__name__}"
        )
    return dict(value)


def _import_jwk(data: dict[str, t.Any]) -> Key:
    kty = data.get("kty")
    if kty == "RSA" and isinstance(data.get("n"), str):
        # base64url without padding: 4 characters carry 3 bytes.
        _check_rsa_bits(len(data["n"]) * 6 // 8 * 8)
    importers: dict[str, type[ECKey] | type[RSAKey] | type[OKPKey]] = {
        "EC": ECKey,
        "RSA": RSAKey,
        "OKP": OKPKey,
    }
    if kty not in importers:
        raise ConfigurationError(
            f"unsupported JWK key type {kty!r}: use EC (P-256), RSA or OKP "
            "(Ed25519); symmetric keys are never accepted"
        )
    try:
        return importers[kty].import_key(data)
    except Exception as error:
        raise ConfigurationError(
            f"cannot read the JWK signing key ({type(error).__name__})"
        ) from None


def _check_rsa_bits(bits: int) -> None:
    if bits < MIN_RSA_BITS:
        raise ConfigurationError(f"RSA signing keys need at least {MIN_RSA_BITS} bits")


def _algorithm_of(key: Key) -> str:
    if isinstance(key, ECKey):
        if key.curve_name != "P-256":
            raise ConfigurationError("EC signing keys must use the P-256 curve")
        return "ES256"
    if isinstance(key, RSAKey):
        _check_rsa_bits(key.raw_value.key_size)
        return "RS256"
    if isinstance(key, OKPKey) and key.curve_name == "Ed25519":
        return "EdDSA"
    raise ConfigurationError("unsupported signing key; use P-256, RSA or Ed25519")
