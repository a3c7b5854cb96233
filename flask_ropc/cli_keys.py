"""``flask ropc keys ...``: manage the keys that sign JWT access tokens.

A thin layer over :class:`~flask_ropc.admin.KeyAdmin`. Imports ``admin``,
``cli_output`` and leaves.
"""

from __future__ import annotations

import click

from .admin import KeyAdmin
from .cli_output import ROPCGroup
from .cli_output import echo
from .cli_output import json_option
from .cli_output import print_json
from .cli_output import when
from .keys import SUPPORTED_ALGORITHMS

keys_cli = ROPCGroup("keys", help="Manage the keys that sign JWT access tokens.")
_keys = KeyAdmin()

_alg_option = click.option(
    "--alg",
    type=click.Choice(SUPPORTED_ALGORITHMS),
    default=None,
    help="Algorithm of a new key (default: ROPC_SIGNING_ALG, ES256).",
)


@keys_cli.command("generate")
@_alg_option
@json_option
def keys_generate(alg: str | None, as_json: bool) -> None:
    """Add a signing key: the signer if there is none, else published ahead
    of the next 'keys rotate'."""
    key = _keys.generate(alg)
    if as_json:
        print_json(key.to_dict())
    else:
        echo(f"Generated {key.alg} key {key.kid} ({key.status}).")


@keys_cli.command("list")
@json_option
def keys_list(as_json: bool) -> None:
    """List signing keys with their state (never the private key)."""
    keys = _keys.list()
    if as_json:
        rows = [key.to_dict() for key in keys]
        for row in rows:
            if row["status"] == "configured":
                del row["created_at"], row["publish_until"]
        print_json({"keys": rows})
        return
    if not keys:
        click.echo(
            "No signing keys yet: 'flask ropc init-db' makes the first one "
            "(else the first token or JWKS request does), as does "
            "'flask ropc keys generate'."
        )
        return
    for key in keys:
        until = key.publish_until
        extra = f", published until {when(until)}" if until else ""
        echo(f"{key.kid}  {key.alg:<6} {key.status}{extra}")


@keys_cli.command("rotate")
@_alg_option
@click.option(
    "--if-due",
    is_flag=True,
    help="Only what the automatic lifecycle (ROPC_KEY_ROTATION_ENABLED) has "
    "due now: safe to run from cron at any rate.",
)
@json_option
def keys_rotate(alg: str | None, if_due: bool, as_json: bool) -> None:
    """Make a new key the signer; the old one stays published until the
    tokens it signed have expired. With --if-due, make only the changes the
    automatic lifecycle has due (exit 0 whether or not any was)."""
    if if_due:
        if alg is not None:
            raise click.UsageError("--alg cannot be used with --if-due")
        _rotate_if_due(as_json)
        return
    key = _keys.rotate(alg)
    if as_json:
        print_json(key.to_dict())
    else:
        echo(f"Key {key.kid} ({key.alg}) now signs new tokens.")


def _rotate_if_due(as_json: bool) -> None:
    report = _keys.rotate_if_due()
    done = report.plan
    if as_json:
        print_json(
            {
                "due": bool(done),
                "created": report.created,
                "activated": done.activate,
                "demoted": list(done.demote),
                "signer": report.signer,
                "next_key_at": report.next_key_at,
            }
        )
        return
    if not done:
        echo(
            f"No key change is due: key {report.signer} signs; the next key "
            f"is made at {when(report.next_key_at)}."
        )
        return
    if report.created is not None:
        kind = "signs at once" if done.create == "active" else "published, pending"
        echo(f"Generated key {report.created} ({kind}).")
    if done.activate is not None:
        echo(f"Key {done.activate} now signs new tokens.")
    for kid in done.demote:
        echo(f"Key {kid} stopped signing; it stays published for the retention.")
    echo(
        f"Key {report.signer} signs; the next key is made at "
        f"{when(report.next_key_at)}."
    )


# A kid is an RFC 7638 thumbprint, base64url: one in 64 starts with "-",
# which click would take for an option.
@keys_cli.command("retire", context_settings={"ignore_unknown_options": True})
@click.argument("kid")
@json_option
def keys_retire(kid: str, as_json: bool) -> None:
    """Stop publishing and accepting the key KID; tokens it signed stop working."""
    _keys.retire(kid)
    if as_json:
        print_json({"kid": kid, "status": "retired"})
    else:
        echo(f"Retired key {kid}.")


@keys_cli.command("encrypt")
@json_option
def keys_encrypt(as_json: bool) -> None:
    """Encrypt the stored signing keys with the first ROPC_KEY_ENCRYPTION_KEYS
    secret, else with SECRET_KEY (again after a new secret or SECRET_KEY,
    with the old one in SECRET_KEY_FALLBACKS)."""
    try:
        count = _keys.encrypt()
    except ValueError as error:
        raise click.ClickException(str(error)) from None
    if as_json:
        print_json({"encrypted": count})
        return
    noun = "key" if count == 1 else "keys"
    source = _keys.encrypted_with()
    secret = (
        "the first ROPC_KEY_ENCRYPTION_KEYS secret"
        if source == "ROPC_KEY_ENCRYPTION_KEYS"
        else "the key derived from SECRET_KEY"
    )
    click.echo(f"Encrypted {count} signing {noun} with {secret}.")
