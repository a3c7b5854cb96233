"""200 days of the automatic key lifecycle on two processes sharing a database.

Two worker processes (``key_sim_worker.py``), each with its own app,
engine and key cache, share one database (PostgreSQL when configured, and
an SQLite file) and start together on an empty key table. Their clocks are
moved together over a pipe, 13 hours at a time (so the steps fall at every
time of day), through 200 days. At each step each worker serves its JWKS
and signs a token, and at every step:

* every token signed verifies against every JWKS either worker served in
  the preceding ``ROPC_JWKS_MAX_AGE`` (what an API caching the JWKS holds);
* every token still unexpired verifies against the JWKS served now (a key
  leaves only after its tokens expired);
* both workers sign with the same key.

Over the run, the keys are made at 0, and about every ``I - G`` (76 days)
after: three keys, signing one after the other.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import typing as t
from pathlib import Path

import flask
from joserfc import jwt
from joserfc.jwk import KeySet

from conftest import SECRET_KEY
from conftest import kid_of
from conftest import ropc_of
from conftest import table_rows

ROOT = Path(__file__).resolve().parent.parent
DAY = 24 * 3600
STEP = 13 * 3600
DAYS = 200
MAX_AGE = 2 * DAY
LIFETIME = 2 * DAY
CONFIG = {
    "ROPC_KEY_ROTATION_ENABLED": True,
    "ROPC_JWKS_MAX_AGE": MAX_AGE,
    "ROPC_ACCESS_TOKEN_LIFETIME": LIFETIME,
}


class Worker:
    """A worker process whose clock the test moves."""

    def __init__(self, env: dict[str, str]) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, str(ROOT / "tests" / "key_sim_worker.py")],
            env=env,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )

    def send(self, at: int) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.write(json.dumps({"at": at}) + "\n")
        self.proc.stdin.flush()

    def receive(self) -> dict[str, t.Any]:
        assert self.proc.stdout is not None
        line = self.proc.stdout.readline()
        assert line, f"worker exited with {self.proc.wait(timeout=30)}"
        return t.cast(dict[str, t.Any], json.loads(line))

    def stop(self) -> int:
        """End the worker (its stdin closed: it exits); its exit status."""
        if self.proc.poll() is None and self.proc.stdin is not None:
            self.proc.stdin.close()
        try:
            code = self.proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            code = self.proc.wait(timeout=30)
        if self.proc.stdout is not None:
            self.proc.stdout.close()
        return code


def verifies(token: str, jwks: list[dict[str, t.Any]], now: int) -> bool:
    """Whether ``token``'s signature verifies with a key of ``jwks``."""
    try:
        decoded = jwt.decode(token, KeySet.import_key_set({"keys": jwks}))
    except Exception:
        return False
    return bool(decoded.claims["exp"] > now)


def test_two_processes_rotate_keys_for_200_days_without_a_rejected_token(
    app: flask.Flask, database_uri: str
) -> None:
    with app.app_context():
        client, secret = ropc_of(app).clients.create("Sim", scopes=["api"])
    t0 = int(app.extensions["test_clock"].freeze())
    env = dict(
        os.environ,
        PYTHONPATH=f"{ROOT}{os.pathsep}{ROOT / 'tests'}",
        SECRET_KEY=SECRET_KEY,
        SIM_DATABASE_URI=database_uri,
        SIM_T0=str(t0),
        SIM_CLIENT_ID=client.client_id,
        SIM_CLIENT_SECRET=secret or "",
        SIM_CONFIG=json.dumps(CONFIG),
    )
    workers = [Worker(env), Worker(env)]
    served: list[tuple[int, list[dict[str, t.Any]]]] = []  # (when, keys)
    tokens: list[tuple[int, str]] = []  # (signed at, token)
    signers: list[str] = []
    try:
        for at in range(0, DAYS * DAY + 1, STEP):
            now = t0 + at
            for worker in workers:  # both at once: they race for due keys
                worker.send(at)
            answers = [worker.receive() for worker in workers]
            for answer in answers:
                assert answer["token"], answer
                if answer["jwks"]:  # none before the first key: never cached
                    served.append((now, answer["jwks"]))
            kids = {kid_of(answer["token"]) for answer in answers}
            assert len(kids) == 1, f"the workers disagree at day {at / DAY:.1f}"
            if not signers or signers[-1] not in kids:
                signers.extend(kids)
            recent = [keys for when, keys in served if when >= now - MAX_AGE]
            for answer in answers:
                for keys in recent:
                    assert verifies(answer["token"], keys, now), (
                        f"a token signed at day {at / DAY:.2f} fails against a "
                        "JWKS served in the preceding max-age"
                    )
                tokens.append((now, answer["token"]))
            tokens = [(s, tok) for s, tok in tokens if s + LIFETIME > now]
            for signed, token in tokens:
                for answer in answers:
                    assert verifies(token, answer["jwks"], now), (
                        f"a token signed at day {(signed - t0) / DAY:.2f} fails "
                        f"against the JWKS of day {at / DAY:.2f}"
                    )
    finally:
        codes = [worker.stop() for worker in workers]
    assert codes == [0, 0]
    rows = table_rows(app, "ropc_signing_keys")
    assert [row.kid for row in rows] == signers
    assert len(rows) == 3
    assert [row.status for row in rows] == ["previous", "previous", "active"]
