"""Flask-ROPC: the OAuth 2.0 resource owner password credentials grant.

RFC 6749 §4.3 for Flask, on Authlib, with hashed client secrets, strict
request checks and RFC-exact errors. See :class:`ROPC` to start.

Only public names live here; this is the one module that imports
``extension``. The package reads top to bottom: ``extension`` (wiring and the
admin API), the interfaces (``server``, ``resource``, ``views``, ``cli*``),
the flows (``login``, ``refresh``, ``token_endpoints``), the services
(``state``, ``token_service``, ``jwt_tokens``, ``keyring``, ``throttle``,
``guards``, ``admin``), ``store/`` (the only SQL), then the leaves
(``models``, ``config``, ``errors`` and the small helpers). Each module's
docstring says what it owns and what it may import;
``tests/test_architecture.py`` checks it.
"""

from __future__ import annotations

from .errors import ClientNotFoundError as ClientNotFoundError
from .errors import ConfigurationError as ConfigurationError
from .errors import ROPCError as ROPCError
from .extension import ROPC as ROPC
from .mfa_contract import MfaRequest as MfaRequest
from .mfa_contract import MfaResult as MfaResult
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
    "MfaRequest",
    "MfaResult",
    "PasswordRequest",
    "ROPCError",
    "RefreshRequest",
    "ThrottleRequest",
    "current_token",
]
