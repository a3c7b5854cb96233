"""Two ``rotate-secret`` runs at once: one wins, the other fails and says so.

Before #13 both exited 0 and printed a secret, but only the last one written
worked: an operator could deploy a secret that was dead on arrival. The
rotation now swaps the digest only if it is still the one it read.

The races are real (two threads, the real database) and staged without
sleeps: an SQLAlchemy event on the engine the extension publishes holds one
rotation right after it has read the client, while the other runs whole;
on PostgreSQL also two rotations at once wait on a row lock the test holds.
"""

from __future__ import annotations

import json
import typing as t
from concurrent.futures import ThreadPoolExecutor

import flask
import pytest
import sqlalchemy as sa

from flask_ropc import ROPC
from flask_ropc.errors import SecretChangedError

from conftest import HeldAfterRead
from conftest import OAuthClient
from conftest import basic_auth
from conftest import password_form
from conftest import wait_for_lock_waits


def token_status(http: t.Any, client_id: str, secret: str) -> int:
    response = http.post(
        "/oauth/token", data=password_form(), headers=basic_auth(client_id, secret)
    )
    return int(response.status_code)


@pytest.mark.parametrize("as_json", [False, True], ids=["text", "json"])
def test_concurrent_rotate_secret_runs_have_one_winner_and_a_clear_loser(
    app: flask.Flask,
    http: t.Any,
    oauth_client: OAuthClient,
    hold: HeldAfterRead,
    as_json: bool,
) -> None:
    json_flag = ["--json"] if as_json else []
    args = ["ropc", "rotate-secret", *json_flag, "--", oauth_client.client_id]

    # The loser reads the client first, the winner rotates meanwhile.
    hold.start(lambda: app.test_cli_runner().invoke(args=args))
    winner = app.test_cli_runner().invoke(args=args)
    loser = hold.finish()

    assert winner.exit_code == 0, winner.output
    if as_json:
        new_secret = json.loads(winner.output)["client_secret"]
    else:
        (line,) = [ln for ln in winner.output.splitlines() if "client_secret" in ln]
        new_secret = line.split()[-1]
    assert loser.exit_code == 1, loser.output
    assert "Traceback" not in loser.output
    assert "changed by another rotation" in loser.output
    assert "client_secret" not in loser.output  # no secret that does not work
    assert token_status(http, oauth_client.client_id, new_secret) == 200
    assert oauth_client.secret is not None
    assert token_status(http, oauth_client.client_id, oauth_client.secret) == 401


def test_admin_api_rotation_that_lost_the_race_raises_and_changes_nothing(
    app: flask.Flask,
    ropc: ROPC,
    http: t.Any,
    oauth_client: OAuthClient,
    hold: HeldAfterRead,
) -> None:
    def rotate() -> tuple[t.Any, str]:
        with app.app_context():
            return ropc.clients.rotate_secret(oauth_client.client_id)

    hold.start(rotate)
    _, winner_secret = rotate()
    with pytest.raises(SecretChangedError) as raised:
        hold.finish()

    assert raised.value.client_id == oauth_client.client_id
    assert token_status(http, oauth_client.client_id, winner_secret) == 200


def test_rotation_after_another_finished_still_works(
    app: flask.Flask, ropc: ROPC, http: t.Any, oauth_client: OAuthClient
) -> None:
    with app.app_context():
        _, first = ropc.clients.rotate_secret(oauth_client.client_id)
        _, second = ropc.clients.rotate_secret(oauth_client.client_id)

    assert token_status(http, oauth_client.client_id, first) == 401
    assert token_status(http, oauth_client.client_id, second) == 200


def test_rotations_waiting_on_a_row_lock_have_exactly_one_winner(
    app: flask.Flask,
    ropc: ROPC,
    http: t.Any,
    oauth_client: OAuthClient,
    database_uri: str,
) -> None:
    """Both read the same digest, then queue for the row a transaction of the
    test holds: when it lets go, one rotation writes, the other finds the
    digest changed (PostgreSQL re-checks the WHERE after the wait)."""
    if not database_uri.startswith("postgresql"):
        pytest.skip("row lock waits are staged on PostgreSQL")
    with app.app_context():
        engine = ropc.engine
    clients = sa.Table("ropc_clients", sa.MetaData(), autoload_with=engine)
    lock = (
        sa.select(clients.c.id)
        .where(clients.c.client_id == oauth_client.client_id)
        .with_for_update()
    )

    def rotate() -> str | SecretChangedError:
        with app.app_context():
            try:
                return ropc.clients.rotate_secret(oauth_client.client_id)[1]
            except SecretChangedError as error:
                return error

    with ThreadPoolExecutor(max_workers=2) as pool, engine.connect() as holder:
        holder.execute(lock)
        first = pool.submit(rotate)
        wait_for_lock_waits(engine, 1)
        second = pool.submit(rotate)
        wait_for_lock_waits(engine, 2)
        holder.rollback()
        outcomes = [first.result(60), second.result(60)]

    secrets = [outcome for outcome in outcomes if isinstance(outcome, str)]
    losers = [o for o in outcomes if isinstance(o, SecretChangedError)]
    assert len(secrets) == 1, outcomes
    assert len(losers) == 1, outcomes
    assert token_status(http, oauth_client.client_id, secrets[0]) == 200
