"""Flask-ROPC's tables in an app's own Alembic (Flask-Migrate) history.

Our revisions ship in :data:`VERSIONS_DIR`, but Alembic never reads them
from there. ``flask ropc migration`` (:func:`write_revisions`) *copies* the
ones the app's history lacks into the app's own ``migrations/versions``,
each with a revision id of its own and the app's current head as its
``down_revision``. The app's history stays one straight line, so the plain
commands do the right thing: ``flask db upgrade`` applies the app's
revisions and ours, ``flask db migrate`` writes the app's next revision
beside the others (never into site-packages), and nothing has two heads.
``flask ropc migration --remove`` writes a revision that drops our tables
only; no downgrade is needed to remove them, so the app's tables and
revisions are never touched.

Our tables are in the app's ``db.metadata`` (they share it, see
:func:`flask_ropc.models.tables_for`), so autogenerate would see them too.
The :func:`configure` callback makes autogenerate skip them: they are
created, changed and dropped by our revisions only, and ``flask db migrate``
never writes an operation on them (nor a ``drop_table`` after their
removal). See docs/deploying.md, "Migrations", for why this design rather
than an Alembic branch of our own.
"""

from __future__ import annotations

import os
import re
import secrets
import typing as t

from flask import current_app

from ..models import new_tables

try:
    from alembic import script as alembic_script
except ImportError:  # pragma: no cover - the "migrations" extra is optional
    alembic_script = None  # type: ignore[assignment]

#: The folder holding Flask-ROPC's revision files (templates for the copies).
VERSIONS_DIR = os.path.join(os.path.dirname(__file__), "versions")

#: The names of Flask-ROPC's tables, which autogenerate leaves alone.
TABLES = frozenset(table.name for table in new_tables().all())

#: The module attribute marking a revision file as one of ours.
MARKER = "flask_ropc_revision"

#: The marker of the revision written by ``flask ropc migration --remove``.
REMOVED = "remove"


def include_object(
    obj: t.Any, name: str | None, type_: str, reflected: bool, compare_to: t.Any
) -> bool:
    """Alembic's ``include_object`` hook: False for our tables and their parts."""
    if type_ == "table":
        return name not in TABLES
    table = getattr(obj, "table", None)
    return getattr(table, "name", None) not in TABLES


class _Include:
    """Our :func:`include_object` in front of the app's own hook, if any."""

    flask_ropc = True

    def __init__(self, previous: t.Callable[..., bool] | None) -> None:
        self.previous = previous

    def __call__(self, *args: t.Any) -> bool:
        if not include_object(*args):
            return False
        return self.previous is None or self.previous(*args)


def configure(config: t.Any) -> t.Any:
    """A Flask-Migrate ``@migrate.configure`` callback: autogenerate skips us.

    ::

        migrate = Migrate(app, db)
        migrate.configure(flask_ropc.migrations.configure)

    An ``include_object`` the app passed to ``Migrate`` still applies.
    """
    args = current_app.extensions["migrate"].configure_args
    previous = args.get("include_object")
    if not getattr(previous, "flask_ropc", False):
        args["include_object"] = _Include(previous)
    return config


class Template(t.NamedTuple):
    """One of our packaged revision files."""

    number: str
    name: str
    text: str


def templates() -> list[Template]:
    """Our packaged revisions, oldest first."""
    found = []
    for file_name in sorted(os.listdir(VERSIONS_DIR)):
        if not re.fullmatch(r"ropc_\d{4}_\w+\.py", file_name):
            continue
        with open(os.path.join(VERSIONS_DIR, file_name), encoding="utf-8") as f:
            text = f.read()
        number = file_name[5:9]
        found.append(Template(number, file_name[10:-3], text))
    return found


