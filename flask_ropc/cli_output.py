"""What the ``flask ropc`` commands share: group, error mapping, options, output.

:class:`ROPCGroup` turns expected failures into a clear message and a
non-zero exit, for every command in one place. Imports ``admin``, ``store``
(its error class) and leaves.
"""

from __future__ import annotations

import datetime
import json
import typing as t
from collections.abc import Callable

import click
from flask.cli import AppGroup
from flask.cli import with_appcontext

from .errors import ClientNotFoundError
from .errors import ConfigurationError
from .errors import KeysChangedError
from .models import GRANT_TYPES
from .models import Client
from .store import DatabaseError

F = t.TypeVar("F", bound=Callable[..., t.Any])


class ROPCGroup(AppGroup):
    """An app group whose commands fail with a message, never a traceback.

    Unknown clients and keys, configuration problems and concurrent changes
    exit 1 (:class:`click.ClickException`); an invalid value exits 2
    (:class:`click.UsageError`); a database error exits 1 and says so.
    """

    def invoke(self, ctx: click.Context) -> t.Any:
        """Run the command, mapping our errors to click's."""
        try:
            return super().invoke(ctx)
        except (
            ClientNotFoundError,
            ConfigurationError,
            KeysChangedError,
            LookupError,
        ) as error:
            raise click.ClickException(str(error)) from None
        except ValueError as error:
            raise click.UsageError(str(error)) from None
        except DatabaseError as error:
            raise click.ClickException(
                f"database error ({type(error).__name__}); "
                "has 'flask ropc init-db' been run on this database?"
            ) from None


def app_command(name: str) -> Callable[[Callable[..., t.Any]], click.Command]:
    """A command that runs in the app context, as ``AppGroup.command`` makes
    them, for modules that define commands before the group adds them."""

    def decorator(func: Callable[..., t.Any]) -> click.Command:
        return click.command(name)(with_appcontext(func))

    return decorator


def json_option(func: t.Any) -> t.Any:
    """The ``--json`` flag of a command."""
    return click.option(
        "--json", "as_json", is_flag=True, help="Print one JSON object."
    )(func)


def seconds_option(name: str, help: str) -> Callable[[F], F]:
    """A ``--...-lifetime SECONDS`` option: a positive number, or unset."""
    return click.option(
        name, type=click.IntRange(min=1), default=None, metavar="SECONDS", help=help
    )


def client_options(func: F) -> F:
    """The options ``create-client`` and ``update-client`` share."""
    for option in reversed(
        [
            click.option(
                "--scope",
                "scopes",
                multiple=True,
                help="Scopes the client may request, space-separated "
                '("api profile"); repeatable. On update it replaces them; '
                "--scope '' removes all.",
            ),
            click.option(
                "--grant-type",
                "grant_types",
                multiple=True,
                type=click.Choice(GRANT_TYPES),
                help="A grant type the client may use; repeatable "
                "(default on create: password).",
            ),
            seconds_option(
                "--access-token-lifetime",
                "Access token lifetime for this client "
                "(default: ROPC_ACCESS_TOKEN_LIFETIME).",
            ),
            seconds_option(
                "--refresh-token-sliding-lifetime",
                "Refresh tokens expire this long after issue unless used "
                "(default: ROPC_REFRESH_TOKEN_SLIDING_LIFETIME).",
            ),
            seconds_option(
                "--refresh-token-absolute-lifetime",
                "No refresh token outlives this, counted from the password "
                "login (default: ROPC_REFRESH_TOKEN_ABSOLUTE_LIFETIME).",
            ),
            click.option(
                "--audience",
                default=None,
                help="The 'aud' of this client's JWTs (default: ROPC_AUDIENCE).",
            ),
            json_option,
        ]
    ):
        func = option(func)
    return func


def split_scopes(values: tuple[str, ...]) -> list[str]:
    """The scopes of repeated, space-separated ``--scope`` values."""
    return [scope for value in values for scope in value.split()]


def print_json(data: t.Any) -> None:
    """Print ``data`` as one JSON object."""
    click.echo(json.dumps(data, indent=2, sort_keys=True))


def when(timestamp: int | None) -> str:
    """A Unix time as UTC text, or ``never``."""
    if timestamp is None:
        return "never"
    moment = datetime.datetime.fromtimestamp(timestamp, datetime.UTC)
    return moment.strftime("%Y-%m-%d %H:%M:%SZ")


def parse_sunset(value: str | None) -> int | None:
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


def describe(client: Client) -> str:
    """A client's settings as human-readable lines (never its secret)."""
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
        + (when(client.sunset_at) if client.sunset_at else "-"),
        f"enabled:               {'yes' if client.enabled else 'no'}",
        f"created:               {when(client.created_at)}",
        f"last used:             {when(client.last_used_at)}",
    ]
    return "\n".join(lines)
