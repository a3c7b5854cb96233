"""One worker of the two-process key lifecycle simulation (``test_key_simulation.py``).

Run as ``python key_sim_worker.py``; configured by the environment
(``SIM_DATABASE_URI``, ``SECRET_KEY``, ``SIM_T0``, ``SIM_CLIENT_ID``,
``SIM_CLIENT_SECRET``, and ``SIM_CONFIG``: JSON of extra app settings). Its
app's clock is driven over stdin: each line is ``{"at": SECONDS}`` (after
``SIM_T0``); the worker then fetches its JWKS and one token, in that
order, and answers one JSON line ``{"jwks": [...], "token": "..."}``.
"""

from __future__ import annotations

import json
import os
import sys
import typing as t

import flask

from flask_ropc import ROPC
from flask_ropc import GrantResult

PASSWORD = "correct horse battery staple"


def main() -> None:
    env = os.environ
    t0 = float(env["SIM_T0"])
    now = [t0]
    app = flask.Flask("key_sim_worker")
    app.config.update(
        SECRET_KEY=env["SECRET_KEY"],
        ROPC_DATABASE_URI=env["SIM_DATABASE_URI"],
        ROPC_ISSUER="https://sim.test",
        ROPC_THROTTLE_ENABLED=False,
        **json.loads(env["SIM_CONFIG"]),
    )
    ropc = ROPC(app, clock=lambda: now[0])

    @ropc.password_validator
    def validator(req: t.Any) -> t.Any:
        if req.username == "ann" and req.password == PASSWORD:
            return GrantResult.success(subject="user-1")
        return None

    http = app.test_client()
    auth = (env["SIM_CLIENT_ID"], env["SIM_CLIENT_SECRET"])
    form = {"grant_type": "password", "username": "ann", "password": PASSWORD}
    for line in sys.stdin:
        now[0] = t0 + json.loads(line)["at"]
        keys = http.get("/oauth/jwks")
        issued = http.post("/oauth/token", data=form, auth=auth)
        answer = {
            "jwks": keys.get_json()["keys"] if keys.status_code == 200 else None,
            "token": issued.get_json().get("access_token"),
        }
        print(json.dumps(answer), flush=True)


if __name__ == "__main__":
    main()
