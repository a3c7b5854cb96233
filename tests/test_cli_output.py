"""Human output of ``flask ropc`` never carries a character a terminal acts on.

A client name is free text: before #13 it was printed raw, so a name could
forge a ``client_secret:`` line in ``show-client`` or send terminal escape
sequences (window titles, hyperlinks) to whoever ran the command, even with
the output piped (click strips only colour codes from piped output). Every
stored string and every quoted input is now escaped in human output; the
``--json`` output keeps the exact value. Through the CLI runner, on every
backend.
"""

from __future__ import annotations

import json
import typing as t

import flask
import pytest

from flask_ropc import ROPC

from conftest import basic_auth
from conftest import password_form

#: Characters that must never reach the terminal, and the text shown instead
#: (Python's escapes). PostgreSQL refuses NUL in text, so no name can hold it.
NON_PRINTABLE = {
    "ESC": ("\x1b", "\\x1b"),
    "BEL": ("\x07", "\\x07"),
    "CR": ("\r", "\\r"),
    "LF": ("\n", "\\n"),
    "TAB": ("\t", "\\t"),
    "DEL": ("\x7f", "\\x7f"),
    "C1 CSI": ("\x9b", "\\x9b"),
    "C1 NEL": ("\x85", "\\x85"),
    "RLO bidi override": ("\u202e", "\\u202e"),
    "LRI bidi isolate": ("\u2066", "\\u2066"),
    "zero-width space": ("\u200b", "\\u200b"),
    "line separator": ("\u2028", "\\u2028"),
    "paragraph separator": ("\u2029", "\\u2029"),
}

#: An OSC window title and an OSC 8 hyperlink: escape sequences that click
#: does not strip from piped output.
OSC_TITLE = "\x1b]0;you have been pwned\x07"
OSC_LINK = "\x1b]8;;https://evil.example/\x1b\\innocent\x1b]8;;\x1b\\"
FORGED = "Legit app\nclient_secret:         forged-secret-of-the-attacker"


def ropc_cli(runner: t.Any, *args: str, input: str | None = None) -> t.Any:
    """Run ``flask ropc ARGS...``; click's result."""
    return runner.invoke(args=["ropc", *args], input=input)


def ok(result: t.Any) -> str:
    assert result.exit_code == 0, result.output
    return str(result.output)


def assert_terminal_safe(output: str) -> None:
    """Nothing in ``output`` but printable characters and line ends."""
    bad = [char for char in output if not char.isprintable() and char != "\n"]
    assert bad == [], f"unescaped {bad!r} in {output!r}"


def human_outputs(runner: t.Any, client_id: str) -> dict[str, str]:
    """What each command that shows a client prints about it."""
    return {
        "show-client": ok(ropc_cli(runner, "show-client", "--", client_id)),
        "list-clients": ok(ropc_cli(runner, "list-clients")),
        "update-client": ok(
            ropc_cli(runner, "update-client", "--scope", "api", "--", client_id)
        ),
        "delete-client prompt": ropc_cli(
            runner, "delete-client", "--", client_id, input="n\n"
        ).output,
    }


@pytest.mark.parametrize(
    "char,shown", NON_PRINTABLE.values(), ids=list(NON_PRINTABLE.keys())
)
def test_every_non_printable_in_a_stored_name_is_escaped(
    ropc: ROPC, app: flask.Flask, runner: t.Any, char: str, shown: str
) -> None:
    name = f"before{char}after"
    with app.app_context():
        client, _ = ropc.clients.create(name)

    for command, output in human_outputs(runner, client.client_id).items():
        assert name not in output, command
        assert f"before{shown}after" in output, command
        assert_terminal_safe(output)


def test_a_name_cannot_forge_a_secret_line(
    ropc: ROPC, app: flask.Flask, runner: t.Any
) -> None:
    with app.app_context():
        client, _ = ropc.clients.create(FORGED)

    show = ok(ropc_cli(runner, "show-client", "--", client.client_id))
    assert not [line for line in show.splitlines() if line.startswith("client_sec")]
    assert "name:                  Legit app\\nclient_secret:" in show
    listed = ok(ropc_cli(runner, "list-clients")).splitlines()
    assert len(listed) == 2  # the header and the one client, on one line


