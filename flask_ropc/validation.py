"""The contract between Flask-ROPC and the application's password validator.

The validator receives one frozen :class:`PasswordRequest` and answers with a
:class:`GrantResult`, a plain subject string (success), or ``None`` (wrong
username or password). :func:`normalise_result` turns any of those into a
:class:`GrantResult` and rejects anything else.

This module imports neither Flask nor Authlib, so the contract can be read and
tested on its own.
"""

from __future__ import annotations

import dataclasses
import re
import typing as t
from collections.abc import Mapping

from .mfa_contract import MFA_FACTORS

if t.TYPE_CHECKING:  # pragma: no cover
    from flask import Request

    from .models import Client

#: Token response fields a validator's ``extra`` may not overwrite
#: (RFC 6749 §5.1, plus ``id_token`` which OpenID Connect owns).
RESERVED_TOKEN_FIELDS = frozenset(
    {"access_token", "token_type", "expires_in", "refresh_token", "scope", "id_token"}
)

#: Error response fields a validator's ``extra`` may not overwrite (§5.2).
RESERVED_ERROR_FIELDS = frozenset({"error", "error_description", "error_uri"})

# RFC 6749 §5.2: error codes are 1*( %x20-21 / %x23-5B / %x5D-7E ); we also
# refuse spaces so that a code reads as one token in logs and headers.
_ERROR_CODE = re.compile(r"[\x21\x23-\x5b\x5d-\x7e]+")


@dataclasses.dataclass(frozen=True)
class PasswordRequest:
    """What the validator is asked to check: one password-grant request.

    By the time the validator sees it, the client has authenticated, is
    allowed the password grant, and the requested scopes are allowed for it.
    """

    #: The ``username`` form field, exactly as sent.
    username: str
    #: The ``password`` form field. Never shown in a repr.
    password: str = dataclasses.field(repr=False)
    #: The authenticated OAuth client making the request.
    client: Client
    #: The scopes that will be granted, after defaults were applied.
    scopes: tuple[str, ...]
    #: The Flask request, for headers, extra form fields or the remote address.
    request: Request = dataclasses.field(repr=False)


@dataclasses.dataclass(frozen=True)
class RefreshRequest:
    """A refresh token exchange, as shown to the refresh hooks.

    See :meth:`ROPC.subject_is_active` and :meth:`ROPC.refresh_claims`.
    """

    #: The user's id from the original password login.
    subject: str
    #: The authenticated OAuth client.
    client: Client
    #: The scopes the new access token will carry.
    scopes: tuple[str, ...]
    #: The claims the tokens of this family carry so far.
    claims: Mapping[str, t.Any]
    #: The Flask request.
    request: Request = dataclasses.field(repr=False)


@dataclasses.dataclass(frozen=True)
class ThrottleRequest:
    """A password attempt, as shown to ``@ropc.throttle_exempt``.

    Asked before the budgets are checked; never carries the password.
    """

    #: The address the attempt is counted under (ProxyFix applied, or the
    #: end-user IP a trusted backend named).
    client_ip: str
    #: The authenticated OAuth client.
    client: Client
    #: The ``username`` form field, exactly as sent.
    username: str
    #: The Flask request.
    request: Request = dataclasses.field(repr=False)


