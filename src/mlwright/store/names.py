"""Names users give objects: safe in paths, URLs and messages."""

from __future__ import annotations

import re

from mlwright.errors import StoreError

_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,127}$")


def check_name(kind: str, name: str) -> str:
    """Return ``name`` if it is a valid object name, else raise a StoreError saying why.

    >>> check_name("dataset", "flights-2013")
    'flights-2013'
    """
    if not isinstance(name, str) or not _NAME.match(name) or ".." in name:
        raise StoreError(f"{kind.capitalize()} name {name!r} is not allowed: use letters, digits, "
                         "'_', '.' and '-' (at most 128, starting with a letter or digit).")
    return name
