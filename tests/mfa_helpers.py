"""An app whose users need a second factor: TOTP and recovery codes.

Shared by the MFA tests: :func:`enable_mfa` makes the test app's validator
answer ``GrantResult.mfa_required`` for known users and registers a verifier
built from the shipped :class:`~flask_ropc.totp.TotpVerifier` (on the app's
clock) plus an in-memory recovery-code store, as an app would write it.
"""

from __future__ import annotations

import secrets
import typing as t

import flask
import pyotp

from flask_ropc import GrantResult
from flask_ropc import MfaResult
from flask_ropc.totp import TotpVerifier

from conftest import USERS
from conftest import OAuthClient
from conftest import basic_auth
from conftest import clock_of
from conftest import password_form
from conftest import ropc_of

MFA_OTP = "http://auth0.com/oauth/grant-type/mfa-otp"
MFA_RECOVERY = "http://auth0.com/oauth/grant-type/mfa-recovery-code"
#: The grant types of a client that logs in with MFA and refreshes.
MFA_GRANTS = ["password", "refresh_token", MFA_OTP, MFA_RECOVERY]
#: Every user's TOTP secret (base32), as the app would keep it.
TOTP_SECRETS = {subject: pyotp.random_base32() for _, subject in USERS.values()}


class Factors:
    """The app's ``@ropc.mfa_verifier``: TOTP, then one-time recovery codes."""

    def __init__(self, app: flask.Flask) -> None:
        self.totp = TotpVerifier(
            lambda req: TOTP_SECRETS.get(req.subject), clock=clock_of(app)
        )
        self.recovery = {subject: {"RC-" + subject} for subject in TOTP_SECRETS}
        self.calls: list[t.Any] = []

    def __call__(self, req: t.Any) -> t.Any:
        self.calls.append(req)
        if req.factor == "otp":
            return self.totp(req)
        codes = self.recovery.get(req.subject, set())
        if req.code not in codes:
            return MfaResult.failure()
        codes.discard(req.code)
        new = "RC-" + secrets.token_hex(4)
        codes.add(new)
        return MfaResult.success(recovery_code=new)


def enable_mfa(
    app: flask.Flask, factors: t.Sequence[str] = ("otp", "recovery-code")
) -> Factors:
    """Make ``app``'s known users need a second factor; return the verifier."""
    ropc = ropc_of(app)

    @ropc.password_validator
    def validate(req: t.Any) -> t.Any:
        user = USERS.get(req.username)
        if user is None or user[0] != req.password:
            return None
        return GrantResult.mfa_required(
            user[1],
            factors=factors,
            claims={"role": "member"},
            extra={"display_name": req.username.title()},
        )

    verifier = Factors(app)
    ropc.mfa_verifier(verifier)
    return verifier


def mfa_client_of(app: flask.Flask) -> OAuthClient:
    """Client ``"c"`` of ``app``, allowed the password, refresh and MFA grants."""
    with app.app_context():
        client, secret = ropc_of(app).clients.create("c", grant_types=MFA_GRANTS)
    return OAuthClient(client.client_id, secret)


def otp_now(app: flask.Flask, subject: str = "user-1", offset_steps: int = 0) -> str:
    """The user's TOTP code at the app's clock (``offset_steps`` away)."""
    totp = pyotp.TOTP(TOTP_SECRETS[subject])
    step = int(clock_of(app)() // 30) + offset_steps
    return str(totp.generate_otp(step))


def start_login(
    http: t.Any, client: t.Any, username: str = "ann", **form: str
) -> t.Any:
    """The password step; the response (``mfa_required`` for known users)."""
    data = password_form(username, **form)
    return post_form(http, client, data)


def post_form(http: t.Any, client: t.Any, data: dict[str, str], **kw: t.Any) -> t.Any:
    """POST to the token endpoint as ``client`` (Basic, or a public id)."""
    if client.secret is None:
        return http.post(
            "/oauth/token", data={"client_id": client.client_id, **data}, **kw
        )
    return http.post("/oauth/token", data=data, headers=basic_auth(*client), **kw)


def mfa_token(http: t.Any, client: t.Any, username: str = "ann", **form: str) -> str:
    """A fresh ``mfa_token`` from a right password."""
    response = start_login(http, client, username, **form)
    assert response.status_code == 403, response.get_data(as_text=True)
    return str(response.get_json()["mfa_token"])


def send_otp(http: t.Any, client: t.Any, token: str, code: str, **form: str) -> t.Any:
    """The ``mfa-otp`` continuation."""
    data = {"grant_type": MFA_OTP, "mfa_token": token, "otp": code, **form}
    return post_form(http, client, data)


def send_recovery(http: t.Any, client: t.Any, token: str, code: str) -> t.Any:
    """The ``mfa-recovery-code`` continuation."""
    data = {"grant_type": MFA_RECOVERY, "mfa_token": token, "recovery_code": code}
    return post_form(http, client, data)
