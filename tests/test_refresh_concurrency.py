"""Concurrent refreshes over real HTTP, on SQLite and PostgreSQL.

A threaded Werkzeug server (conftest ``live_server``) receives the requests
from ``requests`` in many threads released together by a barrier.
"""

from __future__ import annotations

import hashlib
import logging
import threading
import typing as t
from concurrent.futures import ThreadPoolExecutor

import flask
import pytest
import requests
import sqlalchemy as sa

from flask_ropc import signals

from conftest import assert_oauth_error
from conftest import basic_auth
from conftest import bearer
from conftest import login as password_grant
from conftest import password_form
from conftest import ropc_of
from conftest import table_rows
from conftest import wait_for_lock_waits

pytestmark = pytest.mark.live

THREADS = 24
OFFLINE = ["password", "refresh_token"]
TIMEOUT = 60


@pytest.fixture
def offline_client(make_client: t.Any) -> t.Any:
    return make_client("Offline app", grant_types=OFFLINE)


def login(session: requests.Session, url: str, client: t.Any) -> dict[str, t.Any]:
    """Ann's password login over real HTTP; its JSON body."""
    response = session.post(
        f"{url}/oauth/token",
        data=password_form(scope="api offline_access"),
        auth=(client.client_id, client.secret),
        timeout=TIMEOUT,
    )
    assert response.status_code == 200, response.text
    return t.cast(dict[str, t.Any], response.json())


def refresh(url: str, client: t.Any, token: str) -> requests.Response:
    with requests.Session() as session:
        return session.post(
            f"{url}/oauth/token",
            data={"grant_type": "refresh_token", "refresh_token": token},
            auth=(client.client_id, client.secret),
            timeout=TIMEOUT,
        )


R = t.TypeVar("R")


def all_at_once(tasks: list[t.Callable[[], R]]) -> list[R]:
    """Run ``tasks`` in one thread each, released together by a barrier."""
    barrier = threading.Barrier(len(tasks))
    results: list[t.Any] = [None] * len(tasks)
    errors: list[BaseException] = []

    def run(i: int) -> None:
        try:
            barrier.wait(timeout=TIMEOUT)
            results[i] = tasks[i]()
        except BaseException as error:  # reported by the assertion below
            errors.append(error)

    threads = [threading.Thread(target=run, args=(i,)) for i in range(len(tasks))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=2 * TIMEOUT)
    assert errors == [], errors
    return t.cast(list[R], results)


def engine_of(app: flask.Flask) -> sa.Engine:
    """The engine our tables live on (``ropc.engine``)."""
    with app.app_context():
        return ropc_of(app).engine


def our_table(app: flask.Flask, name: str) -> sa.Table:
    """One of our tables, reflected through ``ropc.engine``."""
    return sa.Table(name, sa.MetaData(), autoload_with=engine_of(app))


def family_of(app: flask.Flask, token: str) -> str:
    """The family of the stored refresh token ``token`` (found by digest)."""
    digest = hashlib.sha256(token.encode()).hexdigest()
    rows = table_rows(app, "ropc_refresh_tokens")
    (family_id,) = [row.family_id for row in rows if row.token_digest == digest]
    return str(family_id)


def family_counts(app: flask.Flask, family_id: str) -> dict[str, int]:
    """Refresh tokens of a family: all, live (unused and unrevoked), used;
    and its access tokens."""
    mine = [
        row
        for row in table_rows(app, "ropc_refresh_tokens")
        if row.family_id == family_id
    ]
    access = [
        row
        for row in table_rows(app, "ropc_access_tokens")
        if row.family_id == family_id
    ]
    return {
        "refresh": len(mine),
        "live": sum(row.used_at is None and row.revoked_at is None for row in mine),
        "used": sum(row.used_at is not None for row in mine),
        "access": len(access),
    }


