"""The documentation in docs/ tells the truth and builds.

* Every ```python block of every Markdown page runs, page by page in one
  namespace (like a doctest file), in a fresh working directory. A block
  preceded by ``<!-- skip-test: reason -->`` is not run; those are few and
  each says why.
* The code the docs include from ``examples/docs_snippets/`` runs against a
  live server.
* Drift checks: the configuration page, ``config.DEFAULTS`` and the README's
  table list the same ``ROPC_`` keys; every CLI command and option, every
  signal and every test the security checklist cites exists and is
  documented.
* ``sphinx-build -W`` passes, and the built Quickstart renders in a
  headless browser when one is installed.
"""

from __future__ import annotations

import ast
import contextlib
import dataclasses
import linecache
import os
import re
import shutil
import subprocess
import sys
import threading
import tomllib
import types
import typing as t
from collections.abc import Iterator
from pathlib import Path

import click
import flask
import pytest
from werkzeug.serving import make_server

import flask_ropc
from flask_ropc import signals
from flask_ropc.cli import ropc_cli

# Reaches into flask_ropc.config on purpose: the drift checks compare the
# documented settings with the defaults the extension actually applies.
from flask_ropc.config import DEFAULTS

from conftest import SECRET_KEY

ROOT = Path(__file__).resolve().parent.parent
DOCS = ROOT / "docs"
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))


def _marker_registered(name: str) -> bool:
    """Whether pyproject.toml registers the pytest marker ``name``."""
    with open(ROOT / "pyproject.toml", "rb") as file:
        ini = tomllib.load(file)["tool"]["pytest"]["ini_options"]
    return any(line.split(":")[0].strip() == name for line in ini.get("markers", []))


# `pytest -m "not docs"` deselects the slow build tests once pyproject.toml
# registers the marker (--strict-markers refuses unregistered ones); until
# then `-k "not sphinx"` does the same.
docs_mark: t.Callable[[t.Any], t.Any] = (
    pytest.mark.docs if _marker_registered("docs") else (lambda func: func)
)

# -- Python blocks in the Markdown pages ----------------------------------------

_FENCE = re.compile(r"^(?P<indent> *)(?P<fence>`{3,}|~{3,})(?P<info>.*)$")
_SKIP = re.compile(r"<!--\s*skip-test:\s*(?P<reason>.+?)\s*-->")


@dataclasses.dataclass(frozen=True)
class Block:
    """One fenced code block of a Markdown page."""

    page: str
    line: int  # 1-based line of the first code line
    language: str
    code: str
    skip_reason: str | None


def code_blocks(path: Path) -> list[Block]:
    """Every fenced code block of ``path``, nested ones (in ::: or ```` fences)
    included, with the skip-test reason of the comment just before it."""
    lines = path.read_text("utf-8").splitlines()
    blocks: list[Block] = []
    i = 0
    while i < len(lines):
        match = _FENCE.match(lines[i])
        info = match.group("info").strip() if match else ""
        if match is None or info.startswith("{") and not info.startswith("{code"):
            i += 1
            continue
        fence = match.group("fence")
        language = info.split()[0] if info else ""
        body: list[str] = []
        j = i + 1
        while j < len(lines) and not re.match(
            rf"^ *{re.escape(fence[0])}{{{len(fence)},}}\s*$", lines[j]
        ):
            body.append(lines[j])
            j += 1
        previous = [line for line in lines[max(0, i - 3) : i] if line.strip()]
        skip = _SKIP.search(previous[-1]) if previous else None
        blocks.append(
            Block(
                page=path.name,
                line=i + 2,
                language=language,
                code="\n".join(body) + "\n",
                skip_reason=skip.group("reason") if skip else None,
            )
        )
        i = j + 1
    return blocks


MARKDOWN_PAGES = sorted(DOCS.glob("*.md"))


def python_blocks(path: Path) -> list[Block]:
    return [block for block in code_blocks(path) if block.language == "python"]


