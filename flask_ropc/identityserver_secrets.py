"""Carrying IdentityServer ``ClientSecrets`` over as stored digests.

IdentityServer keeps each ``SharedSecret`` as the base64 of its ``Sha256()``
(32 bytes) or ``Sha512()`` (64 bytes) and tells them apart by that length.
A ``Sha256()`` hash is our digest in another encoding; a ``Sha512()`` one is
stored in its carried form (:func:`~flask_ropc.hashing.carried_sha512`) and
replaced by ours on the client's first successful authentication. Helpers
of :mod:`~flask_ropc.identityserver`; imports ``identityserver_json`` and
``hashing``.
"""

from __future__ import annotations

import base64
import binascii
import time

from . import hashing
from .identityserver_json import InvalidClientFile
from .identityserver_json import Reader
from .identityserver_json import read_str
from .identityserver_json import read_time

#: The note under a client whose ``Sha512()`` secret was carried over.
SHA512_NOTE = "carried (sha512, rehashed on first use)"


def read_secrets(r: Reader, public: bool) -> str | None:
    """The digest to store for client ``r``'s secrets, or ``None``.

    Flask-ROPC keeps one secret per client: the first that can be carried
    over, in the file's order; the others are reported. A public client's
    secrets, other types, expired secrets and values that are not base64 are
    reported and skipped.

    :raises InvalidClientFile: ``ClientSecrets`` is not an array, a field has
        the wrong type, or a value decodes to neither 32 nor 64 bytes.
    """
    raw = r.raw.get("clientsecrets")
    if raw is None:
        raw = []
    if not isinstance(raw, list):
        raise InvalidClientFile(r.at("clientsecrets"), "must be an array")
    carried: list[tuple[str, str]] = []  # (label, digest to store)
    for index, item in enumerate(raw):
        s = Reader(f"{r.at('clientsecrets')}:{index}", item)
        kind = s.get("type", read_str, "SharedSecret")
        value = s.get("value", read_str, "")
        label = f"ClientSecrets:{index}"
        if public:
            r.cannot(
                label,
                "RequireClientSecret is false: a public client has no secret",
            )
            continue
        if kind != "SharedSecret":
            r.cannot(label, f"type {kind!r}; only SharedSecret hashes are imported")
            continue
        expires = s.get("expiration", read_time, None)
        if expires is not None and expires <= time.time():
            r.cannot(label, "expired (its Expiration has passed); not imported")
            continue
        if expires is not None:
            r.cannot(
                f"{label}:Expiration",
                "Flask-ROPC secrets do not expire; rotate the secret when it is due",
            )
        digest = _digest(r, s, label, value)
        if digest is not None:
            carried.append((label, digest))
    if len(carried) > 1:
        others = ", ".join(label for label, _ in carried[1:])
        r.cannot(
            "ClientSecrets",
            f"{len(carried)} secrets; Flask-ROPC keeps one per client: "
            f"{carried[0][0]} is imported, not {others}",
        )
    if not public and not carried:
        r.findings.append(
            "ClientSecrets: no secret carried over; "
            "run 'flask ropc rotate-secret' for this client"
        )
    if not carried:
        return None
    label, digest = carried[0]
    if hashing.is_carried(digest):
        r.notes.append(f"{label}: {SHA512_NOTE}")
    return digest


def _digest(r: Reader, s: Reader, label: str, value: str) -> str | None:
    """The digest to store for one ``SharedSecret`` value, or ``None``."""
    try:
        decoded = base64.b64decode(value.strip(), validate=True)
    except (binascii.Error, ValueError):
        decoded = b""
    if not decoded:
        r.cannot(
            label, "not a Sha256() or Sha512() hash (a plaintext secret?); not imported"
        )
        return None
    if len(decoded) == 32:
        return decoded.hex()
    if len(decoded) == 64:
        return hashing.carried_sha512(decoded)
    # IdentityServer compares by this length too: such a value never matched
    # there, so it is a damaged hash, not one to skip quietly.
    raise InvalidClientFile(
        s.at("value"),
        f"decodes to {len(decoded)} bytes; a Sha256() hash has 32 and a "
        "Sha512() hash 64 (cut short?)",
    )