def test_concurrent_refreshes_of_one_token_have_exactly_one_winner(
    live_server: t.Any, offline_client: t.Any, caplog: pytest.LogCaptureFixture
) -> None:
    app, url = live_server.app, live_server.url
    with requests.Session() as session:
        token = login(session, url, offline_client)["refresh_token"]
    family = family_of(app, token)
    reused: list[dict[str, t.Any]] = []

    def receiver(sender: t.Any, **payload: t.Any) -> None:
        reused.append(payload)

    signals.refresh_token_reused.connect(receiver)
    try:
        with caplog.at_level(logging.WARNING, logger="flask_ropc"):
            responses = all_at_once(
                [lambda: refresh(url, offline_client, token)] * THREADS
            )
    finally:
        signals.refresh_token_reused.disconnect(receiver)

    winners = [r for r in responses if r.status_code == 200]
    losers = [r for r in responses if r.status_code != 200]
    assert len(winners) == 1, [r.text for r in responses]
    assert winners[0].json()["refresh_token"] != token
    assert len(losers) == THREADS - 1
    for response in losers:
        assert response.status_code == 400, response.text
        assert response.json()["error"] == "invalid_grant"
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR]

    # Exactly one exchange was written: the login's refresh token, used once,
    # and the winner's successor; the login's and the winner's access tokens.
    counts = family_counts(app, family)
    assert counts["refresh"] == 2
    assert counts["used"] == 1
    assert counts["access"] == 2
    assert counts["live"] in (0, 1)
    # Observed, and by design (RFC 9700 §4.14.2): every loser presented a
    # token that had been used, so it counts as reuse and the family is
    # revoked, including the winner's brand-new refresh token. A real client
    # that sends the same refresh token twice at once is signed out.
    assert counts["live"] == 0
    # Reuse is signalled by the losers that saw the token used while its
    # family was still live; those that came after the revocation just see a
    # revoked token. So at least one signal, at most one per loser.
    assert 1 <= len(reused) <= THREADS - 1
    assert {event["family_id"] for event in reused} == {family}
    new_token = winners[0].json()["refresh_token"]
    after = refresh(url, offline_client, new_token)
    assert after.status_code == 400
    assert after.json()["error"] == "invalid_grant"
    me = requests.get(
        f"{url}/api/me",
        headers={"Authorization": f"Bearer {winners[0].json()['access_token']}"},
        timeout=TIMEOUT,
    )
    assert me.status_code == 401


def test_concurrent_refreshes_of_different_families_all_succeed(
    live_server: t.Any, offline_client: t.Any, caplog: pytest.LogCaptureFixture
) -> None:
    app, url = live_server.app, live_server.url
    with requests.Session() as session:
        tokens = [
            login(session, url, offline_client)["refresh_token"] for _ in range(THREADS)
        ]
    families = [family_of(app, token) for token in tokens]
    assert len(set(families)) == THREADS

    reused: list[t.Any] = []

    def receiver(sender: t.Any, **payload: t.Any) -> None:
        reused.append(payload)

    signals.refresh_token_reused.connect(receiver)
    try:
        with caplog.at_level(logging.WARNING, logger="flask_ropc"):
            responses = all_at_once(
                [
                    (lambda token=token: refresh(url, offline_client, token))
                    for token in tokens
                ]
            )
    finally:
        signals.refresh_token_reused.disconnect(receiver)

    assert [r.status_code for r in responses] == [200] * THREADS, [
        r.text for r in responses if r.status_code != 200
    ]
    assert reused == []
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR]
    assert "reuse" not in caplog.text
    new_tokens = [r.json()["refresh_token"] for r in responses]
    assert len(set(new_tokens)) == THREADS
    for family, new_token in zip(families, new_tokens, strict=True):
        assert family_of(app, new_token) == family
        assert family_counts(app, family) == {
            "refresh": 2,
            "live": 1,
            "used": 1,
            "access": 2,
        }
    # Every rotated token works on.
    for new_token in new_tokens:
        assert refresh(url, offline_client, new_token).status_code == 200


@pytest.mark.parametrize(
    "app_config", [{"ROPC_REFRESH_TOKEN_REUSE_INTERVAL": 60}], ids=["reuse-60s"]
)
def test_concurrent_retries_within_the_reuse_interval_leave_one_live_branch(
    live_server: t.Any, offline_client: t.Any
) -> None:
    app, url = live_server.app, live_server.url
    with requests.Session() as session:
        token = login(session, url, offline_client)["refresh_token"]
    family = family_of(app, token)
    # The first exchange's response was "lost"; the client retries at once
    # from many threads.
    assert refresh(url, offline_client, token).status_code == 200
    responses = all_at_once([lambda: refresh(url, offline_client, token)] * THREADS)

    # Every retry is a repeat exchange of a token whose successor is unused,
    # so every one succeeds; each revokes the tokens of those before it.
    assert [r.status_code for r in responses] == [200] * THREADS, [
        r.text for r in responses
    ]
    counts = family_counts(app, family)
    assert counts["refresh"] == THREADS + 2
    assert counts["live"] == 1
    issued = [r.json() for r in responses]
    survivors = [
        body
        for body in issued
        if requests.get(
            f"{url}/api/me",
            headers={"Authorization": f"Bearer {body['access_token']}"},
            timeout=TIMEOUT,
        ).status_code
        == 200
    ]
    # The one live refresh token is that of the one response whose access
    # token still works: the family has one branch.
    assert len(survivors) == 1
    assert refresh(url, offline_client, survivors[0]["refresh_token"]).ok


