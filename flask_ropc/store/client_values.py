"""Checks of the values a client is created or updated with.

Pure functions, shared by :mod:`.clients`; each raises :class:`ValueError`
with a message fit for the CLI. Also the decoy row read for unknown ids.
Imports only leaves.
"""

from __future__ import annotations

import base64
import binascii
import typing as t
from collections.abc import Iterable

from .. import hashing
from ..models import AUTH_METHODS
from ..models import DPOP_MODES
from ..models import DPOP_NONCE_MODES
from ..models import GRANT_TYPES
from ..models import SECRET_METHODS
from ..models import TOKEN_FORMATS
from ..scopes import check_scope_tokens

#: The column values of a client that no id names: ``ClientStore.get`` builds
#: a client from them (and drops it) for an unknown id, so that an unknown id
#: costs what a known one does. Columns not named are ``None``.
DECOY_ROW: dict[str, t.Any] = {
    "id": 0,
    "client_id": "",
    "name": "",
    "secret_digest": None,
    "token_endpoint_auth_method": "client_secret_basic",
    "scopes": "",
    "grant_types": "",
    "enabled": False,
    "is_resource_server": False,
    "trusted_backend": False,
    "password_grant_count": 0,
    "created_at": 0,
}


def plausible_client_id(client_id: str) -> bool:
    """Whether some client could have this id: 1 to 64 printable ASCII.

    Anything else (a NUL byte, which PostgreSQL refuses in text, say) is
    not even looked up.
    """
    return 0 < len(client_id) <= 64 and client_id.isascii() and client_id.isprintable()


def check_imported_client_id(client_id: str) -> str:
    """Return a client id kept from another server, if it is usable here.

    :raises ValueError: empty, over 64 characters, not printable ASCII,
        containing white space or ``:`` (which Basic credentials would
        split), or starting with ``-`` (which a shell reads as an option).
    """
    if not plausible_client_id(client_id) or client_id.startswith("-"):
        raise ValueError(
            "an imported client id must be 1 to 64 printable ASCII characters "
            "not starting with '-'"
        )
    if any(char.isspace() or char == ":" for char in client_id):
        raise ValueError("an imported client id may not contain spaces or ':'")
    return client_id


def check_imported_secret(secret: str) -> str:
    """Return an imported client secret if it is strong enough to store.

    :raises ValueError: it is shorter than
        :data:`~flask_ropc.hashing.MIN_IMPORTED_SECRET_LENGTH` characters or has
        surrounding white space.
    """
    if secret != secret.strip():
        raise ValueError("the imported secret has leading or trailing white space")
    if len(secret) < hashing.MIN_IMPORTED_SECRET_LENGTH:
        raise ValueError(
            f"the imported secret is shorter than {hashing.MIN_IMPORTED_SECRET_LENGTH}"
            " characters; a fast hash only protects long random secrets, so "
            "create the client without --secret-stdin and rotate the secret "
            "on the client side instead"
        )
    return secret


def check_name(name: str) -> str:
    """A client's display name, trimmed: 1 to 200 characters."""
    name = name.strip()
    if not name:
        raise ValueError("a client needs a non-empty name")
    if len(name) > 200:
        raise ValueError("a client name may be at most 200 characters")
    return name


def scope_text(scopes: Iterable[str]) -> str:
    """The stored form of a scope list: distinct RFC 6749 §3.3 tokens."""
    return " ".join(check_scope_tokens(scopes))


def grant_text(grant_types: Iterable[str]) -> str:
    """The stored form of a grant type list, each one we know."""
    chosen = list(dict.fromkeys(grant_types))
    unknown = [g for g in chosen if g not in GRANT_TYPES]
    if unknown:
        raise ValueError(
            f"unknown grant type {unknown[0]!r}; choose from {', '.join(GRANT_TYPES)}"
        )
    return " ".join(chosen)


def check_format(token_format: str | None) -> None:
    """An access token format we issue, or ``None`` (the app's default)."""
    if token_format is not None and token_format not in TOKEN_FORMATS:
        raise ValueError(
            f"unknown access token format {token_format!r}; choose from "
            + ", ".join(TOKEN_FORMATS)
        )


def check_audience(audience: str | None) -> str | None:
    """An audience, trimmed: 1 to 255 printable characters, or ``None``."""
    if audience is None:
        return None
    audience = audience.strip()
    if not audience or len(audience) > 255 or not audience.isprintable():
        raise ValueError("an audience must be 1 to 255 printable characters")
    return audience


