"""The contract between Flask-ROPC and the application's MFA verifier.

After a validator answered :meth:`GrantResult.mfa_required
<flask_ropc.GrantResult.mfa_required>`, the client continues with one of
Auth0's MFA grants; the app's ``@ropc.mfa_verifier`` then receives one frozen
:class:`MfaRequest` and answers with an :class:`MfaResult` (or ``True`` /
``False``). The library never sees or stores the user's OTP secret or
recovery codes: it keeps only the pending login, and, for
:class:`~flask_ropc.totp.TotpVerifier`, the last accepted time step.

A leaf: imports neither Flask nor Authlib; the factor names come from
:mod:`~flask_ropc.grant_types`.
"""

from __future__ import annotations

import dataclasses
import typing as t
from collections.abc import Mapping

from .grant_types import GRANT_OF_FACTOR as GRANT_OF_FACTOR
from .grant_types import MFA_FACTORS as MFA_FACTORS
from .grant_types import MFA_OTP_GRANT as MFA_OTP_GRANT
from .grant_types import MFA_RECOVERY_CODE_GRANT as MFA_RECOVERY_CODE_GRANT
from .grant_types import OTP as OTP
from .grant_types import RECOVERY_CODE as RECOVERY_CODE

if t.TYPE_CHECKING:  # pragma: no cover
    from flask import Request

    from .models import Client


class StepLedger(t.Protocol):
    """Remembers the last accepted TOTP time step of each subject.

    The default keeps it in the ``ropc_mfa_steps`` table; an app may pass
    its own to :class:`~flask_ropc.totp.TotpVerifier` (e.g. a column on its
    user table).
    """

    def accept(self, subject: str, step: int) -> bool:
        """Record ``step`` for ``subject`` if it is later than the last one
        recorded, atomically; ``False`` (a replay) otherwise."""


@dataclasses.dataclass(frozen=True)
class MfaRequest:
    """What the MFA verifier is asked to check: one code for one login.

    By the time the verifier sees it, the client has authenticated, the
    ``mfa_token`` is live and was issued to that client, the user is still
    active, and the per-user code budget has room.
    """

    #: The user's id, as the password validator returned it.
    subject: str
    #: :data:`OTP` or :data:`RECOVERY_CODE`.
    factor: str
    #: The code the client sent. Never shown in a repr.
    code: str = dataclasses.field(repr=False)
    #: The authenticated OAuth client.
    client: Client
    #: The scopes the tokens will carry.
    scopes: tuple[str, ...]
    #: The claims the password validator returned.
    claims: Mapping[str, t.Any]
    #: Where accepted TOTP steps are remembered (replay rejection).
    steps: StepLedger = dataclasses.field(repr=False)
    #: The Flask request.
    request: Request = dataclasses.field(repr=False)


@dataclasses.dataclass(frozen=True)
class MfaResult:
    """The verifier's verdict. Build one with :meth:`success` or :meth:`failure`."""

    #: Whether the code was right.
    ok: bool
    #: A new recovery code to hand to the user (recovery-code grant only).
    recovery_code: str | None = dataclasses.field(default=None, repr=False)
    #: Why it failed, for audit events and logs only; never sent to clients.
    reason: str | None = None

    @classmethod
    def success(cls, recovery_code: str | None = None) -> MfaResult:
        """The code was right. After a recovery code, ``recovery_code`` is
        the user's new one; the token response returns it (as Auth0 does).

        :raises ValueError: ``recovery_code`` is not a non-empty string.
        """
        if recovery_code is not None and (
            not isinstance(recovery_code, str) or not recovery_code
        ):
            raise ValueError("MfaResult.success() recovery_code must be a string")
        return cls(ok=True, recovery_code=recovery_code)

    @classmethod
    def failure(cls, reason: str = "invalid_code") -> MfaResult:
        """The code was wrong (``reason`` e.g. ``"replayed"``, for events)."""
        return cls(ok=False, reason=reason)


def normalise_mfa_result(value: object) -> MfaResult:
    """Turn what a verifier returned into an :class:`MfaResult`.

    ``True`` is a success; ``False`` or ``None`` a failure.

    :raises TypeError: for any other value, naming what was returned.
    """
    if isinstance(value, MfaResult):
        return value
    if value is True:
        return MfaResult.success()
    if value is False or value is None:
        return MfaResult.failure()
    raise TypeError(
        "an MFA verifier must return an MfaResult, True or False, not "
        f"{type(value).__name__}"
    )
