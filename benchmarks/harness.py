"""gunicorn servers, wrk runs and the parsing of wrk's output.

Every server is one gunicorn sync worker pinned to CPU 0 with ``taskset``;
wrk is pinned to CPU 1, so that the load generator never takes CPU time from
the server it measures.
"""

from __future__ import annotations

import dataclasses
import http.client
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
import typing as t
from pathlib import Path

BENCH_DIR = Path(__file__).resolve().parent
#: The gunicorn of the interpreter running the benchmark (the venv's).
GUNICORN = Path(sys.executable).parent / "gunicorn"
SERVER_CPU = "0"
LOAD_CPU = "1"


class BenchmarkError(RuntimeError):
    """A server did not start, or a run could not be measured."""


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class Server:
    """One ``gunicorn -w 1`` process running ``apps:from_env()`` on CPU 0.

    Use it as a context manager: it is started on entry and always
    terminated on exit. Its output goes to ``log_path``.
    """

    def __init__(
        self, app: str, database_uri: str, log_path: Path, *, start_timeout: float = 60
    ) -> None:
        self.app = app
        self.database_uri = database_uri
        self.log_path = log_path
        self.start_timeout = start_timeout
        self.port = free_port()
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def base_url(self) -> str:
        """``http://127.0.0.1:PORT``."""
        return f"http://127.0.0.1:{self.port}"

    def __enter__(self) -> Server:
        self.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    def start(self) -> None:
        """Launch gunicorn and wait (bounded) until its port accepts."""
        env = dict(os.environ, BENCH_APP=self.app, BENCH_DATABASE_URI=self.database_uri)
        command = [
            "taskset",
            "-c",
            SERVER_CPU,
            str(GUNICORN),
            "-w",
            "1",
            "-k",
            "sync",
            "-b",
            f"127.0.0.1:{self.port}",
            "--chdir",
            str(BENCH_DIR),
            "--log-level",
            "warning",
            "--no-control-socket",
            "apps:from_env()",
        ]
        with open(self.log_path, "wb") as log:
            self.proc = subprocess.Popen(
                command, env=env, stdout=log, stderr=subprocess.STDOUT
            )
        self._wait_for_port()

    def _wait_for_port(self) -> None:
        """Poll (bounded) until the worker answers HTTP, or gunicorn exits.

        gunicorn's master listens before its worker has loaded the app, so
        an open port is not enough: wait for any HTTP answer. A worker that
        fails to boot makes the master exit, which ends the wait at once.
        """
        assert self.proc is not None
        deadline = time.monotonic() + self.start_timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise BenchmarkError(
                    f"gunicorn for {self.app!r} exited with {self.proc.returncode}:\n"
                    + self.log_tail()
                )
            if self._answers_http(min(2.0, max(0.1, deadline - time.monotonic()))):
                return
            try:  # a bounded pause between polls; returns early if it dies
                self.proc.wait(timeout=0.05)
            except subprocess.TimeoutExpired:
                pass
        raise BenchmarkError(
            f"gunicorn for {self.app!r} did not listen on port {self.port} within "
            f"{self.start_timeout:.0f} s:\n" + self.log_tail()
        )

    def _answers_http(self, timeout: float) -> bool:
        connection = http.client.HTTPConnection("127.0.0.1", self.port, timeout=timeout)
        try:
            connection.request("GET", "/")
            connection.getresponse().read()
        except (OSError, http.client.HTTPException):
            return False
        finally:
            connection.close()
        return True

    def log_tail(self, lines: int = 30) -> str:
        """The end of the server's output, for error messages."""
        try:
            text = self.log_path.read_text(errors="replace")
        except OSError:
            return ""
        return "\n".join(text.splitlines()[-lines:])

    def worker_pid(self) -> int:
        """The pid of the (single) gunicorn worker."""
        assert self.proc is not None
        master = self.proc.pid
        children = Path(f"/proc/{master}/task/{master}/children").read_text().split()
        if len(children) != 1:
            raise BenchmarkError(f"expected one gunicorn worker, found {children}")
        return int(children[0])

    def worker_rss_kib(self) -> int:
        """The worker's resident set size (``VmRSS``) in KiB."""
        status = Path(f"/proc/{self.worker_pid()}/status").read_text()
        match = re.search(r"^VmRSS:\s+(\d+) kB", status, re.MULTILINE)
        if match is None:
            raise BenchmarkError("no VmRSS in /proc/PID/status")
        return int(match.group(1))

    def stop(self) -> None:
        """Terminate gunicorn (SIGTERM, then SIGKILL after 15 s)."""
        proc, self.proc = self.proc, None
        if proc is None or proc.poll() is not None:
            return
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=15)


# -- wrk ------------------------------------------------------------------------


