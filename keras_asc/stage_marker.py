"""The record of what a stage wrote into a folder (its :data:`STAGE_MARKER`), and what each file
there is to that stage: absent, its own (the sha256 recorded), changed since, unverified (an older
version's marker kept no hash) or foreign. :mod:`keras_asc.ownership` decides from these what a rerun
may replace; its docstring documents the format and the rule.
"""
from __future__ import annotations

import dataclasses
import json
import os
from pathlib import Path
from typing import Iterator

from keras_asc.atomic import sha256_file, write_json

#: The file every artifact folder holds: its stage and the sha256 of every file the stage wrote.
STAGE_MARKER = ".asc-stage.json"
MARKER_FORMAT = 2
#: Folders written before the marker existed: the record in them that names their stage.
_LEGACY_RECORDS = {"export": "config.json", "features": "config.json", "firmware": "firmware_report.json",
                   "make-dataset": "synth_config.json"}

ABSENT, OWN, CHANGED, UNVERIFIED, FOREIGN = "absent", "own", "changed", "unverified", "foreign"


# ----------------------------------------------------------------------------- the record
@dataclasses.dataclass(frozen=True)
class StageRecord:
    """A folder's :data:`STAGE_MARKER`, read. ``hashes``: path -> the sha256 values it may hold as the
    stage's (two while a merge is under way); ``unverified``: paths an older version listed without a
    hash; ``sha256``: the settled path -> sha256, ``pending``: those of a merge under way; ``lists_files``:
    False for a marker of an older version that did not list its files (any file not hashed is unverified)."""
    stage: str | None
    hashes: dict[str, frozenset[str]]
    sha256: dict[str, str]
    unverified: frozenset[str]
    lists_files: bool = True
    pending: dict[str, str] = dataclasses.field(default_factory=dict)
    folder: str | None = None  # the folder's name where its stage wrote it


def read_marker(folder: Path) -> StageRecord | None:
    """``folder``'s marker, or None when it has none; an unreadable marker records nothing."""
    path = Path(folder) / STAGE_MARKER
    if not path.is_file() or path.is_symlink():
        return None
    try:
        raw = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError, UnicodeDecodeError):
        raw = None
    if not isinstance(raw, dict):
        return StageRecord(None, {}, {}, frozenset())

    def table(key: str) -> dict[str, str]:
        value = raw.get(key)
        return {k: v for k, v in value.items() if _inside(k) and isinstance(v, str)} \
            if isinstance(value, dict) else {}

    def names(key: str) -> set[str]:
        value = raw.get(key)
        return {n for n in value if _inside(n)} if isinstance(value, list) else set()

    sha256, pending, hashes = table("sha256"), table("pending"), {}
    for source in (sha256, pending):
        for name, digest in source.items():
            hashes[name] = hashes.get(name, frozenset()) | {digest}
    current = raw.get("format") == MARKER_FORMAT
    unverified = names("unverified") if current else names("files") - set(hashes)
    stage = raw.get("stage")
    return StageRecord(stage if isinstance(stage, str) else None, hashes, sha256, frozenset(unverified - set(hashes)),
                       lists_files=current or isinstance(raw.get("files"), list), pending=pending,
                       folder=raw.get("folder") if isinstance(raw.get("folder"), str) else None)


def _inside(name) -> bool:
    """Whether a name from a marker is a relative path inside its folder (an edited marker naming
    ``../x`` or ``/x`` must never make a stage delete or replace a file elsewhere)."""
    if not isinstance(name, str) or not name or name.startswith("/") or "\\" in name:
        return False
    parts = name.split("/")
    return parts[-1] != STAGE_MARKER and all(part not in ("", ".", "..") for part in parts)


def write_marker(folder: Path, *, stage: str, sha256: dict[str, str], unverified=(), pending=None,
                  name: str | None = None) -> None:
    """``name``: the folder's name where the stage wrote it (a copy elsewhere is not that output)."""
    record = {"stage": stage, "format": MARKER_FORMAT, "folder": name or Path(folder).name,
              "sha256": dict(sorted(sha256.items()))}
    if unverified:
        record["unverified"] = sorted(unverified)
    if pending:
        record["pending"] = dict(sorted(pending.items()))
    write_json(Path(folder) / STAGE_MARKER, record)


