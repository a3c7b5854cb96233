"""``flask ropc import identityserver FILE``: carry IdentityServer clients over.

Parses the file with :mod:`~flask_ropc.identityserver`, plans every client
(create, update or unchanged) against :class:`~flask_ropc.admin.ClientAdmin`
before writing anything, then upserts by client id. Invalid input exits
non-zero naming the bad field and writes nothing. Secret digests are never
printed. Imports ``admin``, ``cli_output``, ``identityserver`` and leaves.
"""

from __future__ import annotations

import typing as t

import click

from . import hashing
from .admin import ClientAdmin
from .cli_output import app_command
from .cli_output import echo
from .cli_output import json_option
from .cli_output import print_json
from .identityserver import ImportedClient
from .identityserver import parse
from .identityserver_json import InvalidClientFile
from .models import SECRET_METHODS
from .models import Client
from .scopes import check_scope_tokens
from .store.client_values import check_imported_client_id
from .store.client_values import check_name

_clients = ClientAdmin()

#: The settings compared and written, as :meth:`ClientAdmin.update` names them.
_SETTINGS = (
    "name",
    "enabled",
    "scopes",
    "grant_types",
    "access_token_lifetime",
    "access_token_format",
    "refresh_token_sliding_lifetime",
    "refresh_token_absolute_lifetime",
)


def _wanted(imported: ImportedClient) -> dict[str, t.Any]:
    return {name: getattr(imported, name) for name in _SETTINGS}


def _changes(imported: ImportedClient, existing: Client) -> dict[str, t.Any]:
    """The settings that differ (a digest only when one was carried over).

    A carried ``Sha512()`` digest never replaces one of ours: the client has
    used its secret since (it was rehashed) or it was rotated here, and
    either is newer than the file.
    """
    changes: dict[str, t.Any] = {}
    for name, value in _wanted(imported).items():
        current = getattr(existing, name)
        if name == "scopes":
            differ = set(current) != set(value)
        elif name.startswith("refresh_token_") and value is None:
            differ = False  # not offline or no cap: the app default stays
        else:
            differ = current != value
        if differ:
            changes[name] = value
    if imported.dpop_required != (existing.dpop == "required"):
        # RequireDPoP false is our "allowed"; an "off" set here stays.
        changes["dpop"] = "required" if imported.dpop_required else "allowed"
    digest = imported.secret_digest
    if digest is not None and existing.secret_digest != digest:
        if not hashing.is_carried(digest) or hashing.is_carried(existing.secret_digest):
            changes["secret_digest"] = digest
    return changes


def _check(imported: ImportedClient, path: str) -> None:
    """Refuse what the admin API would refuse, before anything is written."""
    try:
        check_imported_client_id(imported.client_id)
        check_name(imported.name)
        check_scope_tokens(imported.scopes)
    except ValueError as error:
        raise InvalidClientFile(path, str(error)) from None


def _plan(
    clients: list[ImportedClient],
) -> list[tuple[str, ImportedClient, dict[str, t.Any]]]:
    plan: list[tuple[str, ImportedClient, dict[str, t.Any]]] = []
    for index, imported in enumerate(clients):
        _check(imported, f"client {index} ({imported.client_id})")
        existing = _clients.get(imported.client_id)
        if existing is None:
            plan.append(("create", imported, {}))
            continue
        if existing.is_public != imported.public:
            raise InvalidClientFile(
                f"client {index} ({imported.client_id})",
                "RequireClientSecret differs from the existing client's "
                "(public and confidential cannot be swapped; delete it first)",
            )
        changes = _changes(imported, existing)
        plan.append(("update" if changes else "unchanged", imported, changes))
    return plan


def _apply(action: str, imported: ImportedClient, changes: dict[str, t.Any]) -> None:
    if action == "update":
        _clients.update(imported.client_id, **changes)
    elif action == "create":
        methods = ("none",) if imported.public else SECRET_METHODS
        _clients.create(
            imported.name,
            client_id=imported.client_id,
            auth_methods=methods,
            secret_digest=imported.secret_digest,
            scopes=imported.scopes,
            grant_types=imported.grant_types,
            access_token_lifetime=imported.access_token_lifetime,
            access_token_format=imported.access_token_format,
            refresh_token_sliding_lifetime=imported.refresh_token_sliding_lifetime,
            refresh_token_absolute_lifetime=imported.refresh_token_absolute_lifetime,
            dpop="required" if imported.dpop_required else None,
        )
        if not imported.enabled:
            _clients.update(imported.client_id, enabled=False)


#: ``flask ropc import``: one subcommand per server we import from.
import_cli = click.Group("import", help="Import clients from another server.")


@app_command("identityserver")
@click.argument("file", type=click.File("r", encoding="utf-8-sig"))
@click.option("--dry-run", is_flag=True, help="Print what would change; write nothing.")
@json_option
def identityserver(file: t.TextIO, dry_run: bool, as_json: bool) -> None:
    """Create or update clients from IdentityServer's appsettings.json
    (IdentityServer:Clients) or a JSON array of Client objects.

    Upserts by ClientId; Sha256() and Sha512() secret hashes carry over
    without the plaintext (Sha512() ones are rehashed on first use).
    RequireDPoP true becomes --dpop required. Every setting that cannot be
    honoured is listed. Invalid input exits 1 naming the bad field, and
    nothing is written.
    """
    try:
        plan = _plan(parse(file.read()))
    except InvalidClientFile as error:
        raise click.ClickException(f"invalid input: {error}") from None
    if not dry_run:
        for action, imported, changes in plan:
            _apply(action, imported, changes)
    if as_json:
        print_json(
            {
                "dry_run": dry_run,
                "clients": [
                    {
                        "client_id": imported.client_id,
                        "action": action,
                        "changed": sorted(changes),
                        "findings": list(imported.findings),
                        "notes": list(imported.notes),
                    }
                    for action, imported, changes in plan
                ],
            }
        )
        return
    verb = {"create": "would create", "update": "would update"} if dry_run else {}
    for action, imported, changes in plan:
        done = verb.get(
            action, {"create": "created", "update": "updated"}.get(action, action)
        )
        detail = f" ({', '.join(sorted(changes))})" if changes else ""
        echo(f"{imported.client_id}: {done}{detail}")
        for line in (*imported.notes, *imported.findings):
            echo(f"  {line}")
    if dry_run:
        click.echo("Dry run: nothing was written.")


import_cli.add_command(identityserver)