def app_script_directory() -> t.Any:
    """The current app's Alembic scripts, as Flask-Migrate configures them."""
    migrate = current_app.extensions.get("migrate")
    if migrate is None or alembic_script is None:
        raise LookupError(
            "Flask-Migrate is not set up on this app "
            '(pip install "Flask-ROPC[migrations]"; Migrate(app, db))'
        )
    config = migrate.migrate.get_config()
    versions = os.path.join(config.get_main_option("script_location"), "versions")
    if not os.path.isdir(versions):
        raise LookupError(f"{versions} does not exist; run 'flask db init' first")
    return alembic_script.ScriptDirectory.from_config(config)


def present(script: t.Any) -> list[t.Any]:
    """Our revisions in the app's history, oldest first, since any removal."""
    ours: list[t.Any] = []
    for revision in script.walk_revisions():
        marker = getattr(revision.module, MARKER, None)
        if marker == REMOVED:
            break
        if marker is not None:
            ours.insert(0, revision)
    return ours


def _head(script: t.Any) -> str | None:
    heads = script.get_heads()
    if len(heads) > 1:
        raise RuntimeError(
            "the app's migration history has several heads "
            f"({', '.join(heads)}); merge them first (flask db merge heads)"
        )
    return heads[0] if heads else None


def _copy(template: Template, revision: str, down: str | None) -> str:
    text = template.text
    for pattern, line in (
        (r"^Revision ID: .*$", f"Revision ID: {revision}"),
        (r"^Revises:.*$", f"Revises: {down or ''}".rstrip()),
        (r"^revision = .*$", f"revision = {revision!r}"),
        (r"^down_revision = .*$", f"down_revision = {down!r}"),
    ):
        text = re.sub(pattern, line, text, count=1, flags=re.MULTILINE)
    return text


def _new_id(number: str) -> str:
    return f"ropc_{number}_{secrets.token_hex(4)}"


def write_revisions(script: t.Any, *, remove: bool = False) -> list[str]:
    """Write our missing revisions (or a removal) into the app's history.

    ``script`` is the app's Alembic ``ScriptDirectory``. Returns the paths
    written, none when the history is already up to date.
    """
    down = _head(script)
    ours = present(script)
    if remove:
        return [_write_removal(script.versions, down, ours)] if ours else []
    have = {getattr(revision.module, MARKER) for revision in ours}
    written = []
    for template in templates():
        if template.number in have:
            continue
        revision = _new_id(template.number)
        name = f"{revision}_flask_ropc_{template.name}.py"
        path = os.path.join(script.versions, name)
        with open(path, "w", encoding="utf-8") as f:
            f.write(_copy(template, revision, down))
        written.append(path)
        down = revision
    return written


_REMOVAL = '''"""Remove Flask-ROPC's tables (and every client, token and key in them).

Revision ID: {revision}
Revises: {down}

Written by ``flask ropc migration --remove``. The upgrade runs the
downgrades of Flask-ROPC's revisions, newest first; the downgrade runs their
upgrades again (the tables come back empty). The app's own tables are not
touched.
"""

import importlib.util
import os

revision = {revision!r}
down_revision = {down!r}
branch_labels = None
depends_on = None
flask_ropc_revision = "remove"

#: Flask-ROPC's revision files in this folder, oldest first.
REVISIONS = {files!r}


def _load(file_name):
    path = os.path.join(os.path.dirname(os.path.abspath(__file__)), file_name)
    spec = importlib.util.spec_from_file_location(file_name[:-3], path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def upgrade() -> None:
    """Drop Flask-ROPC's tables."""
    for file_name in reversed(REVISIONS):
        _load(file_name).downgrade()


def downgrade() -> None:
    """Create Flask-ROPC's tables again, empty."""
    for file_name in REVISIONS:
        _load(file_name).upgrade()
'''


def _write_removal(versions: str, down: str | None, ours: list[t.Any]) -> str:
    revision = _new_id(REMOVED)
    files = [os.path.relpath(script.path, versions) for script in ours]
    path = os.path.join(versions, f"{revision}_flask_ropc_remove.py")
    with open(path, "w", encoding="utf-8") as f:
        f.write(_REMOVAL.format(revision=revision, down=down, files=files))
    return path
