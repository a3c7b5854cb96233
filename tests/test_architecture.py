"""The package's layering, read from its own source with ``ast``.

These are the rules the module docstrings promise: dependencies point one
way (no import cycles, nothing imports ``extension`` but ``__init__``, no
import hidden inside a function), only ``store/`` runs SQL, Authlib is named
in three modules only, and every module stays small enough to read at once.
Alembic's revision files (``migrations/``) change the schema through
Alembic and are outside these rules.
"""

from __future__ import annotations

import ast
import pathlib
import typing as t

import pytest

PACKAGE = pathlib.Path(__file__).resolve().parent.parent / "flask_ropc"

#: The only modules that may import Authlib.
AUTHLIB_MODULES = {"flask_ropc.errors", "flask_ropc.server", "flask_ropc.resource"}

#: Outside ``store/``, only the table definitions may import SQLAlchemy.
SQLALCHEMY_MODULES = {"flask_ropc.models", "flask_ropc.mfa_tables"}

#: Longest module, in lines.
MAX_LINES = 350

SQL_WORDS = ("SELECT ", "INSERT INTO", "UPDATE ", "DELETE FROM", "CREATE TABLE")


class Module(t.NamedTuple):
    name: str
    path: pathlib.Path
    tree: ast.Module

    @property
    def package(self) -> str:
        """The package relative imports in this module start from."""
        if self.path.name == "__init__.py":
            return self.name
        return self.name.rpartition(".")[0]

    @property
    def in_store(self) -> bool:
        return self.name == "flask_ropc.store" or self.name.startswith(
            "flask_ropc.store."
        )


def _modules() -> list[Module]:
    found = []
    for path in sorted(PACKAGE.rglob("*.py")):
        relative = path.relative_to(PACKAGE.parent).with_suffix("")
        if "migrations" in relative.parts:
            continue
        parts = list(relative.parts)
        if parts[-1] == "__init__":
            parts.pop()
        tree = ast.parse(path.read_text("utf-8"), filename=str(path))
        found.append(Module(".".join(parts), path, tree))
    return found


MODULES = _modules()
NAMES = {module.name for module in MODULES}


def _type_checking_only(tree: ast.Module) -> set[int]:
    """Line numbers of imports under ``if t.TYPE_CHECKING:``."""
    lines: set[int] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            for inner in node.body:
                for sub in ast.walk(inner):
                    if isinstance(sub, ast.Import | ast.ImportFrom):
                        lines.add(sub.lineno)
    return lines


def _imports(module: Module) -> list[tuple[ast.Import | ast.ImportFrom, list[str]]]:
    """Every import statement with the absolute names it imports."""
    result = []
    for node in ast.walk(module.tree):
        if isinstance(node, ast.Import):
            result.append((node, [alias.name for alias in node.names]))
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = module.package.split(".")
                base = base[: len(base) - node.level + 1]
                target = ".".join([*base, *([node.module] if node.module else [])])
            else:
                target = node.module or ""
            names = [target]
            if node.module is None:
                # ``from . import signals`` imports the module
                # flask_ropc.signals, not what the package itself defines.
                names = [
                    f"{target}.{alias.name}"
                    if f"{target}.{alias.name}" in NAMES
                    else target
                    for alias in node.names
                ]
            result.append((node, names))
    return result


def _internal_edges(module: Module) -> set[str]:
    """The package modules ``module`` imports (its own package excluded)."""
    edges = set()
    for _, names in _imports(module):
        for name in names:
            while name and name not in NAMES:
                name = name.rpartition(".")[0]
            if name and name != module.name and name != "flask_ropc":
                edges.add(name)
    return edges


def test_the_package_has_no_import_cycle() -> None:
    graph = {module.name: _internal_edges(module) for module in MODULES}
    cycles = []
    state: dict[str, str] = {}

    def visit(name: str, path: list[str]) -> None:
        state[name] = "open"
        for target in sorted(graph[name]):
            if state.get(target) == "open":
                cycles.append(" -> ".join([*path[path.index(target) :], target]))
            elif target not in state:
                visit(target, [*path, target])
        state[name] = "done"

    for name in sorted(graph):
        if name not in state:
            visit(name, [name])
    assert cycles == []


