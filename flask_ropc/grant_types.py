"""The grant types a client may be allowed, and the second factors we know.

A leaf with no imports, so that ``models`` (re-exporting
:data:`GRANT_TYPES`) and ``mfa_contract`` (the verifier's contract) share the
names.
"""

from __future__ import annotations

#: A one-time password (TOTP/HOTP): Auth0's ``mfa-otp`` grant.
OTP = "otp"
#: A recovery code: Auth0's ``mfa-recovery-code`` grant.
RECOVERY_CODE = "recovery-code"
#: The factors a validator may ask for, in the order challenges list them.
MFA_FACTORS = (OTP, RECOVERY_CODE)
#: Auth0's grant types that continue a login with each factor.
MFA_OTP_GRANT = "http://auth0.com/oauth/grant-type/mfa-otp"
MFA_RECOVERY_CODE_GRANT = "http://auth0.com/oauth/grant-type/mfa-recovery-code"
#: The grant type of each factor.
GRANT_OF_FACTOR = {OTP: MFA_OTP_GRANT, RECOVERY_CODE: MFA_RECOVERY_CODE_GRANT}

#: Grant types a client can be allowed. ``refresh_token`` is what
#: IdentityServer calls ``AllowOfflineAccess`` (CLI ``--offline-access``);
#: the last two are Auth0's MFA continuation grants (see ``docs/mfa.md``).
GRANT_TYPES = ("password", "refresh_token", MFA_OTP_GRANT, MFA_RECOVERY_CODE_GRANT)
