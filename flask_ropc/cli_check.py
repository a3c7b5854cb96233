"""``flask ropc check``: what an operator runs before going live.

Loads the app (the ``flask`` command does) and reports, on one screen, its
configuration, the database (reachable, our tables present), the
signing keys (where they come from, an active one, that they decrypt), the
password validator and the throttle counters' storage. Read-only: it never
creates a table or a key. Exits 1 when a check fails; a warning alone
exits 0. Imports ``inspection``, ``cli_output``, ``state`` and leaves.
"""

from __future__ import annotations

import typing as t

import click

from . import inspection
from .cli_output import app_command
from .cli_output import json_option
from .cli_output import print_json
from .state import State
from .state import get_state
from .store import DatabaseError

#: A check's outcome: ``ok``, ``warn`` (works, but look) or ``fail``.
Result = tuple[str, str]


def _configuration(state: State) -> Result:
    s = state.settings
    throttle = "on" if s.throttle_enabled else "OFF (ROPC_THROTTLE_ENABLED)"
    detail = f"access tokens {s.access_token_format}, throttling {throttle}"
    if s.issuer is None:
        return "warn", (
            "ROPC_ISSUER is not set: tokens name the request's host as issuer; "
            f"set it to your public HTTPS URL ({detail})"
        )
    return "ok", f"issuer {s.issuer}, {detail}"


def _database(state: State) -> Result:
    where = inspection.database_url(state)
    try:
        absent = inspection.absent_tables(state)
    except DatabaseError as error:
        return "fail", inspection.explain_database_error(state, error)
    if absent:
        return "fail", (
            f"{where}: tables {', '.join(absent)} are missing: "
            "run 'flask ropc init-db' (or the migrations)"
        )
    return "ok", f"{where}: reachable, our 5 tables present"


def _keys(state: State, database_ok: bool) -> Result:
    configured = state.settings.signing_keys
    if configured:
        first = configured[0]
        return "ok", (
            f"from ROPC_SIGNING_KEYS: {len(configured)} key(s), signing with "
            f"{first.alg} {first.kid}"
        )
    if not database_ok:
        return "fail", "stored in the database: not checked (see database)"
    try:
        keys = inspection.verify_stored_keys(state)
    except DatabaseError as error:
        return "fail", inspection.explain_database_error(state, error)
    except Exception as error:  # a key that does not decrypt or parse
        return "fail", f"stored in the database: {error}"
    active = [key for key in keys if key.status == "active"]
    if not active:
        return "warn", (
            "stored in the database: no active key yet; one is generated at the "
            "first token, or run 'flask ropc keys generate' now"
        )
    signer = active[-1]
    return "ok", (
        f"stored in the database: {len(keys)} in use, they decrypt; signing "
        f"with {signer.alg} {signer.kid}"
    )


def _validator(state: State) -> Result:
    validator = state.callbacks.validator
    if validator is None:
        return "fail", (
            "none registered: every password grant fails with 500; decorate "
            "your check with @ropc.password_validator"
        )
    name = getattr(validator, "__qualname__", type(validator).__qualname__)
    module = getattr(validator, "__module__", None)
    return "ok", f"{module}.{name}" if module else name


def _counters(state: State, database_ok: bool) -> Result:
    where, reachable = inspection.counters_storage(state)
    if where == "off":
        return "warn", "throttling is off: nothing slows password guessing"
    if where == "database":
        if database_ok:
            return "ok", "in the database (ropc_throttle)"
        return "fail", "in the database: not checked (see database)"
    if reachable:
        return "ok", f"{where}: reachable"
    return "fail", f"{where}: not reachable"


def run_checks(state: State) -> dict[str, Result]:
    """Every check, by name, in the order shown."""
    results = {"configuration": _configuration(state), "database": _database(state)}
    database_ok = results["database"][0] == "ok"
    results["signing keys"] = _keys(state, database_ok)
    results["validator"] = _validator(state)
    try:
        results["counters"] = _counters(state, database_ok)
    except Exception as error:  # a storage that fails its own check
        results["counters"] = ("fail", f"not reachable: {type(error).__name__}")
    return results


@app_command("check")
@json_option
def check(as_json: bool) -> None:
    """Check the configuration, database, signing keys, validator and
    throttle storage before going live; exit 1 if a check fails."""
    results = run_checks(get_state())
    failed = [name for name, (status, _) in results.items() if status == "fail"]
    if as_json:
        checks: list[dict[str, t.Any]] = [
            {"name": name, "status": status, "detail": detail}
            for name, (status, detail) in results.items()
        ]
        print_json({"ok": not failed, "checks": checks})
    else:
        for name, (status, detail) in results.items():
            click.echo(f"{status.upper():<5} {name + ':':<15} {detail}")
        warned = sum(status == "warn" for status, _ in results.values())
        if failed:
            click.echo(f"\n{len(failed)} check(s) failed: {', '.join(failed)}.")
        else:
            click.echo(f"\nReady: every check passed ({warned} warning(s)).")
    if failed:
        raise SystemExit(1)
