"""The ``flask ropc`` command group: database set-up and client management.

Commands are thin: parse the options, call :class:`~flask_ropc.store.Store`,
print the result. Failures raise :class:`click.ClickException` (exit 1) or
:class:`click.UsageError` (exit 2) with a message on stderr.
"""

from __future__ import annotations

import datetime
import functools
import json
import sys
import typing as t
from collections.abc import Callable

import click
import sqlalchemy.exc
from flask.cli import AppGroup

from .errors import ClientNotFoundError
from .errors import ConfigurationError
from .keys import SUPPORTED_ALGORITHMS
from .keys import KeysChangedError
from .keys import generate_stored_key
from .keys import retire_stored_key
from .keys import rotate_stored_keys
from .models import AUTH_METHODS
from .models import GRANT_TYPES
from .models import TOKEN_FORMATS
from .models import Client

F = t.TypeVar("F", bound=Callable[..., t.Any])

ropc_cli = AppGroup("ropc", help="Manage Flask-ROPC's database and OAuth clients.")


def _store() -> t.Any:
    from .extension import get_state

    return get_state().store


def _friendly_errors(func: F) -> F:
    """Turn expected failures into a clear message and a non-zero exit."""

    @functools.wraps(func)
    def wrapper(*args: t.Any, **kwargs: t.Any) -> t.Any:
        try:
            return func(*args, **kwargs)
        except (ClientNotFoundError, ConfigurationError) as error:
            raise click.ClickException(str(error)) from None
        except ValueError as error:
            raise click.UsageError(str(error)) from None
        except sqlalchemy.exc.SQLAlchemyError as error:
            raise click.ClickException(
                f"database error ({type(error).__name__}); "
                "has 'flask ropc init-db' been run on this database?"
            ) from None

    return t.cast(F, wrapper)


def _seconds_option(name: str, help: str) -> Callable[[F], F]:
    """A ``--...-lifetime SECONDS`` option: a positive number, or unset."""
    return click.option(
        name, type=click.IntRange(min=1), default=None, metavar="SECONDS", help=help
    )


def _scopes(values: tuple[str, ...]) -> list[str]:
    return [scope for value in values for scope in value.split()]


def _print_json(data: t.Any) -> None:
    click.echo(json.dumps(data, indent=2, sort_keys=True))


def _when(timestamp: int | None) -> str:
    if timestamp is None:
        return "never"
    moment = datetime.datetime.fromtimestamp(timestamp, datetime.UTC)
    return moment.strftime("%Y-%m-%d %H:%M:%SZ")


def _parse_sunset(value: str | None) -> int | None:
    """A YYYY-MM-DD date as the Unix time of its midnight UTC; 'none' → None."""
    if value is None or value.lower() == "none":
        return None
    try:
        day = datetime.datetime.strptime(value, "%Y-%m-%d")
    except ValueError:
        raise click.BadParameter(
            f"{value!r} is not a date like 2027-06-30", param_hint="--sunset"
        ) from None
    return int(day.replace(tzinfo=datetime.UTC).timestamp())


def _describe(client: Client) -> str:
    lifetime = client.access_token_lifetime
    lines = [
        f"client_id:             {client.client_id}",
        f"name:                  {client.name}",
        f"type:                  {'public' if client.is_public else 'confidential'}",
        f"auth method:           {client.token_endpoint_auth_method}",
        f"scopes:                {' '.join(client.scopes) or '(none)'}",
        f"grant types:           {' '.join(client.grant_types) or '(none)'}",
        f"offline access:        {'yes' if client.offline_access else 'no'}",
        "access token lifetime: "
        + (f"{lifetime} s" if lifetime else "app default (ROPC_ACCESS_TOKEN_LIFETIME)"),
        "token format:          "
        + (client.access_token_format or "app default (ROPC_ACCESS_TOKEN_FORMAT)"),
        f"audience:              {client.audience or 'app default (ROPC_AUDIENCE)'}",
        f"resource server:       {'yes' if client.is_resource_server else 'no'}",
        f"trusted backend:       {'yes' if client.trusted_backend else 'no'}",
        f"password logins:       {client.password_grant_count}",
        "sunset:                "
        + (_when(client.sunset_at) if client.sunset_at else "-"),
        f"enabled:               {'yes' if client.enabled else 'no'}",
        f"created:               {_when(client.created_at)}",
        f"last used:             {_when(client.last_used_at)}",
    ]
    return "\n".join(lines)


