"""The second factors we know, and Auth0's grant type for each.

A leaf with no imports, so that ``models`` (the grant types a client may be
allowed) and ``mfa_contract`` (the verifier's contract) share the names.
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
