"""Benchmark Flask-ROPC's token endpoint against a bare Flask endpoint and
against a password-grant server written the way Authlib's documentation shows.

Run from the repository root::

    .venv/bin/python benchmarks/run.py            # full: 20-40 minutes
    .venv/bin/python benchmarks/run.py --quick    # 1 round, ~2 s a scenario
    .venv/bin/python benchmarks/run.py --cpu      # in-process CPU per request

It prints a Markdown table and writes ``benchmarks/results/latest.md``,
``latest.json`` and ``benchmark.png``. See ``benchmarks/README.md``.
Exit status: 0 when every server started and every scenario answered mostly
2xx; 1 otherwise (the numbers themselves are never asserted).
"""

from __future__ import annotations

import argparse
import base64
import dataclasses
import json
import os
import platform
import secrets
import statistics
import subprocess
import sys
import tempfile
import time
import traceback
import typing as t
from collections.abc import Callable
from contextlib import ExitStack
from importlib import metadata
from pathlib import Path
from urllib.parse import urlencode

import apps
import cpu
import dpop_load
import report
import requests
import sqlalchemy as sa
from harness import BenchmarkError
from harness import Server
from harness import WrkResult
from harness import count_script
from harness import expect_status_script
from harness import refresh_chain_script
from harness import run_wrk
from harness import run_wrk_count
from harness import static_script
from harness import wrk_version

BENCH_DIR = Path(__file__).resolve().parent
RESULTS_DIR = BENCH_DIR / "results"
DEFAULT_PG_URL = "postgresql+psycopg://postgres@127.0.0.1:5432/test"
#: A scenario whose runs have more errors than this share fails the run.
MAX_ERROR_RATIO = 0.5
#: Above this share of non-2xx answers a scenario gets a warning.
WARN_ERROR_RATIO = 0.005
FORM = "application/x-www-form-urlencoded"


def log(message: str) -> None:
    """Progress goes to stderr, so that stdout is just the report."""
    print(message, file=sys.stderr, flush=True)


@dataclasses.dataclass(frozen=True)
class Credentials:
    """A registered client. ``repr`` hides the secret."""

    client_id: str
    secret: str = dataclasses.field(repr=False)

    def basic(self) -> str:
        """The ``Authorization: Basic`` header value (RFC 6749 §2.3.1)."""
        raw = f"{self.client_id}:{self.secret}".encode()
        return "Basic " + base64.b64encode(raw).decode()


def password_form(scope: str) -> str:
    """The body of a password grant request for the benchmark user."""
    return urlencode(
        {
            "grant_type": "password",
            "username": apps.USERNAME,
            "password": apps.PASSWORD,
            "scope": scope,
        }
    )


def get_tokens(base_url: str, creds: Credentials, scope: str) -> dict[str, t.Any]:
    """One password grant with ``requests``; the token response."""
    response = requests.post(
        base_url + apps.TOKEN_PATH,
        data=password_form(scope),
        headers={"Content-Type": FORM, "Authorization": creds.basic()},
        timeout=30,
    )
    if response.status_code != 200:
        raise BenchmarkError(
            f"password grant at {base_url} answered {response.status_code}"
        )
    return t.cast(dict[str, t.Any], response.json())


def lock_pair(base_url: str, creds: Credentials) -> None:
    """Lock ``apps.LOCKED_USERNAME`` from 127.0.0.1 (ropc-throttled's pair):
    wrong passwords until the token endpoint answers 429."""
    for _ in range(10):
        response = requests.post(
            base_url + apps.TOKEN_PATH,
            data={
                "grant_type": "password",
                "username": apps.LOCKED_USERNAME,
                "password": "wrong",
                "scope": "api",
            },
            headers={"Authorization": creds.basic()},
            timeout=30,
        )
        if response.status_code == 429:
            return
    raise BenchmarkError("ten wrong passwords did not lock the throttled pair")


# -- scenarios ------------------------------------------------------------------


@dataclasses.dataclass
class Plan:
    """One wrk invocation: script, its arguments, threads and connections."""

    url: str
    script: Path
    args: list[str] = dataclasses.field(default_factory=list)
    threads: int = 1
    connections: int = 4


