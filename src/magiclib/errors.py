"""Which failures are the user's to fix, where a message is enough, and which are bugs that keep a traceback.

An exception raised by an explicit `raise` in magiclib carries a message written for the user: it names the
problem and the fix (an unknown preset, a corrupt checkpoint, a full disk). Anything else, an error deep
inside a library or a TypeError in our own code, is a bug, and its traceback is what a bug report needs.
"""

from __future__ import annotations

import traceback
from pathlib import Path

PACKAGE_DIR = Path(__file__).resolve().parent


def user_message(err: BaseException) -> str | None:
    """The message of a deliberate magiclib error, or None when `err` looks like a bug."""
    frames = traceback.extract_tb(err.__traceback__)
    if not isinstance(err, Exception) or not frames:
        return None
    origin = frames[-1]
    if not Path(origin.filename).resolve().is_relative_to(PACKAGE_DIR) or not (origin.line or "").startswith("raise "):
        return None
    return str(err.args[0]) if isinstance(err, KeyError) and err.args else str(err)
