"""Load and soak: a steady mix of good and bad requests against two workers.

Starts ``examples/deploy/wsgi.py`` under gunicorn with two workers on a
PostgreSQL database and a Redis key prefix of its own, then holds a mixed
load for ``--duration`` seconds:

* password logins with offline access (right password),
* wrong passwords for random usernames (throttling sees many names),
* refreshes of the tokens obtained (rotation),
* calls of the protected route with a live token and with garbage,
* requests with a wrong client secret.

It reports the requests served per kind, the status classes, the 5xx count
(which must be 0: the script exits 1 otherwise), the workers' memory at start
and end, and whether the database holds exactly the tokens that were issued.

The load generator is Python threads rather than ``wrk``: the mix needs to
carry state between requests (a refresh token from one response is the next
request's input) and to check each answer, which ``wrk``'s Lua cannot do
across connections. Throughput is not what this measures; ``run.py`` is.

Usage::

    .venv/bin/python benchmarks/soak.py --duration 60
"""

from __future__ import annotations

import argparse
import collections
import json
import os
import random
import secrets
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import requests
import sqlalchemy as sa

ROOT = Path(__file__).resolve().parent.parent
PASSWORD = "correct horse battery staple"


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return 0


def _worker_pids(master: int) -> list[int]:
    children = Path(f"/proc/{master}/task/{master}/children")
    return [int(pid) for pid in children.read_text().split()]


class Soak:
    """One soak run: server, load, and the tallies."""

    def __init__(self, url: str, client: dict[str, str]) -> None:
        self.url = url
        self.auth = (client["client_id"], client["client_secret"])
        self.counts: collections.Counter[str] = collections.Counter()
        self.statuses: collections.Counter[str] = collections.Counter()
        self.issued = collections.Counter[str]()
        self.lock = threading.Lock()

    def _tally(self, kind: str, response: requests.Response) -> None:
        with self.lock:
            self.counts[kind] += 1
            self.statuses[f"{kind} {response.status_code}"] += 1

    def _issued(self, response: requests.Response) -> tuple[str, str]:
        """Count a token response's pair; return (refresh, access) token."""
        body = response.json()
        with self.lock:
            self.issued["access"] += 1
            self.issued["refresh"] += 1
        return body["refresh_token"], body["access_token"]

    def worker(self, deadline: float, seed: int) -> None:
        """One thread of mixed requests until ``deadline``."""
        rng = random.Random(seed)  # noqa: S311 (a load mix, not security)
        session = requests.Session()
        refresh: str | None = None
        access: str | None = None
        while time.monotonic() < deadline:
            roll = rng.random()
            if roll < 0.25 or refresh is None:
                response = session.post(
                    f"{self.url}/oauth/token",
                    data={
                        "grant_type": "password",
                        "username": "ann",
                        "password": PASSWORD,
                        "scope": "api offline_access",
                    },
                    auth=self.auth,
                    timeout=30,
                )
                self._tally("login", response)
                if response.status_code == 200:
                    refresh, access = self._issued(response)
            elif roll < 0.45:
                response = session.post(
                    f"{self.url}/oauth/token",
                    data={
                        "grant_type": "password",
                        "username": f"nobody-{rng.randrange(10**9)}",
                        "password": "wrong",
                    },
                    auth=self.auth,
                    timeout=30,
                )
                self._tally("wrong-password", response)
            elif roll < 0.65:
                response = session.post(
                    f"{self.url}/oauth/token",
                    data={"grant_type": "refresh_token", "refresh_token": refresh},
                    auth=self.auth,
                    timeout=30,
                )
                self._tally("refresh", response)
                if response.status_code == 200:
                    refresh, access = self._issued(response)
                else:
                    refresh = None
            elif roll < 0.85:
                response = session.get(
                    f"{self.url}/api/me",
                    headers={"Authorization": f"Bearer {access}"},
                    timeout=30,
                )
                self._tally("api", response)
            elif roll < 0.95:
                response = session.get(
                    f"{self.url}/api/me",
                    headers={"Authorization": f"Bearer {secrets.token_urlsafe(40)}"},
                    timeout=30,
                )
                self._tally("api-garbage", response)
            else:
                response = session.post(
                    f"{self.url}/oauth/token",
                    data={
                        "grant_type": "password",
                        "username": "ann",
                        "password": PASSWORD,
                    },
                    auth=(self.auth[0], "wrong-secret"),
                    timeout=30,
                )
                self._tally("bad-client", response)


