"""Sphinx configuration for Flask-ROPC's documentation.

Build it with ``sphinx-build -W --keep-going -b html docs docs/_build/html``.
Nothing here fetches from the network: no intersphinx, no remote images.
"""

from __future__ import annotations

import os
import sys
from importlib import metadata

# The package is installed into .venv in editable mode; this also makes a
# plain checkout work.
sys.path.insert(0, os.path.abspath(".."))

project = "Flask-ROPC"
author = "Flask-ROPC developers"
copyright = "Flask-ROPC developers"  # noqa: A001 (Sphinx's name)
try:
    release = metadata.version("Flask-ROPC")
except metadata.PackageNotFoundError:  # pragma: no cover
    release = "0.1.0.dev0"
version = release

extensions = [
    "sphinx.ext.autodoc",
    "myst_parser",
]

source_suffix = {".rst": "restructuredtext", ".md": "markdown"}
root_doc = "index"
exclude_patterns = ["_build", "_scripts", "Thumbs.db", ".DS_Store"]

# -- MyST ---------------------------------------------------------------------
myst_enable_extensions = ["colon_fence", "deflist", "tasklist"]
# Anchors for "#section" links within and between pages.
myst_heading_anchors = 3

# -- autodoc ------------------------------------------------------------------
autodoc_member_order = "bysource"
autodoc_typehints = "description"
autodoc_typehints_format = "short"
autodoc_preserve_defaults = True
# Our errors subclass Authlib's; their docstrings are not ours to render.
autodoc_inherit_docstrings = False

# -- HTML ---------------------------------------------------------------------
html_theme = "furo"
html_title = f"Flask-ROPC {release}"
html_static_path = ["_static"]
html_css_files = ["custom.css"]
html_show_sourcelink = False
pygments_style = "friendly"
