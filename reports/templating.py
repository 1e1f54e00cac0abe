"""The one jinja2 environment every HTML page is rendered with.

Templates are the package's (``reports/templates``); each page extends ``base.html``, which
holds the head every page shares. Autoescaping is on for every template, so text taken
from input files (titles, descriptions, scenario text) can never become markup, and a
variable a template names but the page does not give is an error rather than an empty
string.
"""

from __future__ import annotations

import functools

import jinja2


@functools.cache
def environment() -> jinja2.Environment:
    """The jinja2 environment of every page: package templates, autoescape on, strict.

    Made once per process; jinja2 reloads a template whose file changed.
    """
    return jinja2.Environment(loader=jinja2.PackageLoader("reports", "templates"),
                              autoescape=True, undefined=jinja2.StrictUndefined,
                              trim_blocks=True, lstrip_blocks=True)