@dataclasses.dataclass
class WrkResult:
    """What one wrk run measured."""

    requests: int
    seconds: float
    rps: float
    p50_ms: float
    p75_ms: float
    p90_ms: float
    p99_ms: float
    non_2xx: int
    socket_errors: dict[str, int]

    @property
    def errors(self) -> int:
        """Non-2xx/3xx responses plus socket errors other than ``read``.

        gunicorn's sync worker closes every connection after its response;
        wrk does not count that as an error, but a reset would be.
        """
        return self.non_2xx + sum(
            count for kind, count in self.socket_errors.items() if kind != "read"
        )

    @property
    def error_ratio(self) -> float:
        """Errors per request (1.0 when nothing completed)."""
        return 1.0 if self.requests == 0 else self.errors / self.requests


_UNITS_MS = {"us": 0.001, "ms": 1.0, "s": 1000.0, "m": 60_000.0, "h": 3_600_000.0}


def _duration_ms(text: str) -> float:
    match = re.fullmatch(r"([\d.]+)(us|ms|s|m|h)", text)
    if match is None:
        raise BenchmarkError(f"cannot parse wrk duration {text!r}")
    return float(match.group(1)) * _UNITS_MS[match.group(2)]


def parse_wrk(output: str) -> WrkResult:
    """Parse the text wrk prints with ``--latency``."""
    percentiles: dict[str, float] = {}
    for pct, value in re.findall(r"^\s+(50|75|90|99)%\s+(\S+)$", output, re.MULTILINE):
        percentiles[pct] = _duration_ms(value)
    done = re.search(r"^\s+(\d+) requests in ([\d.]+)(us|ms|s|m|h)", output, re.M)
    rps = re.search(r"^Requests/sec:\s+([\d.]+)", output, re.MULTILINE)
    if done is None or rps is None or len(percentiles) != 4:
        raise BenchmarkError("cannot parse wrk output:\n" + output)
    non_2xx = re.search(r"Non-2xx or 3xx responses:\s+(\d+)", output)
    # A script expecting another status counts the answers that differ.
    unexpected = re.search(r"^UNEXPECTED (\d+)$", output, re.MULTILINE)
    if unexpected is not None:
        non_2xx = unexpected
    errors = re.search(
        r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", output
    )
    socket_errors = dict.fromkeys(("connect", "read", "write", "timeout"), 0)
    if errors is not None:
        socket_errors = dict(zip(socket_errors, map(int, errors.groups()), strict=True))
    return WrkResult(
        requests=int(done.group(1)),
        seconds=_duration_ms(done.group(2) + done.group(3)) / 1000.0,
        rps=float(rps.group(1)),
        p50_ms=percentiles["50"],
        p75_ms=percentiles["75"],
        p90_ms=percentiles["90"],
        p99_ms=percentiles["99"],
        non_2xx=int(non_2xx.group(1)) if non_2xx else 0,
        socket_errors=socket_errors,
    )


def wrk_version() -> str:
    """wrk's version line (wrk prints it with its usage and exits 1)."""
    if shutil.which("wrk") is None:
        return "wrk not installed"
    out = subprocess.run(
        ["wrk", "--version"], capture_output=True, text=True, check=False
    )
    line = (out.stdout or out.stderr).splitlines()[0]
    return line.split(" Copyright")[0].strip()


def run_wrk(
    url: str,
    script: Path,
    *,
    seconds: float,
    threads: int = 1,
    connections: int = 4,
    script_args: t.Sequence[str] = (),
) -> WrkResult:
    """Run wrk on CPU 1 with ``--latency`` and return the parsed result."""
    command = [
        "taskset",
        "-c",
        LOAD_CPU,
        "wrk",
        f"-t{threads}",
        f"-c{connections}",
        f"-d{max(1, round(seconds))}s",
        "--timeout",
        "10s",
        "--latency",
        "-s",
        str(script),
        url,
    ]
    if script_args:
        command += ["--", *script_args]
    out = subprocess.run(
        command, capture_output=True, text=True, check=False, timeout=seconds + 60
    )
    if out.returncode != 0:
        raise BenchmarkError(f"wrk failed ({out.returncode}): {out.stderr.strip()}")
    return parse_wrk(out.stdout)