def test_create_client_prints_only_the_real_secret_line(
    app: flask.Flask, runner: t.Any, http: t.Any
) -> None:
    output = ok(ropc_cli(runner, "create-client", FORGED, "--scope", "api"))

    secret_lines = [
        line for line in output.splitlines() if line.startswith("client_secret")
    ]
    assert len(secret_lines) == 1
    secret = secret_lines[0].split()[-1]
    assert secret != "forged-secret-of-the-attacker"
    client_id = output.splitlines()[0].split()[-1]
    response = http.post(
        "/oauth/token",
        data=password_form(scope="api"),
        headers=basic_auth(client_id, secret),
    )
    assert response.status_code == 200, response.get_json()


@pytest.mark.parametrize("sequence", [OSC_TITLE, OSC_LINK], ids=["title", "link"])
def test_terminal_escape_sequences_in_names_are_inert(
    ropc: ROPC, app: flask.Flask, runner: t.Any, sequence: str
) -> None:
    with app.app_context():
        client, _ = ropc.clients.create(f"App {sequence}")
    created = ok(ropc_cli(runner, "create-client", f"New {sequence}"))
    renamed = ok(
        ropc_cli(runner, "update-client", "--name", f"Re {sequence}", client.client_id)
    )

    for output in [*human_outputs(runner, client.client_id).values(), created]:
        assert "\x1b" not in output
        assert "\x07" not in output
        assert_terminal_safe(output)
    assert "\\x1b]" in renamed


def test_json_output_keeps_the_exact_name(
    ropc: ROPC, app: flask.Flask, runner: t.Any
) -> None:
    name = f"{FORGED} {OSC_TITLE} \u202e\u2028\x85 {OSC_LINK}"
    with app.app_context():
        client, _ = ropc.clients.create("placeholder")

    created = json.loads(ok(ropc_cli(runner, "create-client", name, "--json")))
    updated = json.loads(
        ok(
            ropc_cli(
                runner, "update-client", "--name", name, "--json", client.client_id
            )
        )
    )
    shown = json.loads(ok(ropc_cli(runner, "show-client", "--json", client.client_id)))
    listed = json.loads(ok(ropc_cli(runner, "list-clients", "--json")))

    assert created["name"] == name
    assert updated["name"] == shown["name"] == name
    assert [c["name"] for c in listed["clients"]] == [name, name]
    with app.app_context():
        assert ropc.clients.require(client.client_id).name == name


#: Commands whose messages (success or error) quote what was typed.
QUOTING_INPUT = {
    "revoke --subject": ("revoke", "--subject", f"ann{OSC_TITLE}"),
    "unlock": ("unlock", f"ann{OSC_TITLE}"),
    "unknown client": ("show-client", f"nope{OSC_TITLE}"),
    "unknown option of a command": ("show-client", f"--x{OSC_TITLE}", "id"),
    "unknown option of the group": (f"--x{OSC_TITLE}", "list-clients"),
    "unknown key": ("keys", "retire", f"kid{OSC_TITLE}"),
    "unknown option of keys": ("keys", "list", f"--x{OSC_TITLE}"),
    "bad sunset date": ("update-client", "--sunset", f"2027{OSC_TITLE}", "id"),
}


@pytest.mark.parametrize("args", QUOTING_INPUT.values(), ids=QUOTING_INPUT.keys())
def test_messages_quoting_input_are_escaped(runner: t.Any, args: tuple[str]) -> None:
    result = ropc_cli(runner, *args)

    assert "Traceback" not in result.output
    assert "\x1b" not in result.output
    assert "\x07" not in result.output
    assert "\\x1b]0;you have been pwned\\x07" in result.output
    assert_terminal_safe(result.output)
