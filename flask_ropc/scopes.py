"""Scope syntax (RFC 6749 §3.3) and the choice of scopes to grant.

A leaf: imports only ``errors``.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from collections.abc import Sequence

from .errors import InvalidScopeError

# scope-token = 1*( %x21 / %x23-5B / %x5D-7E )
_SCOPE_TOKEN = re.compile(r"[\x21\x23-\x5b\x5d-\x7e]+")


def check_scope_tokens(scopes: Iterable[str]) -> list[str]:
    """Return ``scopes`` without duplicates, in order, if all are well formed.

    :raises ValueError: a scope has characters RFC 6749 §3.3 forbids
        (spaces, quotes, backslashes, non-ASCII).
    """
    result: dict[str, None] = {}
    for scope in scopes:
        result.update(dict.fromkeys(_tokens(scope)))
    return list(result)


def parse_scope(requested: str) -> tuple[str, ...]:
    """Split a ``scope`` parameter into distinct scope tokens, in order.

    :raises InvalidScopeError: a token has characters RFC 6749 §3.3 forbids.
    """
    try:
        return tuple(dict.fromkeys(_tokens(requested)))
    except ValueError:
        raise InvalidScopeError("The requested scope is malformed.") from None


def _tokens(text: str) -> list[str]:
    """The scope tokens of a space-delimited ``text``, in order.

    :raises ValueError: a token has characters RFC 6749 §3.3 forbids.
    """
    # RFC 6749 §3.3 delimits scopes by single spaces; we tolerate repeats.
    tokens = [token for token in text.split(" ") if token]
    for token in tokens:
        if not _SCOPE_TOKEN.fullmatch(token):
            raise ValueError(f"invalid scope {token!r}: see RFC 6749 section 3.3")
    return tokens


def resolve_scopes(
    requested: str | None,
    allowed: Sequence[str],
    *,
    offline_scope: str = "offline_access",
    offline_allowed: bool = False,
) -> tuple[str, ...]:
    """Decide which scopes to grant a client.

    No ``scope`` parameter (or an empty one) grants every scope the client is
    allowed, as IdentityServer does, except ``offline_scope``: a refresh
    token is only issued when asked for. A requested scope outside the
    client's allowed set is rejected with ``invalid_scope``, where Authlib
    would silently drop it: a client must learn that it did not get what it
    asked for (RFC 6749 §3.3 lets the server ignore or reject; rejecting is
    the safer, clearer choice). ``offline_scope`` is allowed exactly when the
    client has offline access, whether or not its scope list names it.

    :raises InvalidScopeError: malformed or not allowed.
    """
    if requested is None or not requested.strip(" "):
        return tuple(scope for scope in allowed if scope != offline_scope)
    granted = parse_scope(requested)
    permitted = {scope for scope in allowed if scope != offline_scope}
    if offline_allowed:
        permitted.add(offline_scope)
    if not set(granted) <= permitted:
        raise InvalidScopeError("The requested scope is not allowed for this client.")
    return granted
