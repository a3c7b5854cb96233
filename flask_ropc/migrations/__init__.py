"""Alembic migrations for Flask-ROPC's tables.

The revisions form their own branch, labelled ``flask_ropc``, so that they
can join an app's own Alembic (Flask-Migrate) history: add
:data:`VERSIONS_DIR` to the app's ``version_locations`` and upgrade to
``heads``. The "Migrations" section of the README and of docs/deploying.md
shows how.
"""

from __future__ import annotations

import os

#: The folder holding Flask-ROPC's revision files.
VERSIONS_DIR = os.path.join(os.path.dirname(__file__), "versions")

#: The Alembic branch label of Flask-ROPC's revisions.
BRANCH = "flask_ropc"


def add_version_location(config: object) -> object:
    """A Flask-Migrate ``@migrate.configure`` callback adding our revisions.

    ::

        migrate = Migrate(app, db)
        migrate.configure(flask_ropc.migrations.add_version_location)

    Alembic then sees the app's own revisions *and* ours, as two branches;
    ``flask db upgrade heads`` applies both.
    """
    get = getattr(config, "get_main_option")  # noqa: B009 (alembic Config)
    set_ = getattr(config, "set_main_option")  # noqa: B009
    separator_name = get("path_separator")
    if separator_name is None:
        # Without it Alembic falls back to a deprecated split on spaces.
        separator_name = "os"
        set_("path_separator", separator_name)
    separator = _SEPARATORS.get(separator_name, separator_name)
    script_location = get("script_location")
    current = get("version_locations") or os.path.join(script_location, "versions")
    if VERSIONS_DIR not in current.split(separator):
        set_("version_locations", f"{current}{separator}{VERSIONS_DIR}")
    return config


_SEPARATORS = {"os": os.pathsep, "space": " ", "newline": "\n"}