@dataclasses.dataclass
class Scenario:
    """A named load; ``prepare`` is called before every run of it."""

    name: str
    description: str
    prepare: Callable[[], Plan]


class Workspace:
    """Temporary directory for databases, logs and wrk scripts."""

    def __init__(self, root: Path) -> None:
        self.root = root

    def write(self, name: str, text: str) -> Path:
        """Write a private file (wrk scripts hold client secrets)."""
        path = self.root / name
        path.write_text(text)
        path.chmod(0o600)
        return path

    def sqlite_uri(self, name: str) -> str:
        """An SQLite URI for a new database file in the workspace."""
        return f"sqlite:///{self.root / name}"


def build_scenarios(
    ws: Workspace,
    servers: t.Mapping[str, Server],
    ropc: Credentials,
    authlib: Credentials,
    floor: Credentials,
    connections: int,
    dpop_proofs: int = 30_000,
) -> list[Scenario]:
    """The scenarios of the main table, in their reporting order.

    The two DPoP scenarios sign ``dpop_proofs`` single-use proofs before
    each run (more than a run can send).
    """
    token_headers_authlib = {"Content-Type": FORM, "Authorization": authlib.basic()}
    token_headers_ropc = {"Content-Type": FORM, "Authorization": ropc.basic()}
    refresh_body = password_form("api offline_access")

    def static(name: str, server: str, text: str, path: str = apps.TOKEN_PATH) -> Plan:
        script = ws.write(f"{name}.lua", text)
        return Plan(servers[server].base_url + path, script, connections=connections)

    bare = static(
        "bare",
        "bare",
        static_script("POST", apps.TOKEN_PATH, token_headers_authlib, refresh_body),
    )
    authlib_docs = static(
        "authlib-docs",
        "authlib-docs",
        static_script("POST", apps.TOKEN_PATH, token_headers_authlib, refresh_body),
    )
    jwt = static(
        "ropc-password-jwt",
        "ropc",
        static_script(
            "POST", apps.TOKEN_PATH, token_headers_ropc, password_form("api")
        ),
    )
    password_refresh = static(
        "ropc-password-refresh",
        "ropc",
        static_script("POST", apps.TOKEN_PATH, token_headers_ropc, refresh_body),
    )
    floor_refresh = static(
        "floor-password-refresh",
        "floor",
        static_script(
            "POST",
            apps.TOKEN_PATH,
            {"Content-Type": FORM, "Authorization": floor.basic()},
            refresh_body,
        ),
    )
    floor_headers = {"Content-Type": FORM, "Authorization": floor.basic()}
    throttled = ws.write(
        "ropc-throttled.lua",
        expect_status_script(
            "POST",
            apps.TOKEN_PATH,
            token_headers_ropc,
            urlencode(
                {
                    "grant_type": "password",
                    "username": apps.LOCKED_USERNAME,
                    "password": "wrong",
                    "scope": "api",
                }
            ),
            429,
        ),
    )
    chain = ws.write(
        "ropc-refresh.lua", refresh_chain_script(apps.TOKEN_PATH, token_headers_ropc)
    )
    floor_chain = ws.write(
        "floor-refresh.lua", refresh_chain_script(apps.TOKEN_PATH, floor_headers)
    )
    ropc_url = servers["ropc"].base_url
    floor_url = servers["floor"].base_url

    def refresh(url: str, creds: Credentials, script: Path) -> Plan:
        # One-time tokens: every run starts new chains, one per thread.
        tokens = [
            get_tokens(url, creds, "api offline_access")["refresh_token"]
            for _ in range(connections)
        ]
        return Plan(
            url + apps.TOKEN_PATH,
            script,
            args=tokens,
            threads=connections,
            connections=connections,
        )

    def require_token(name: str, url: str, creds: Credentials) -> Plan:
        access = get_tokens(url, creds, "api")["access_token"]
        script = ws.write(
            f"{name}.lua",
            static_script("GET", apps.API_PATH, {"Authorization": f"Bearer {access}"}),
        )
        return Plan(url + apps.API_PATH, script, connections=connections)

    maker = dpop_load.ProofMaker()

    def password_dpop() -> Plan:
        proofs = maker.write(
            ws.root / "dpop-password.txt",
            "POST",
            apps.ISSUER + apps.TOKEN_PATH,
            dpop_proofs,
        )
        script = ws.write(
            "ropc-password-dpop.lua",
            dpop_load.proof_script(
                "POST",
                apps.TOKEN_PATH,
                token_headers_ropc,
                proofs,
                password_form("api"),
            ),
        )
        return Plan(ropc_url + apps.TOKEN_PATH, script, connections=connections)

    def require_token_dpop() -> Plan:
        proof = maker.proof("POST", apps.ISSUER + apps.TOKEN_PATH)
        response = requests.post(
            ropc_url + apps.TOKEN_PATH,
            data=password_form("api"),
            headers={**token_headers_ropc, "DPoP": proof},
            timeout=30,
        )
        response.raise_for_status()
        access = response.json()["access_token"]
        proofs = maker.write(
            ws.root / "dpop-api.txt",
            "GET",
            apps.ISSUER + apps.API_PATH,
            dpop_proofs,
            token=access,
        )
        script = ws.write(
            "ropc-require-token-dpop.lua",
            dpop_load.proof_script(
                "GET", apps.API_PATH, {"Authorization": f"DPoP {access}"}, proofs
            ),
        )
        return Plan(ropc_url + apps.API_PATH, script, connections=connections)

    return [
        Scenario("bare", "bare Flask POST, same form, small JSON", lambda: bare),
        Scenario(
            "authlib-docs",
            "Authlib's documented password grant, opaque tokens + refresh token",
            lambda: authlib_docs,
        ),
        Scenario("ropc-password-jwt", "password grant, ES256 JWT", lambda: jwt),
        Scenario(
            "ropc-password-refresh",
            "password grant, scope 'api offline_access' (JWT + refresh token)",
            lambda: password_refresh,
        ),
        Scenario(
            "ropc-refresh",
            "refresh grant, chained one-time tokens",
            lambda: refresh(ropc_url, ropc, chain),
        ),
        Scenario(
            "ropc-require-token",
            "GET on @ropc.require_token('api') with a Bearer JWT",
            lambda: require_token("ropc-require-token", ropc_url, ropc),
        ),
        Scenario(
            "ropc-throttled",
            "password grant of a locked username/IP pair, refused with 429",
            lambda: Plan(
                ropc_url + apps.TOKEN_PATH, throttled, connections=connections
            ),
        ),
        Scenario(
            "ropc-password-dpop",
            "ropc-password-jwt with a DPoP proof (ES256), a DPoP-bound JWT",
            password_dpop,
        ),
        Scenario(
            "ropc-require-token-dpop",
            "ropc-require-token with Authorization: DPoP and a proof with ath",
            require_token_dpop,
        ),
        Scenario(
            "floor-password-refresh",
            "ropc-password-refresh's SQL and JWT hand-written on sqlite3 (apps.py)",
            lambda: floor_refresh,
        ),
        Scenario(
            "floor-refresh",
            "ropc-refresh's SQL and JWT hand-written on sqlite3",
            lambda: refresh(floor_url, floor, floor_chain),
        ),
        Scenario(
            "floor-require-token",
            "ropc-require-token's ES256 check and row lookup on sqlite3",
            lambda: require_token("floor-require-token", floor_url, floor),
        ),
    ]


