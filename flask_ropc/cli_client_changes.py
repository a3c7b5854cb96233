"""``flask ropc update-client``, ``rotate-secret`` and ``delete-client``:
the commands that change or remove an existing client.

Split from :mod:`~flask_ropc.cli_clients` (which lists every client command)
to keep each module short. A thin layer over
:class:`~flask_ropc.admin.ClientAdmin`. Imports ``admin``, ``cli_output``
and leaves.
"""

from __future__ import annotations

import click

from .admin import ClientAdmin
from .cli_output import app_command
from .cli_output import client_options
from .cli_output import describe
from .cli_output import echo
from .cli_output import json_option
from .cli_output import parse_sunset
from .cli_output import print_json
from .cli_output import report
from .cli_output import safe_text
from .cli_output import split_scopes
from .models import TOKEN_FORMATS

_clients = ClientAdmin()


@app_command("update-client")
@click.argument("client_id")
@client_options
@click.option("--name", default=None, help="A new display name.")
@click.option(
    "--default-access-token-lifetime",
    is_flag=True,
    help="Use the app's ROPC_ACCESS_TOKEN_LIFETIME again.",
)
@click.option(
    "--offline-access/--no-offline-access",
    "offline_access",
    default=None,
    help="Allow or stop refresh tokens for this client.",
)
@click.option(
    "--default-refresh-token-lifetimes",
    is_flag=True,
    help="Use the app's ROPC_REFRESH_TOKEN_*_LIFETIME settings again.",
)
@click.option(
    "--token-format",
    type=click.Choice([*TOKEN_FORMATS, "default"]),
    default=None,
    help="Access token format; 'default' follows ROPC_ACCESS_TOKEN_FORMAT.",
)
@click.option(
    "--default-audience", is_flag=True, help="Use the app's ROPC_AUDIENCE again."
)
@click.option(
    "--resource-server/--no-resource-server",
    "resource_server",
    default=None,
    help="Whether this client may introspect every client's tokens.",
)
@click.option(
    "--trusted-backend/--no-trusted-backend",
    "trusted_backend",
    default=None,
    help="Whether this confidential client may pass its end user's IP.",
)
@click.option(
    "--sunset",
    default=None,
    metavar="YYYY-MM-DD",
    help="Announce the end of password-grant use: token responses then carry "
    "Deprecation and Sunset headers. 'none' removes it.",
)
@click.option(
    "--enable/--disable",
    "enabled",
    default=None,
    help="Enable or disable the client; a disabled client cannot get tokens "
    "and its tokens stop working.",
)
def update_client(
    client_id: str,
    name: str | None,
    scopes: tuple[str, ...],
    grant_types: tuple[str, ...],
    access_token_lifetime: int | None,
    default_access_token_lifetime: bool,
    offline_access: bool | None,
    refresh_token_sliding_lifetime: int | None,
    refresh_token_absolute_lifetime: int | None,
    default_refresh_token_lifetimes: bool,
    token_format: str | None,
    audience: str | None,
    default_audience: bool,
    resource_server: bool | None,
    trusted_backend: bool | None,
    dpop: str | None,
    dpop_nonce: str | None,
    sunset: str | None,
    enabled: bool | None,
    auth_methods: tuple[str, ...],
    as_json: bool,
) -> None:
    """Change settings of the client CLIENT_ID; unnamed settings stay."""
    if access_token_lifetime is not None and default_access_token_lifetime:
        raise click.UsageError(
            "--access-token-lifetime and --default-access-token-lifetime "
            "exclude each other"
        )
    if audience is not None and default_audience:
        raise click.UsageError("--audience and --default-audience exclude each other")
    reset_format = token_format == "default"
    if default_refresh_token_lifetimes and (
        refresh_token_sliding_lifetime or refresh_token_absolute_lifetime
    ):
        raise click.UsageError(
            "--default-refresh-token-lifetimes excludes the lifetime options"
        )
    new_grants = list(grant_types) if grant_types else None
    if offline_access is not None:
        base = new_grants or list(_clients.require(client_id).grant_types)
        base = [grant for grant in base if grant != "refresh_token"]
        new_grants = base + (["refresh_token"] if offline_access else [])
    client = _clients.update(
        client_id,
        name=name,
        scopes=split_scopes(scopes) if scopes else None,
        grant_types=new_grants,
        auth_methods=auth_methods or None,
        access_token_lifetime=access_token_lifetime,
        reset_access_token_lifetime=default_access_token_lifetime,
        refresh_token_sliding_lifetime=refresh_token_sliding_lifetime,
        refresh_token_absolute_lifetime=refresh_token_absolute_lifetime,
        reset_refresh_token_lifetimes=default_refresh_token_lifetimes,
        access_token_format=None if reset_format else token_format,
        reset_access_token_format=reset_format,
        audience=audience,
        reset_audience=default_audience,
        is_resource_server=resource_server,
        trusted_backend=trusted_backend,
        dpop=dpop,
        dpop_nonce=dpop_nonce,
        sunset_at=parse_sunset(sunset),
        clear_sunset=sunset is not None and sunset.lower() == "none",
        enabled=enabled,
    )
    if as_json:
        print_json(client.to_dict())
    else:
        click.echo(describe(client))


@app_command("rotate-secret")
@click.argument("client_id")
@json_option
def rotate_secret(client_id: str, as_json: bool) -> None:
    """Give the client CLIENT_ID a new secret; the old one stops working now."""
    client, plain = _clients.rotate_secret(client_id)
    if as_json:
        print_json({"client_id": client.client_id, "client_secret": plain})
        return
    echo(f"client_id:     {client.client_id}")
    click.echo(f"client_secret: {plain}")
    click.echo("\nStore this secret now: it is not shown again.")


@app_command("delete-client")
@click.argument("client_id")
@click.option("--yes", is_flag=True, help="Do not ask for confirmation.")
@json_option
def delete_client(client_id: str, yes: bool, as_json: bool) -> None:
    """Delete the client CLIENT_ID and every token issued to it."""
    client = _clients.require(client_id)
    if not yes:  # with --json the question goes to stderr
        click.confirm(
            safe_text(f"Delete client {client_id} ({client.name}) and all its tokens?"),
            abort=True,
            err=as_json,
        )
    _clients.delete(client_id)
    data = {"client_id": client_id, "deleted": True}
    report(as_json, data, f"Deleted client {client_id}.")
