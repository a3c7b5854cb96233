"""The public admin API: clients, signing keys, revocation and clean-up.

:class:`ClientAdmin` and :class:`KeyAdmin` are what ``ropc.clients`` and
``ropc.keys`` are; the functions below back ``ropc.revoke``, ``ropc.cleanup``
and ``ropc.unlock``. The ``flask ropc`` commands are a thin layer over this
module. Everything acts on the current app's state, so call it inside an app
context. Imports ``keyring``, ``key_lifecycle``, ``state``, ``store`` and leaves.
"""

from __future__ import annotations

import typing as t
from collections.abc import Callable

from .errors import ConfigurationError
from .key_info import KeyInfo as KeyInfo
from .key_lifecycle import LifecycleReport
from .key_lifecycle import ManagedKeyRing
from .keyring import ensure_stored_key
from .keyring import generate_stored_key
from .keyring import retire_stored_key
from .keyring import rotate_stored_keys
from .models import Client
from .state import State
from .state import get_state
from .store.client_settings import ClientChanges
from .store.client_settings import NewClient
from .store.counters import DatabaseCounters
from .store.keys import KeyStore
from .store.mfa import SQLMfaTokens

if t.TYPE_CHECKING:  # pragma: no cover
    from typing import Unpack

#: Returns the state of the app to act on (default: the current app's).
StateGetter = Callable[[], State]


class ClientAdmin:
    """Manage OAuth clients from Python: ``ropc.clients``.

    :param state: returns the state to act on; default, the current app's.
    """

    def __init__(self, state: StateGetter = get_state) -> None:
        self._state = state

    def create(
        self, name: str, **options: Unpack[NewClient]
    ) -> tuple[Client, str | None]:
        """Register a client called ``name``; return it with its new secret.

        The secret is generated unless ``secret`` imports an existing one; it
        is returned here once and only its digest is stored. Public clients
        (``auth_method="none"``) get ``None``.

        :param scopes: the scopes it may request.
        :param grant_types: ``password`` (the default) and/or
            ``refresh_token`` (offline access).
        :param auth_method: ``client_secret_basic`` (default),
            ``client_secret_post``, or ``none`` for a public client.
        :param access_token_lifetime: seconds; ``None`` for the app default.
            ``refresh_token_sliding_lifetime`` and
            ``refresh_token_absolute_lifetime`` likewise.
        :param access_token_format: ``jwt`` or ``reference``; ``None`` for
            ``ROPC_ACCESS_TOKEN_FORMAT``.
        :param audience: the ``aud`` of its JWTs; ``None`` for the app's.
        :param is_resource_server: may introspect every client's tokens.
        :param trusted_backend: may name its end user's IP (confidential only).
        :param dpop: ``required`` (a token request without a DPoP proof
            fails), ``allowed`` (the default: a proof, if sent, binds the
            tokens) or ``off`` (proofs are ignored); see docs/dpop.md.
        :param dpop_nonce: DPoP nonces (RFC 9449 §8) for this client:
            ``required``, ``off``, or ``default`` (``None`` on create: follow
            ``ROPC_DPOP_NONCE``).
        :param secret: an existing secret to keep (at least 20 characters).
        :param client_id: an existing client id to keep.
        :param secret_digest: instead of a secret, the hex SHA-256 of one
            kept elsewhere (e.g. an IdentityServer ``Sha256()`` hash), or a
            carried ``Sha512()`` one as
            :func:`~flask_ropc.hashing.carried_sha512` makes it (replaced by
            our digest on the client's first successful authentication); no
            plaintext is returned then.
        :raises ValueError: for an invalid value; nothing is stored then.
        """
        return self._state().store.clients.create(name, **options)

    def get(self, client_id: str) -> Client | None:
        """The client with ``client_id``, or ``None``."""
        return self._state().store.clients.get(client_id)

    def require(self, client_id: str) -> Client:
        """The client with ``client_id``.

        :raises ClientNotFoundError: no such client.
        """
        return self._state().store.clients.require(client_id)

    def list(self) -> list[Client]:
        """Every client, oldest first."""
        return self._state().store.clients.list()

    def update(self, client_id: str, **changes: Unpack[ClientChanges]) -> Client:
        """Change the given settings of a client; what is not named stays.

        Takes the settings of :meth:`create` except ``auth_method``,
        ``secret`` and ``client_id``, plus ``name``, ``enabled``,
        ``sunset_at`` (Unix time; announced in Deprecation and Sunset
        headers) and the resets ``reset_access_token_lifetime``,
        ``reset_refresh_token_lifetimes``, ``reset_access_token_format``,
        ``reset_audience`` and ``clear_sunset`` (back to the app default),
        and ``secret_digest`` (a confidential client's new secret digest,
        as :meth:`create` takes it).

        :raises ClientNotFoundError: no such client.
        :raises ValueError: for an invalid value; nothing is changed then.
        """
        return self._state().store.clients.update(client_id, **changes)

    def rotate_secret(self, client_id: str) -> tuple[Client, str]:
        """Give a confidential client a new secret; the old one stops at once.

        :raises ClientNotFoundError: no such client.
        :raises ValueError: the client is public and has no secret.
        :raises SecretChangedError: another rotation changed the secret after
            this one read it; nothing was changed, and only the other
            rotation's secret works.
        """
        return self._state().store.clients.rotate_secret(client_id)

    def delete(self, client_id: str) -> None:
        """Delete a client and every token issued to it.

        :raises ClientNotFoundError: no such client.
        """
        self._state().store.clients.delete(client_id)


