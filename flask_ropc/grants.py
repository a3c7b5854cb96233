"""The password grant: Authlib's grant with RFC 6749 corrected.

Departures from Authlib's ``ResourceOwnerPasswordCredentialsGrant``, each for
a reason named next to it:

* the order of checks is client authentication, grant type, scope, and only
  then the password, as IdentityServer does; Authlib checks the password
  before the scope, which gives a client that may not have a scope a password
  oracle;
* a disallowed scope is rejected (``invalid_scope``), not silently dropped;
* wrong credentials give ``invalid_grant`` (RFC 6749 §5.2), not Authlib's
  ``invalid_request``;
* the application's validator is called with a :class:`PasswordRequest` and
  may answer with claims, extra response fields or its own error.
"""

from __future__ import annotations

import typing as t

import flask
from authlib.oauth2.rfc6749 import InvalidRequestError
from authlib.oauth2.rfc6749 import UnauthorizedClientError
from authlib.oauth2.rfc6749.grants import ResourceOwnerPasswordCredentialsGrant
from authlib.oauth2.rfc6749.hooks import hooked

from .errors import ValidatorError
from .errors import safe_description
from .scopes import resolve_scopes
from .validation import GrantResult
from .validation import PasswordRequest


class PasswordGrant(ResourceOwnerPasswordCredentialsGrant):
    """``grant_type=password`` calling the app's ``@ropc.password_validator``."""

    # Authlib enables only client_secret_basic by default; RFC 6749 §2.3.1
    # allows the body method and §2.1 public clients.
    TOKEN_ENDPOINT_AUTH_METHODS = ["client_secret_basic", "client_secret_post", "none"]

    def validate_token_request(self) -> None:
        """Check the request in IdentityServer's order, then ask the validator."""
        client = self.authenticate_token_endpoint_client()
        if not client.check_grant_type(self.GRANT_TYPE):
            raise UnauthorizedClientError(
                "The client is not allowed to use the password grant."
            )
        self.request.client = client
        scopes = resolve_scopes(self.request.form.get("scope"), client.scopes)
        username, password = self._credentials()
        state = self.server.state
        password_request = PasswordRequest(
            username=username,
            password=password,
            client=client,
            scopes=scopes,
            request=flask.request._get_current_object(),  # type: ignore[attr-defined]
        )
        result = state.run_validator(password_request)
        if not result.is_success:
            raise _error_from(result)
        self.request.user = result
        self.request.ropc_scopes = scopes

    def _credentials(self) -> tuple[str, str]:
        form = self.request.form
        settings = self.server.state.settings
        username = form.get("username")
        password = form.get("password")
        # An empty value is as missing as an absent one (RFC 6749 §4.3.2
        # makes both REQUIRED).
        if not username:
            raise InvalidRequestError("Missing 'username' in request.")
        if not password:
            raise InvalidRequestError("Missing 'password' in request.")
        if len(username) > settings.max_username_length:
            raise InvalidRequestError("The 'username' parameter is too long.")
        if len(password) > settings.max_password_length:
            raise InvalidRequestError("The 'password' parameter is too long.")
        return username, password

    @hooked  # type: ignore[untyped-decorator]
    def create_token_response(self) -> tuple[int, dict[str, t.Any], list[t.Any]]:
        """Issue the access token and add the validator's extra fields."""
        result: GrantResult = self.request.user
        assert result.subject is not None
        body = self.server.issue_access_token(
            client=self.request.client,
            subject=result.subject,
            scopes=self.request.ropc_scopes,
            claims=result.claims,
            grant_type=self.GRANT_TYPE,
        )
        # GrantResult.success() already refused reserved names in extra.
        body.update(result.extra)
        return 200, body, self.TOKEN_RESPONSE_HEADER


def _error_from(result: GrantResult) -> ValidatorError:
    assert result.error_code is not None
    return ValidatorError(
        error=result.error_code,
        description=safe_description(result.error_description),
        extra=result.extra,
        status_code=result.status_code,
    )
