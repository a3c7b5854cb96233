"""The settings a client is created or changed with, as typed dicts.

A leaf of :mod:`flask_ropc.store` (no imports of ours): the admin API's
``**settings`` are typed with these; :mod:`.clients` applies them.
"""

from __future__ import annotations

import typing as t
from collections.abc import Iterable


class NewClient(t.TypedDict, total=False):
    """The settings a client may be created with (all optional).

    See :meth:`flask_ropc.admin.ClientAdmin.create` for their meaning.
    """

    scopes: Iterable[str]
    grant_types: Iterable[str]
    auth_method: str
    auth_methods: Iterable[str]
    access_token_lifetime: int | None
    refresh_token_sliding_lifetime: int | None
    refresh_token_absolute_lifetime: int | None
    access_token_format: str | None
    audience: str | None
    is_resource_server: bool
    trusted_backend: bool
    dpop: str | None
    dpop_nonce: str | None
    secret: str | None
    secret_digest: str | None
    client_id: str | None


class ClientChanges(t.TypedDict, total=False):
    """The settings :meth:`ClientStore.update` may change (all optional).

    See :meth:`flask_ropc.admin.ClientAdmin.update` for their meaning.
    """

    name: str | None
    scopes: Iterable[str] | None
    grant_types: Iterable[str] | None
    auth_methods: Iterable[str] | None
    access_token_lifetime: int | None
    reset_access_token_lifetime: bool
    refresh_token_sliding_lifetime: int | None
    refresh_token_absolute_lifetime: int | None
    reset_refresh_token_lifetimes: bool
    access_token_format: str | None
    reset_access_token_format: bool
    audience: str | None
    reset_audience: bool
    is_resource_server: bool | None
    trusted_backend: bool | None
    dpop: str | None
    dpop_nonce: str | None
    sunset_at: int | None
    clear_sunset: bool
    enabled: bool | None
    secret_digest: str | None