@pytest.mark.parametrize(
    "page",
    [path for path in MARKDOWN_PAGES if python_blocks(path)],
    ids=lambda path: path.name,
)
def test_python_blocks_of_the_page_run(
    page: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Each page's Python blocks run in order, sharing one namespace."""
    monkeypatch.chdir(tmp_path)
    # What the pages' app.config.from_prefixed_env() reads, as a reader's
    # deployment sets it.
    monkeypatch.setenv("FLASK_SECRET_KEY", SECRET_KEY)
    # A module of its own, as if the page were a file the reader runs.
    module = types.ModuleType(f"docs_{page.stem.replace('-', '_')}")
    monkeypatch.setitem(sys.modules, module.__name__, module)
    namespace = module.__dict__
    try:
        for block in python_blocks(page):
            if block.skip_reason is not None:
                continue
            filename = f"docs/{page.name}, block at line {block.line}"
            # Lets tracebacks show the block's source lines.
            linecache.cache[filename] = (
                len(block.code),
                None,
                block.code.splitlines(keepends=True),
                filename,
            )
            code = compile(block.code, filename, "exec", dont_inherit=True)
            exec(code, namespace)  # noqa: S102 (our own documentation)
    finally:
        # The admin API acts on the current app, whichever ROPC object is asked.
        admin = flask_ropc.ROPC()
        for value in namespace.values():
            if isinstance(value, flask.Flask) and "ropc" in value.extensions:
                with value.app_context():
                    admin.dispose()


def test_skipped_python_blocks_are_few_and_say_why() -> None:
    skipped = [
        block
        for page in MARKDOWN_PAGES
        for block in python_blocks(page)
        if block.skip_reason is not None
    ]
    assert all(len(block.skip_reason or "") >= 10 for block in skipped), skipped
    assert len(skipped) <= 5, [f"{b.page}:{b.line}" for b in skipped]


def test_every_python_block_in_the_guides_is_valid_python() -> None:
    """Skipped blocks too: they must at least parse."""
    for page in MARKDOWN_PAGES:
        for block in python_blocks(page):
            ast.parse(block.code, f"docs/{page.name}:{block.line}")


def _readme_block(heading: str, language: str) -> str:
    text = (ROOT / "README.md").read_text("utf-8")
    section = text.split(f"\n## {heading}\n", 1)[1].split("\n## ", 1)[0]
    start = section.index(f"```{language}\n") + len(f"```{language}\n")
    return section[start : section.index("\n```", start) + 1]


def test_quickstart_shows_the_readmes_ten_lines_exactly() -> None:
    first = python_blocks(DOCS / "quickstart.md")[0]
    assert first.skip_reason is None
    assert first.code == _readme_block("Quickstart", "python")


def test_quickstart_shows_the_readmes_token_request() -> None:
    shell = [b for b in code_blocks(DOCS / "quickstart.md") if b.language == "sh"]
    assert _readme_block("Quickstart", "sh") in [block.code for block in shell]


# -- Snippets included from examples/docs_snippets ------------------------------


def test_literalincludes_point_at_existing_files_and_markers() -> None:
    """Every literalinclude names a file that exists and markers it contains."""
    pattern = re.compile(
        r"```\{literalinclude\} (?P<path>\S+)\n(?P<options>(?::[^\n]*\n)*)```"
    )
    found = 0
    for page in MARKDOWN_PAGES:
        for match in pattern.finditer(page.read_text("utf-8")):
            found += 1
            target = (DOCS / match.group("path")).resolve()
            assert target.is_file(), f"{page.name}: {match.group('path')}"
            assert target.is_relative_to(ROOT / "examples"), target
            text = target.read_text("utf-8")
            for option in re.finditer(
                r":(start-at|start-after|end-before|end-at|pyobject): (.+)",
                match.group("options"),
            ):
                value = option.group(2).strip().strip('"')
                if option.group(1) == "pyobject":
                    value = f" {value.split('.')[-1]}"
                assert value in text, f"{page.name}: {value!r} not in {target.name}"
    assert found >= 5


@pytest.fixture
def live_server(tmp_path: Path) -> Iterator[tuple[str, flask.Flask]]:
    """A Flask-ROPC app served on 127.0.0.1 with ROPC_ISSUER set to its URL."""
    from werkzeug.security import check_password_hash
    from werkzeug.security import generate_password_hash

    from flask_ropc import ROPC
    from flask_ropc import GrantResult

    server_app = flask.Flask("docs_live", instance_path=str(tmp_path / "instance"))
    server = make_server("127.0.0.1", 0, server_app, threaded=True)
    issuer = f"http://127.0.0.1:{server.server_port}"
    server_app.config.update(
        ROPC_DATABASE_URI=f"sqlite:///{tmp_path / 'live.sqlite3'}",
        ROPC_ISSUER=issuer,
        SECRET_KEY=SECRET_KEY,
    )
    ropc = ROPC(server_app)
    hashed = generate_password_hash("live-password")

    @ropc.password_validator
    def check(req: t.Any) -> t.Any:
        if req.username != "ann" or not check_password_hash(hashed, req.password):
            return None
        return GrantResult.success("user-1", claims={"role": "admin"})

    with server_app.app_context():
        ropc.create_all()
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield issuer, server_app
    finally:
        server.shutdown()
        thread.join(timeout=10)
        server.server_close()
        with server_app.app_context():
            ropc.dispose()


def _new_client(app: flask.Flask, *args: str) -> dict[str, t.Any]:
    import json

    result = app.test_cli_runner().invoke(
        args=["ropc", "create-client", "Docs", "--scope", "api", *args, "--json"]
    )
    assert result.exit_code == 0, result.output
    data: dict[str, t.Any] = json.loads(result.output)
    return data


def _token(issuer: str, client: dict[str, t.Any], **form: str) -> str:
    import requests

    response = requests.post(
        f"{issuer}/oauth/token",
        auth=(client["client_id"], client["client_secret"]),
        data={
            "grant_type": "password",
            "username": "ann",
            "password": "live-password",
            **form,
        },
        timeout=10,
    )
    assert response.status_code == 200, response.text
    return str(response.json()["access_token"])


@pytest.mark.live
def test_api_validation_snippets_accept_our_tokens_and_refuse_bad_ones(
    live_server: tuple[str, flask.Flask],
) -> None:
    """docs/tokens.md's code for APIs: PyJWT, joserfc, Authlib, introspection."""
    import jwt
    import requests
    from joserfc.errors import JoseError

    from examples.docs_snippets import api_validation as snippets

    issuer, app = live_server
    client = _new_client(app)
    token = _token(issuer, client, scope="api")
    header, payload, signature = token.split(".")
    tampered = f"{header}.{payload}.{signature[:-4]}AAAA"

    check = snippets.PyJWTChecker(issuer)
    claims = check(token)
    assert claims["sub"] == "user-1" and claims["role"] == "admin"
    with pytest.raises(jwt.InvalidTokenError):
        check(tampered)
    with pytest.raises(jwt.InvalidTokenError):
        snippets.PyJWTChecker(issuer, audience="https://other-api.example.com")(token)

    jwks = requests.get(f"{issuer}/oauth/jwks", timeout=10).json()
    claims = snippets.check_with_joserfc(
        token, issuer=issuer, audience=issuer, jwks=jwks
    )
    assert claims["client_id"] == client["client_id"]
    with pytest.raises(JoseError):
        snippets.check_with_joserfc(tampered, issuer=issuer, audience=issuer, jwks=jwks)
    with pytest.raises(JoseError):
        snippets.check_with_joserfc(
            token, issuer="https://someone-else.example.com", audience=issuer, jwks=jwks
        )

    api = snippets.create_authlib_api(issuer).test_client()
    answer = api.get("/orders", headers={"Authorization": f"Bearer {token}"})
    assert answer.status_code == 200
    assert answer.json == {"user": "user-1", "client": client["client_id"]}
    refused = api.get("/orders", headers={"Authorization": f"Bearer {tampered}"})
    assert refused.status_code == 401

    resource_server = _new_client(app, "--resource-server")
    credentials = {
        "issuer": issuer,
        "client_id": resource_server["client_id"],
        "client_secret": resource_server["client_secret"],
    }
    described = snippets.introspect(token, **credentials)
    assert described is not None and described["sub"] == "user-1"
    reference = _new_client(app, "--token-format", "reference")
    opaque = _token(issuer, reference)
    assert "." not in opaque
    assert snippets.introspect(opaque, **credentials) is not None
    requests.post(
        f"{issuer}/oauth/revoke",
        data={"token": opaque},
        auth=(reference["client_id"], reference["client_secret"]),
        timeout=10,
    ).raise_for_status()
    assert snippets.introspect(opaque, **credentials) is None


def test_session_script_is_valid_bash() -> None:
    """docs/_scripts/cli-session.sh regenerates the pasted CLI sessions."""
    bash = shutil.which("bash")
    if bash is None:
        pytest.skip("no bash")
    script = DOCS / "_scripts" / "cli-session.sh"
    subprocess.run([bash, "-n", str(script)], check=True, timeout=30)


# -- Drift: configuration ------------------------------------------------------

_TABLE_KEY = re.compile(r"^\|\s*`(ROPC_[A-Z0-9_]+)`\s*\|", re.MULTILINE)


def _table_keys(markdown: str) -> list[str]:
    return _TABLE_KEY.findall(markdown)


def _section(markdown: str, heading: str) -> str:
    """The text under ``heading`` up to the next heading of the same level."""
    level = heading.split(" ", 1)[0]
    return markdown.split(f"\n{heading}\n", 1)[1].split(f"\n{level} ", 1)[0]


def test_configuration_page_documents_exactly_the_keys_in_defaults() -> None:
    page = (DOCS / "configuration.md").read_text("utf-8")
    keys = _table_keys(_section(page, "## Every key"))
    assert len(keys) == len(set(keys)), "a key is documented twice"
    assert set(keys) == set(DEFAULTS)


def test_readme_configuration_table_lists_exactly_the_keys_in_defaults() -> None:
    readme = (ROOT / "README.md").read_text("utf-8")
    keys = _table_keys(_section(readme, "## Configuration"))
    missing, extra = set(DEFAULTS) - set(keys), set(keys) - set(DEFAULTS)
    assert not missing and not extra, f"README lacks {missing}, has unknown {extra}"


def test_configuration_page_shows_each_keys_default() -> None:
    text = _section((DOCS / "configuration.md").read_text("utf-8"), "## Every key")
    for key, default in DEFAULTS.items():
        row = re.search(rf"^\|\s*`{key}`\s*\|([^|]*)\|", text, re.MULTILINE)
        assert row is not None, key
        expected = f"`{default!r}`".replace("'", '"')
        assert row.group(1).strip() == expected, key


# Names that look like settings but are not: environment variables of the
# deployment example and of the test suite.
NOT_SETTINGS = {"ROPC_SIGNING_KEY", "ROPC_TEST_DATABASE_URL", "ROPC_TEST_REDIS_URL"}


def test_every_ropc_name_in_the_docs_is_a_real_setting() -> None:
    for page in [*MARKDOWN_PAGES, *DOCS.glob("*.rst")]:
        for name in re.findall(r"\bROPC_[A-Z0-9_]*[A-Z0-9]\b", page.read_text("utf-8")):
            assert name in DEFAULTS or name in NOT_SETTINGS, f"{page.name}: {name}"


# -- Drift: our tables ------------------------------------------------------------


def _tables_created_by_create_all(tmp_path: Path) -> set[str]:
    """The tables a fresh ``ropc.create_all()`` makes, read from the database."""
    import sqlite3

    from flask_ropc import ROPC

    app = flask.Flask("docs_tables", instance_path=str(tmp_path / "instance"))
    database = tmp_path / "tables.sqlite3"
    app.config["ROPC_DATABASE_URI"] = f"sqlite:///{database}"
    app.config["SECRET_KEY"] = "docs-tables-" + "x" * 32
    ropc = ROPC(app)
    with app.app_context():
        ropc.create_all()
        ropc.dispose()
    with contextlib.closing(sqlite3.connect(database)) as connection:
        rows = connection.execute(
            "SELECT name FROM sqlite_master WHERE type = 'table'"
            " AND name NOT LIKE 'sqlite_%'"
        ).fetchall()
    return {name for (name,) in rows}


@pytest.mark.parametrize(
    ("path", "heading"),
    [
        (ROOT / "README.md", "### Where the tables live"),
        (DOCS / "quickstart.md", "## Where the tables live"),
    ],
    ids=["README", "quickstart"],
)
def test_where_the_tables_live_names_exactly_the_tables_we_create(
    path: Path, heading: str, tmp_path: Path
) -> None:
    created = _tables_created_by_create_all(tmp_path)
    assert created, "create_all made no tables"
    # The section, up to the next heading of any level.
    section = path.read_text("utf-8").split(f"\n{heading}\n", 1)[1]
    section = re.split(r"^#{1,6} ", section, maxsplit=1, flags=re.MULTILINE)[0]
    named = set(re.findall(r"`(ropc_[a-z_]+)`", section))
    assert named == created, f"{path.name} names {named}, create_all made {created}"


# -- Drift: CLI, signals, security checklist ------------------------------------


def _commands(group: click.Group, prefix: str) -> Iterator[tuple[str, click.Command]]:
    for name, command in group.commands.items():
        if isinstance(command, click.Group):
            yield from _commands(command, f"{prefix} {name}")
        else:
            yield f"{prefix} {name}", command


def test_cli_page_documents_every_command_and_option() -> None:
    text = (DOCS / "clients-and-cli.md").read_text("utf-8")
    text += (DOCS / "tokens.md").read_text("utf-8")  # the keys commands
    commands = dict(_commands(ropc_cli, "flask ropc"))
    assert len(commands) >= 14
    for name, command in commands.items():
        assert f"`{name}" in text or f"$ {name}" in text, name
        for param in command.params:
            for option in [*param.opts, *param.secondary_opts]:
                if option.startswith("--") and option != "--help":
                    assert option in text, f"{name} {option}"


def test_cli_page_shows_a_session_for_every_command() -> None:
    text = (DOCS / "clients-and-cli.md").read_text("utf-8")
    text += (DOCS / "tokens.md").read_text("utf-8")
    for name in dict(_commands(ropc_cli, "flask ropc")):
        assert re.search(rf"^\$ (echo n \| )?{name}\b", text, re.MULTILINE), name


def test_events_page_documents_every_signal_and_its_payload() -> None:
    text = (DOCS / "events.md").read_text("utf-8")
    names = [
        name
        for name, value in vars(signals).items()
        if type(value).__name__ == "NamedSignal"
    ]
    assert len(names) == 15
    docstring = signals.__doc__ or ""
    for name in names:
        assert f"`{name}`" in text, name
        row = re.search(rf"^``{name}``(.*?)(?=^``\w|^=)", docstring, re.M | re.S)
        assert row is not None, name
        for field in re.findall(r"``(\w+)``", row.group(1)):
            page_row = re.search(rf"^\| `{name}` \|(.*)$", text, re.MULTILINE)
            assert page_row is not None and f"`{field}`" in page_row.group(1), (
                name,
                field,
            )


def _defined_tests(path: Path) -> set[str]:
    tree = ast.parse(path.read_text("utf-8"))
    return {
        node.name
        for node in tree.body
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef)
        and node.name.startswith("test_")
    }


