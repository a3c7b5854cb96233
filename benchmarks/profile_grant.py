"""Profile Flask-ROPC's token endpoint in-process, without HTTP or gunicorn.

Runs ``ropc-password-refresh`` (the password grant with scope
``api offline_access``) through Flask's test client under cProfile, on the
same app and embedded SQLite database the benchmark serves, and prints where
the time goes: by package (own time) and the top functions by cumulative
time::

    .venv/bin/python benchmarks/profile_grant.py [--requests 2000] [--top 30]
"""

from __future__ import annotations

import argparse
import base64
import cProfile
import pstats
import tempfile
import time
import typing as t
from collections import defaultdict
from pathlib import Path

import apps

#: Path fragments that name the package a function belongs to.
PACKAGES = (
    "flask_ropc",
    "authlib",
    "joserfc",
    "cryptography",
    "sqlalchemy",
    "flask_sqlalchemy",
    "werkzeug",
    "flask",
    "limits",
    "blinker",
    "json",
    "sqlite3",
)


def package_of(filename: str) -> str:
    """The package a profiled function's file belongs to."""
    if filename.startswith("~") or filename.startswith("<"):
        return "builtins (C)"
    parts = Path(filename).parts
    for name in PACKAGES:
        if name in parts:
            return name
    return "python stdlib/other"


def main(argv: t.Sequence[str] | None = None) -> None:
    """Profile ``--requests`` password grants and print a summary."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--requests", type=int, default=2000)
    parser.add_argument("--top", type=int, default=30)
    parser.add_argument(
        "--scope", default="api offline_access", help="scope to request"
    )
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="ropc-profile-") as tmp:
        uri = f"sqlite:///{tmp}/ropc.sqlite3"
        client_id, secret = apps.setup_ropc(uri)
        app = apps.create_ropc_app(uri)
        client = app.test_client()
        auth = "Basic " + base64.b64encode(f"{client_id}:{secret}".encode()).decode()
        form = {
            "grant_type": "password",
            "username": apps.USERNAME,
            "password": apps.PASSWORD,
            "scope": args.scope,
        }

        def one() -> None:
            response = client.post(
                apps.TOKEN_PATH,
                data=form,
                headers={"Authorization": auth},
                base_url="http://127.0.0.1",
            )
            if response.status_code != 200:
                raise SystemExit(f"token endpoint answered {response.status_code}")

        for _ in range(50):  # warm-up: key generation, caches, connections
            one()
        started = time.perf_counter()
        for _ in range(args.requests):
            one()
        plain = time.perf_counter() - started
        profiler = cProfile.Profile()
        started = time.perf_counter()
        profiler.enable()
        for _ in range(args.requests):
            one()
        profiler.disable()
        elapsed = time.perf_counter() - started
    print(
        f"{args.requests} requests (scope {args.scope!r}) in-process: "
        f"{plain / args.requests * 1000:.2f} ms each without the profiler, "
        f"{elapsed / args.requests * 1000:.2f} ms under cProfile\n"
    )
    stats = pstats.Stats(profiler)
    own: dict[str, float] = defaultdict(float)
    total = 0.0
    for (filename, _, _), (_, _, tottime, _, _) in stats.stats.items():  # type: ignore[attr-defined]
        own[package_of(filename)] += tottime
        total += tottime
    print("Own time by package:")
    for name, seconds in sorted(own.items(), key=lambda item: -item[1]):
        print(f"  {name:<22} {seconds / total * 100:5.1f}%")
    print()
    stats.sort_stats("cumulative").print_stats(args.top)
    stats.sort_stats("tottime").print_stats(max(10, args.top // 2))


if __name__ == "__main__":
    main()
