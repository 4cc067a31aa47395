"""Names users give objects (datasets, models, ...): safe in paths, URLs and messages.

>>> check_name("dataset", "flights-2013")
'flights-2013'
"""

from __future__ import annotations

import re

from mlwright.errors import StoreError

# fullmatch, not match with "$": "$" would also accept a trailing newline.
_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,127}")


def check_name(kind: str, name: str) -> str:
    """Return ``name`` if it is a valid object name, else raise a StoreError saying why.

    A name starts with a letter or digit, continues with letters, digits, ``_``, ``.`` or
    ``-``, is at most 128 characters long and never contains ``..``.

    >>> check_name("dataset", "../x")  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    mlwright.errors.StoreError: Dataset name '../x' is not allowed: use letters, digits, ...
    """
    if not isinstance(name, str) or not _NAME.fullmatch(name) or ".." in name:
        shown = repr(name) if len(repr(name)) <= 80 else repr(name)[:77] + "..."
        raise StoreError(f"{kind[:1].upper()}{kind[1:]} name {shown} is not allowed: use letters, "
                         "digits, '_', '.', '-' (at most 128, starting with a letter or digit).")
    return name
