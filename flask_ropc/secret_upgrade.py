"""Replacing a carried-over client secret digest with ours on its first use.

A secret imported from IdentityServer as a ``Sha512()`` hash is stored in its
carried form (:func:`~flask_ropc.hashing.carried_sha512`) because nobody has
the plaintext. The first time the client authenticates with it, the secret
is at hand: the server stores our SHA-256 digest instead, so that carried
digests disappear as clients come back. Called from the client
authentication path (:mod:`~flask_ropc.server` hands it to
:mod:`~flask_ropc.client_auth`). Imports ``hashing``, ``models`` and
``store.clients``.
"""

from __future__ import annotations

import logging

from . import hashing
from .models import Client
from .store.clients import ClientStore

log = logging.getLogger("flask_ropc")


def upgrade_carried_secret(clients: ClientStore, client: Client, secret: str) -> bool:
    """Store our digest of ``secret`` in place of ``client``'s carried one.

    Call only after ``secret`` has been verified against the client's
    stored digest. The swap compares with the digest ``client`` was read
    with: when the secret was rotated meanwhile, the rotation wins and
    nothing changes. Logged at INFO with the client id only.

    :param clients: the store to write to.
    :param client: the client as read for this authentication.
    :param secret: the presented secret that matched.
    :return: whether the digest was replaced (``False`` for a digest that
        is ours already, or one that changed since it was read).
    """
    old = client.secret_digest
    if old is None or not hashing.is_carried(old):
        return False
    swapped = clients.replace_carried_digest(
        client.client_id, old, hashing.digest(secret)
    )
    if swapped:
        log.info(
            "client %s: carried-over SHA-512 secret digest replaced by SHA-256",
            client.client_id,
        )
    else:
        log.info(
            "client %s: carried-over secret changed before it was rehashed; kept",
            client.client_id,
        )
    return swapped
