"""The Markdown report and the PNG chart of a benchmark run."""

from __future__ import annotations

import statistics
import typing as t
from pathlib import Path

#: (scenario, reference, factor): reported against, never asserted.
TARGETS = (
    ("ropc-password-refresh", "floor-password-refresh", 0.85),
    ("ropc-password-refresh", "authlib-docs", 1.5),
    ("ropc-refresh", "floor-refresh", 0.85),
    ("ropc-require-token", "floor-require-token", 0.85),
    ("ropc-throttled", "bare", 0.5),
)
PG_TARGET_PCT = 10.0
MEMORY_TARGET_PCT = 10.0


def paired_ratio(
    runs: t.Sequence[t.Mapping[str, t.Any]],
    reference: t.Sequence[t.Mapping[str, t.Any]],
) -> float:
    """Median over rounds of the round's req/s ratio (robust to load drift)."""
    return statistics.median(
        run["rps"] / ref["rps"] for run, ref in zip(runs, reference, strict=True)
    )


def _ok(met: bool) -> str:
    return "met" if met else "**not met**"


def _fmt_ms(value: float) -> str:
    return f"{value:.2f}" if value < 100 else f"{value:.0f}"


def markdown(data: t.Mapping[str, t.Any]) -> str:
    """The whole report as Markdown, from the JSON-ready ``data``."""
    machine, settings = data["machine"], data["settings"]
    out = [f"# Flask-ROPC benchmark ({settings['mode']})", ""]
    out += [
        f"- Machine: {machine['cpu_model']}, {machine['cores']} cores, "
        f"{machine['memory_gib']:.0f} GiB; {machine['os']}",
        f"- Python {machine['python']}, Flask {machine['flask']}, Authlib "
        f"{machine['authlib']}, SQLAlchemy {machine['sqlalchemy']}, gunicorn "
        f"{machine['gunicorn']}, {machine['wrk']}; Flask-ROPC "
        f"{machine['flask_ropc']} at {machine['flask_ropc_commit']}",
        f"- Load average (1 min) at start {machine['loadavg_start']:.2f}, at end "
        f"{machine.get('loadavg_end', float('nan')):.2f}: other jobs on the machine "
        "(e.g. test runs) take CPU time from both server and load generator.",
        f"- Server: gunicorn, 1 sync worker, pinned with `taskset -c 0`. Load: "
        f"`wrk --latency`, pinned with `taskset -c 1`, {settings['threads']} "
        f"thread(s) x {settings['connections']} connections (the refresh "
        f"scenarios: {settings['connections']} threads x 1 connection, each "
        "chaining its own one-time refresh tokens).",
        f"- {settings['rounds']} round(s) x {settings['seconds']:g} s per scenario, "
        f"scenario order rotated each round, medians shown; a "
        f"{settings['warmup_seconds']:g} s warm-up per scenario first.",
        "- SQLite for authlib-docs and Flask-ROPC: WAL journal + synchronous=NORMAL "
        "(authlib-docs sets them with an engine `connect` event, as Flask-ROPC's "
        "embedded database does). Flask-ROPC: ES256 JWT access tokens, "
        "throttling on (default database counters), trivial validator.",
        "",
        "| scenario | req/s | req/s range | p50 ms | p99 ms | non-2xx | x bare "
        "| x authlib-docs |",
        "|---|--:|--:|--:|--:|--:|--:|--:|",
    ]
    summary, runs = data["summary"], data["runs"]
    for name, row in summary.items():
        out.append(
            f"| {name} | {row['rps']:.0f} | {row['rps_min']:.0f}-{row['rps_max']:.0f} "
            f"| {_fmt_ms(row['p50_ms'])} | "
            f"{_fmt_ms(row['p99_ms'])} | {row['non_2xx']} | "
            f"{row['vs_bare']:.2f} | {row['vs_authlib_docs']:.2f} |"
        )
    out += [
        "",
        "Ratios are of the medians. Targets (reported, not asserted); in "
        "brackets the median of the per-round ratios, which cancels load that "
        "drifts between rounds:",
        "",
    ]
    for scenario, reference, factor in TARGETS:
        if scenario in summary and reference in summary:
            ratio = summary[scenario]["rps"] / summary[reference]["rps"]
            paired = paired_ratio(runs[scenario], runs[reference])
            out.append(
                f"- {scenario} >= {factor}x {reference}: {ratio:.2f}x "
                f"({paired:.2f}x), {_ok(ratio >= factor)}"
            )
    floor = summary.get("floor-password-refresh")
    ours = summary.get("ropc-password-refresh")
    if floor and ours:
        out.append(
            f"- for scale, floor-password-refresh (the same SQL and JWT without "
            f"Authlib or SQLAlchemy): {floor['vs_bare']:.2f}x bare, "
            f"{floor['vs_authlib_docs']:.2f}x authlib-docs; ropc-password-refresh "
            f"runs at {ours['rps'] / floor['rps']:.2f}x the floor"
        )
    pg = data.get("pg_scale")
    if pg:
        change = (pg["large"]["rps"] / pg["small"]["rps"] - 1) * 100
        paired = (paired_ratio(pg["large"]["runs"], pg["small"]["runs"]) - 1) * 100
        out += [
            f"- PostgreSQL scale (ropc-password-jwt) within {PG_TARGET_PCT:g}%: "
            f"{change:+.1f}% ({paired:+.1f}%), {_ok(abs(change) <= PG_TARGET_PCT)}",
        ]
    memory = data.get("memory")
    if memory:
        growth = memory["growth_pct"]
        out.append(
            f"- worker memory growth 1k -> {memory['points'][-1]['requests']:,} "
            f"requests < {MEMORY_TARGET_PCT:g}%: {growth:+.1f}%, "
            f"{_ok(growth < MEMORY_TARGET_PCT)}"
        )
    if pg:
        out += [
            "",
            "## (e) Throughput as stored data grows (PostgreSQL)",
            "",
            f"ropc-password-jwt on PostgreSQL {pg['server_version']}: database "
            f"`{pg['database']}` (dropped afterwards) with two schemas, each "
            "served by its own gunicorn worker (same settings as above), "
            f"measured in {pg['rounds']} interleaved round(s) x {pg['seconds']:g} s, "
            "medians. Row counts are at the end of the run.",
            "",
            "| schema | clients | access tokens | req/s (per round) | p50 ms | p99 ms "
            "| non-2xx |",
            "|---|--:|--:|--:|--:|--:|--:|",
        ]
        for label in ("small", "large"):
            row = pg[label]
            per_round = ", ".join(f"{run['rps']:.0f}" for run in row["runs"])
            out.append(
                f"| {label} | {row['clients']:,} | {row['access_tokens']:,} | "
                f"{row['rps']:.0f} ({per_round}) | {_fmt_ms(row['p50_ms'])} | "
                f"{_fmt_ms(row['p99_ms'])} | {row['non_2xx']} |"
            )
        out += [
            "",
            f"Large / small throughput: {pg['ratio']:.3f}. The bulk load "
            f"(set-based SQL over generate_series) took {pg['load_seconds']:.0f} s.",
        ]
    if memory:
        out += [
            "",
            "## (f) Worker memory (ropc-password-jwt, SQLite)",
            "",
            "| requests served | VmRSS MiB |",
            "|--:|--:|",
        ]
        for point in memory["points"]:
            out.append(f"| {point['requests']:,} | {point['rss_kib'] / 1024:.1f} |")
        out += ["", f"Growth from the first to the last point: {growth:+.1f}%."]
    if data.get("failures"):
        out += ["", "## Failures", ""]
        out += [f"- {failure}" for failure in data["failures"]]
    return "\n".join(out) + "\n"


