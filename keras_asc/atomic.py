"""Atomic file writes, staging folders and content hashes: the bottom of the artifact layer.

:mod:`keras_asc.ownership` (which files a stage wrote) and :mod:`keras_asc.artifacts` (what every
stage imports) build on these; nothing here knows about stages.
"""
from __future__ import annotations

import contextlib
import hashlib
import json
import os
import shutil
import socket
import tempfile
from pathlib import Path
from typing import Any

import numpy as np


def umask() -> int:
    """The process's file-creation mask (read without changing it for longer than a call)."""
    mask = os.umask(0)
    os.umask(mask)
    return mask


def atomic_write_bytes(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` via a temp file in the same folder and a rename; the file gets
    the user's umask (``mkstemp`` alone would leave it 0600)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        os.chmod(tmp, 0o666 & ~umask())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


def atomic_write_text(path: Path, text: str) -> None:
    atomic_write_bytes(path, text.encode("utf-8"))


def write_json(path: Path, obj: Any) -> None:
    atomic_write_text(path, json.dumps(obj, indent=2, sort_keys=False, default=_json_default) + "\n")


def _json_default(o: Any) -> Any:
    if isinstance(o, np.generic):
        return o.item()
    if isinstance(o, np.ndarray):
        return o.tolist()
    if isinstance(o, Path):
        return str(o)
    raise TypeError(f"not JSON serializable: {type(o).__name__}")


def sha256_bytes(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


# ----------------------------------------------------------------------------- staging folders
def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _staging_owner() -> str:
    """``PID@HOST``: who a staging folder belongs to (on a shared file system a process id alone
    says nothing about another host's processes)."""
    return f"{os.getpid()}@{socket.gethostname().replace('.', '_')}"


def remove_abandoned_staging(final: Path) -> list[Path]:
    """Remove the ``.NAME.PID@HOST.*.partial`` folders next to ``final`` whose process on this
    host is gone (a killed run); a staging folder of a live process, or of another host (whose
    processes this one cannot see), is left alone. Returns what was removed."""
    final = Path(final)
    here = _staging_owner().partition("@")[2]
    removed = []
    for tmp in final.parent.glob(f".{final.name}.*.partial"):
        owner = tmp.name[len(final.name) + 2:].split(".")[0]
        pid_text, _, host = owner.partition("@")
        if host and host != here:
            continue
        pid = int(pid_text) if pid_text.isdigit() else None
        if pid is None or (pid != os.getpid() and not _pid_alive(pid)):
            shutil.rmtree(tmp, ignore_errors=True)
            removed.append(tmp)
    return removed


def staging_folder(final: Path) -> Path:
    """A new empty folder next to ``final`` (``.NAME.PID@HOST.*.partial``) for a stage to write into;
    the ones killed runs left there are removed first."""
    final.parent.mkdir(parents=True, exist_ok=True)
    remove_abandoned_staging(final)
    tmp = Path(tempfile.mkdtemp(dir=final.parent, prefix=f".{final.name}.{_staging_owner()}.", suffix=".partial"))
    os.chmod(tmp, 0o777 & ~umask())  # the user's umask (mkdtemp alone would leave it 0700)
    return tmp