def execute(scenario: Scenario, seconds: float) -> WrkResult:
    """Run one scenario once."""
    plan = scenario.prepare()
    return run_wrk(
        plan.url,
        plan.script,
        seconds=seconds,
        threads=plan.threads,
        connections=plan.connections,
        script_args=plan.args,
    )


def measure_rounds(
    scenarios: t.Sequence[Scenario], rounds: int, seconds: float, warmup: float
) -> dict[str, list[WrkResult]]:
    """Warm up every scenario, then run interleaved rounds (order rotated)."""
    for scenario in scenarios:
        result = execute(scenario, warmup)
        log(f"  warm-up {scenario.name:<24} {result.rps:8.0f} req/s")
        if result.error_ratio > MAX_ERROR_RATIO:
            raise BenchmarkError(
                f"{scenario.name}: {result.errors} of {result.requests} requests "
                "failed during the warm-up"
            )
    results: dict[str, list[WrkResult]] = {s.name: [] for s in scenarios}
    for index in range(rounds):
        shift = index % len(scenarios)
        order = list(scenarios[shift:]) + list(scenarios[:shift])
        for scenario in order:
            result = execute(scenario, seconds)
            results[scenario.name].append(result)
            log(
                f"  round {index + 1}/{rounds} {scenario.name:<24} "
                f"{result.rps:8.0f} req/s  p99 {result.p99_ms:7.2f} ms  "
                f"non-2xx {result.non_2xx}"
            )
    return results


