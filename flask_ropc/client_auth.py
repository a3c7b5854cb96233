"""Client authentication at the token endpoint (RFC 6749 §2.3).

These functions replace Authlib's three built-in methods, registered through
``AuthorizationServer.register_client_auth_method``. Authlib's versions tell an
attacker whether a client id exists (401 vs 400 and different texts), crash
with a 500 on non-UTF-8 Basic headers and non-ASCII secrets, and decode Basic
credentials with ``unquote`` rather than the form-urlencoding RFC 6749 §2.3.1
prescribes (so ``+`` is not a space). Ours answer every failure with the same
:class:`~flask_ropc.errors.InvalidClientAuthError`.

A leaf: imports ``hashing``, ``errors`` and ``models`` only.

Each function returns ``None`` when the request does not use its method, the
authenticated client when it does and succeeds, and raises otherwise.
"""

from __future__ import annotations

import base64
import binascii
import typing as t
from collections.abc import Callable
from urllib.parse import unquote_plus

from . import hashing
from .errors import InvalidClientAuthError
from .models import Client

QueryClient = Callable[[str], "Client | None"]

# What an unknown client id's secret is checked against, so that it costs
# what a wrong secret costs: no digest (never matches), not enabled.
_DECOY = Client(
    client_id="",
    name="",
    token_endpoint_auth_method="client_secret_basic",  # noqa: S106 (a method name)
    scopes=(),
    grant_types=(),
    access_token_lifetime=None,
    refresh_token_sliding_lifetime=None,
    refresh_token_absolute_lifetime=None,
    enabled=False,
    access_token_format=None,
    audience=None,
    is_resource_server=False,
    trusted_backend=False,
    password_grant_count=0,
    sunset_at=None,
    deprecated_at=None,
    created_at=0,
    last_used_at=None,
    secret_digest=None,
)


def parse_basic_authorization(header: str | None) -> tuple[str, str] | None:
    """Decode an ``Authorization: Basic`` header into client id and secret.

    Returns ``None`` when there is no header or it uses another scheme.
    Per RFC 6749 §2.3.1 both parts were form-urlencoded before base64, so
    they are decoded with :func:`urllib.parse.unquote_plus`.

    :raises InvalidClientAuthError: the header is Basic but undecodable: bad
        base64, no colon, not UTF-8, or an empty client id.
    """
    if not header:
        return None
    scheme, _, encoded = header.strip().partition(" ")
    if scheme.lower() != "basic":
        return None
    try:
        decoded = base64.b64decode(encoded.strip(), validate=True).decode("utf-8")
    except (binascii.Error, ValueError):
        # ValueError covers UnicodeDecodeError and non-ASCII base64 input.
        raise InvalidClientAuthError() from None
    client_id, colon, secret = decoded.partition(":")
    if not colon:
        raise InvalidClientAuthError()
    try:
        client_id = unquote_plus(client_id, errors="strict")
        secret = unquote_plus(secret, errors="strict")
    except UnicodeDecodeError:
        raise InvalidClientAuthError() from None
    if not client_id:
        raise InvalidClientAuthError()
    return client_id, secret


def authenticate_basic(query_client: QueryClient, request: t.Any) -> Client | None:
    """``client_secret_basic``: id and secret in the ``Authorization`` header."""
    credentials = parse_basic_authorization(request.headers.get("Authorization"))
    if credentials is None:
        return None
    return _check_secret(query_client, *credentials, method="client_secret_basic")


def authenticate_post(query_client: QueryClient, request: t.Any) -> Client | None:
    """``client_secret_post``: ``client_id`` and ``client_secret`` in the body."""
    form = request.form
    if "client_secret" not in form:
        return None
    client_id = form.get("client_id") or ""
    return _check_secret(
        query_client, client_id, form["client_secret"], method="client_secret_post"
    )


def authenticate_none(query_client: QueryClient, request: t.Any) -> Client | None:
    """``none``: a public client sends only its ``client_id`` in the body."""
    form = request.form
    client_id = form.get("client_id")
    if not client_id or "client_secret" in form:
        return None
    if request.headers.get("Authorization"):
        return None
    client = query_client(client_id)
    if client is None or not client.enabled or not client.is_public:
        raise InvalidClientAuthError()
    return client


def _check_secret(
    query_client: QueryClient, client_id: str, secret: str, *, method: str
) -> Client:
    """The client ``client_id`` names, if ``secret`` is its secret.

    An unknown id is checked against a decoy, so that a wrong secret and an
    unknown id do the same work (the store builds a client for an unknown
    id too, see :meth:`~flask_ropc.store.clients.ClientStore.get`).
    """
    client = query_client(client_id) if client_id else None
    candidate = client if client is not None else _DECOY
    secret_ok = hashing.verify_secret(secret, candidate.secret_digest)
    method_ok = candidate.token_endpoint_auth_method == method
    if client is None or not (secret_ok & method_ok & candidate.enabled):
        raise InvalidClientAuthError()
    return client


def presented_client_id(header: str | None, form: t.Mapping[str, str]) -> str | None:
    """The client id a failed request claimed, if it looks like one."""
    try:
        basic = parse_basic_authorization(header)
    except InvalidClientAuthError:
        basic = None
    claimed = basic[0] if basic else form.get("client_id")
    if claimed and len(claimed) <= 64 and claimed.isascii() and claimed.isprintable():
        return str(claimed)
    return None
