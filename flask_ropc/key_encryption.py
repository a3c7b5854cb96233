"""Encryption at rest of the private signing keys kept in the database.

IdentityServer encrypts the keys it manages with ASP.NET Data Protection;
we do the same with Fernet (AES-128-CBC and HMAC-SHA256, from
``cryptography``) under keys derived with HKDF, each source of secrets
under its own label:

* ``ROPC_KEY_ENCRYPTION_KEYS``, when set: the first secret encrypts, every
  one of them decrypts, so the secret itself can be rotated (add the new
  one first, run ``flask ropc keys encrypt``, then drop the old one);
* else the app's ``SECRET_KEY`` (and, to decrypt only, each of Flask's
  ``SECRET_KEY_FALLBACKS``, so that a changed ``SECRET_KEY`` loses no key:
  put the old one there, run ``flask ropc keys encrypt``, drop it).

Both sources always decrypt, so moving from one to the other is one
``keys encrypt`` run. A stored key is either JWK JSON (written without
encryption, by older releases or with ``ROPC_ALLOW_PLAINTEXT_KEYS``) or
``fernet:`` followed by a Fernet token; both are read, so encryption can be
turned on for an existing database. A leaf: imports ``errors`` only.
"""

from __future__ import annotations

import base64
import typing as t
from collections.abc import Mapping
from collections.abc import Sequence

from cryptography.fernet import Fernet
from cryptography.fernet import InvalidToken
from cryptography.fernet import MultiFernet
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from .errors import ConfigurationError

#: Marks an encrypted ``private_jwk`` value.
PREFIX = "fernet:"
#: The shortest secret accepted in ``ROPC_KEY_ENCRYPTION_KEYS``.
MIN_SECRET_LENGTH = 32
#: The shortest ``SECRET_KEY`` (in bytes, UTF-8) we derive a key from.
MIN_SECRET_KEY_BYTES = 16

#: HKDF labels: a secret given in both places still yields two keys.
_EXPLICIT_LABEL = b"flask-ropc signing keys at rest"
_SECRET_KEY_LABEL = b"flask-ropc signing keys at rest, from the Flask SECRET_KEY"

#: What to do when a stored key does not decrypt.
_FIX = (
    "the secret that encrypted it is missing. If SECRET_KEY changed, put the "
    "old value in SECRET_KEY_FALLBACKS (or the old ROPC_KEY_ENCRYPTION_KEYS "
    "secret back in that list), run 'flask ropc keys encrypt', then remove it"
)


class KeyCipher:
    """Seals and opens stored private keys.

    :param secrets: ``ROPC_KEY_ENCRYPTION_KEYS``; the first one encrypts.
    :param secret_keys: the app's ``SECRET_KEY`` then its
        ``SECRET_KEY_FALLBACKS``; the first encrypts when ``secrets`` is
        empty. Both always decrypt.
    """

    def __init__(
        self, secrets: Sequence[str], secret_keys: Sequence[str | bytes] = ()
    ) -> None:
        fernets = [Fernet(_derive(s, _EXPLICIT_LABEL)) for s in secrets]
        fernets += [Fernet(_derive(s, _SECRET_KEY_LABEL)) for s in secret_keys]
        if not fernets:
            raise ValueError("a KeyCipher needs at least one secret")
        self._fernet = MultiFernet(fernets)
        #: The setting whose (first) secret encrypts.
        self.source = "ROPC_KEY_ENCRYPTION_KEYS" if secrets else "SECRET_KEY"

    def __repr__(self) -> str:
        return f"<KeyCipher from {self.source}>"  # never the secrets

    def seal(self, plaintext: str) -> str:
        """Encrypt ``plaintext`` with the first secret."""
        token = self._fernet.encrypt(plaintext.encode("utf-8"))
        return PREFIX + token.decode("ascii")

    def open(self, stored: str, what: str = "a signing key") -> str:
        """The plaintext of a value :meth:`seal` wrote, or of a plain one.

        :param what: names the value in the error, e.g. ``"signing key <kid>"``.
        :raises ConfigurationError: no secret decrypts it.
        """
        if not is_sealed(stored):
            return stored
        try:
            token = stored[len(PREFIX) :].encode("ascii")
            return self._fernet.decrypt(token).decode("utf-8")
        except (InvalidToken, UnicodeError):
            raise ConfigurationError(
                f"{what} in the database cannot be decrypted with SECRET_KEY, "
                f"SECRET_KEY_FALLBACKS or ROPC_KEY_ENCRYPTION_KEYS: {_FIX}"
            ) from None