def summarise(runs: t.Sequence[WrkResult]) -> dict[str, t.Any]:
    """Medians (and the range of req/s) over a scenario's rounds."""
    return {
        "rps": statistics.median(r.rps for r in runs),
        "rps_min": min(r.rps for r in runs),
        "rps_max": max(r.rps for r in runs),
        "p50_ms": statistics.median(r.p50_ms for r in runs),
        "p99_ms": statistics.median(r.p99_ms for r in runs),
        "requests": sum(r.requests for r in runs),
        "non_2xx": sum(r.non_2xx for r in runs),
        "errors": sum(r.errors for r in runs),
    }


def check_errors(name: str, runs: t.Sequence[WrkResult], failures: list[str]) -> None:
    """Record a failure for mostly-error runs; warn about a few errors."""
    requests_total = sum(r.requests for r in runs)
    errors = sum(r.errors for r in runs)
    if any(r.error_ratio > MAX_ERROR_RATIO for r in runs):
        failures.append(f"{name}: {errors} of {requests_total} requests failed")
    elif requests_total and errors / requests_total > WARN_ERROR_RATIO:
        log(f"WARNING: {name}: {errors} of {requests_total} requests failed")


# -- (e) PostgreSQL with a lot of stored data -----------------------------------

_BULK_CLIENTS = """
INSERT INTO ropc_clients (client_id, name, secret_digest, token_endpoint_auth_method,
    scopes, grant_types, enabled, is_resource_server, trusted_backend,
    password_grant_count, created_at)
SELECT 'bulk' || lpad(to_hex(i), 12, '0'), 'Bulk client ' || i,
    md5('secret' || i) || md5('digest' || i), 'client_secret_basic',
    'api', 'password refresh_token', true, false, false, 0, :now
FROM generate_series(CAST(:first AS bigint), CAST(:last AS bigint)) AS i
"""
# Tokens of the bulk clients, issued over the last day: most live, some
# expired, 2% revoked.
_BULK_TOKENS = """
INSERT INTO ropc_access_tokens (token_digest, client_id, subject, grant_type,
    scope, claims, issued_at, expires_at, revoked_at)
SELECT md5('access' || i) || md5('token' || i),
    'bulk' || lpad(to_hex(1 + i % CAST(:clients AS bigint)), 12, '0'),
    'user' || (i % 250000), 'password', 'api', '{}',
    CAST(:now AS bigint) - i % 86400, CAST(:now AS bigint) - i % 86400 + 86400,
    CASE WHEN i % 50 = 0 THEN CAST(:now AS bigint) - i % 3600 END
FROM generate_series(CAST(:first AS bigint), CAST(:last AS bigint)) AS i
"""


def _count(conn: sa.Connection, table: str) -> int:
    return int(conn.execute(sa.text(f"SELECT count(*) FROM {table}")).scalar_one())  # noqa: S608


