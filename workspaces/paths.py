"""What a path is, for a session's ``workspace_path`` and each of its ``active_files``.

A path names a place on the machine the IDE works on; the platform never opens it, but other
programs (agents, terminals, the pages, log readers) do, so it must mean one thing only:

* absolute: it starts with ``/``;
* normalised: no ``.`` or ``..`` segment, no empty segment (``//``), no trailing ``/`` (except
  the root ``/`` itself), so that one place has one spelling and a filter on it finds it;
* printable: no control character (C0 including NUL, tab and newline; DEL; C1), no Unicode line
  or paragraph separator, no lone surrogate (not Unicode; not storable);
* at most ``MAX_PATH_BYTES`` bytes of UTF-8, which also keeps the ``sessions_by_workspace``
  index key far below FoundationDB's 10 kB.

``path_problem`` says what is wrong with a value (None when it is a path): the serializers turn
that into a field error, the services into WorkspaceError 400 ``invalid``.
"""

from __future__ import annotations

import re

MAX_PATH_BYTES = 1024
MAX_ACTIVE_FILES = 1000

# C0, DEL and C1 controls, U+2028/U+2029 (line breaks to many readers) and surrogates.
_FORBIDDEN = re.compile("[\x00-\x1f\x7f-\x9f\u2028\u2029\ud800-\udfff]")

NOT_TEXT = "Must be a string."
NOT_ABSOLUTE = "Must be an absolute path (starting with '/')."
TOO_LONG = f"Must be at most {MAX_PATH_BYTES} bytes of UTF-8."
CONTROL = "Must not contain control characters, line separators or lone surrogates."
NOT_NORMAL = "Must be normalised: no '.', '..' or empty segments and no trailing '/'."


def path_problem(value: object) -> str | None:
    """Why ``value`` is not a path, or None when it is one."""
    if not isinstance(value, str):
        return NOT_TEXT
    if not value.startswith("/"):
        return NOT_ABSOLUTE
    # Characters first: a lone surrogate cannot be encoded to count its bytes.
    if _FORBIDDEN.search(value) is not None:
        return CONTROL
    if len(value) > MAX_PATH_BYTES or len(value.encode()) > MAX_PATH_BYTES:
        return TOO_LONG
    # With a "/" appended, an empty segment or a trailing "/" shows as "//", a "." or ".."
    # segment as "/./" or "/../": substring searches, not a split (a create may carry 1,000).
    marked = value + "/"
    if value != "/" and ("//" in marked or "/./" in marked or "/../" in marked):
        return NOT_NORMAL
    return None
