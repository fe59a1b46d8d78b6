"""Small helpers every stage uses to write artifacts safely and say what produced them.

The writes themselves are :mod:`keras_asc.atomic`'s; which files of a folder a stage wrote is
:mod:`keras_asc.stage_marker`'s record, and the one rule by which a rerun replaces them (ownership
by sha256) is :mod:`keras_asc.ownership`, whose docstring documents the API every stage uses
(:func:`staging_dir`, :func:`adding_files`, :func:`claim_folder`, :func:`check_replaceable`,
:func:`writing_beside`). Their public names are re-exported here.
"""
from __future__ import annotations

import json
import subprocess
from importlib import metadata
from pathlib import Path
from typing import Any, Callable

from keras_asc.atomic import (atomic_write_bytes, atomic_write_text, remove_abandoned_staging,  # noqa: F401
                              sha256_bytes, sha256_file, write_json)
from keras_asc.errors import AscError
from keras_asc.ownership import (BESIDE_SUFFIX, SET_ASIDE_SUFFIX, WRITE_BESIDE_HELP,  # noqa: F401
                                 WRITE_BESIDE_OPTION, RefusedOverwrite, adding_files, check_adding, check_replaceable,
                                 claim_folder, staging_dir, writing_beside)
from keras_asc.stage_marker import STAGE_MARKER, read_marker, record_unchanged, written_by  # noqa: F401

TRACKED_PACKAGES = (
    "tensorflow", "tf_keras", "tensorflow-model-optimization", "ai-edge-litert",
    "tflite-micro", "numpy", "librosa", "soundfile", "pandas",
)


class ArtifactError(AscError, ValueError):
    """An artifact file exists but cannot be read (empty, truncated, not what it should be)."""


def read_json(path: Path) -> Any:
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path} not found: run the stage that writes it first")
    try:
        return json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise ArtifactError(f"{path}: not readable JSON ({e}); the file is empty, truncated or edited. "
                            "Run the stage that writes it again") from None


def package_versions() -> dict[str, str]:
    out = {}
    for name in TRACKED_PACKAGES:
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            out[name] = "not installed"
    return out


def git_commit() -> str:
    """The checkout's commit (with '+dirty' when the tree has changes), or 'unknown'."""
    here = Path(__file__).resolve().parent
    try:
        rev = subprocess.run(["git", "rev-parse", "HEAD"], cwd=here, capture_output=True,
                             text=True, timeout=10)
        if rev.returncode != 0:
            return "unknown"
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=here,
                               capture_output=True, text=True, timeout=10).stdout.strip()
        return rev.stdout.strip() + ("+dirty" if dirty else "")
    except (OSError, subprocess.TimeoutExpired):
        return "unknown"


def provenance() -> dict[str, Any]:
    """What produced an artifact: package versions and the code's git commit."""
    return {"packages": package_versions(), "git_commit": git_commit()}


#: The packages whose version changes what validation and the firmware check compare against.
RUNTIME_PACKAGES = ("tflite-micro", "ai-edge-litert", "tensorflow")


def same_runtime_packages(recorded: dict[str, str]) -> bool:
    """Whether a stored report was made with the interpreters installed now (else it is stale)."""
    now = package_versions()
    return all(recorded.get(p) == now.get(p) for p in RUNTIME_PACKAGES)


def read_or_none(reader: Callable[[Path], Any], folder: Path) -> Any:
    """A stored stage result read by ``reader``, or None when it is absent or unreadable (its stage
    then runs again)."""
    try:
        return reader(folder)
    except (FileNotFoundError, ValueError, AscError):
        return None
