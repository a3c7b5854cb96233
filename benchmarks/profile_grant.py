"""Profile Flask-ROPC's token endpoint in-process, without HTTP or gunicorn.

Runs one case of ``run.py --cpu`` (by default ``ropc-password-refresh``, the
password grant with scope ``api offline_access``) through Flask's test client
under cProfile, on the same apps and embedded SQLite databases, and prints
where the time goes: by package (own time) and the top functions by
cumulative time::

    .venv/bin/python benchmarks/profile_grant.py [--case ropc-refresh] \
        [--requests 2000] [--top 30]
"""

from __future__ import annotations

import argparse
import cProfile
import pstats
import tempfile
import time
import typing as t
from collections import defaultdict
from pathlib import Path

import cpu

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
    """Profile ``--requests`` requests of one case and print a summary."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--requests", type=int, default=2000)
    parser.add_argument("--top", type=int, default=30)
    parser.add_argument(
        "--case",
        default="ropc-password-refresh",
        help="a case of run.py --cpu (ropc-refresh, ropc-require-token, "
        "ropc-throttled, floor-password-refresh, ...)",
    )
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="ropc-profile-") as tmp:
        cases = {case.name: case.once for case in cpu.cases(Path(tmp))}
        one = cases[args.case]
        for _ in range(50):  # warm-up: key generation, caches, connections
            one()
        started = time.process_time()
        for _ in range(args.requests):
            one()
        plain = time.process_time() - started
        profiler = cProfile.Profile()
        started = time.process_time()
        profiler.enable()
        for _ in range(args.requests):
            one()
        profiler.disable()
        elapsed = time.process_time() - started
    print(
        f"{args.requests} requests of {args.case} in-process: "
        f"{plain / args.requests * 1000:.3f} ms CPU each without the profiler, "
        f"{elapsed / args.requests * 1000:.3f} ms under cProfile\n"
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