def _bulk_load(
    engine: sa.Engine, *, clients: int, tokens: int, chunk: int = 1_000_000
) -> None:
    """Grow the database to ``clients`` clients and ``tokens`` more tokens.

    As PostgreSQL's "Populating a Database" advises, the access token table's
    secondary indexes and constraints are dropped for the load and rebuilt
    from their own catalog definitions afterwards.
    """
    now = int(time.time())
    with engine.connect() as conn:
        conn.execute(sa.text("SET maintenance_work_mem = '1GB'"))
        conn.execute(sa.text("SET synchronous_commit = off"))
        have = _count(conn, "ropc_clients") - 1  # the benchmark's own client
        if clients - 1 > have:
            conn.execute(
                sa.text(_BULK_CLIENTS),
                {"now": now, "first": have + 1, "last": clients - 1},
            )
            conn.commit()
        log(f"    clients: {_count(conn, 'ropc_clients'):,}")
        if tokens <= 0:
            return
        table = "ropc_access_tokens"
        constraints = conn.execute(
            sa.text(
                "SELECT conname, pg_get_constraintdef(oid) FROM pg_constraint "
                "WHERE conrelid = CAST(:t AS regclass) AND contype IN ('u', 'f')"
            ),
            {"t": table},
        ).all()
        indexes = conn.execute(
            sa.text(
                "SELECT indexname, indexdef FROM pg_indexes "
                "WHERE schemaname = current_schema() AND tablename = :t "
                "AND indexname NOT IN (SELECT conname FROM pg_constraint "
                "WHERE conrelid = CAST(:t AS regclass))"
            ),
            {"t": table},
        ).all()
        for name, _ in constraints:
            conn.execute(sa.text(f'ALTER TABLE {table} DROP CONSTRAINT "{name}"'))
        for name, _ in indexes:
            conn.execute(sa.text(f'DROP INDEX "{name}"'))
        conn.commit()
        started = time.monotonic()
        for first in range(1, tokens + 1, chunk):
            last = min(tokens, first + chunk - 1)
            conn.execute(
                sa.text(_BULK_TOKENS),
                {"now": now, "clients": clients - 1, "first": first, "last": last},
            )
            conn.commit()
            log(
                f"    access tokens: {last:,}/{tokens:,} "
                f"({time.monotonic() - started:.0f} s)"
            )
        for name, definition in indexes:
            log(f"    rebuilding index {name}")
            conn.execute(sa.text(definition))
            conn.commit()
        for name, definition in constraints:
            log(f"    rebuilding constraint {name}")
            conn.execute(
                sa.text(f'ALTER TABLE {table} ADD CONSTRAINT "{name}" {definition}')
            )
            conn.commit()


def _analyze(engine: sa.Engine) -> None:
    """Fresh planner statistics, and the load's dirty pages written out."""
    with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
        conn.execute(sa.text("ANALYZE"))
        conn.execute(sa.text("CHECKPOINT"))