class Staged:
    """Refresh token exchanges through the test client, and a way to
    interleave two of them inside their transactions (PostgreSQL only)."""

    def __init__(self, app: flask.Flask, client: t.Any) -> None:
        self.app, self.client = app, client
        self.auth = basic_auth(client.client_id, client.secret)
        self.http = app.test_client()

    def login(self) -> str:
        """A password login's refresh token."""
        response = password_grant(self.http, self.client, scope="api offline_access")
        assert response.status_code == 200, response.json
        return str(response.json["refresh_token"])

    def exchange(self, token: str) -> t.Any:
        """Exchange ``token``; the response (a new test client: thread-safe)."""
        return self.app.test_client().post(
            "/oauth/token",
            data={"grant_type": "refresh_token", "refresh_token": token},
            headers=self.auth,
        )

    def interleaved(
        self,
        first: t.Callable[[], t.Any],
        second: t.Callable[[], t.Any],
        hold: t.Any = None,
    ) -> tuple[t.Any, t.Any]:
        """Run ``first`` until it waits for the row lock that ``hold`` (a
        ``SELECT ... FOR UPDATE``) takes, then ``second`` until it waits for
        a row lock too; then release the hold and let both finish. Return
        both results.

        The default hold is the client's row, which the grant transaction
        updates last: it holds an exchange after its claim and token inserts.
        """
        engine = engine_of(self.app)
        if hold is None:
            clients = our_table(self.app, "ropc_clients")
            hold = (
                sa.select(clients.c.id)
                .where(clients.c.client_id == self.client.client_id)
                .with_for_update()
            )
        with ThreadPoolExecutor(max_workers=2) as pool:
            with engine.connect() as holder:
                holder.execute(hold)
                one = pool.submit(first)
                wait_for_lock_waits(engine, 1)
                two = pool.submit(second)
                wait_for_lock_waits(engine, 2)
                holder.rollback()
            return one.result(), two.result()

    def exchanges(self, first: str, second: str) -> tuple[t.Any, t.Any]:
        """:meth:`interleaved` exchanges of the refresh tokens ``first`` and
        ``second``."""
        return self.interleaved(
            lambda: self.exchange(first), lambda: self.exchange(second)
        )

    def works(self, body: dict[str, t.Any]) -> tuple[bool, bool]:
        """Whether the access token, then the refresh token, of ``body`` work
        (the refresh token is used up finding out)."""
        me = self.http.get("/api/me", headers=bearer(body["access_token"]))
        refreshed = self.exchange(body["refresh_token"])
        return me.status_code == 200, refreshed.status_code == 200


@pytest.fixture
def staged(app: flask.Flask, make_client: t.Any, database_uri: str) -> Staged:
    if not database_uri.startswith("postgresql"):
        pytest.skip("row lock waits are staged on PostgreSQL")
    return Staged(app, make_client(grant_types=OFFLINE))


def test_a_replay_during_a_refresh_revokes_what_that_refresh_issues(
    staged: Staged,
) -> None:
    """Reuse detection also revokes the tokens a concurrent refresh writes.

    A thief replays an old refresh token while the client refreshes the
    current one, whose exchange has claimed it but not committed. The family
    is revoked, so the refresh's new tokens, written after the revocation
    began, must not work either.
    """
    old = staged.login()
    current = staged.exchange(old).json["refresh_token"]
    refreshed, replayed = staged.exchanges(current, old)
    # The refresh claimed its token before the family was revoked.
    assert refreshed.status_code == 200, refreshed.json
    assert_oauth_error(replayed, 400, "invalid_grant")
    assert staged.works(refreshed.json) == (False, False)


REUSE_60S = pytest.mark.parametrize(
    "app_config", [{"ROPC_REFRESH_TOKEN_REUSE_INTERVAL": 60}], ids=["reuse-60s"]
)


@REUSE_60S
def test_a_retry_while_the_first_try_is_in_flight_is_a_repeat_not_reuse(
    staged: Staged,
) -> None:
    """A client times out and retries while its first try is still running.

    The retry read the token before the first try committed, so it took the
    ordinary path and lost the claim; within the reuse interval it is
    exchanged again instead of counting as reuse.
    """
    token = staged.login()
    reused: list[t.Any] = []
    with signals.refresh_token_reused.connected_to(
        lambda sender, **event: reused.append(event), sender=staged.app
    ):
        first_try, retry = staged.exchanges(token, token)
    assert first_try.status_code == 200, first_try.json
    assert retry.status_code == 200, retry.json
    assert reused == []
    # The first try's response was "lost": its access token is revoked (its
    # refresh token too, but presenting it would count as reuse).
    me = staged.http.get("/api/me", headers=bearer(first_try.json["access_token"]))
    assert me.status_code == 401
    assert staged.works(retry.json) == (True, True)