def chart(data: t.Mapping[str, t.Any], path: Path) -> None:
    """Two bar charts: requests/s (with the rounds' range) and p99 latency."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    summary = data["summary"]
    names = list(summary)
    rps = [summary[n]["rps"] for n in names]
    low = [summary[n]["rps"] - summary[n]["rps_min"] for n in names]
    high = [summary[n]["rps_max"] - summary[n]["rps"] for n in names]
    p99 = [summary[n]["p99_ms"] for n in names]
    colours = [
        "#999999"
        if n == "bare" or n.startswith("floor-")
        else "#d98c3f"
        if n == "authlib-docs"
        else "#3f7fbf"
        for n in names
    ]
    fig, (top, bottom) = plt.subplots(2, 1, figsize=(9, 8), constrained_layout=True)
    top.bar(names, rps, color=colours, yerr=[low, high], capsize=4)
    top.set_ylabel("requests/s (median; bars: range over rounds)")
    top.set_title(
        f"Flask-ROPC benchmark ({data['settings']['mode']}): 1 gunicorn sync worker"
    )
    # Values under the names, clear of the range whiskers.
    labels = [f"{name}\n{value:.0f}/s" for name, value in zip(names, rps, strict=True)]
    top.set_xticks(range(len(names)), labels)
    bottom.bar(names, p99, color=colours)
    bottom.set_ylabel("p99 latency, ms (median over rounds)")
    for x, value in enumerate(p99):
        bottom.annotate(
            f"{value:.1f}", (x, value), ha="center", va="bottom", fontsize=8
        )
    for axis in (top, bottom):
        axis.tick_params(axis="x", labelrotation=20)
    fig.savefig(path, dpi=110)
    plt.close(fig)
