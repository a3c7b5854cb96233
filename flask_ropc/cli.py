"""The ``flask ropc`` command group: database set-up, clean-up and revocation.

The client commands live in :mod:`~flask_ropc.cli_clients`, the key commands
in :mod:`~flask_ropc.cli_keys`, ``check`` in :mod:`~flask_ropc.cli_check`; all
are thin layers over the admin API (:mod:`flask_ropc.admin`). Failures exit
non-zero with a message on stderr (see :class:`~flask_ropc.cli_output.ROPCGroup`).
Imports ``admin``, the other ``cli_*`` modules, ``state`` and leaves.
"""

from __future__ import annotations

import sys
import typing as t

import click

from . import admin
from . import migrations
from .cli_check import check
from .cli_clients import CLIENT_COMMANDS
from .cli_import import import_cli
from .cli_keys import keys_cli
from .cli_output import ROPCGroup
from .cli_output import echo
from .cli_output import json_option
from .cli_output import print_json
from .cli_output import report
from .state import get_state

ropc_cli = ROPCGroup("ropc", help="Manage Flask-ROPC's database and OAuth clients.")
for _command in CLIENT_COMMANDS:
    ropc_cli.add_command(_command)
ropc_cli.add_command(keys_cli)
ropc_cli.add_command(check)
ropc_cli.add_command(import_cli)


@ropc_cli.command("init-db")
@json_option
def init_db(as_json: bool) -> None:
    """Create Flask-ROPC's tables, and the first signing key if the database
    keeps the keys; existing tables, clients and keys are kept."""
    created = admin.create_all(get_state())
    if as_json:
        key = created.to_dict() if created is not None else None
        print_json({"ready": True, "generated_key": key})
        return
    click.echo("Flask-ROPC tables are ready.")
    if created is not None:
        echo(f"Generated the first signing key {created.kid} ({created.alg}).")


@ropc_cli.command("migration")
@click.option(
    "--remove",
    is_flag=True,
    help="Write a revision that drops Flask-ROPC's tables (the app's stay).",
)
@json_option
def migration(remove: bool, as_json: bool) -> None:
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
    if as_json:
        print_json({"written": [str(path) for path in written]})
        return
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
@json_option
def cleanup(revoked_for: int, batch_size: int, as_json: bool) -> None:
    """Delete expired and long-revoked tokens, in small batches.

    Safe to run while the server is serving (e.g. from cron): each batch is
    its own short transaction, and deleted tokens were unusable anyway. On a
    terminal a progress bar shows the batches; then a summary per table.
    """
    state = get_state()
    if as_json or not sys.stdout.isatty():
        deleted = admin.cleanup(state, revoked_for=revoked_for, batch_size=batch_size)
    else:
        backlog = admin.cleanup_backlog(state, revoked_for=revoked_for)
        label = "Deleting expired and revoked tokens"
        with click.progressbar(length=backlog, label=label) as bar:
            deleted = admin.cleanup(
                state,
                revoked_for=revoked_for,
                batch_size=batch_size,
                progress=lambda _table, rows: bar.update(rows),
            )
    total = sum(deleted.values())
    if as_json:
        print_json({"deleted": deleted, "total": total})
        return
    for table, count in deleted.items():
        click.echo(f"{table}: deleted {count}")
    click.echo(f"Deleted {total} rows in total.")


@ropc_cli.command("revoke")
@click.option("--subject", default=None, help="Sign this user out everywhere.")
@click.option(
    "--client", "client_id", default=None, help="Revoke every token of this client."
)
@json_option
def revoke(subject: str | None, client_id: str | None, as_json: bool) -> None:
    """Revoke every access and refresh token of a user or of a client."""
    if (subject is None) == (client_id is None):
        raise click.UsageError("give exactly one of --subject and --client")
    count = admin.revoke(get_state(), subject=subject, client_id=client_id)
    whose: dict[str, str | None]
    if subject is not None:
        whose, text = {"subject": subject}, f"subject {subject}"
    else:
        whose, text = {"client_id": client_id}, f"client {client_id}"
    report(as_json, {"revoked": count, **whose}, f"Revoked {count} tokens of {text}.")


@ropc_cli.command("unlock")
@click.argument("username", required=False)
@click.option(
    "--subject", default=None, help="Clear this user's MFA code budget as well."
)
@json_option
def unlock(username: str | None, subject: str | None, as_json: bool) -> None:
    """Clear the failed attempts and lock of USERNAME (case-insensitive).

    With --subject, clear that user's MFA code budget too (the wrong codes
    counted across every mfa_token); --subject alone clears only that.
    """
    if username is None and subject is None:
        raise click.UsageError("give USERNAME, --subject SUBJECT, or both")
    state = get_state()
    if username is not None and state.throttle is None:
        raise click.ClickException("throttling is off (ROPC_THROTTLE_ENABLED)")
    answer: dict[str, t.Any] = {}
    lines, cleared = [], 0
    if username is not None:
        count = admin.unlock(state, username) or 0
        name, noun = username.strip(), "counter" if count == 1 else "counters"
        answer["username"], cleared = name, cleared + count
        lines.append(
            f"Unlocked {name} (cleared {count} throttle {noun})."
            if count
            else f"Nothing to unlock: no failed attempts or lock for {name}."
        )
    if subject is not None:
        count = admin.unlock_mfa(state, subject)
        noun = "counter" if count == 1 else "counters"
        answer["subject"], cleared = subject, cleared + count
        lines.append(
            f"Cleared the MFA code budget of subject {subject} ({count} {noun})."
            if count
            else f"Nothing to unlock: no wrong MFA codes for subject {subject}."
        )
    if as_json:
        print_json({**answer, "unlocked": cleared > 0, "cleared": cleared})
    else:
        for line in lines:
            echo(line)