@REUSE_60S
def test_a_repeat_racing_the_successors_exchange_is_reuse(staged: Staged) -> None:
    """A thief repeats an exchanged token within the reuse interval while the
    client exchanges the successor it did receive.

    The repeat must see the successor used (the client got the response), so
    it is a replay: the family, with the client's new tokens, is revoked.
    """
    stolen = staged.login()
    received = staged.exchange(stolen).json["refresh_token"]
    reused: list[t.Any] = []
    with signals.refresh_token_reused.connected_to(
        lambda sender, **event: reused.append(event), sender=staged.app
    ):
        clients_refresh, thiefs_repeat = staged.exchanges(received, stolen)
    assert clients_refresh.status_code == 200, clients_refresh.json
    assert_oauth_error(thiefs_repeat, 400, "invalid_grant")
    assert len(reused) == 1
    assert staged.works(clients_refresh.json) == (False, False)


@REUSE_60S
def test_repeats_exchanges_and_revocations_racing_leave_nothing_of_the_family(
    live_server: t.Any, offline_client: t.Any, database_uri: str
) -> None:
    """Repeats, ordinary exchanges, RFC 7009 revocations and "sign out
    everywhere" on one family at once: none fails with a server error (a
    deadlock would be a 503), and once all are done nothing of the family
    works, whatever order they ran in. Which interleavings occur is up to
    the scheduler; the ones known to have broken are staged above."""
    if not database_uri.startswith("postgresql"):
        pytest.skip("SQLite runs one writer at a time: nothing to race")
    app, url = live_server.app, live_server.url
    with requests.Session() as session:
        zeroth = login(session, url, offline_client)["refresh_token"]
    family = family_of(app, zeroth)
    # Repeats of the middle token lock rows on both sides of it.
    first = refresh(url, offline_client, zeroth).json()["refresh_token"]
    second = refresh(url, offline_client, first).json()["refresh_token"]

    def revoke(token: str) -> requests.Response:
        return requests.post(
            f"{url}/oauth/revoke",
            data={"token": token},
            auth=(offline_client.client_id, offline_client.secret),
            timeout=TIMEOUT,
        )

    def sign_out() -> None:
        with app.app_context():
            ropc_of(app).revoke_subject("user-1")

    tasks: list[t.Callable[[], requests.Response | None]] = [
        *[lambda: refresh(url, offline_client, first)] * 8,
        *[lambda: refresh(url, offline_client, second)] * 8,
        *[lambda: revoke(first), lambda: revoke(second)] * 2,
        *[sign_out] * 4,
    ]
    responses = [r for r in all_at_once(tasks) if r is not None]
    outcomes = {
        (r.status_code, r.json().get("error") if r.status_code == 400 else None)
        for r in responses
    }
    assert outcomes <= {(200, None), (400, "invalid_grant")}, [
        r.text for r in responses if r.status_code not in (200, 400)
    ]
    # Not one refresh token left unrevoked: not even a used one, which a
    # repeat exchange could still take.
    unrevoked = [
        row
        for row in table_rows(app, "ropc_refresh_tokens")
        if row.family_id == family and row.revoked_at is None
    ]
    assert len(unrevoked) == 0
    for body in [r.json() for r in responses if r.text and "access_token" in r.text]:
        me = requests.get(
            f"{url}/api/me",
            headers={"Authorization": f"Bearer {body['access_token']}"},
            timeout=TIMEOUT,
        )
        assert me.status_code == 401


@REUSE_60S
def test_a_repeat_queued_behind_a_family_revocation_does_not_deadlock(
    staged: Staged,
) -> None:
    """A family revocation and a repeat exchange of its middle token, both
    waiting for the family's first row: once it is free, the revocation
    takes the rows in id order, and the repeat must not be holding a later
    one (each would wait for the other: PostgreSQL would abort one)."""
    zeroth = staged.login()
    first = staged.exchange(zeroth).json["refresh_token"]
    second = staged.exchange(first).json["refresh_token"]
    tokens = our_table(staged.app, "ropc_refresh_tokens")
    digest = hashlib.sha256(zeroth.encode()).hexdigest()
    hold_the_first_row = (
        sa.select(tokens.c.id).where(tokens.c.token_digest == digest).with_for_update()
    )

    def revoke_the_family() -> t.Any:
        return staged.app.test_client().post(
            "/oauth/revoke", data={"token": second}, headers=staged.auth
        )

    revoked, repeated = staged.interleaved(
        revoke_the_family, lambda: staged.exchange(first), hold=hold_the_first_row
    )
    assert revoked.status_code == 200, revoked.get_data(as_text=True)
    # The repeat ran after the revocation: its token was revoked.
    assert_oauth_error(repeated, 400, "invalid_grant")
    assert_oauth_error(staged.exchange(second), 400, "invalid_grant")
