"""The ``flask ropc`` command group: database set-up, clean-up and revocation.

The client commands live in :mod:`~flask_ropc.cli_clients`, the key commands
in :mod:`~flask_ropc.cli_keys`; all are thin layers over the admin API
(:mod:`flask_ropc.admin`). Failures exit non-zero with a message on stderr
(see :class:`~flask_ropc.cli_output.ROPCGroup`). Imports ``admin``, the other
``cli_*`` modules, ``state`` and leaves.
"""

from __future__ import annotations

import click

from . import admin
from . import migrations
from .cli_clients import CLIENT_COMMANDS
from .cli_keys import keys_cli
from .cli_output import ROPCGroup
from .cli_output import echo
from .state import get_state

ropc_cli = ROPCGroup("ropc", help="Manage Flask-ROPC's database and OAuth clients.")
for _command in CLIENT_COMMANDS:
    ropc_cli.add_command(_command)
ropc_cli.add_command(keys_cli)


@ropc_cli.command("init-db")
def init_db() -> None:
    """Create Flask-ROPC's tables, and the first signing key if the database
    keeps the keys; existing tables, clients and keys are kept."""
    created = admin.create_all(get_state())
    click.echo("Flask-ROPC tables are ready.")
    if created is not None:
        echo(f"Generated the first signing key {created.kid} ({created.alg}).")


@ropc_cli.command("migration")
@click.option(
    "--remove",
    is_flag=True,
    help="Write a revision that drops Flask-ROPC's tables (the app's stay).",
)
def migration(remove: bool) -> None:
    """Write Flask-ROPC's revisions into the app's migrations/versions.

    Only the revisions the app's history lacks are written, on top of its
    current head; run 'flask db upgrade' next. Needs Flask-Migrate.
    """
    try:
        written = migrations.write_revisions(
            migrations.app_script_directory(), remove=remove
        )
    except RuntimeError as error:
        raise click.ClickException(str(error)) from None
    for path in written:
        click.echo(f"Wrote {path}")
    if written:
        click.echo("Now run 'flask db upgrade'.")
    elif remove:
        click.echo("Flask-ROPC's tables are not in the migration history.")
    else:
        click.echo("Flask-ROPC's revisions are already in the migration history.")


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
def cleanup(revoked_for: int, batch_size: int) -> None:
    """Delete expired and long-revoked tokens, in small batches.

    Safe to run while the server is serving (e.g. from cron): each batch is
    its own short transaction, and deleted tokens were unusable anyway.
    """
    deleted = admin.cleanup(get_state(), revoked_for=revoked_for, batch_size=batch_size)
    for table, count in deleted.items():
        click.echo(f"{table}: deleted {count}")


@ropc_cli.command("revoke")
@click.option("--subject", default=None, help="Sign this user out everywhere.")
@click.option(
    "--client", "client_id", default=None, help="Revoke every token of this client."
)
def revoke(subject: str | None, client_id: str | None) -> None:
    """Revoke every access and refresh token of a user or of a client."""
    if (subject is None) == (client_id is None):
        raise click.UsageError("give exactly one of --subject and --client")
    count = admin.revoke(get_state(), subject=subject, client_id=client_id)
    if subject is not None:
        echo(f"Revoked {count} tokens of subject {subject}.")
    else:
        echo(f"Revoked {count} tokens of client {client_id}.")


@ropc_cli.command("unlock")
@click.argument("username")
def unlock(username: str) -> None:
    """Clear the failed attempts and lock of USERNAME (case-insensitive)."""
    if not admin.unlock(get_state(), username):
        raise click.ClickException("throttling is off (ROPC_THROTTLE_ENABLED)")
    echo(f"Unlocked {username.strip()}.")