def pg_scale(
    ws: Workspace,
    pg_url: str,
    *,
    rounds: int,
    seconds: float,
    warmup: float,
    clients: int = 1_000_000,
    tokens: int = 10_000_000,
) -> dict[str, t.Any]:
    """(e) ropc-password-jwt with little and with a lot of stored data.

    One database ``ropc_bench_<random>`` holds two schemas: ``small`` (a
    fresh install with 10 clients) and ``large`` (``clients`` clients and
    ``tokens`` access tokens). Each gets its own gunicorn server (connecting
    with that ``search_path``), and the two are measured in interleaved
    rounds, so that drifting load on the machine hits both alike.
    """
    admin = sa.create_engine(sa.make_url(pg_url), isolation_level="AUTOCOMMIT")
    name = "ropc_bench_" + secrets.token_hex(4)
    result: dict[str, t.Any] = {"database": name, "rounds": rounds, "seconds": seconds}
    with admin.connect() as conn:
        result["server_version"] = conn.execute(sa.text("SHOW server_version")).scalar()
        conn.execute(sa.text(f'CREATE DATABASE "{name}"'))
    engines: dict[str, sa.Engine] = {}
    try:
        uris, creds = {}, {}
        for label in ("small", "large"):
            url = (
                sa.make_url(pg_url)
                .set(database=name)
                .update_query_dict({"options": f"-csearch_path={label}"})
            )
            uris[label] = url.render_as_string(hide_password=False)
            engines[label] = sa.create_engine(url)
            with engines[label].begin() as conn:
                conn.execute(sa.text(f"CREATE SCHEMA {label}"))
            creds[label] = Credentials(*apps.setup_ropc(uris[label]))
        _bulk_load(engines["small"], clients=10, tokens=0)
        log(f"  bulk load of 'large': {clients:,} clients, {tokens:,} access tokens")
        started = time.monotonic()
        _bulk_load(engines["large"], clients=clients, tokens=tokens)
        _analyze(engines["large"])
        result["load_seconds"] = time.monotonic() - started
        with ExitStack() as stack:
            scenarios = []
            for label in ("small", "large"):
                server = stack.enter_context(
                    Server("ropc", uris[label], ws.root / f"gunicorn-pg-{label}.log")
                )
                get_tokens(server.base_url, creds[label], "api")  # key, connections
                script = ws.write(
                    f"pg-{label}.lua",
                    static_script(
                        "POST",
                        apps.TOKEN_PATH,
                        {"Content-Type": FORM, "Authorization": creds[label].basic()},
                        password_form("api"),
                    ),
                )
                plan = Plan(server.base_url + apps.TOKEN_PATH, script)
                scenarios.append(Scenario(label, "", lambda plan=plan: plan))
            runs = measure_rounds(scenarios, rounds, seconds, warmup)
        for label in ("small", "large"):
            with engines[label].connect() as conn:
                counts = {
                    "clients": _count(conn, "ropc_clients"),
                    "access_tokens": _count(conn, "ropc_access_tokens"),
                }
            result[label] = {**counts, **summarise(runs[label])}
            result[label]["runs"] = [dataclasses.asdict(r) for r in runs[label]]
            log(
                f"  {label}: {counts['clients']:,} clients, "
                f"{counts['access_tokens']:,} access tokens at the end"
            )
        result["ratio"] = result["large"]["rps"] / result["small"]["rps"]
        return result
    finally:
        for engine in engines.values():
            engine.dispose()
        with admin.connect() as conn:
            conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()
        log(f"  dropped database {name}")


# -- (f) memory -------------------------------------------------------------------


def memory_growth(ws: Workspace, checkpoints: t.Sequence[int]) -> dict[str, t.Any]:
    """(f) Worker RSS after each number of ropc-password-jwt requests."""
    uri = ws.sqlite_uri("memory.sqlite3")
    creds = Credentials(*apps.setup_ropc(uri))
    script = ws.write(
        "memory.lua",
        count_script(
            "POST",
            apps.TOKEN_PATH,
            {"Content-Type": FORM, "Authorization": creds.basic()},
            password_form("api"),
        ),
    )
    points: list[dict[str, int]] = []
    served = non_2xx = 0
    with Server("ropc", uri, ws.root / "gunicorn-memory.log") as server:
        get_tokens(server.base_url, creds, "api")  # key generation, connections
        url = server.base_url + apps.TOKEN_PATH
        for target in checkpoints:
            count = target - served
            started = time.monotonic()
            done, bad = run_wrk_count(
                url, script, count=count, max_seconds=count / 50 + 60
            )
            served += done
            non_2xx += bad
            rss = server.worker_rss_kib()
            points.append({"requests": served, "rss_kib": rss})
            log(
                f"  {served:>7,} requests: VmRSS {rss / 1024:.1f} MiB "
                f"({done / (time.monotonic() - started):.0f} req/s, non-2xx {bad})"
            )
    first, last = points[0]["rss_kib"], points[-1]["rss_kib"]
    return {
        "points": points,
        "non_2xx": non_2xx,
        "growth_pct": (last - first) / first * 100,
    }


# -- machine and main -----------------------------------------------------------


def _git_commit() -> str:
    """The checkout's commit, ``+dirty`` if it has uncommitted changes."""
    try:
        head = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"],
            cwd=BENCH_DIR,
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--", "flask_ropc"],
            cwd=BENCH_DIR.parent,
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"
    return head + ("+dirty" if dirty else "")