def written_by(folder: Path, stage: str) -> bool:
    """Whether ``folder`` is an artifact folder that ``stage`` wrote (its marker, or for folders
    older than the marker, its record's ``"stage"``)."""
    folder = Path(folder)
    for name in (STAGE_MARKER, _LEGACY_RECORDS.get(stage)):
        if name and (folder / name).is_file():
            try:
                return json.loads((folder / name).read_text()).get("stage") == stage
            except (json.JSONDecodeError, UnicodeDecodeError, AttributeError):
                return False
    return False


def record_unchanged(folder: Path, name: str = "config.json") -> bool | None:
    """Whether ``folder/name`` is the file its stage wrote (by the sha256 in the marker); None when
    the marker keeps no hash of it (a folder of an older version, or no marker)."""
    record = read_marker(folder)
    if record is None or name not in record.hashes:
        return None
    return file_state(Path(folder), name, record) == OWN


# ----------------------------------------------------------------------------- one file's state
def file_state(folder: Path, rel: str, record: StageRecord | None) -> str:
    """What ``folder/rel`` is to the stage: ABSENT, OWN (its recorded content), CHANGED, UNVERIFIED
    or FOREIGN (no record, a link, a folder, or a path through a link or a file)."""
    if blocked_path(folder, rel):
        return FOREIGN  # never written through a link, nor over a file standing where a folder was
    path = folder / rel
    if not path.exists() and not path.is_symlink():
        return ABSENT
    if path.is_symlink() or not path.is_file():
        return FOREIGN
    known = record.hashes.get(rel) if record else None
    if known:
        return OWN if sha256_file(path) in known else CHANGED
    return UNVERIFIED if record and (rel in record.unverified or not record.lists_files) else FOREIGN


def blocked_path(folder: Path, rel: str) -> bool:
    """Whether a folder on the way from ``folder`` to ``rel`` is a link or a file."""
    parent = folder
    for part in Path(rel).parts[:-1]:
        parent = parent / part
        if parent.is_symlink() or (parent.exists() and not parent.is_dir()):
            return True
    return False


def holds(path: Path, digest: str) -> bool:
    return path.is_file() and not path.is_symlink() and sha256_file(path) == digest


def is_scratch(name: str) -> bool:
    """A staging or temp entry of a run writing inside a folder (``.NAME.*.partial``, ``.NAME.*.tmp``)."""
    return name.startswith(".") and name.endswith((".partial", ".old", ".tmp"))


def walk_files(folder: Path) -> Iterator[tuple[str, Path]]:
    """Every entry under ``folder`` that is not a folder (files, links, links to folders), as
    (POSIX path relative to ``folder``, path); links are not followed, scratch entries skipped."""
    for root, dirs, files in os.walk(folder, followlinks=False):
        root_path = Path(root)
        links = [d for d in dirs if (root_path / d).is_symlink()]
        dirs[:] = sorted(d for d in dirs if d not in links and not is_scratch(d))
        for name in sorted(files + links):
            if not is_scratch(name):
                path = root_path / name
                yield path.relative_to(folder).as_posix(), path


def nested_stage_folders(folder: Path) -> list[Path]:
    """The outermost sub-folders of ``folder`` holding a stage marker of their own (other stages' artifacts)."""
    found: list[Path] = []
    for rel, _ in walk_files(folder):
        parts = rel.split("/")
        if parts[-1] == STAGE_MARKER and len(parts) > 1:
            sub = folder.joinpath(*parts[:-1])
            if not any(sub.is_relative_to(f) for f in found):
                found.append(sub)
    return found


def intact(folder: Path) -> bool:
    """Whether every file under ``folder`` is still its stages' (recorded, same sha256), nested ones too."""
    record = read_marker(folder)
    if record is None or record.folder != folder.name:  # a copy the user made under another name is theirs
        return False
    nested = nested_stage_folders(folder)
    if not all(intact(n) for n in nested):
        return False
    return all(rel == STAGE_MARKER or file_state(folder, rel, record) == OWN
               for rel, path in walk_files(folder) if not any(path.is_relative_to(n) for n in nested))