def run_wrk_count(
    url: str, script: Path, *, count: int, connections: int = 4, max_seconds: float
) -> tuple[int, int]:
    """Send ``count`` requests (one wrk thread) and stop; return (done, non-2xx).

    wrk only stops on a duration, so the script counts responses and exits
    the process when ``count`` have arrived (see :func:`count_script`).
    """
    command = [
        "taskset",
        "-c",
        LOAD_CPU,
        "wrk",
        "-t1",
        f"-c{connections}",
        f"-d{max(1, round(max_seconds))}s",
        "--timeout",
        "10s",
        "-s",
        str(script),
        url,
        "--",
        str(count),
    ]
    out = subprocess.run(
        command, capture_output=True, text=True, check=False, timeout=max_seconds + 60
    )
    match = re.search(r"^COUNTED (\d+) (\d+)$", out.stdout, re.MULTILINE)
    if match is None:
        raise BenchmarkError(
            f"wrk did not complete {count} requests within {max_seconds:.0f} s:\n"
            + out.stdout
            + out.stderr
        )
    return int(match.group(1)), int(match.group(2))


# -- wrk scripts ------------------------------------------------------------------


def lua_string(value: str) -> str:
    """``value`` as a Lua string literal."""
    escaped = value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")
    return f'"{escaped}"'


def _request_lines(method: str, path: str, headers: t.Mapping[str, str]) -> list[str]:
    lines = [f"wrk.method = {lua_string(method)}", f"wrk.path = {lua_string(path)}"]
    lines += [
        f"wrk.headers[{lua_string(name)}] = {lua_string(value)}"
        for name, value in headers.items()
    ]
    return lines


def static_script(
    method: str, path: str, headers: t.Mapping[str, str], body: str | None = None
) -> str:
    """A wrk script that sends the same request over and over."""
    lines = _request_lines(method, path, headers)
    if body is not None:
        lines.append(f"wrk.body = {lua_string(body)}")
    return "\n".join(lines) + "\n"


def expect_status_script(
    method: str,
    path: str,
    headers: t.Mapping[str, str],
    body: str | None,
    status: int,
) -> str:
    """Like :func:`static_script`, for a request answered with ``status``.

    wrk counts every non-2xx answer as an error; this script counts the
    answers other than ``status`` and prints ``UNEXPECTED <count>``, which
    :func:`parse_wrk` reports as the non-2xx count.
    """
    return static_script(method, path, headers, body) + (
        "local threads = {}\n"
        "function setup(thread) table.insert(threads, thread) end\n"
        "unexpected = 0\n"
        "function response(status, headers, body)\n"
        f"  if status ~= {int(status)} then unexpected = unexpected + 1 end\n"
        "end\n"
        "function done(summary, latency, requests)\n"
        "  local total = 0\n"
        "  for _, thread in ipairs(threads) do\n"
        '    total = total + thread:get("unexpected")\n'
        "  end\n"
        '  io.write("UNEXPECTED ", total, "\\n")\n'
        "end\n"
    )


def count_script(
    method: str, path: str, headers: t.Mapping[str, str], body: str | None = None
) -> str:
    """Like :func:`static_script`, but exit after the count given as argument.

    Prints ``COUNTED <responses> <non-2xx>`` before exiting.
    """
    return static_script(method, path, headers, body) + (
        "local limit, done, bad = 0, 0, 0\n"
        "function init(args) limit = tonumber(args[1]) end\n"
        "function response(status, headers, body)\n"
        "  done = done + 1\n"
        "  if status < 200 or status > 299 then bad = bad + 1 end\n"
        "  if done >= limit then\n"
        '    io.write("COUNTED ", done, " ", bad, "\\n")\n'
        "    io.flush()\n"
        "    os.exit(0)\n"
        "  end\n"
        "end\n"
    )


def refresh_chain_script(path: str, headers: t.Mapping[str, str]) -> str:
    """A wrk script for one-time refresh tokens: each connection chains.

    ``setup(thread)`` numbers the threads; ``init(args)`` gives thread *i*
    the *i*-th script argument as its first refresh token; ``response()``
    takes the new refresh token from each answer and ``request()`` sends it
    next. Run it with exactly one connection per thread.
    """
    header_table = ", ".join(
        f"[{lua_string(name)}] = {lua_string(value)}" for name, value in headers.items()
    )
    return (
        "local threads = 0\n"
        "function setup(thread)\n"
        "  threads = threads + 1\n"
        '  thread:set("index", threads)\n'
        "end\n"
        "local token\n"
        f"local headers = {{{header_table}}}\n"
        "function init(args)\n"
        "  token = args[index]\n"
        "  if token == nil then error('no refresh token for thread ' .. index) end\n"
        "end\n"
        "function request()\n"
        f"  return wrk.format('POST', {lua_string(path)}, headers,\n"
        "    'grant_type=refresh_token&refresh_token=' .. token)\n"
        "end\n"
        "function response(status, headers, body)\n"
        "  if status == 200 then\n"
        '    local new = body:match(\'"refresh_token"%s*:%s*"([^"]+)"\')\n'
        "    if new then token = new end\n"
        "  end\n"
        "end\n"
    )
