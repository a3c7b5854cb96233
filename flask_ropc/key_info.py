"""How the admin API describes a signing key (:class:`KeyInfo`).

A leaf: imports only :mod:`~flask_ropc.keys`. :mod:`~flask_ropc.admin`
re-exports it.
"""

from __future__ import annotations

import dataclasses
import typing as t

from .keys import SigningKey


@dataclasses.dataclass(frozen=True)
class KeyInfo:
    """A signing key as the admin API shows it: never its private part."""

    #: The key id (``kid``), the RFC 7638 thumbprint of the public key.
    kid: str
    #: ``ES256``, ``RS256`` or ``EdDSA``.
    alg: str
    #: ``pending``, ``active``, ``previous``, ``retired``, or ``configured``
    #: for a key from ``ROPC_SIGNING_KEYS``.
    status: str
    #: Unix time of creation (``None`` for configured keys).
    created_at: int | None = None
    #: For ``previous`` keys: published until then.
    publish_until: int | None = None

    @classmethod
    def from_row(cls, row: t.Any) -> KeyInfo:
        """Describe a stored key row."""
        return cls(row.kid, row.alg, row.status, row.created_at, row.publish_until)

    @classmethod
    def configured(cls, key: SigningKey) -> KeyInfo:
        """Describe a key from ``ROPC_SIGNING_KEYS``."""
        return cls(key.kid, key.alg, "configured")

    def to_dict(self) -> dict[str, t.Any]:
        """JSON-ready data."""
        return dataclasses.asdict(self)
