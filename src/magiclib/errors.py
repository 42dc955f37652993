"""User errors: the exception types for mistakes the user can fix, where a one-line message is enough.

A `UserError` carries a message written for the user: it names the problem and the fix (an unknown preset,
a corrupt checkpoint, a full disk). Each subclass also subclasses the builtin it stands for, so code and
tests that catch `ValueError`, `FileNotFoundError`, `KeyError`... keep working. Anything that is not a
`UserError` (an error deep inside a library, a TypeError in our own code) is a bug, and its traceback is
what a bug report needs: the CLI and the grid print `magic: <message>` for the first and keep the second.
"""

from __future__ import annotations


class UserError(Exception):
    """A mistake the user can fix; the message names the problem and the fix."""


class BadValue(UserError, ValueError):
    """A value, argument or input file that cannot be used."""


class BadType(UserError, TypeError):
    """An argument of the wrong type (e.g. a table that is not a DataFrame)."""


class MissingFile(UserError, FileNotFoundError):
    """A file or folder that is not there; the message says what builds it."""


class UnknownName(UserError, KeyError):
    """A name that is not in a registry; the message lists the known ones."""

    def __str__(self) -> str:  # KeyError quotes its argument; a message reads better without
        return str(self.args[0]) if self.args else ""


class NotReady(UserError, RuntimeError):
    """A step or command whose inputs are not built yet, or an outside tool (a build) that failed."""


class DiskFull(UserError, OSError):
    """The disk (or quota) ran out while writing; nothing already written was lost."""


def user_message(err: BaseException) -> str | None:
    """The message of a user error, or None when `err` is a bug."""
    return str(err) if isinstance(err, UserError) else None
