"""The methods of Authlib's ``ClientMixin`` that the token endpoint calls,
for :class:`~flask_ropc.models.Client` (kept apart to keep ``models`` short).

A leaf: imports only :mod:`~flask_ropc.hashing`.
"""

from __future__ import annotations

from .hashing import verify_secret


class AuthlibClientMethods:
    """Authlib's client interface over a :class:`~flask_ropc.models.Client`."""

    client_id: str
    grant_types: tuple[str, ...]
    token_endpoint_auth_methods: tuple[str, ...]
    secret_digest: str | None

    def get_client_id(self) -> str:
        """Authlib: the client's id."""
        return self.client_id

    def get_default_redirect_uri(self) -> None:
        """Authlib: password clients have no redirect URIs."""
        return None

    def get_allowed_scope(self, scope: str | None) -> str:
        """Authlib: the scope to grant.

        Our grants reject disallowed scopes before any token is generated, so
        by the time Authlib asks, ``scope`` is already allowed.
        """
        return scope or ""

    def check_redirect_uri(self, redirect_uri: str) -> bool:
        """Authlib: no redirect URI is ever valid for a password client."""
        return False

    def check_client_secret(self, client_secret: str) -> bool:
        """Authlib: constant-time check of a presented secret."""
        return verify_secret(client_secret, self.secret_digest)

    def check_endpoint_auth_method(self, method: str, endpoint: str) -> bool:
        """Authlib: whether ``method`` is one of this client's methods."""
        return method in self.token_endpoint_auth_methods

    def check_response_type(self, response_type: str) -> bool:
        """Authlib: the password grant has no authorization endpoint."""
        return False

    def check_grant_type(self, grant_type: str) -> bool:
        """Authlib: whether this client may use ``grant_type``."""
        return grant_type in self.grant_types