class KeyAdmin:
    """Manage the keys that sign JWT access tokens: ``ropc.keys``.

    Keys kept in the database change here; keys from ``ROPC_SIGNING_KEYS``
    are listed, and every change refuses them.

    :param state: returns the state to act on; default, the current app's.
    """

    def __init__(self, state: StateGetter = get_state) -> None:
        self._state = state

    def list(self) -> list[KeyInfo]:
        """Every key, oldest first (configured keys in their order)."""
        state = self._state()
        if state.settings.signing_keys:
            return [KeyInfo.configured(key) for key in state.settings.signing_keys]
        return [KeyInfo.from_row(row) for row in state.store.keys.list()]

    def current(self) -> KeyInfo:
        """The key that signs new tokens now; generated if there is none."""
        state = self._state()
        key = state.keyring.signing_key()
        if state.settings.signing_keys:
            return KeyInfo.configured(key)
        return KeyInfo(key.kid, key.alg, key.status, key.created_at)

    def generate(self, alg: str | None = None) -> KeyInfo:
        """Add a key of ``alg`` (default ``ROPC_SIGNING_ALG``): the signer if
        none is active, else ``pending``, published ahead of :meth:`rotate`.
        """
        state, rows = self._database_keys()
        row = generate_stored_key(rows, alg or state.settings.signing_alg)
        state.keyring.reload()
        return KeyInfo.from_row(row)

    def rotate(self, alg: str | None = None) -> KeyInfo:
        """Make the newest pending key (or a new one of ``alg``) the signer.

        The old signer stays published until every token it signed has
        expired.

        :raises KeysChangedError: another key command changed the keys at the
            same time; nothing was changed.
        """
        state, rows = self._database_keys()
        longest = state.store.clients.longest_access_token_lifetime(
            state.settings.access_token_lifetime
        )
        row = rotate_stored_keys(rows, alg or state.settings.signing_alg, longest)
        state.keyring.reload()
        return KeyInfo.from_row(row)

    def rotate_if_due(self) -> LifecycleReport:
        """Make the lifecycle changes due now (``ROPC_KEY_ROTATION_ENABLED``):
        a new key a propagation time before the signer's interval ends, the
        switch to it, the step down of the old one; nothing if none is due.

        Idempotent: what cron runs (``flask ropc keys rotate --if-due``).

        :raises ConfigurationError: automatic rotation is off.
        """
        state, _ = self._database_keys()
        keyring = state.keyring
        if not isinstance(keyring, ManagedKeyRing):
            raise ConfigurationError(
                "automatic key rotation is off: set ROPC_KEY_ROTATION_ENABLED "
                "= True (or use 'flask ropc keys rotate' without --if-due)"
            )
        report = keyring.check(force=True)
        assert report is not None  # forced checks always report
        return report

    def retire(self, kid: str) -> None:
        """Stop publishing and accepting ``kid``; tokens it signed stop working.

        :raises LookupError: no stored key has this ``kid``.
        :raises ValueError: it is the active key (rotate first).
        """
        state, rows = self._database_keys()
        retire_stored_key(rows, kid)
        state.keyring.reload()

    def encrypt(self) -> int:
        """(Re-)encrypt every stored key with the first
        ``ROPC_KEY_ENCRYPTION_KEYS`` secret, else with the key derived from
        ``SECRET_KEY``; return how many.

        :raises ValueError: neither is set (``ROPC_ALLOW_PLAINTEXT_KEYS``).
        :raises ConfigurationError: a key cannot be decrypted (its ``kid``
            and the fix are named); nothing was changed.
        """
        state, rows = self._database_keys()
        count = rows.encrypt_all()
        state.keyring.reload()
        return count

    def encrypted_with(self) -> str | None:
        """The setting whose secret encrypts stored keys now:
        ``"ROPC_KEY_ENCRYPTION_KEYS"``, ``"SECRET_KEY"``, or ``None``
        (``ROPC_ALLOW_PLAINTEXT_KEYS``)."""
        cipher = self._state().store.keys.cipher
        return None if cipher is None else cipher.source

    def _database_keys(self) -> tuple[State, KeyStore]:
        state = self._state()
        if state.settings.signing_keys:
            raise ConfigurationError(
                "signing keys come from ROPC_SIGNING_KEYS; change that setting "
                "instead (the database key set is not used)"
            )
        return state, state.store.keys