@ropc_cli.command("init-db")
@_friendly_errors
def init_db() -> None:
    """Create Flask-ROPC's tables; existing tables and clients are kept."""
    _store().create_all()
    click.echo("Flask-ROPC tables are ready.")


@ropc_cli.command("create-client")
@click.argument("name")
@click.option(
    "--scope",
    "scopes",
    multiple=True,
    help='Scopes the client may request, space-separated ("api profile"); repeatable.',
)
@click.option(
    "--public",
    is_flag=True,
    help="A public client (no secret, token_endpoint_auth_method none), "
    "for apps that cannot keep a secret.",
)
@click.option(
    "--auth-method",
    type=click.Choice([m for m in AUTH_METHODS if m != "none"]),
    default=None,
    help="How a confidential client sends its secret (default "
    "client_secret_basic: the Authorization header).",
)
@click.option(
    "--grant-type",
    "grant_types",
    multiple=True,
    type=click.Choice(GRANT_TYPES),
    help="A grant type the client may use; repeatable (default: password).",
)
@_seconds_option(
    "--access-token-lifetime",
    "Access token lifetime for this client (default: ROPC_ACCESS_TOKEN_LIFETIME).",
)
@click.option(
    "--offline-access",
    is_flag=True,
    help="Allow refresh tokens: the password grant then returns one when the "
    "client asks for the offline_access scope (same as --grant-type "
    "refresh_token).",
)
@_seconds_option(
    "--refresh-token-sliding-lifetime",
    "Refresh tokens expire this long after issue unless used "
    "(default: ROPC_REFRESH_TOKEN_SLIDING_LIFETIME).",
)
@_seconds_option(
    "--refresh-token-absolute-lifetime",
    "No refresh token outlives this, counted from the password login "
    "(default: ROPC_REFRESH_TOKEN_ABSOLUTE_LIFETIME).",
)
@click.option(
    "--token-format",
    type=click.Choice(TOKEN_FORMATS),
    default=None,
    help="Access token format for this client: signed JWTs or opaque "
    "reference tokens (default: ROPC_ACCESS_TOKEN_FORMAT).",
)
@click.option(
    "--audience",
    default=None,
    help="The 'aud' of this client's JWTs (default: ROPC_AUDIENCE).",
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
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object.")
@_friendly_errors
def create_client(
    name: str,
    scopes: tuple[str, ...],
    public: bool,
    auth_method: str | None,
    grant_types: tuple[str, ...],
    access_token_lifetime: int | None,
    offline_access: bool,
    refresh_token_sliding_lifetime: int | None,
    refresh_token_absolute_lifetime: int | None,
    token_format: str | None,
    audience: str | None,
    resource_server: bool,
    trusted_backend: bool,
    imported_client_id: str | None,
    secret_stdin: bool,
    as_json: bool,
) -> None:
    """Register a new OAuth client called NAME and print its credentials.

    The secret of a confidential client is printed once and stored only as a
    digest: keep it now, or rotate it later with 'flask ropc rotate-secret'.
    """
    if public and auth_method is not None:
        raise click.UsageError("--public and --auth-method exclude each other")
    if public and secret_stdin:
        raise click.UsageError("--public and --secret-stdin exclude each other")
    secret = None
    if secret_stdin:
        secret = sys.stdin.readline().rstrip("\r\n")
    chosen_grants = list(grant_types or ("password",))
    if offline_access and "refresh_token" not in chosen_grants:
        chosen_grants.append("refresh_token")
    client, plain = _store().create_client(
        name,
        scopes=_scopes(scopes),
        grant_types=chosen_grants,
        auth_method="none" if public else (auth_method or "client_secret_basic"),
        access_token_lifetime=access_token_lifetime,
        refresh_token_sliding_lifetime=refresh_token_sliding_lifetime,
        refresh_token_absolute_lifetime=refresh_token_absolute_lifetime,
        access_token_format=token_format,
        audience=audience,
        is_resource_server=resource_server,
        trusted_backend=trusted_backend,
        secret=secret,
        client_id=imported_client_id,
    )
    if as_json:
        data = client.to_dict()
        if plain is not None and not secret_stdin:
            data["client_secret"] = plain
        _print_json(data)
        return
    click.echo(_describe(client))
    if plain is not None and not secret_stdin:
        click.echo(f"client_secret:         {plain}")
        click.echo(
            "\nStore this secret now: it is not shown again (only its digest is kept)."
        )


@ropc_cli.command("list-clients")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object.")
@_friendly_errors
def list_clients(as_json: bool) -> None:
    """List every client with its type, scopes and password-grant use.

    LOGINS counts successful password logins and LAST USED is the last token
    issued: the clients still using the password grant, to migrate off it.
    """
    clients = _store().list_clients()
    if as_json:
        _print_json({"clients": [client.to_dict() for client in clients]})
        return
    if not clients:
        click.echo("No clients yet: add one with 'flask ropc create-client NAME'.")
        return
    rows = [
        (
            "CLIENT ID",
            "NAME",
            "TYPE",
            "ENABLED",
            "SCOPES",
            "LOGINS",
            "LAST USED",
            "SUNSET",
        )
    ]
    for c in clients:
        rows.append(
            (
                c.client_id,
                c.name,
                "public" if c.is_public else "confidential",
                "yes" if c.enabled else "no",
                " ".join(c.scopes) or "-",
                str(c.password_grant_count),
                _when(c.last_used_at),
                _when(c.sunset_at)[:10] if c.sunset_at else "-",
            )
        )
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    for row in rows:
        cells = (cell.ljust(w) for cell, w in zip(row, widths, strict=True))
        click.echo("  ".join(cells).rstrip())


@ropc_cli.command("show-client")
@click.argument("client_id")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object.")
@_friendly_errors
def show_client(client_id: str, as_json: bool) -> None:
    """Show the settings of the client CLIENT_ID (never its secret)."""
    client = _store().require_client(client_id)
    if as_json:
        _print_json(client.to_dict())
    else:
        click.echo(_describe(client))


@ropc_cli.command("update-client")
@click.argument("client_id")
@click.option("--name", default=None, help="A new display name.")
@click.option(
    "--scope",
    "scopes",
    multiple=True,
    help="Replace the allowed scopes (space-separated, repeatable); "
    "--scope '' removes all.",
)
@click.option(
    "--grant-type",
    "grant_types",
    multiple=True,
    type=click.Choice(GRANT_TYPES),
    help="Replace the allowed grant types; repeatable.",
)
@_seconds_option(
    "--access-token-lifetime",
    "A new access token lifetime for this client.",
)
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
@_seconds_option(
    "--refresh-token-sliding-lifetime",
    "A new sliding refresh token lifetime for this client.",
)
@_seconds_option(
    "--refresh-token-absolute-lifetime",
    "A new absolute refresh token lifetime for new logins of this client.",
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
@click.option("--audience", default=None, help="A new 'aud' for this client's JWTs.")
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
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object.")
@_friendly_errors
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
    sunset: str | None,
    enabled: bool | None,
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
    store = _store()
    new_grants = list(grant_types) if grant_types else None
    if offline_access is not None:
        base = new_grants or list(store.require_client(client_id).grant_types)
        base = [grant for grant in base if grant != "refresh_token"]
        new_grants = base + (["refresh_token"] if offline_access else [])
    client = store.update_client(
        client_id,
        name=name,
        scopes=_scopes(scopes) if scopes else None,
        grant_types=new_grants,
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
        sunset_at=_parse_sunset(sunset),
        clear_sunset=sunset is not None and sunset.lower() == "none",
        enabled=enabled,
    )
    if as_json:
        _print_json(client.to_dict())
    else:
        click.echo(_describe(client))


@ropc_cli.command("rotate-secret")
@click.argument("client_id")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object.")
@_friendly_errors
def rotate_secret(client_id: str, as_json: bool) -> None:
    """Give the client CLIENT_ID a new secret; the old one stops working now."""
    client, plain = _store().rotate_secret(client_id)
    if as_json:
        _print_json({"client_id": client.client_id, "client_secret": plain})
        return
    click.echo(f"client_id:     {client.client_id}")
    click.echo(f"client_secret: {plain}")
    click.echo("\nStore this secret now: it is not shown again.")


@ropc_cli.command("delete-client")
@click.argument("client_id")
@click.option("--yes", is_flag=True, help="Do not ask for confirmation.")
@_friendly_errors
def delete_client(client_id: str, yes: bool) -> None:
    """Delete the client CLIENT_ID and every token issued to it."""
    store = _store()
    client = store.require_client(client_id)
    if not yes:
        click.confirm(
            f"Delete client {client.client_id} ({client.name}) and all its tokens?",
            abort=True,
        )
    store.delete_client(client_id)
    click.echo(f"Deleted client {client_id}.")


@ropc_cli.command("cleanup")
@click.option(
    "--revoked-for",
    type=click.IntRange(min=0),
    default=86400,
    show_default=True,
    metavar="SECONDS",
    help="Also delete tokens revoked at least this long ago.",
)
@click.option(
    "--batch-size",
    type=click.IntRange(min=1),
    default=1000,
    show_default=True,
    help="Rows deleted per transaction.",
)
@_friendly_errors
def cleanup(revoked_for: int, batch_size: int) -> None:
    """Delete expired and long-revoked tokens, in small batches.

    Safe to run while the server is serving (e.g. from cron): each batch is
    its own short transaction, and deleted tokens were unusable anyway.
    """
    store = _store()
    deleted = store.cleanup(
        revoked_before=store.now() - revoked_for, batch_size=batch_size
    )
    from .extension import get_state
    from .throttle import DatabaseCounters

    throttle = get_state().throttle
    if throttle is not None and isinstance(throttle.counters, DatabaseCounters):
        deleted["ropc_throttle"] = throttle.counters.purge_expired()
    for table, count in deleted.items():
        click.echo(f"{table}: deleted {count}")


@ropc_cli.command("revoke")
@click.option("--subject", default=None, help="Sign this user out everywhere.")
@click.option(
    "--client", "client_id", default=None, help="Revoke every token of this client."
)
@_friendly_errors
def revoke(subject: str | None, client_id: str | None) -> None:
    """Revoke every access and refresh token of a user or of a client."""
    if (subject is None) == (client_id is None):
        raise click.UsageError("give exactly one of --subject and --client")
    store = _store()
    if subject is not None:
        count = store.revoke_subject(subject)
        click.echo(f"Revoked {count} tokens of subject {subject}.")
    else:
        assert client_id is not None
        store.require_client(client_id)
        count = store.revoke_client_tokens(client_id)
        click.echo(f"Revoked {count} tokens of client {client_id}.")


@ropc_cli.command("unlock")
@click.argument("username")
@_friendly_errors
def unlock(username: str) -> None:
    """Clear the failed attempts and lock of USERNAME (case-insensitive)."""
    from .extension import get_state

    throttle = get_state().throttle
    if throttle is None:
        raise click.ClickException("throttling is off (ROPC_THROTTLE_ENABLED)")
    throttle.unlock(username)
    click.echo(f"Unlocked {username.strip()}.")


keys_cli = AppGroup("keys", help="Manage the keys that sign JWT access tokens.")
ropc_cli.add_command(keys_cli)


def _key_store() -> t.Any:
    from .extension import get_state

    state = get_state()
    if state.settings.signing_keys:
        raise click.ClickException(
            "signing keys come from ROPC_SIGNING_KEYS; change that setting "
            "instead (the database key set is not used)"
        )
    return state


def _key_row(row: t.Any) -> dict[str, t.Any]:
    return {
        "kid": row.kid,
        "alg": row.alg,
        "status": row.status,
        "created_at": row.created_at,
        "publish_until": row.publish_until,
    }


@keys_cli.command("generate")
@click.option(
    "--alg",
    type=click.Choice(SUPPORTED_ALGORITHMS),
    default=None,
    help="Signing algorithm (default: ROPC_SIGNING_ALG, ES256).",
)
@_friendly_errors
def keys_generate(alg: str | None) -> None:
    """Add a signing key: the signer if there is none, else published ahead
    of the next 'keys rotate'."""
    state = _key_store()
    row = generate_stored_key(state.store, alg or state.settings.signing_alg)
    state.keyring.reload()
    click.echo(f"Generated {row.alg} key {row.kid} ({row.status}).")


@keys_cli.command("list")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object.")
@_friendly_errors
def keys_list(as_json: bool) -> None:
    """List signing keys with their state (never the private key)."""
    from .extension import get_state

    state = get_state()
    if state.settings.signing_keys:
        rows = [
            {"kid": key.kid, "alg": key.alg, "status": "configured"}
            for key in state.settings.signing_keys
        ]
    else:
        rows = [_key_row(row) for row in state.store.list_signing_keys()]
    if as_json:
        _print_json({"keys": rows})
        return
    if not rows:
        click.echo(
            "No signing keys yet: one is generated on first use, or run "
            "'flask ropc keys generate'."
        )
        return
    for row in rows:
        until = row.get("publish_until")
        extra = f", published until {_when(until)}" if until else ""
        click.echo(f"{row['kid']}  {row['alg']:<6} {row['status']}{extra}")


@keys_cli.command("rotate")
@click.option(
    "--alg",
    type=click.Choice(SUPPORTED_ALGORITHMS),
    default=None,
    help="Algorithm of the new key if none is pending (default: ROPC_SIGNING_ALG).",
)
@_friendly_errors
def keys_rotate(alg: str | None) -> None:
    """Make a new key the signer; the old one stays published until the
    tokens it signed have expired."""
    state = _key_store()
    longest = state.store.longest_access_token_lifetime(
        state.settings.access_token_lifetime
    )
    try:
        row = rotate_stored_keys(
            state.store, alg or state.settings.signing_alg, longest
        )
    except KeysChangedError as error:
        raise click.ClickException(str(error)) from None
    state.keyring.reload()
    click.echo(f"Key {row.kid} ({row.alg}) now signs new tokens.")


# A kid is an RFC 7638 thumbprint, base64url: one in 64 starts with "-",
# which click would take for an option.
@keys_cli.command("retire", context_settings={"ignore_unknown_options": True})
@click.argument("kid")
@_friendly_errors
def keys_retire(kid: str) -> None:
    """Stop publishing and accepting the key KID; tokens it signed stop working."""
    state = _key_store()
    try:
        retire_stored_key(state.store, kid)
    except LookupError as error:
        raise click.ClickException(str(error)) from None
    state.keyring.reload()
    click.echo(f"Retired key {kid}.")


@keys_cli.command("encrypt")
@_friendly_errors
def keys_encrypt() -> None:
    """Encrypt the stored signing keys with the first ROPC_KEY_ENCRYPTION_KEYS
    secret (again after adding a new secret in front)."""
    state = _key_store()
    try:
        count = state.store.encrypt_signing_keys()
    except ValueError as error:
        raise click.ClickException(str(error)) from None
    state.keyring.reload()
    noun = "key" if count == 1 else "keys"
    click.echo(
        f"Encrypted {count} signing {noun} with the first "
        "ROPC_KEY_ENCRYPTION_KEYS secret."
    )