def test_security_checklist_cites_tests_that_exist() -> None:
    text = (DOCS / "security.md").read_text("utf-8")
    cited = re.findall(r"`(tests/test_\w+\.py)::(test_\w+)`", text)
    assert len(cited) >= 25
    for file, name in cited:
        assert (ROOT / file).is_file(), file
        assert name in _defined_tests(ROOT / file), f"{file}::{name}"


def _documented_names(rst: str) -> set[str]:
    """Names given to directives, or listed in a ``:members:`` option."""
    names: set[str] = set()
    members = False
    for line in rst.splitlines():
        directive = re.match(r"\.\. [\w:]+:: (\S+)", line)
        option = re.match(r"\s+:members: (.*)", line)
        if directive:
            names.add(directive.group(1).rsplit(".", 1)[-1])
            members = False
        elif option:
            names.update(re.findall(r"\w+", option.group(1)))
            members = True
        elif members and re.match(r"\s{6,}\w", line):
            names.update(re.findall(r"\w+", line))
        else:
            members = False
    return names


def test_api_reference_covers_the_public_names() -> None:
    text = (DOCS / "api.rst").read_text("utf-8")
    documented = _documented_names(text)
    assert set(flask_ropc.__all__) <= documented
    for name in vars(signals):
        if type(getattr(signals, name)).__name__ == "NamedSignal":
            assert name in documented, name
    for module in ("errors", "signals", "migrations", "config"):
        assert f"automodule:: flask_ropc.{module}" in text
    assert "configure" in documented


