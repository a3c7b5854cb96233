"""``run.py --cpu``: CPU time per request, Flask-ROPC against its floors, in-process.

Every app runs in this one process behind Flask's test client (no HTTP, no
gunicorn, no load generator); each case sends the same request as its
``run.py`` scenario. Cases are measured in interleaved rounds (the order
rotated each round) with ``time.process_time``, which counts this process's
CPU only, so other jobs on the machine barely move it; the table shows the
median per case and the median of the per-round ratios.
"""

from __future__ import annotations

import base64
import dataclasses
import functools
import statistics
import tempfile
import time
import typing as t
from collections.abc import Callable
from pathlib import Path

import apps
from flask.testing import FlaskClient

#: (case, reference, most CPU per request allowed, as a multiple).
CPU_TARGETS = (
    ("ropc-password-refresh", "floor-password-refresh", 1.2),
    ("ropc-refresh", "floor-refresh", 1.2),
    ("ropc-require-token", "floor-require-token", 1.2),
    # The req/s target is >= 0.5x bare: at most twice bare's CPU.
    ("ropc-throttled", "bare", 2.0),
)
#: (floor behind Authlib's server classes, floor): what Authlib's dispatch,
#: request objects, client authentication and resource protector cost.
AUTHLIB_SHARES = (
    ("floor-authlib-password-refresh", "floor-password-refresh"),
    ("floor-authlib-refresh", "floor-refresh"),
    ("floor-authlib-require-token", "floor-require-token"),
)
BASE_URL = "http://127.0.0.1"


def _basic(client_id: str, secret: str) -> str:
    return "Basic " + base64.b64encode(f"{client_id}:{secret}".encode()).decode()


@dataclasses.dataclass
class Case:
    """One kind of request, sent ``once()`` at a time."""

    name: str
    once: Callable[[], None]


def _poster(
    client: FlaskClient, auth: str, form: Callable[[], dict[str, str]], status: int
) -> Callable[[], t.Any]:
    def once() -> t.Any:
        response = client.post(
            apps.TOKEN_PATH,
            data=form(),
            headers={"Authorization": auth},
            base_url=BASE_URL,
        )
        if response.status_code != status:
            raise SystemExit(f"token endpoint answered {response.status_code}")
        return response.get_json()

    return once


def _password_form(username: str, password: str, scope: str) -> dict[str, str]:
    return {
        "grant_type": "password",
        "username": username,
        "password": password,
        "scope": scope,
    }


def cases(root: Path) -> list[Case]:
    """Every case, its apps and databases set up in ``root``."""
    found = [Case("bare", _bare_once())]
    for prefix, factory in (
        ("ropc", apps.create_ropc_app),
        ("floor", apps.create_floor_app),
        ("floor-authlib", functools.partial(apps.create_floor_app, on_authlib=True)),
    ):
        uri = f"sqlite:///{root / prefix}.sqlite3"
        client_id, secret = apps.setup_ropc(uri)
        client = factory(uri).test_client()
        auth = _basic(client_id, secret)
        offline = _password_form(apps.USERNAME, apps.PASSWORD, "api offline_access")
        login = _poster(client, auth, lambda form=offline: form, 200)
        found.append(Case(f"{prefix}-password-refresh", login))
        chain = [login()["refresh_token"]]

        def refresh_form(chain: list[str] = chain) -> dict[str, str]:
            return {"grant_type": "refresh_token", "refresh_token": chain[0]}

        exchange = _poster(client, auth, refresh_form, 200)

        def rotate(exchange: Callable[[], t.Any] = exchange, chain=chain) -> None:
            chain[0] = exchange()["refresh_token"]

        found.append(Case(f"{prefix}-refresh", rotate))
        access = login()["access_token"]
        found.append(
            Case(f"{prefix}-require-token", _getter(client, f"Bearer {access}"))
        )
        if prefix == "ropc":
            wrong = _password_form(apps.LOCKED_USERNAME, "wrong", "api")
            fail = _poster(client, auth, lambda form=wrong: form, 400)
            for _ in range(5):  # the default ROPC_THROTTLE_USERNAME_LIMIT
                fail()
            throttled = _poster(client, auth, lambda form=wrong: form, 429)
            found.append(Case("ropc-throttled", throttled))
    return found


def _bare_once() -> Callable[[], None]:
    client = apps.create_bare_app().test_client()
    form = _password_form(apps.USERNAME, apps.PASSWORD, "api offline_access")
    auth = _basic("bare", "bare-secret")

    def once() -> None:
        response = client.post(
            apps.TOKEN_PATH,
            data=form,
            headers={"Authorization": auth},
            base_url=BASE_URL,
        )
        assert response.status_code == 200

    return once


def _getter(client: FlaskClient, auth: str) -> Callable[[], None]:
    def once() -> None:
        response = client.get(
            apps.API_PATH, headers={"Authorization": auth}, base_url=BASE_URL
        )
        if response.status_code != 200:
            raise SystemExit(f"protected route answered {response.status_code}")

    return once


def measure(
    *, rounds: int, requests: int, log: Callable[[str], None]
) -> dict[str, t.Any]:
    """CPU ms per request of every case, per round; warmed up first."""
    with tempfile.TemporaryDirectory(prefix="ropc-cpu-") as tmp:
        every = cases(Path(tmp))
        for case in every:
            for _ in range(max(20, requests // 10)):
                case.once()
        per_round: dict[str, list[float]] = {case.name: [] for case in every}
        for index in range(rounds):
            shift = index % len(every)
            for case in every[shift:] + every[:shift]:
                started = time.process_time()
                for _ in range(requests):
                    case.once()
                ms = (time.process_time() - started) / requests * 1000
                per_round[case.name].append(ms)
            log(
                f"  cpu round {index + 1}/{rounds}: "
                + ", ".join(f"{n} {v[-1]:.3f}" for n, v in per_round.items())
            )
    return {"rounds": rounds, "requests": requests, "ms": per_round}


def markdown(result: t.Mapping[str, t.Any]) -> str:
    """The ``--cpu`` table and its targets."""
    ms = result["ms"]
    out = [
        "# Flask-ROPC CPU per request (in-process, `--cpu`)",
        "",
        f"Flask test client, `time.process_time`, {result['rounds']} interleaved "
        f"round(s) x {result['requests']} requests per case, medians.",
        "",
        "| case | CPU ms / request | range |",
        "|---|--:|--:|",
    ]
    for name, values in ms.items():
        out.append(
            f"| {name} | {statistics.median(values):.3f} | "
            f"{min(values):.3f}-{max(values):.3f} |"
        )
    out += ["", "Targets (reported, not asserted); median of the per-round ratios:", ""]
    for case, reference, most in CPU_TARGETS:
        ratio = _ratio(ms, case, reference)
        met = "met" if ratio <= most else "**not met**"
        out.append(f"- {case} CPU <= {most}x {reference}: {ratio:.2f}x, {met}")
    out += [
        "",
        "Authlib's share: the floor's same work behind Authlib's server classes",
        "(`AuthorizationServer`, its password and refresh grants, client_secret_basic,",
        "`ResourceProtector`), which any server built on them pays:",
        "",
    ]
    for case, reference in AUTHLIB_SHARES:
        out.append(f"- {case}: {_ratio(ms, case, reference):.2f}x {reference}")
    return "\n".join(out) + "\n"


def _ratio(ms: t.Mapping[str, list[float]], case: str, reference: str) -> float:
    """The median of the per-round ratios of ``case`` to ``reference``."""
    return statistics.median(
        a / b for a, b in zip(ms[case], ms[reference], strict=True)
    )