@dataclasses.dataclass(frozen=True)
class GrantResult:
    """The validator's verdict. Build one with :meth:`success` or :meth:`error`.

    A success carries the ``subject`` (the user's stable id, the ``sub`` of
    the token), ``claims`` to put into the access token, and ``extra`` fields
    to add to the token response. An error carries the OAuth error code and
    description sent to the client, plus ``extra`` response fields.
    """

    #: The user's id for a success, ``None`` for an error.
    subject: str | None
    #: Claims stored with (and, for JWTs, signed into) the access token.
    claims: Mapping[str, t.Any] = dataclasses.field(default_factory=dict)
    #: Extra fields for the JSON response body.
    extra: Mapping[str, t.Any] = dataclasses.field(default_factory=dict)
    #: The OAuth error code for an error result.
    error_code: str | None = None
    #: The ``error_description`` for an error result.
    error_description: str | None = None
    #: The HTTP status of an error result.
    status_code: int = 400
    #: Why it failed, for audit events and logs only; never sent to clients.
    reason: str | None = None
    #: Whether a failure counts towards brute-force throttling.
    counts_as_failure: bool = True
    #: The factors a second step may use (:meth:`mfa_required`), else empty.
    mfa_factors: tuple[str, ...] = ()

    @property
    def is_success(self) -> bool:
        """Whether this result grants a token."""
        return self.error_code is None

    @property
    def needs_mfa(self) -> bool:
        """Whether the password was right and a second factor must follow."""
        return bool(self.mfa_factors)

    @classmethod
    def success(
        cls,
        subject: str,
        claims: Mapping[str, t.Any] | None = None,
        extra: Mapping[str, t.Any] | None = None,
    ) -> GrantResult:
        """Grant a token to ``subject``.

        :param subject: the user's stable, unique id (not the username if the
            username can change). Must be a non-empty string.
        :param claims: extra claims for the access token, e.g. ``{"role":
            "admin"}``. They must be JSON-serialisable.
        :param extra: extra fields for the token response, e.g.
            ``{"display_name": "Ann"}``; may not reuse a standard field name.
        :raises ValueError: for an empty subject or a reserved ``extra`` name.
        """
        if not isinstance(subject, str) or not subject:
            raise ValueError("GrantResult.success() needs a non-empty subject string")
        extra = dict(extra or {})
        _refuse_reserved(extra, RESERVED_TOKEN_FIELDS, "token response")
        return cls(subject=subject, claims=dict(claims or {}), extra=extra)

    @classmethod
    def mfa_required(
        cls,
        subject: str,
        factors: t.Sequence[str] = MFA_FACTORS,
        claims: Mapping[str, t.Any] | None = None,
        extra: Mapping[str, t.Any] | None = None,
    ) -> GrantResult:
        """The password is right; the user must also pass a second factor.

        Return this only after the password was verified: the token endpoint
        answers ``mfa_required`` with an ``mfa_token`` (Auth0's format), and
        the tokens are issued by the MFA grant that follows, with these
        ``claims`` and ``extra`` fields. It never counts as a failed password.

        :param factors: which of :data:`~flask_ropc.mfa_contract.MFA_FACTORS`
            (``"otp"``, ``"recovery-code"``) the user may use.
        :raises ValueError: an empty subject, no or unknown factors, or a
            reserved ``extra`` name.
        """
        success = cls.success(subject, claims, extra)
        chosen = tuple(dict.fromkeys(factors))
        if not chosen or isinstance(factors, str):
            raise ValueError("GrantResult.mfa_required() needs a sequence of factors")
        unknown = [f for f in chosen if f not in MFA_FACTORS]
        if unknown:
            raise ValueError(
                f"unknown MFA factor {unknown[0]!r}; choose from "
                + ", ".join(MFA_FACTORS)
            )
        return dataclasses.replace(
            success,
            error_code="mfa_required",
            counts_as_failure=False,
            reason="mfa_required",
            mfa_factors=chosen,
        )

    @classmethod
    def error(
        cls,
        error: str,
        description: str | None = None,
        extra: Mapping[str, t.Any] | None = None,
        *,
        status_code: int = 400,
        reason: str | None = None,
        count_failure: bool = True,
    ) -> GrantResult:
        """Refuse the request with the OAuth error ``error``.

        :param error: an RFC 6749 §5.2 code such as ``"invalid_grant"``, or
            an extension code such as ``"mfa_required"``.
        :param description: the ``error_description``; characters RFC 6749
            forbids are replaced (with a warning logged) instead of failing.
        :param extra: extra fields for the error body, e.g. an ``mfa_token``.
        :param status_code: the HTTP status, 400 unless given (4xx only).
        :param reason: an internal reason such as ``"locked"``,
            ``"password_expired"`` or ``"unconfirmed"``; it goes to audit
            events and logs, never to the client.
        :param count_failure: ``False`` if this failure should not count
            towards brute-force throttling (e.g. the password was right but
            the account needs a step the client must take).
        :raises ValueError: for a malformed code, a reserved ``extra`` name or
            a status outside 400-499.
        """
        if not isinstance(error, str) or not _ERROR_CODE.fullmatch(error):
            raise ValueError(
                "GrantResult.error() needs an error code of visible ASCII "
                "characters without quotes or backslashes, such as 'invalid_grant'"
            )
        if not 400 <= status_code <= 499:
            raise ValueError("GrantResult.error() status_code must be a 4xx status")
        extra = dict(extra or {})
        _refuse_reserved(extra, RESERVED_ERROR_FIELDS, "error response")
        return cls(
            subject=None,
            extra=extra,
            error_code=error,
            error_description=description,
            status_code=status_code,
            reason=reason,
            counts_as_failure=count_failure,
        )


def normalise_result(value: object) -> GrantResult:
    """Turn whatever a validator returned into a :class:`GrantResult`.

    ``None`` (or ``False``) means wrong credentials and becomes an
    ``invalid_grant`` error; a non-empty ``str`` is the subject of a success.

    :raises TypeError: for any other value, naming what was returned.
    """
    if isinstance(value, GrantResult):
        return value
    if value is None or value is False:
        return GrantResult.error(
            "invalid_grant", INVALID_CREDENTIALS, reason="invalid_credentials"
        )
    if isinstance(value, str) and value:
        return GrantResult.success(value)
    raise TypeError(
        "a password validator must return a GrantResult, a non-empty subject "
        f"string or None, not {type(value).__name__}"
    )


#: The description for wrong credentials: the same whether or not the user
#: exists, so the response is no oracle for valid usernames.
INVALID_CREDENTIALS = "invalid username or password"


def _refuse_reserved(
    extra: Mapping[str, t.Any], reserved: frozenset[str], where: str
) -> None:
    clash = sorted(set(extra) & reserved)
    if clash:
        raise ValueError(
            f"extra fields may not overwrite standard {where} fields: "
            + ", ".join(clash)
        )
