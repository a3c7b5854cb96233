"""Requests whose ``Host`` Werkzeug cannot use, and which views are ours.

Werkzeug takes the host from the ``Host`` header (or, behind ``ProxyFix``,
from ``X-Forwarded-Host``) and fails on some values at three depths:

* routing binds the URL map with the host IDNA-encoded, and a label over 63
  characters or an empty one (``a..b``) raises ``BadHost``, a 400 HTML page
  before any view runs; an untrusted host under ``TRUSTED_HOSTS`` raises
  ``SecurityError`` there too;
* ``request.url``, ``url_root`` and ``host_url`` decode the host from
  Punycode, and an invalid ``xn--`` label (``xn--a``) raises
  ``UnicodeError``; a bracketed literal that is no IPv6 address (``[1:2]``)
  raises ``ValueError``. Authlib reads ``request.url`` for every request, so
  both are 500s;
* a host of characters outside ``[a-z0-9.-]`` or a bad port is treated as
  absent (``request.host == ""``): harmless unless the issuer is taken from
  the request (no ``ROPC_ISSUER``), which then would be ``https:``.

:func:`host_problem` tells whether the current request hits any of these, by
asking Werkzeug itself. Views that answer such a request with their own error
(our endpoints, views decorated with ``require_token``) say so with
:func:`answers_bad_host`; :func:`view_for` finds a request's view even when
routing failed on its host; :func:`origin` is the ``scheme://host/`` of
Werkzeug's URLs, without building them, and :func:`transport_is_secure` an
HTTPS check made on it. A leaf: imports nothing of ours.
"""

from __future__ import annotations

import functools
import os
import typing as t
from collections.abc import Callable

import flask
from werkzeug.exceptions import BadHost
from werkzeug.exceptions import HTTPException
from werkzeug.exceptions import SecurityError
from werkzeug.urls import uri_to_iri

#: What a view answers a request with an unusable host: it gets the problem.
BadHostAnswer = Callable[[str], t.Any]

V = t.TypeVar("V", bound=Callable[..., t.Any])

_ANSWER = "_ropc_bad_host_answer"

INVALID_HOST = "The Host (or X-Forwarded-Host) header is not a valid host."
NO_HOST = (
    "The request names no usable host, and the issuer is taken from it "
    "(ROPC_ISSUER is not set)."
)


def answers_bad_host(view: V, answer: BadHostAnswer) -> V:
    """Mark ``view`` as ours: a request for it with an unusable host gets
    ``answer(problem)`` instead (a response, or an HTTP exception raised).

    ``functools.wraps`` copies the mark, so decorators stacked on a
    protected view keep it.
    """
    setattr(view, _ANSWER, answer)
    return view


def bad_host_answer(view: t.Any) -> BadHostAnswer | None:
    """The answer :func:`answers_bad_host` gave ``view``, if any."""
    answer: BadHostAnswer | None = getattr(view, _ANSWER, None)
    return answer


def host_problem(request: flask.Request, *, needs_host: bool) -> str | None:
    """Why Werkzeug cannot use the request's host, or ``None`` if it can.

    A host Werkzeug raises on is always a problem. One it treats as absent
    (characters outside ``[a-z0-9.-]``, a bad port), or no host at all
    (HTTP/1.0 on a Unix socket), is one only when ``needs_host``: when the
    issuer is taken from the request.
    """
    # Memoised on the request: the blueprint's check and require_token's
    # both ask, and the answer cannot change within one request.
    memo: dict[bool, str | None] = request.__dict__.setdefault(_MEMO, {})
    if needs_host not in memo:
        memo[needs_host] = _host_problem(request, needs_host)
    return memo[needs_host]


_MEMO = "_ropc_host_problem"


def _host_problem(request: flask.Request, needs_host: bool) -> str | None:
    if isinstance(request.routing_exception, BadHost | SecurityError):
        return INVALID_HOST
    try:
        host = request.host
    except SecurityError:
        return INVALID_HOST
    if origin(request.scheme, host) is None:
        return INVALID_HOST
    if host or not needs_host:
        return None
    return INVALID_HOST if "HTTP_HOST" in request.environ else NO_HOST


@functools.lru_cache(maxsize=256)
def origin(scheme: str, host: str) -> str | None:
    """``scheme://host/`` as Werkzeug's URLs spell it, or ``None`` if Werkzeug
    raises on the host.

    Every URL Werkzeug builds for a request (``url``, ``root_url``, ...)
    decodes the host the same way, and nothing else in them can raise (the
    path and query are percent-quoted), so the origin alone tells whether
    they all can be built, without building the whole URL on every request.
    Bounded: a client chooses the host.
    """
    try:
        return uri_to_iri(f"{scheme}://{host}/")
    except (UnicodeError, ValueError):
        return None


def transport_is_secure(
    request: flask.Request, is_secure: Callable[[str], bool]
) -> bool:
    """``is_secure(request.url)`` for Authlib's HTTPS check, decided on the
    request's origin and remembered per origin.

    Authlib's answer depends only on the scheme and host name (and on its
    ``AUTHLIB_INSECURE_TRANSPORT`` switch, read on every call). A host
    Werkzeug cannot decode is not secure.
    """
    if os.getenv("AUTHLIB_INSECURE_TRANSPORT"):
        return True
    return _secure_origin(request.scheme, request.host, is_secure)


@functools.lru_cache(maxsize=256)
def _secure_origin(scheme: str, host: str, is_secure: Callable[[str], bool]) -> bool:
    # Reached only with the switch off: the answer is the origin's alone.
    url = origin(scheme, host)
    return url is not None and is_secure(url)


def view_for(app: flask.Flask, request: flask.Request) -> t.Any | None:
    """The view function ``request`` is for, or ``None``.

    When routing failed on the host (``BadHost``, ``SecurityError``) the
    path is matched again under a stand-in host, so that our views still
    answer with their own errors. (Host-matching apps are matched by host,
    so there nothing is found and Werkzeug's answer stands.)
    """
    if request.url_rule is not None:
        return app.view_functions.get(request.url_rule.endpoint)
    if not isinstance(request.routing_exception, BadHost | SecurityError):
        return None
    try:
        adapter = app.url_map.bind(
            "invalid",  # RFC 6761's reserved name
            script_name=request.root_path or "/",
            url_scheme=request.scheme,
            path_info=request.path,
            default_method=request.method,
        )
        endpoint, _ = adapter.match()
    except HTTPException:
        return None
    return app.view_functions.get(t.cast(str, endpoint))