def machine_info() -> dict[str, t.Any]:
    """CPU, memory and versions, for the report."""
    cpu = "unknown CPU"
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            cpu = line.split(":", 1)[1].strip()
            break
    meminfo = Path("/proc/meminfo").read_text().split()
    memory_kib = int(meminfo[meminfo.index("MemTotal:") + 1])
    return {
        "cpu_model": cpu,
        "cores": os.cpu_count(),
        "memory_gib": memory_kib / 1024 / 1024,
        "os": platform.platform(),
        "python": platform.python_version(),
        "flask": metadata.version("flask"),
        "authlib": metadata.version("authlib"),
        "sqlalchemy": metadata.version("sqlalchemy"),
        "flask_ropc": metadata.version("flask-ropc"),
        "gunicorn": metadata.version("gunicorn"),
        "wrk": wrk_version(),
        "flask_ropc_commit": _git_commit(),
        "loadavg_start": os.getloadavg()[0],
    }


def optional_part(
    label: str, failures: list[str], func: Callable[[], dict[str, t.Any]]
) -> dict[str, t.Any] | None:
    """Run (e) or (f); a crash is recorded as a failure, not fatal to the report."""
    try:
        return func()
    except Exception as exc:  # report what was measured, then exit 1
        log(traceback.format_exc())
        failures.append(f"{label} failed: {type(exc).__name__}: {exc}")
        return None


