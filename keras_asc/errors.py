"""The one error contract of the toolkit.

:class:`AscError` is the base of every error a user can fix (a broken dataset, an over-budget
model, a missing toolchain, a stale artifact, a bad option value). Its message is one paragraph
that names the file or option and says what to do; ``asc`` prints it without a traceback and
exits with status 1. Any other exception is a bug in the toolkit: ``asc`` shows its traceback
and says so (exit status 2).

Each stage keeps its own subclass (``DatasetError``, ``BudgetError``, ``FirmwareError``, ...),
so callers can still catch one kind; the subclasses keep their historical built-in bases
(``ValueError``, ``RuntimeError``) for code that catches those.
"""
from __future__ import annotations

import errno
import os
from pathlib import Path


class AscError(Exception):
    """A problem the user can fix; its message says what and how, in one paragraph."""


def describe_os_error(e: OSError) -> str | None:
    """A one-paragraph message for the OS errors a user causes and can fix (a full disk, a
    read-only or forbidden folder, a file where a folder is expected), or None for others."""
    where = e.filename or "(unknown path)"
    if e.errno == errno.ENOSPC:
        return (f"{where}: no space left on the device. Nothing already written was lost (every "
                "artifact is written to a temporary file first); free some space and run the command again")
    if e.errno == errno.EROFS:
        return (f"{where}: on a read-only file system; choose another output folder (--out/--work)")
    if e.errno in (errno.EACCES, errno.EPERM):
        if e.filename and os.path.exists(where) and not os.access(where, os.R_OK):
            return (f"{where}: not readable (permission denied); make it readable by this user (chmod/chown) or "
                    "give another path")
        return (f"{where}: permission denied (not writable, or a folder above it cannot be entered); choose another "
                "output folder (--out/--work) or fix the permissions")
    if e.errno == errno.ENOTDIR:
        return (f"{where}: a part of this path is a file where a folder is expected; give a folder path "
                "or remove the file")
    if e.errno == errno.EISDIR:
        return f"{where}: is a folder where a file is expected; give the path of a file"
    if e.errno == errno.EEXIST:
        return (f"{where}: a file of that name is in the way where a folder is needed; give another path, or move "
                "the file away")
    if e.errno == errno.ELOOP:
        return f"{where}: a symbolic link that points (through others) back to itself; give a real file or folder"
    if e.errno == errno.ENAMETOOLONG:
        return f"{where}: the path (or a part of it) is longer than the file system allows; give a shorter path"
    if e.errno == errno.ENOENT and e.filename:
        return f"{Path(where)}: no such file or folder; check the path"
    return None