# -- The Sphinx build and a look at the result -----------------------------------


def _sphinx_available() -> bool:
    try:
        import furo  # noqa: F401
        import myst_parser  # noqa: F401
        import sphinx  # noqa: F401
    except ImportError:
        return False
    return True


@pytest.fixture(scope="module")
def built_html(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The site built with ``sphinx-build -W --keep-going`` (warnings fail)."""
    if not _sphinx_available():
        pytest.skip("sphinx, furo and myst-parser are not installed (docs extra)")
    out = tmp_path_factory.mktemp("html")
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "sphinx",
            "-W",
            "--keep-going",
            "-q",
            "-E",
            "-b",
            "html",
            "-d",
            str(out / ".doctrees"),
            str(DOCS),
            str(out),
        ],
        capture_output=True,
        text=True,
        timeout=300,
        env={**os.environ, "PYTHONWARNINGS": "ignore"},
    )
    assert result.returncode == 0, result.stdout + result.stderr
    return out


@docs_mark
def test_sphinx_build_passes_with_warnings_as_errors(built_html: Path) -> None:
    pages = {path.stem for path in built_html.glob("*.html")}
    expected = {path.stem for path in [*MARKDOWN_PAGES, *DOCS.glob("*.rst")]}
    assert expected <= pages
    api = (built_html / "api.html").read_text("utf-8")
    for name in ("GrantResult.success", "PasswordRequest", "migrations.configure"):
        assert name in api, name
    changelog = (built_html / "changelog.html").read_text("utf-8")
    assert "Unreleased" in changelog


def _chromium() -> str:
    """The headless browser; in CI (``CI=true``, set by .ci/run, which
    installs Debian's chromium) its absence is a failure, not a skip."""
    browser = shutil.which("chromium") or shutil.which("chromium-browser")
    if browser is None:
        if os.environ.get("CI") == "true":
            pytest.fail("CI=true but no chromium: .ci/run installs Debian's chromium")
        pytest.skip("no headless chromium to take a screenshot with")
    return browser


# Run in the page after its stylesheets (a script at the end of <body> waits for
# them): what the reader sees, as JSON in the DOM that --dump-dom prints.
_MEASURE = """<script>
(function () {
  var article = document.querySelector("article");
  var blocks = [];
  article.querySelectorAll("pre").forEach(function (pre) {
    var box = pre.getBoundingClientRect();
    var holder = pre.closest("div[class*='highlight-']");
    blocks.push({
      start: pre.textContent.slice(0, 50),
      console: holder !== null && /highlight-(console|text)\\b/.test(holder.className),
      scrollWidth: pre.scrollWidth,
      clientWidth: pre.clientWidth,
      overflowX: getComputedStyle(pre).overflowX,
      left: box.left,
      right: box.right
    });
  });
  var out = document.createElement("script");
  out.type = "application/json";
  out.id = "ropc-measure";
  out.textContent = JSON.stringify({
    viewport: document.documentElement.clientWidth,
    text: article.innerText,
    checkboxes: article.querySelectorAll("input[type=checkbox]").length,
    blocks: blocks
  });
  document.body.appendChild(out);
})();
</script>"""


def _look_at(
    browser: str, page: Path, out: Path, width: int = 1280
) -> tuple[dict[str, t.Any], bytes]:
    """Open ``page`` in headless chromium ``width`` px wide; return what
    ``_MEASURE`` found and a screenshot (PNG) of the page (the added script
    shows nothing), both from one run of the browser."""
    import json

    html = page.read_text("utf-8")
    base = f'<head><base href="{page.parent.as_uri()}/">'
    probe = out / f"measure-{page.name}"
    probe.write_text(
        html.replace("<head>", base, 1).replace("</body>", _MEASURE + "</body>", 1),
        "utf-8",
    )
    common = [
        browser,
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-background-networking",
        "--disable-component-update",
        "--no-first-run",
        f"--user-data-dir={out / 'profile'}",
        f"--window-size={width},1600",
    ]
    shot = out / f"{page.stem}.png"
    dom = subprocess.run(
        [*common, f"--screenshot={shot}", "--dump-dom", probe.as_uri()],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    found = re.search(
        r'<script type="application/json" id="ropc-measure">(.*?)</script>',
        dom.stdout,
        re.S,
    )
    assert found is not None, f"no measurement from chromium: {dom.stderr[-2000:]}"
    assert shot.is_file(), "chromium wrote no screenshot"
    measured: dict[str, t.Any] = json.loads(found.group(1))
    return measured, shot.read_bytes()


@docs_mark
def test_built_pages_show_checkboxes_and_whole_code_lines_at_1280px(
    built_html: Path, tmp_path: Path
) -> None:
    """What a reader sees at 1280 px, measured in headless chromium.

    The pages are opened as built, with a script added at the end that reads
    the laid-out DOM (so the check does not depend on fonts or colours, as a
    pixel comparison would):

    * Deploying: the checklist shows checkboxes, one per ``- [ ]`` item of the
      Markdown, and the text a reader sees (``innerText``) holds no ``[ ]``.
    * Quickstart and Deploying: every code block lies inside the viewport,
      and every source block shows its whole lines: its ``scrollWidth`` is
      not more than its ``clientWidth``, that is nothing is hidden behind a
      horizontal scroll (overlay scroll bars may not even show that there is
      more). Console sessions keep their columns unwrapped; they must then
      scroll (``overflow-x`` auto or scroll), never be cut off.

    Screenshots of both pages are checked to be 1280 px wide PNGs, and kept
    in ``$ROPC_DOCS_SCREENSHOT_DIR`` when that is set, to look at.
    """
    browser = _chromium()
    keep = os.environ.get("ROPC_DOCS_SCREENSHOT_DIR")
    items = re.findall(
        r"^- \[ \] ", (DOCS / "deploying.md").read_text("utf-8"), re.MULTILINE
    )
    assert len(items) >= 5
    for name in ("deploying", "quickstart"):
        seen, png = _look_at(browser, built_html / f"{name}.html", tmp_path)
        assert png.startswith(b"\x89PNG\r\n\x1a\n")
        assert int.from_bytes(png[16:20], "big") == 1280  # IHDR width
        if keep:
            shutil.copy(tmp_path / f"{name}.png", Path(keep) / f"{name}.png")
        if name == "deploying":
            assert "[ ]" not in seen["text"], "the checklist shows literal [ ]"
            assert seen["checkboxes"] == len(items)
        assert seen["blocks"], f"{name}: no code blocks measured"
        for block in seen["blocks"]:
            where = f"{name}: block starting {block['start']!r}"
            assert 0 <= block["left"] and block["right"] <= seen["viewport"], where
            if block["console"]:
                assert block["scrollWidth"] <= block["clientWidth"] + 1 or block[
                    "overflowX"
                ] in {"auto", "scroll"}, where
            else:
                assert block["scrollWidth"] <= block["clientWidth"] + 1, (
                    f"{where} is cut off: {block['scrollWidth']} px of text in "
                    f"{block['clientWidth']} px"
                )


@docs_mark
def test_sphinx_build_renders_the_quickstart_token_request(
    built_html: Path, tmp_path: Path
) -> None:
    html = (built_html / "quickstart.html").read_text("utf-8")
    text = re.sub(r"<[^>]+>", "", html).replace("&quot;", '"').replace("&#39;", "'")
    assert "curl -u" in text and "-d grant_type=password" in text
    assert "flask ropc create-client" in text

    browser = _chromium()
    shot = tmp_path / "quickstart.png"
    subprocess.run(
        [
            browser,
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-background-networking",
            "--disable-component-update",
            "--no-first-run",
            "--hide-scrollbars",
            "--window-size=1280,2400",
            f"--screenshot={shot}",
            (built_html / "quickstart.html").as_uri(),
        ],
        capture_output=True,
        timeout=120,
        check=False,
    )
    assert shot.is_file(), "chromium wrote no screenshot"
    data = shot.read_bytes()
    assert data.startswith(b"\x89PNG\r\n\x1a\n")
    assert len(data) > 20_000  # a rendered page, not a blank one
    keep = os.environ.get("ROPC_DOCS_SCREENSHOT")
    if keep:
        shutil.copy(shot, keep)