def is_sealed(stored: str) -> bool:
    """Whether a stored ``private_jwk`` value is encrypted."""
    return stored.startswith(PREFIX)


def open_stored(
    stored: str, cipher: KeyCipher | None, what: str = "a signing key"
) -> str:
    """The JWK JSON of a stored value, decrypting it if it is sealed.

    :raises ConfigurationError: it is sealed and no cipher (or no right
        secret) is configured.
    """
    if cipher is not None:
        return cipher.open(stored, what)
    if is_sealed(stored):
        raise ConfigurationError(
            f"{what} in the database is encrypted, but neither SECRET_KEY nor "
            "ROPC_KEY_ENCRYPTION_KEYS is set to decrypt it"
        )
    return stored


def explicit_secrets(config: Mapping[str, t.Any]) -> tuple[str, ...]:
    """``ROPC_KEY_ENCRYPTION_KEYS`` as a tuple (empty when unset).

    :raises ConfigurationError: not strings, or one is too short (never
        quoted: it is a secret).
    """
    value = config["ROPC_KEY_ENCRYPTION_KEYS"]
    if value is None:
        return ()
    if isinstance(value, str):
        value = [value]
    if (
        not isinstance(value, list | tuple)
        or not value
        or not all(isinstance(item, str) for item in value)
    ):
        raise ConfigurationError(
            "ROPC_KEY_ENCRYPTION_KEYS must be a string or a list of strings"
        )
    if any(len(item) < MIN_SECRET_LENGTH for item in value):
        raise ConfigurationError(
            f"every ROPC_KEY_ENCRYPTION_KEYS entry must be at least "
            f"{MIN_SECRET_LENGTH} random characters, e.g. from "
            "'python -c \"import secrets; print(secrets.token_urlsafe(32))\"'"
        )
    return tuple(value)


def flask_secret_keys(config: Mapping[str, t.Any]) -> tuple[str | bytes, ...]:
    """``SECRET_KEY`` and ``SECRET_KEY_FALLBACKS`` to derive keys from.

    Empty unless ``SECRET_KEY`` is at least :data:`MIN_SECRET_KEY_BYTES`
    long; fallbacks that are not are left out (no key was ever sealed under
    one).
    """
    secret_key = config.get("SECRET_KEY")
    if not isinstance(secret_key, str | bytes) or not _long_enough(secret_key):
        return ()
    fallbacks = config.get("SECRET_KEY_FALLBACKS") or ()
    if isinstance(fallbacks, str | bytes):
        fallbacks = (fallbacks,)
    return (secret_key, *(item for item in fallbacks if _long_enough(item)))


def require_secret_key(config: Mapping[str, t.Any]) -> t.NoReturn:
    """Refuse to keep private keys in the database without encryption.

    Called by ``Settings`` when signing keys live in the database and
    neither a usable ``SECRET_KEY``, ``ROPC_KEY_ENCRYPTION_KEYS`` nor
    ``ROPC_ALLOW_PLAINTEXT_KEYS`` is set. The secret is never quoted.

    :raises ConfigurationError: always; it names all three settings.
    """
    problem = (
        "SECRET_KEY is not set"
        if not config.get("SECRET_KEY")
        else f"SECRET_KEY is shorter than {MIN_SECRET_KEY_BYTES} bytes"
    )
    raise ConfigurationError(
        f"Flask-ROPC keeps its signing keys in the database (ROPC_SIGNING_KEYS "
        f"is not set) and encrypts them with a key derived from SECRET_KEY or "
        f"with ROPC_KEY_ENCRYPTION_KEYS, but {problem} and "
        "ROPC_KEY_ENCRYPTION_KEYS is not set either. Set a random SECRET_KEY "
        "or ROPC_KEY_ENCRYPTION_KEYS (e.g. from 'python -c \"import secrets; "
        "print(secrets.token_urlsafe(32))\"'), or ROPC_ALLOW_PLAINTEXT_KEYS = "
        "True to store the private keys unencrypted."
    )


def _long_enough(secret: t.Any) -> bool:
    if isinstance(secret, str):
        secret = secret.encode("utf-8")
    return isinstance(secret, bytes) and len(secret) >= MIN_SECRET_KEY_BYTES


def _derive(secret: str | bytes, label: bytes) -> bytes:
    # A Fernet key is 32 random bytes; HKDF turns a long random string into
    # one without asking users to produce Fernet's exact format.
    material = secret.encode("utf-8") if isinstance(secret, str) else secret
    key = HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=label).derive(
        material
    )
    return base64.urlsafe_b64encode(key)
