"""Client authentication at the token endpoint (RFC 6749 §2.3).

These functions replace Authlib's three built-in methods, registered through
``AuthorizationServer.register_client_auth_method``. Authlib's versions tell an
attacker whether a client id exists (401 vs 400 and different texts), crash
with a 500 on non-UTF-8 Basic headers and non-ASCII secrets, and decode Basic
credentials with ``unquote`` rather than the form-urlencoding RFC 6749 §2.3.1
prescribes (so ``+`` is not a space). Ours answer every failure with the same
:class:`~flask_ropc.errors.InvalidClientAuthError`.

Basic credentials are form-decoded as §2.3.1 says, but the value as sent is
accepted too: ``requests`` and ``requests-oauthlib`` (and many others) put
the id and secret into the header without encoding them, so an imported
secret with ``+`` or ``%`` would otherwise never work with them. Both forms
are always checked, each in constant time, so the timing does not say which
matched; accepting two spellings of one secret costs an attacker nothing
that matters against a secret of 20 characters or more. An unknown id does
the same work as a known one: the store builds a client for it too (see
:meth:`~flask_ropc.store.clients.ClientStore.get`), and the secret is
checked against a decoy.

A client whose stored digest was carried over from IdentityServer (a
``Sha512()`` hash) is handed, with the secret that matched, to the
``carried`` callback the server registers (it stores our digest instead, see
:mod:`~flask_ropc.secret_upgrade`); only after the check succeeded, so a
failure costs the same for every kind of digest.

A leaf: imports ``hashing``, ``errors`` and ``models`` only.

Each function returns ``None`` when the request does not use its method, the
authenticated client when it does and succeeds, and raises otherwise.
"""

from __future__ import annotations

import base64
import binascii
import logging
import typing as t
from collections.abc import Callable
from collections.abc import Sequence
from urllib.parse import unquote_plus

from . import hashing
from .errors import InvalidClientAuthError
from .models import Client

QueryClient = Callable[[str], "Client | None"]

#: Called with a client that authenticated against a carried-over digest and
#: the secret that matched.
CarriedSecret = Callable[[Client, str], object]

log = logging.getLogger("flask_ropc")

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
    token_endpoint_auth_methods=("client_secret_basic",),
    secret_digest=None,
)


class BasicCredentials(t.NamedTuple):
    """The client id and secret of an ``Authorization: Basic`` header."""

    #: The id, form-decoded (RFC 6749 §2.3.1).
    client_id: str
    #: The secret, form-decoded.
    secret: str
    #: The id as sent, for clients that do not form-encode.
    raw_client_id: str
    #: The secret as sent.
    raw_secret: str


def basic_credentials(header: str | None) -> BasicCredentials | None:
    """Decode an ``Authorization: Basic`` header into client id and secret,
    both form-decoded and as sent.

    Returns ``None`` when there is no header or it uses another scheme. A
    part whose percent-escapes do not decode to UTF-8 cannot have been
    form-encoded, so its decoded form is the value as sent.

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
    raw_id, colon, raw_secret = decoded.partition(":")
    if not colon or not raw_id:
        raise InvalidClientAuthError()
    client_id = _form_decoded(raw_id)
    if not client_id:
        raise InvalidClientAuthError()
    return BasicCredentials(client_id, _form_decoded(raw_secret), raw_id, raw_secret)


def _form_decoded(value: str) -> str:
    try:
        return unquote_plus(value, errors="strict")
    except UnicodeDecodeError:
        return value


def parse_basic_authorization(header: str | None) -> tuple[str, str] | None:
    """The form-decoded client id and secret of a Basic header, or ``None``.

    See :func:`basic_credentials`, which also gives them as sent.
    """
    credentials = basic_credentials(header)
    if credentials is None:
        return None
    return credentials.client_id, credentials.secret


def authenticate_basic(
    query_client: QueryClient,
    request: t.Any,
    *,
    carried: CarriedSecret | None = None,
) -> Client | None:
    """``client_secret_basic``: id and secret in the ``Authorization`` header.

    :param carried: see :data:`CarriedSecret`.
    """
    credentials = basic_credentials(request.headers.get("Authorization"))
    if credentials is None:
        return None
    return _check_secret(
        query_client,
        (credentials.client_id, credentials.raw_client_id),
        (credentials.secret, credentials.raw_secret),
        method="client_secret_basic",
        carried=carried,
    )


def authenticate_post(
    query_client: QueryClient,
    request: t.Any,
    *,
    carried: CarriedSecret | None = None,
) -> Client | None:
    """``client_secret_post``: ``client_id`` and ``client_secret`` in the body.

    :param carried: see :data:`CarriedSecret`.
    """
    form = request.form
    if "client_secret" not in form:
        return None
    client_id = form.get("client_id") or ""
    secret = form["client_secret"]
    # The body was form-decoded by Werkzeug: there is no other spelling, so
    # the one secret is checked twice, for the same work as Basic.
    return _check_secret(
        query_client,
        (client_id,),
        (secret, secret),
        method="client_secret_post",
        carried=carried,
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
    query_client: QueryClient,
    client_ids: Sequence[str],
    presented: tuple[str, str],
    *,
    method: str,
    carried: CarriedSecret | None,
) -> Client:
    """The client of the first id that names one, if a secret matches.

    Every distinct id is looked up and both secrets are always checked, each
    in constant time, against the client or a decoy: a wrong secret, an
    unknown id and a right one do the same work.
    """
    client = None
    for client_id in dict.fromkeys(client_ids):
        found = query_client(client_id)
        client = found if client is None else client
    candidate = client if client is not None else _DECOY
    first_ok = hashing.verify_secret(presented[0], candidate.secret_digest)
    second_ok = hashing.verify_secret(presented[1], candidate.secret_digest)
    method_ok = method in candidate.token_endpoint_auth_methods
    if client is not None and not method_ok:
        # The wire answer stays invalid_client; the operator learns why.
        log.info(
            "client %s used %s, which it may not use (allowed: %s)",
            client.client_id,
            method,
            " ".join(client.token_endpoint_auth_methods),
        )
    if client is None or not ((first_ok | second_ok) & method_ok & candidate.enabled):
        raise InvalidClientAuthError()
    if carried is not None and hashing.is_carried(client.secret_digest):
        carried(client, presented[0] if first_ok else presented[1])
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