def main(argv: list[str] | None = None) -> int:
    """Run the soak; return 0 if no request got a 5xx and the rows add up."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--duration", type=float, default=60.0, help="seconds")
    parser.add_argument("--threads", type=int, default=8)
    parser.add_argument(
        "--database-url",
        default=os.environ.get(
            "ROPC_TEST_DATABASE_URL", "postgresql+psycopg://postgres@127.0.0.1/test"
        ),
    )
    parser.add_argument(
        "--redis-url",
        default=os.environ.get("ROPC_TEST_REDIS_URL", "redis://127.0.0.1:6379/0"),
    )
    args = parser.parse_args(argv)

    admin_url = sa.make_url(args.database_url).set(drivername="postgresql+psycopg")
    name = "ropc_soak_" + secrets.token_hex(5)
    admin = sa.create_engine(admin_url, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(sa.text(f'CREATE DATABASE "{name}"'))
    database_url = admin_url.set(database=name).render_as_string(hide_password=False)
    prefix = "ropc-soak-" + secrets.token_hex(5)
    port = _free_port()
    env = dict(
        os.environ,
        DATABASE_URL=database_url,
        REDIS_URL=args.redis_url,
        ROPC_ISSUER="https://auth.example.test",
        # Shared by both workers: it encrypts the signing key they store.
        SECRET_KEY=secrets.token_urlsafe(32),
        ROPC_RATELIMIT_KEY_PREFIX=prefix,
        # Every request comes from 127.0.0.1: with the default per-IP budget
        # the wrong passwords would soon lock the good logins out too.
        ROPC_THROTTLE_IP_LIMIT="1000000",
        WEB_CONCURRENCY="2",
        PORT=str(port),
        PYTHONPATH=str(ROOT),
    )
    flask_cmd = [sys.executable, "-m", "flask", "--app", "examples.deploy.wsgi"]
    server = None
    try:
        subprocess.run(
            [*flask_cmd, "ropc", "init-db"], env=env, check=True, capture_output=True
        )
        created = subprocess.run(
            [
                *flask_cmd,
                "ropc",
                "create-client",
                "Soak",
                "--scope",
                "api",
                "--offline-access",
                "--json",
            ],
            env=env,
            check=True,
            capture_output=True,
            text=True,
        )
        client = json.loads(created.stdout)
        subprocess.run(
            [*flask_cmd, "ropc", "keys", "generate"],
            env=env,
            check=True,
            capture_output=True,
        )
        server = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "gunicorn",
                "-c",
                "examples/deploy/gunicorn.conf.py",
                "--access-logfile",
                "/dev/null",
                "examples.deploy.wsgi:app",
            ],
            env=env,
            cwd=ROOT,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
        )
        url = f"http://127.0.0.1:{port}"
        for _ in range(600):
            try:
                requests.get(f"{url}/oauth/jwks", timeout=10)
                break
            except requests.RequestException:
                if server.poll() is not None:
                    raise RuntimeError("gunicorn exited") from None
                time.sleep(0.05)  # start-up wait, not a race fix
        workers = _worker_pids(server.pid)
        memory_start = {pid: _rss_kib(pid) for pid in workers}
        soak = Soak(url, client)
        deadline = time.monotonic() + args.duration
        threads = [
            threading.Thread(target=soak.worker, args=(deadline, seed))
            for seed in range(args.threads)
        ]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        memory_end = {pid: _rss_kib(pid) for pid in workers}
        engine = sa.create_engine(database_url)
        with engine.connect() as conn:
            rows = {
                table: conn.execute(
                    sa.select(sa.func.count()).select_from(sa.table(table))
                ).scalar()
                for table in ("ropc_access_tokens", "ropc_refresh_tokens")
            }
        engine.dispose()
    finally:
        if server is not None:
            server.terminate()
            server.communicate(timeout=30)
        import redis

        store = redis.Redis.from_url(args.redis_url)
        for key in store.scan_iter(f"*{prefix}*"):
            store.delete(key)
        store.close()
        with admin.connect() as conn:
            conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()

    server_errors = sum(
        n for key, n in soak.statuses.items() if key.split()[1][0] == "5"
    )
    total = sum(soak.counts.values())
    print(f"soak: {total} requests in {args.duration:.0f} s, {args.threads} threads")
    for key in sorted(soak.statuses):
        print(f"  {key:<24} {soak.statuses[key]}")
    print(f"  5xx responses            {server_errors}")
    for pid in workers:
        start, end = memory_start[pid], memory_end[pid]
        print(f"  worker {pid} RSS          {start} KiB -> {end} KiB")
    consistent = (
        rows["ropc_access_tokens"] == soak.issued["access"]
        and rows["ropc_refresh_tokens"] == soak.issued["refresh"]
    )
    print(
        f"  rows: {rows['ropc_access_tokens']} access / {rows['ropc_refresh_tokens']} "
        f"refresh tokens stored for {soak.issued['access']} issued: "
        + ("consistent" if consistent else "INCONSISTENT")
    )
    return 0 if server_errors == 0 and consistent and total > 0 else 1


if __name__ == "__main__":
    raise SystemExit(main())
