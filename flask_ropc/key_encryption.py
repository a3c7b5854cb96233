"""Encryption at rest of the private signing keys kept in the database.

IdentityServer encrypts the keys it manages with ASP.NET Data Protection;
we do the same with Fernet (AES-128-CBC and HMAC-SHA256, from
``cryptography``) under keys derived from ``ROPC_KEY_ENCRYPTION_KEYS``. The
first secret encrypts; every one of them decrypts, so the secret itself can
be rotated: add the new one first, run ``flask ropc keys encrypt``, then drop
the old one.

A stored key is either JWK JSON (written without encryption) or
``fernet:`` followed by a Fernet token; both are read, so encryption can be
turned on for an existing database. A leaf: imports only ``errors``.
"""

from __future__ import annotations

import base64
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


class KeyCipher:
    """Seals and opens stored private keys under one or more secrets.

    :param secrets: ``ROPC_KEY_ENCRYPTION_KEYS``; the first one encrypts.
    """

    def __init__(self, secrets: Sequence[str]) -> None:
        self._fernet = MultiFernet([Fernet(_derive(secret)) for secret in secrets])

    def __repr__(self) -> str:
        return "<KeyCipher>"  # never the secrets

    def seal(self, plaintext: str) -> str:
        """Encrypt ``plaintext`` with the first secret."""
        token = self._fernet.encrypt(plaintext.encode("utf-8"))
        return PREFIX + token.decode("ascii")

    def open(self, stored: str) -> str:
        """The plaintext of a value :meth:`seal` wrote, or of a plain one.

        :raises ConfigurationError: no secret decrypts it.
        """
        if not is_sealed(stored):
            return stored
        try:
            token = stored[len(PREFIX) :].encode("ascii")
            return self._fernet.decrypt(token).decode("utf-8")
        except (InvalidToken, UnicodeError):
            raise ConfigurationError(
                "a signing key in the database cannot be decrypted with any of "
                "ROPC_KEY_ENCRYPTION_KEYS: the secret that encrypted it is missing"
            ) from None


def is_sealed(stored: str) -> bool:
    """Whether a stored ``private_jwk`` value is encrypted."""
    return stored.startswith(PREFIX)


def open_stored(stored: str, cipher: KeyCipher | None) -> str:
    """The JWK JSON of a stored value, decrypting it if it is sealed.

    :raises ConfigurationError: it is sealed and no cipher (or no right
        secret) is configured.
    """
    if cipher is not None:
        return cipher.open(stored)
    if is_sealed(stored):
        raise ConfigurationError(
            "the signing keys in the database are encrypted, but "
            "ROPC_KEY_ENCRYPTION_KEYS is not set"
        )
    return stored


def _derive(secret: str) -> bytes:
    # A Fernet key is 32 random bytes; HKDF turns a long random string into
    # one without asking users to produce Fernet's exact format.
    key = HKDF(
        algorithm=hashes.SHA256(),
        length=32,
        salt=None,
        info=b"flask-ropc signing keys at rest",
    ).derive(secret.encode("utf-8"))
    return base64.urlsafe_b64encode(key)
