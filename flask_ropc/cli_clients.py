"""``flask ropc create-client``, ``list-clients`` and ``show-client``, and
the list of every client command (the ones that change an existing client
live in :mod:`~flask_ropc.cli_client_changes`).

A thin layer over :class:`~flask_ropc.admin.ClientAdmin`: parse the options,
call it, print the result. Imports ``admin``, ``cli_client_changes``,
``cli_output`` and leaves.
"""

from __future__ import annotations

import sys

import click

from .admin import ClientAdmin
from .cli_client_changes import delete_client
from .cli_client_changes import rotate_secret
from .cli_client_changes import update_client
from .cli_output import app_command
from .cli_output import client_options
from .cli_output import describe
from .cli_output import json_option
from .cli_output import print_json
from .cli_output import print_table
from .cli_output import split_scopes
from .cli_output import when
from .models import SECRET_METHODS
from .models import TOKEN_FORMATS

_clients = ClientAdmin()


@app_command("create-client")
@click.argument("name")
@client_options
@click.option(
    "--public",
    is_flag=True,
    help="A public client (no secret, token_endpoint_auth_method none), "
    "for apps that cannot keep a secret.",
)
@click.option(
    "--offline-access",
    is_flag=True,
    help="Allow refresh tokens: the password grant then returns one when the "
    "client asks for the offline_access scope (same as --grant-type "
    "refresh_token).",
)
@click.option(
    "--token-format",
    type=click.Choice(TOKEN_FORMATS),
    default=None,
    help="Access token format for this client: signed JWTs or opaque "
    "reference tokens (default: ROPC_ACCESS_TOKEN_FORMAT).",
)
@click.option(
    "--resource-server",
    is_flag=True,
    help="Let this client introspect every client's tokens, not just its own.",
)
@click.option(
    "--trusted-backend",
    is_flag=True,
    help="A confidential backend that may pass its end user's IP in the "
    "ROPC_END_USER_IP_HEADER header (used for throttling and events).",
)
@click.option(
    "--client-id",
    "imported_client_id",
    default=None,
    help="Keep this client id (when moving a client from another server) "
    "instead of generating one.",
)
@click.option(
    "--secret-stdin",
    is_flag=True,
    help="Read an existing secret from standard input instead of generating "
    "one (when moving a client from another server); at least 20 characters.",
)
def create_client(
    name: str,
    scopes: tuple[str, ...],
    public: bool,
    auth_methods: tuple[str, ...],
    grant_types: tuple[str, ...],
    access_token_lifetime: int | None,
    offline_access: bool,
    refresh_token_sliding_lifetime: int | None,
    refresh_token_absolute_lifetime: int | None,
    token_format: str | None,
    audience: str | None,
    resource_server: bool,
    trusted_backend: bool,
    dpop: str | None,
    dpop_nonce: str | None,
    imported_client_id: str | None,
    secret_stdin: bool,
    as_json: bool,
) -> None:
    """Register a new OAuth client called NAME and print its credentials.

    The secret of a confidential client is printed once and stored only as a
    digest: keep it now, or rotate it later with 'flask ropc rotate-secret'.
    """
    if public and auth_methods:
        raise click.UsageError("--public and --auth-method exclude each other")
    if public and secret_stdin:
        raise click.UsageError("--public and --secret-stdin exclude each other")
    secret = None
    if secret_stdin:
        secret = sys.stdin.readline().rstrip("\r\n")
    chosen_grants = list(grant_types or ("password",))
    if offline_access and "refresh_token" not in chosen_grants:
        chosen_grants.append("refresh_token")
    client, plain = _clients.create(
        name,
        scopes=split_scopes(scopes),
        grant_types=chosen_grants,
        auth_methods=["none"] if public else (auth_methods or SECRET_METHODS),
        access_token_lifetime=access_token_lifetime,
        refresh_token_sliding_lifetime=refresh_token_sliding_lifetime,
        refresh_token_absolute_lifetime=refresh_token_absolute_lifetime,
        access_token_format=token_format,
        audience=audience,
        is_resource_server=resource_server,
        trusted_backend=trusted_backend,
        dpop=dpop,
        dpop_nonce=dpop_nonce,
        secret=secret,
        client_id=imported_client_id,
    )
    if as_json:
        data = client.to_dict()
        if plain is not None and not secret_stdin:
            data["client_secret"] = plain
        print_json(data)
        return
    click.echo(describe(client))
    if plain is not None and not secret_stdin:
        click.echo(f"client_secret:         {plain}")
        click.echo(
            "\nStore this secret now: it is not shown again (only its digest is kept)."
        )


@app_command("list-clients")
@json_option
def list_clients(as_json: bool) -> None:
    """List every client with its type, scopes and password-grant use.

    LOGINS counts successful password logins and LAST USED is the last token
    issued: the clients still using the password grant, to migrate off it.
    """
    clients = _clients.list()
    if as_json:
        print_json({"clients": [client.to_dict() for client in clients]})
        return
    if not clients:
        click.echo("No clients yet: add one with 'flask ropc create-client NAME'.")
        return
    header = ("CLIENT ID", "NAME", "TYPE", "ENABLED", "SCOPES", "LOGINS")
    rows = [(*header, "LAST USED", "SUNSET")]
    for c in clients:
        kind = "public" if c.is_public else "confidential"
        sunset = when(c.sunset_at)[:10] if c.sunset_at else "-"
        scopes = " ".join(c.scopes) or "-"
        enabled = "yes" if c.enabled else "no"
        used = when(c.last_used_at)
        logins = str(c.password_grant_count)
        rows.append((c.client_id, c.name, kind, enabled, scopes, logins, used, sunset))
    print_table(rows)


@app_command("show-client")
@click.argument("client_id")
@json_option
def show_client(client_id: str, as_json: bool) -> None:
    """Show the settings of the client CLIENT_ID (never its secret)."""
    client = _clients.require(client_id)
    if as_json:
        print_json(client.to_dict())
    else:
        click.echo(describe(client))


#: Every command of this module, in the order ``flask ropc --help`` lists them.
CLIENT_COMMANDS = [
    create_client,
    list_clients,
    show_client,
    update_client,
    rotate_secret,
    delete_client,
]
