"""How the user authenticated for a token: ``amr``, ``acr`` and ``auth_time``.

Every access and refresh token carries an :class:`AuthContext`: the methods
used (``amr``, RFC 8176 values such as ``pwd``, ``otp``, ``mfa``), the
authentication context class they amount to (``acr``, one of
``ROPC_ACR_PASSWORD`` and ``ROPC_ACR_MFA``) and when the user authenticated
(``auth_time``, Unix seconds). A password login makes
:func:`password_context`; a grant that continues it with a second factor
makes its own context and passes it to
:func:`~flask_ropc.token_service.issue_tokens`. A refresh keeps its family's
context unchanged: refreshing never upgrades it.

:func:`stored_context` reads a context back from a row; rows written before
these columns existed (NULL) read as a password login.

A leaf: imports nothing of ours.
"""

from __future__ import annotations

import dataclasses

#: The ``amr`` of a login with a password only (RFC 8176 §2).
PASSWORD_AMR: tuple[str, ...] = ("pwd",)


@dataclasses.dataclass(frozen=True)
class AuthContext:
    """How and when the user authenticated, as a token reports it.

    ::

        AuthContext(amr=("pwd", "otp", "mfa"), acr=settings.acr_mfa,
                    auth_time=password_step_time)
    """

    #: Authentication method references (RFC 8176), e.g. ``("pwd",)``.
    amr: tuple[str, ...]
    #: The authentication context class reference, e.g. ``ROPC_ACR_PASSWORD``.
    acr: str
    #: When the user authenticated (Unix seconds): the first step of the
    #: login, which a later factor does not move.
    auth_time: int


def password_context(acr: str, auth_time: int) -> AuthContext:
    """The context of a password-only login at ``auth_time``.

    :param acr: the app's ``ROPC_ACR_PASSWORD``.
    :param auth_time: when the password was checked (Unix seconds).
    """
    return AuthContext(amr=PASSWORD_AMR, acr=acr, auth_time=auth_time)


def stored_context(
    amr: str | None, acr: str | None, auth_time: int, *, password_acr: str
) -> AuthContext:
    """The context stored as columns (``amr`` space-separated).

    ``NULL`` columns come from rows written before the context was stored:
    those tokens came from a password login, so they read as ``["pwd"]``
    and ``password_acr`` (the app's ``ROPC_ACR_PASSWORD``).
    """
    return AuthContext(
        amr=stored_amr(amr), acr=acr or password_acr, auth_time=auth_time
    )


def stored_amr(amr: str | None) -> tuple[str, ...]:
    """The ``amr`` column read back; ``NULL`` (an older row) is ``("pwd",)``."""
    return tuple(amr.split()) if amr else PASSWORD_AMR


def amr_column(context: AuthContext) -> str:
    """``context.amr`` as stored: space-separated (RFC 8176 values hold no
    spaces)."""
    return " ".join(context.amr)


def is_acr_value(value: str) -> bool:
    """Whether ``value`` can be an ``acr``: printable ASCII without spaces,
    quotes or backslashes (it goes into a quoted header parameter)."""
    return all(0x21 <= ord(c) <= 0x7E and c not in '"\\' for c in value)