def parse_args(argv: t.Sequence[str] | None = None) -> argparse.Namespace:
    """Command-line options."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--quick",
        action="store_true",
        help="1 round of ~2 s per scenario, no PostgreSQL scale or memory test",
    )
    parser.add_argument(
        "--cpu",
        action="store_true",
        help="only the in-process CPU comparison (cpu.py): Flask test client, "
        "time.process_time, interleaved rounds",
    )
    parser.add_argument(
        "--cpu-requests",
        type=int,
        help="requests per case and round in --cpu (default 500, quick 100)",
    )
    parser.add_argument("--rounds", type=int, help="rounds (default 5, quick 1)")
    parser.add_argument(
        "--seconds", type=float, help="seconds per run (default 10, quick 2)"
    )
    parser.add_argument(
        "--connections", type=int, default=4, help="wrk connections (default 4)"
    )
    parser.add_argument(
        "--pg-url",
        default=os.environ.get("BENCH_PG_URL", DEFAULT_PG_URL),
        help="PostgreSQL server for (e); a database ropc_bench_* is created on it",
    )
    parser.add_argument("--skip-pg", action="store_true", help="skip (e)")
    parser.add_argument(
        "--pg-clients", type=int, default=1_000_000, help="clients for (e)"
    )
    parser.add_argument(
        "--pg-tokens", type=int, default=10_000_000, help="access tokens for (e)"
    )
    parser.add_argument("--skip-memory", action="store_true", help="skip (f)")
    parser.add_argument(
        "--results-dir",
        type=Path,
        default=RESULTS_DIR,
        help="where latest.md, latest.json and benchmark.png go",
    )
    parser.add_argument(
        "--memory-requests",
        type=int,
        default=100_000,
        help="requests for (f) (default 100000; RSS compared with 1000)",
    )
    return parser.parse_args(argv)


def main(argv: t.Sequence[str] | None = None) -> int:
    """Run the benchmark; return the process exit status."""
    args = parse_args(argv)
    if args.cpu:
        return cpu_main(args)
    rounds = args.rounds or (1 if args.quick else 5)
    seconds = args.seconds or (2.0 if args.quick else 10.0)
    warmup = 1.0 if args.quick else 3.0
    data: dict[str, t.Any] = {
        "machine": machine_info(),
        "settings": {
            "mode": "quick" if args.quick else "full",
            "rounds": rounds,
            "seconds": seconds,
            "warmup_seconds": warmup,
            "threads": 1,
            "connections": args.connections,
            "server": "gunicorn -w 1 (sync), taskset -c 0",
            "load": "wrk --latency, taskset -c 1",
        },
    }
    failures: list[str] = []
    results_dir: Path = args.results_dir
    results_dir.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="ropc-bench-") as tmp, ExitStack() as stack:
        ws = Workspace(Path(tmp))
        try:
            log("setting up databases")
            ropc_uri = ws.sqlite_uri("ropc.sqlite3")
            authlib_uri = ws.sqlite_uri("authlib.sqlite3")
            ropc = Credentials(*apps.setup_ropc(ropc_uri))
            authlib = Credentials(*apps.setup_authlib_docs(authlib_uri))
            floor_uri = ws.sqlite_uri("floor.sqlite3")
            floor = Credentials(*apps.setup_ropc(floor_uri))
            servers = {}
            for name, uri in (
                ("bare", ""),
                ("authlib-docs", authlib_uri),
                ("ropc", ropc_uri),
                ("floor", floor_uri),
            ):
                log(f"starting gunicorn: {name}")
                servers[name] = stack.enter_context(
                    Server(name, uri, ws.root / f"gunicorn-{name}.log")
                )
            # The first token request generates the signing key and opens the
            # database connections: keep that out of the warm-up.
            get_tokens(servers["authlib-docs"].base_url, authlib, "api")
            get_tokens(servers["ropc"].base_url, ropc, "api")
            lock_pair(servers["ropc"].base_url, ropc)
            scenarios = build_scenarios(
                ws, servers, ropc, authlib, floor, args.connections
            )
            log(f"measuring: {rounds} round(s) x {seconds:g} s")
            runs = measure_rounds(scenarios, rounds, seconds, warmup)
            stack.close()  # the main servers are done
            summary = {name: summarise(results) for name, results in runs.items()}
            for name, row in summary.items():
                row["vs_bare"] = row["rps"] / summary["bare"]["rps"]
                row["vs_authlib_docs"] = row["rps"] / summary["authlib-docs"]["rps"]
                check_errors(name, runs[name], failures)
            data["summary"] = summary
            data["runs"] = {
                name: [dataclasses.asdict(r) for r in results]
                for name, results in runs.items()
            }
        except (BenchmarkError, requests.RequestException) as exc:
            failures.append(str(exc))
            log(f"FAILED: {exc}")
        if "summary" in data and not args.quick and not args.skip_pg:
            log("(e) PostgreSQL scale")
            data["pg_scale"] = optional_part(
                "(e)",
                failures,
                lambda: pg_scale(
                    ws,
                    args.pg_url,
                    rounds=rounds,
                    seconds=seconds,
                    warmup=warmup,
                    clients=args.pg_clients,
                    tokens=args.pg_tokens,
                ),
            )
        if "summary" in data and not args.quick and not args.skip_memory:
            log("(f) worker memory")
            checkpoints = sorted(
                {1_000, 10_000, args.memory_requests // 2, args.memory_requests}
            )
            data["memory"] = optional_part(
                "(f)", failures, lambda: memory_growth(ws, checkpoints)
            )
    data["machine"]["loadavg_end"] = os.getloadavg()[0]
    data["failures"] = failures
    (results_dir / "latest.json").write_text(json.dumps(data, indent=2) + "\n")
    if "summary" in data:
        text = report.markdown(data)
        (results_dir / "latest.md").write_text(text)
        report.chart(data, results_dir / "benchmark.png")
        print(text)
        log(f"wrote {results_dir / 'latest.md'}, latest.json and benchmark.png")
    else:
        print("Benchmark failed:\n" + "\n".join(f"- {f}" for f in failures))
    return 1 if failures else 0


def cpu_main(args: argparse.Namespace) -> int:
    """``--cpu``: print and write ``cpu.md`` and ``cpu.json``."""
    rounds = args.rounds or (3 if args.quick else 9)
    requests_per_case = args.cpu_requests or (100 if args.quick else 500)
    log(f"in-process CPU: {rounds} round(s) x {requests_per_case} requests per case")
    result = cpu.measure(rounds=rounds, requests=requests_per_case, log=log)
    result["machine"] = machine_info()
    results_dir: Path = args.results_dir
    results_dir.mkdir(parents=True, exist_ok=True)
    text = cpu.markdown(result)
    machine = result["machine"]
    text += (
        f"\nMachine: {machine['cpu_model']}, {machine['cores']} cores; load average "
        f"(1 min) {machine['loadavg_start']:.2f} at start; Flask-ROPC at "
        f"{machine['flask_ropc_commit']}.\n"
    )
    (results_dir / "cpu.json").write_text(json.dumps(result, indent=2) + "\n")
    (results_dir / "cpu.md").write_text(text)
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
