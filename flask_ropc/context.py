"""The objects behind Flask's context proxies, for code on the hot path.

Every attribute read through ``flask.request``, ``flask.g`` or
``flask.current_app`` looks the object up in a context variable again; a
token request reads dozens, so the per-request code takes the object once
and passes it on. The validator and hooks get the objects themselves as
well: they may keep them beyond the request. Imports nothing of ours.
"""

from __future__ import annotations

import typing as t

import flask


def current_request() -> flask.Request:
    """The current Flask request itself, not the proxy."""
    request: flask.Request = flask.request._get_current_object()  # type: ignore[attr-defined]
    return request


def current_app() -> flask.Flask:
    """The current app itself, not the proxy."""
    app: flask.Flask = flask.current_app._get_current_object()  # type: ignore[attr-defined]
    return app


def current_g() -> t.Any:
    """The app context's ``g`` itself, not the proxy."""
    return flask.g._get_current_object()
