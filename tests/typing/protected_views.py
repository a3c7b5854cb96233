"""A user's app, checked with ``mypy --strict`` (``.ci/run``), never run.

``@ropc.require_token`` in both forms must keep the decorated view's
signature: under ``--strict`` an untyped decorator is an error ("Untyped
decorator makes function untyped"), each assignment below needs the view's
exact type, and each call marked ``type: ignore[...]`` must really be an
error (``warn_unused_ignores`` is part of ``--strict``): a decorator that
returned ``Any`` would make those ignores unused, and fail the check.
"""

from __future__ import annotations

from collections.abc import Callable

import flask

from flask_ropc import ROPC
from flask_ropc import current_token

app = flask.Flask(__name__)
ropc = ROPC(app)


@app.get("/items/<int:item_id>")
@ropc.require_token("api")
def item(item_id: int) -> dict[str, str | int]:
    return {"id": item_id, "sub": current_token.subject}


@app.get("/me")
@ropc.require_token
def me() -> str:
    return current_token.subject


@app.get("/admin")
@ropc.require_token(["api", "admin"])
def admin() -> tuple[str, int]:
    return "ok", 200


@app.get("/any")
@ropc.require_token()
def any_token() -> str:
    return current_token.client_id


@app.get("/transfer/<int:amount>")
@ropc.require_token("payments", acr="urn:flask-ropc:acr:mfa", max_age=300)
def transfer(amount: int) -> dict[str, int | str | None]:
    return {"amount": amount, "acr": current_token.acr, "at": current_token.auth_time}


@app.get("/recent")
@ropc.require_token(acr=["urn:a", "urn:b"])
def recent() -> str:
    amr: tuple[str, ...] = current_token.amr
    return " ".join(amr)


# The exact types survive the decorator.
item_view: Callable[[int], dict[str, str | int]] = item
me_view: Callable[[], str] = me
admin_view: Callable[[], tuple[str, int]] = admin
any_view: Callable[[], str] = any_token
transfer_view: Callable[[int], dict[str, int | str | None]] = transfer
recent_view: Callable[[], str] = recent

# And wrong uses are errors, as they are without the decorator.
item("seven")  # type: ignore[arg-type]
me(1)  # type: ignore[call-arg]
wrong_result: int = admin()  # type: ignore[assignment]
transfer("ten")  # type: ignore[arg-type]
ropc.require_token("api", max_age="300")  # type: ignore[call-overload]
