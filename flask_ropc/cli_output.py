"""What the ``flask ropc`` commands share: group, error mapping, options, output.

:class:`ROPCGroup` turns expected failures into a clear message and a
non-zero exit, for every command in one place. Human output never carries a
character a terminal would act on: :func:`safe_text` escapes them in every
stored string and every quoted input (``--json`` output stays exact).
Imports ``inspection``, ``state``, ``store`` (its error class) and leaves.
"""

from __future__ import annotations

import datetime
import json
import typing as t
from collections.abc import Callable
from collections.abc import Sequence

import click
from flask.cli import AppGroup
from flask.cli import ScriptInfo
from flask.cli import with_appcontext

from . import hashing
from . import inspection
from .errors import ClientNotFoundError
from .errors import ConfigurationError
from .errors import KeysChangedError
from .errors import SecretChangedError
from .models import DPOP_MODES
from .models import DPOP_NONCE_MODES
from .models import GRANT_TYPES
from .models import Client
from .state import get_state
from .store import DatabaseError

F = t.TypeVar("F", bound=Callable[..., t.Any])


class ROPCGroup(AppGroup):
    """An app group whose commands fail with a message, never a traceback.

    Unknown clients and keys, configuration problems and concurrent changes
    exit 1 (:class:`click.ClickException`); an invalid value exits 2
    (:class:`click.UsageError`); a database error exits 1 with the driver's
    message (never a password), and names ``init-db`` when our tables are
    missing.
    """

    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        """Parse the group's own arguments; an error quoting them is escaped."""
        try:
            return super().parse_args(ctx, args)
        except click.ClickException as error:
            raise _escaped(error) from None

    def invoke(self, ctx: click.Context) -> t.Any:
        """Run the command, mapping our errors to click's, their text escaped.

        The text of every error (ours, and click's for bad arguments) can
        quote what was typed or stored, so it goes through :func:`safe_text`.
        """
        try:
            return self._invoke(ctx)
        except click.ClickException as error:
            raise _escaped(error) from None

    def _invoke(self, ctx: click.Context) -> t.Any:
        try:
            return super().invoke(ctx)
        except (
            ClientNotFoundError,
            ConfigurationError,
            KeysChangedError,
            SecretChangedError,
            LookupError,
        ) as error:
            raise click.ClickException(str(error)) from None
        except ValueError as error:
            raise click.UsageError(str(error)) from None
        except DatabaseError as error:
            raise click.ClickException(explain_database_error(ctx, error)) from None


def explain_database_error(ctx: click.Context, error: BaseException) -> str:
    """The driver's message for ``error`` on the app's database, its URL
    shown with the password hidden (see :mod:`flask_ropc.store.diagnosis`)."""
    app = ctx.ensure_object(ScriptInfo).load_app()
    with app.app_context():
        return inspection.explain_database_error(get_state(), error)


def _escaped(error: click.ClickException) -> click.ClickException:
    """``error``, or the same error with its text escaped by :func:`safe_text`."""
    text = error.format_message()
    if safe_text(text) == text:
        return error
    if isinstance(error, click.UsageError):  # exit 2, with the usage line
        return click.UsageError(safe_text(text), error.ctx)
    return click.ClickException(safe_text(text))


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
            click.option(
                "--auth-method",
                "auth_methods",
                multiple=True,
                type=click.Choice(["client_secret_basic", "client_secret_post"]),
                help="How a confidential client may send its secret; repeatable "
                "(default on create: both, the Authorization header or the "
                "body). On update it replaces them.",
            ),
            click.option(
                "--dpop",
                type=click.Choice(DPOP_MODES),
                default=None,
                help="DPoP (RFC 9449): 'required' refuses token requests without "
                "a proof; 'allowed' (default) binds tokens when a proof is sent; "
                "'off' ignores proofs.",
            ),
            click.option(
                "--dpop-nonce",
                type=click.Choice(DPOP_NONCE_MODES),
                default=None,
                help="DPoP nonces (RFC 9449 §8): 'required' makes this client's "
                "proofs carry a nonce we handed out, 'off' never asks it for one, "
                "'default' follows ROPC_DPOP_NONCE.",
            ),
            json_option,
        ]
    ):
        func = option(func)
    return func


