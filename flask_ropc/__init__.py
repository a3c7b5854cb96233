"""Flask-ROPC: the OAuth 2.0 resource owner password credentials grant.

RFC 6749 §4.3 for Flask, on Authlib, with hashed client secrets, strict
request checks and RFC-exact errors. See :class:`ROPC` to start.
"""

from __future__ import annotations

from .errors import ClientNotFoundError as ClientNotFoundError
from .errors import ConfigurationError as ConfigurationError
from .errors import ROPCError as ROPCError
from .extension import ROPC as ROPC
from .models import Client as Client
from .resource import current_token as current_token
from .tokens import AccessToken as AccessToken
from .validation import GrantResult as GrantResult
from .validation import PasswordRequest as PasswordRequest
from .validation import RefreshRequest as RefreshRequest
from .validation import ThrottleRequest as ThrottleRequest

__all__ = [
    "ROPC",
    "AccessToken",
    "Client",
    "ClientNotFoundError",
    "ConfigurationError",
    "GrantResult",
    "PasswordRequest",
    "ROPCError",
    "RefreshRequest",
    "ThrottleRequest",
    "current_token",
]