def create_all(state: State) -> KeyInfo | None:
    """Create our tables, then the first signing key if there is none.

    Only for keys kept in the database (not ``ROPC_SIGNING_KEYS``): the
    JWKS then lists the signer before the first token is issued. Existing
    rows are kept. Returns the key created, or ``None``.
    """
    state.store.create_all()
    if state.settings.signing_keys:
        return None
    row, created = ensure_stored_key(state.store.keys, state.settings.signing_alg)
    state.keyring.reload()
    return KeyInfo.from_row(row) if created else None


def revoke(
    state: State, *, subject: str | None = None, client_id: str | None = None
) -> int:
    """Revoke every token of a user or of a client; return how many.

    :raises ValueError: not exactly one of ``subject`` and ``client_id``.
    :raises ClientNotFoundError: ``client_id`` names no client.
    """
    if (subject is None) == (client_id is None):
        raise ValueError("give exactly one of subject and client_id")
    tokens = state.store.tokens
    if subject is not None:
        return tokens.revoke_subject(subject)
    assert client_id is not None
    state.store.clients.require(client_id)
    return tokens.revoke_client(client_id)


def cleanup(
    state: State,
    *,
    revoked_for: int = 86400,
    batch_size: int = 1000,
    progress: Callable[[str, int], None] | None = None,
) -> dict[str, int]:
    """Delete expired tokens, tokens revoked ``revoked_for`` seconds ago or
    more, expired throttle counters and expired or used ``mfa_token`` rows;
    return the count per table.

    Works in batches of ``batch_size`` rows, each its own short transaction,
    so it can run while the server is serving; ``progress(table, rows)`` is
    called after each batch of tokens.
    """
    deleted = state.store.tokens.cleanup(
        revoked_before=state.store.now() - revoked_for,
        batch_size=batch_size,
        progress=progress,
    )
    throttle = state.throttle
    if throttle is not None and isinstance(throttle.counters, DatabaseCounters):
        deleted["ropc_throttle"] = throttle.counters.purge_expired()
    if isinstance(state.mfa_tokens, SQLMfaTokens):  # Redis expires its own
        deleted["ropc_mfa_tokens"] = state.mfa_tokens.purge_expired(state.store.now())
    return deleted


def cleanup_backlog(state: State, *, revoked_for: int = 86400) -> int:
    """How many token rows :func:`cleanup` would delete now (for a progress
    display)."""
    revoked_before = state.store.now() - revoked_for
    return state.store.tokens.cleanup_backlog(revoked_before=revoked_before)


def unlock(state: State, username: str) -> int | None:
    """Forget the failed attempts and lock of ``username``.

    :returns: how many live throttle counters (failures, locks, strikes)
        were cleared, 0 when nothing was recorded for ``username``; ``None``
        when throttling is off (nothing to unlock).
    """
    if state.throttle is None:
        return None
    return state.throttle.unlock(username)


def unlock_mfa(state: State, subject: str) -> int:
    """Forget the wrong MFA codes of ``subject``: its code budget across
    every ``mfa_token``, and the slow-down once it is spent. The budget is
    kept even with throttling off, so this works then too.

    :returns: how many live counters were cleared, 0 when none were recorded.
    """
    if state.mfa_throttle is None:  # an app made without init_app's state
        return 0
    return state.mfa_throttle.unlock(subject)