def dpop_column(mode: str | None) -> dict[str, str]:
    """The ``dpop`` column for a client's DPoP setting; ``{}`` for ``None``.

    :raises ValueError: not one of ``required``, ``allowed``, ``off``.
    """
    if mode is None:
        return {}
    if mode not in DPOP_MODES:
        raise ValueError(
            f"unknown DPoP setting {mode!r}; choose from required, allowed, off"
        )
    return {"dpop": mode}


def dpop_nonce_column(mode: str | None) -> dict[str, str | None]:
    """The ``dpop_nonce`` column for a client's nonce setting; ``{}`` for
    ``None`` (no change), NULL for ``default`` (follow ``ROPC_DPOP_NONCE``).

    :raises ValueError: not one of ``required``, ``off``, ``default``.
    """
    if mode is None:
        return {}
    if mode not in DPOP_NONCE_MODES:
        raise ValueError(
            f"unknown DPoP nonce setting {mode!r}; choose from required, off, default"
        )
    return {"dpop_nonce": None if mode == "default" else mode}


def check_lifetime(lifetime: int | None) -> None:
    """A lifetime in seconds: a positive integer, or ``None``."""
    if lifetime is not None and (isinstance(lifetime, bool) or lifetime <= 0):
        raise ValueError("the access token lifetime must be a positive number")


def check_auth_methods(
    methods: Iterable[str] | None, legacy: str | None = None
) -> tuple[str, ...]:
    """The methods a new client allows, in a fixed order.

    ``methods`` wins; else the single ``legacy`` method (the old
    ``auth_method=`` argument); else both secret methods.

    :raises ValueError: an unknown method, none at all, or ``none`` mixed
        with the secret methods.
    """
    if methods is None:
        methods = (legacy,) if legacy is not None else SECRET_METHODS
    chosen = set(methods)
    unknown = chosen - set(AUTH_METHODS)
    if unknown:
        raise ValueError(f"unknown token endpoint auth method {min(unknown)!r}")
    if not chosen:
        raise ValueError("a client needs at least one token endpoint auth method")
    if "none" in chosen and len(chosen) > 1:
        raise ValueError("'none' (a public client) excludes the secret methods")
    return tuple(method for method in AUTH_METHODS if method in chosen)


def auth_columns(methods: tuple[str, ...]) -> dict[str, str]:
    """The columns a client's methods are kept in: the first (for readers of
    the old single column) and all of them."""
    return {
        "token_endpoint_auth_method": methods[0],
        "token_endpoint_auth_methods": " ".join(methods),
    }


def new_secret(
    methods: tuple[str, ...], secret: str | None, trusted_backend: bool
) -> str | None:
    """The plaintext secret of a new client: imported, generated, or none.

    :raises ValueError: a public client with a secret or as trusted backend.
    """
    if methods == ("none",):
        if secret is not None:
            raise ValueError("a public client has no secret to import")
        if trusted_backend:
            raise ValueError(
                "only a confidential client can be a trusted backend: anyone "
                "can send a public client's id"
            )
        return None
    if secret is not None:
        return check_imported_secret(secret)
    return hashing.generate_secret()


def check_digest(secret_digest: str) -> str:
    """A stored secret digest: 64 lower-case hex digits (SHA-256), or a
    carried-over ``Sha512()`` one (:func:`~flask_ropc.hashing.carried_sha512`).
    """
    if hashing.is_carried(secret_digest):
        encoded = secret_digest[len(hashing.CARRIED_SHA512_PREFIX) :]
        try:
            raw = base64.b64decode(encoded, validate=True)
        except (binascii.Error, ValueError):
            raw = b""
        if len(raw) != hashing.CARRIED_SHA512_BYTES:
            raise ValueError(
                f"a carried SHA-512 digest is {hashing.CARRIED_SHA512_PREFIX!r} "
                f"and the base64 of {hashing.CARRIED_SHA512_BYTES} bytes"
            )
        return secret_digest
    if len(secret_digest) != 64 or secret_digest.strip("0123456789abcdef"):
        raise ValueError("a secret digest is 64 lower-case hex digits (SHA-256)")
    return secret_digest


def stored(
    methods: tuple[str, ...],
    secret: str | None,
    trusted_backend: bool,
    secret_digest: str | None,
) -> tuple[str | None, str | None]:
    """The plaintext to return once and the digest to store of a new client.

    ``secret_digest`` is one carried over from another server (the
    IdentityServer importer): stored as given, with no plaintext to return.

    :raises ValueError: see :func:`new_secret`; a digest for a public client,
        with a secret as well, or not a digest (:func:`check_digest`).
    """
    plain = new_secret(methods, secret, trusted_backend)
    if secret_digest is None:
        return plain, hashing.digest(plain) if plain else None
    if methods == ("none",) or secret is not None:
        raise ValueError(
            "give a secret digest only, and only for a confidential client"
        )
    return None, check_digest(secret_digest)