def split_scopes(values: tuple[str, ...]) -> list[str]:
    """The scopes of repeated, space-separated ``--scope`` values.

    A comma is legal in a scope (RFC 6749 §3.3) but almost always meant as
    a separator: warn on stderr, and keep the scope as given.
    """
    scopes = [scope for value in values for scope in value.split()]
    for scope in scopes:
        if "," in scope:
            several = " ".join(part for part in scope.split(",") if part)
            warning = (
                f"Warning: {scope!r} is one scope with a comma in it. For "
                f'several scopes, separate them with spaces (--scope "{several}") '
                "or repeat --scope."
            )
            click.echo(safe_text(warning), err=True)
    return scopes


def print_json(data: t.Any) -> None:
    """Print ``data`` as one JSON object (exact: JSON escapes what it must)."""
    click.echo(json.dumps(data, indent=2, sort_keys=True))


#: Short escapes, as Python writes them; other characters become ``\xNN``,
#: ``\uNNNN`` or ``\UNNNNNNNN``.
_SHORT_ESCAPES = {"\n": "\\n", "\r": "\\r", "\t": "\\t"}


def safe_text(text: str) -> str:
    """``text`` with every character a terminal could act on escaped.

    Escaped is every character Python does not call printable: C0 and C1
    controls and DEL (escape sequences: OSC titles, hyperlinks, cursor
    moves), format characters (bidi overrides, zero-width characters),
    line and paragraph separators, spaces other than U+0020, surrogates,
    private-use and unassigned code points. So a client name can neither
    start a line of its own (forging ``client_secret:``) nor drive the
    terminal, even when the output is piped to one later. Backslashes stay:
    the JSON output (``--json``) is the exact value.
    """
    if text.isprintable():
        return text
    return "".join(char if char.isprintable() else _escape(char) for char in text)


def _escape(char: str) -> str:
    if char in _SHORT_ESCAPES:
        return _SHORT_ESCAPES[char]
    code = ord(char)
    if code <= 0xFF:
        return f"\\x{code:02x}"
    if code <= 0xFFFF:
        return f"\\u{code:04x}"
    return f"\\U{code:08x}"


def echo(text: str) -> None:
    """Print one line of human output, escaped with :func:`safe_text`."""
    click.echo(safe_text(text))


def print_table(rows: Sequence[Sequence[str]]) -> None:
    """Print rows as aligned columns (the first is the header), escaped."""
    cells = [tuple(safe_text(cell) for cell in row) for row in rows]
    widths = [max(len(row[i]) for row in cells) for i in range(len(cells[0]))]
    for row in cells:
        aligned = (cell.ljust(w) for cell, w in zip(row, widths, strict=True))
        click.echo("  ".join(aligned).rstrip())


def report(as_json: bool, data: dict[str, t.Any], text: str) -> None:
    """Print ``data`` as one JSON object with ``--json``, else ``text``."""
    if as_json:
        print_json(data)
    else:
        echo(text)


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
    """A client's settings as human-readable lines (never its secret), each
    escaped with :func:`safe_text`."""
    lifetime = client.access_token_lifetime
    lines = [
        f"client_id:             {client.client_id}",
        f"name:                  {client.name}",
        f"type:                  {'public' if client.is_public else 'confidential'}",
        *(
            # Never the digest itself: only that it is still the imported one.
            ["secret:                carried (sha512, rehashed on first use)"]
            if hashing.is_carried(client.secret_digest)
            else []
        ),
        f"auth methods:          {' '.join(client.token_endpoint_auth_methods)}",
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
        f"dpop:                  {client.dpop}",
        "dpop nonce:            "
        + (
            "app default (ROPC_DPOP_NONCE)"
            if client.dpop_nonce == "default"
            else client.dpop_nonce
        ),
        f"password logins:       {client.password_grant_count}",
        "sunset:                "
        + (when(client.sunset_at) if client.sunset_at else "-"),
        f"enabled:               {'yes' if client.enabled else 'no'}",
        f"created:               {when(client.created_at)}",
        f"last used:             {when(client.last_used_at)}",
    ]
    return "\n".join(safe_text(line) for line in lines)