def test_nothing_inside_the_package_imports_the_extension_module() -> None:
    importers = [
        module.name
        for module in MODULES
        if "flask_ropc.extension" in _internal_edges(module)
    ]
    assert importers == ["flask_ropc"]


def test_no_import_hides_inside_a_function() -> None:
    hidden = []
    for module in MODULES:
        for node in ast.walk(module.tree):
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
                for inner in ast.walk(node):
                    if isinstance(inner, ast.Import | ast.ImportFrom):
                        hidden.append(f"{module.name}:{inner.lineno}")
    assert hidden == []


@pytest.mark.parametrize("module", MODULES, ids=lambda m: m.name)
def test_only_the_store_runs_sql(module: Module) -> None:
    if module.in_store:
        return
    typing_only = _type_checking_only(module.tree)
    offences = []
    for node, names in _imports(module):
        if node.lineno in typing_only or module.name in SQLALCHEMY_MODULES:
            continue
        if any(name.split(".")[0] == "sqlalchemy" for name in names):
            offences.append(f"imports sqlalchemy at line {node.lineno}")
    for node in ast.walk(module.tree):
        if isinstance(node, ast.Attribute) and node.attr in (
            "execute",
            "exec_driver_sql",
            "executescript",
        ):
            offences.append(f"calls .{node.attr} at line {node.lineno}")
        if isinstance(node, ast.Constant) and isinstance(node.value, str):
            if any(word in node.value for word in SQL_WORDS):
                if not _is_docstring(module.tree, node):
                    offences.append(f"SQL text at line {node.lineno}")
    assert offences == []


def _is_docstring(tree: ast.Module, constant: ast.Constant) -> bool:
    for node in ast.walk(tree):
        if isinstance(
            node, ast.Module | ast.ClassDef | ast.FunctionDef | ast.AsyncFunctionDef
        ):
            body = node.body
            if body and isinstance(body[0], ast.Expr) and body[0].value is constant:
                return True
    return False


@pytest.mark.parametrize("module", MODULES, ids=lambda m: m.name)
def test_authlib_is_imported_by_three_modules_only(module: Module) -> None:
    authlib = [
        node.lineno
        for node, names in _imports(module)
        if any(name.split(".")[0] == "authlib" for name in names)
    ]
    if module.name not in AUTHLIB_MODULES:
        assert authlib == []


def test_authlib_adapters_exist() -> None:
    """The allow-list names real modules, so the rule above cannot go stale."""
    assert AUTHLIB_MODULES <= NAMES
    assert SQLALCHEMY_MODULES <= NAMES


@pytest.mark.parametrize("module", MODULES, ids=lambda m: m.name)
def test_every_module_says_what_it_owns_and_stays_small(module: Module) -> None:
    assert ast.get_docstring(module.tree), f"{module.name} has no docstring"
    lines = len(module.path.read_text("utf-8").splitlines())
    assert lines <= MAX_LINES, f"{module.name} has {lines} lines"


def test_the_rules_see_a_violation() -> None:
    """The checks above judge real trees: a planted cycle and SQL are found."""
    planted = ast.parse(
        "from . import extension\n"
        "def f():\n"
        "    import sqlalchemy\n"
        "    conn.execute('SELECT 1')\n"
    )
    module = Module("flask_ropc.planted", PACKAGE / "planted.py", planted)
    assert "flask_ropc.extension" in _internal_edges(module)
    hidden = [
        inner
        for node in ast.walk(planted)
        if isinstance(node, ast.FunctionDef)
        for inner in ast.walk(node)
        if isinstance(inner, ast.Import)
    ]
    assert hidden
    with pytest.raises(AssertionError):
        test_only_the_store_runs_sql(module)
