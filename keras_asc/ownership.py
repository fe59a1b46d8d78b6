"""Ownership by hash: every stage writes its folder through here, so that no stage replaces or
deletes a file it did not write, or one the user changed since it wrote it.

**The record.** Each artifact folder holds :data:`STAGE_MARKER` (``.asc-stage.json``)::

    {"stage": "bundle", "format": 2, "sha256": {"board/board.ld": "<sha256>", ...}}

the stage that wrote it and the sha256 of every file it wrote (POSIX paths relative to the folder).
Markers of older versions (no ``"format"``) list their ``"files"`` without a hash (only
``config.json``'s): those files are *unverified*, since whether the user changed them cannot be told.

**The rule**, applied when a stage's new output meets what is already there (:func:`staging_dir`,
:func:`adding_files`):

- a file that is absent, or whose content is still the one recorded, is replaced;
- a file that already holds the new content is kept as it is (and recorded);
- a file changed since (its sha256 differs), unverified, or not the stage's (no record, a symbolic link,
  a folder) is a *conflict*: the stage refuses (:class:`RefusedOverwrite`, exit status 1, naming every
  such file) and nothing is changed; with ``write_beside`` the file is kept and the new version is
  written beside it as ``NAME`` + :data:`BESIDE_SUFFIX` (``board/board.ld.asc-new``), which is
  recorded while the kept file no longer is (it is the user's now);
- a file of the previous version that the new one does not write is deleted when unchanged, kept (and
  no longer recorded) when changed or unverified;
- a cache (the feature cache, whose entries asc alone writes and checks) passes ``set_aside=True``: a
  conflicting file is renamed ``NAME`` + :data:`SET_ASIDE_SUFFIX` (never deleted) and the new version
  takes its name, so a damaged entry is computed again;
- every other file (the user's notes, the ``build/`` CMake fills) is never touched, and a folder is
  removed only when deleting the stage's own files above leaves it empty;
- a sub-folder with another stage's marker (an export's ``firmware/``, the reports of the previous
  model) is removed with the stale files only when every file in it is still its stage's (by
  hash); otherwise it is left whole.

A folder whose marker names another stage, or that holds files and no marker, is refused outright.

**API** (also importable from :mod:`keras_asc.artifacts`; a new stage such as ``asc board`` uses it
the same way):

- ``with staging_dir(final, stage=..., inputs=(...)) as tmp:`` write the stage's *whole* output into
  the empty folder ``tmp``; on success ``final`` is created by one rename when absent, otherwise the
  new files are merged into it by the rule above. ``inputs`` are folders or files the stage reads:
  ``final`` may not be or hold one.
- ``check_replaceable(final, stage=..., inputs=(...))``: the same refusals before any work (a file the
  stage wrote and the user changed, or an unverified one, is refused here already).
- ``with adding_files(folder, stage=..., names=(...)) as tmp:`` files added to a folder another run
  of ``stage`` wrote (``asc validate``'s reports in an export, ``asc grid``'s tables): only ``names``
  are managed, by the same rule; ``check_adding`` is its check before any work.
- ``claim_folder(folder, stage=..., writes=(...))``: a folder a stage fills over time (``asc grid``).
- ``writing_beside(True)``: the CLI's ``--write-beside`` (:data:`WRITE_BESIDE_OPTION`) for every call
  inside it; each function also takes ``write_beside=`` (None: the surrounding setting).
- ``written_by(folder, stage)``, ``record_unchanged(folder, name)``: questions readers ask.

While files move into an existing folder its marker lists the new hashes as ``"pending"``: a killed
run leaves files of both versions, all of them known as the stage's, and the next run completes it.
"""
from __future__ import annotations

import contextlib
import contextvars
import dataclasses
import errno
import json
import os
import shutil
import sys
from pathlib import Path
from typing import Callable, Iterator

from keras_asc.atomic import atomic_write_bytes, sha256_file, staging_folder, write_json
from keras_asc.errors import AscError

#: The file every artifact folder holds: its stage and the sha256 of every file the stage wrote.
STAGE_MARKER = ".asc-stage.json"
MARKER_FORMAT = 2
#: What a new version of a file the user changed is called, written beside it with ``write_beside``.
BESIDE_SUFFIX = ".asc-new"
#: What a conflicting file of a cache is renamed to, its new version taking its name (``set_aside``).
SET_ASIDE_SUFFIX = ".asc-old"
#: The command-line option that asks for it (every command that writes a stage's folder).
WRITE_BESIDE_OPTION = "--write-beside"
WRITE_BESIDE_HELP = (f"when a file this command would replace was changed since asc wrote it (or is not asc's), keep "
                     f"it and write the new version beside it as NAME{BESIDE_SUFFIX} instead of refusing")
#: Folders written before the marker existed: the record in them that names their stage.
_LEGACY_RECORDS = {"export": "config.json", "features": "config.json", "firmware": "firmware_report.json",
                   "make-dataset": "synth_config.json"}

ABSENT, OWN, CHANGED, UNVERIFIED, FOREIGN = "absent", "own", "changed", "unverified", "foreign"
_WHY = {CHANGED: "changed since asc {stage} wrote them (their sha256 is no longer the one in " + STAGE_MARKER + ")",
        UNVERIFIED: "written by an older version of asc that kept no sha256 of them, so whether they were changed "
                    "cannot be told",
        FOREIGN: "not written by asc {stage} (yours, or a link or folder where asc writes a file)"}

#: (write beside?, how the caller asks for it: the option's name, or None when its command has none)
_WRITE_BESIDE: contextvars.ContextVar[tuple[bool, str | None]] = contextvars.ContextVar(
    "asc_write_beside", default=(False, "write_beside=True"))


class RefusedOverwrite(AscError, FileExistsError):
    """An artifact would replace a file or folder that its stage did not write, one the user changed,
    or its own input."""


@contextlib.contextmanager
def writing_beside(enabled: bool, *, offered: bool = True) -> Iterator[None]:
    """Within this block, a stage keeps a conflicting file and writes its new version beside it when
    ``enabled`` (``write_beside=None`` everywhere means this setting): the CLI's ``--write-beside``.
    ``offered``: whether the running command has that option (a refusal names it only then)."""
    token = _WRITE_BESIDE.set((bool(enabled), WRITE_BESIDE_OPTION if offered else None))
    try:
        yield
    finally:
        _WRITE_BESIDE.reset(token)


def _beside(write_beside: bool | None) -> bool:
    return _WRITE_BESIDE.get()[0] if write_beside is None else bool(write_beside)


def _note(message: str) -> None:
    print(f"asc: note: {message}", file=sys.stderr)


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
                       lists_files=current or isinstance(raw.get("files"), list), pending=pending)


def _inside(name) -> bool:
    """Whether a name from a marker is a relative path inside its folder (an edited marker naming
    ``../x`` or ``/x`` must never make a stage delete or replace a file elsewhere)."""
    if not isinstance(name, str) or not name or name.startswith("/") or "\\" in name:
        return False
    parts = name.split("/")
    return parts[-1] != STAGE_MARKER and all(part not in ("", ".", "..") for part in parts)


def _write_marker(folder: Path, *, stage: str, sha256: dict[str, str], unverified=(), pending=None) -> None:
    record = {"stage": stage, "format": MARKER_FORMAT, "sha256": dict(sorted(sha256.items()))}
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
    return _state(Path(folder), name, record) == OWN


# ----------------------------------------------------------------------------- one file's state
def _state(folder: Path, rel: str, record: StageRecord | None) -> str:
    """What ``folder/rel`` is to the stage: ABSENT, OWN (its recorded content), CHANGED, UNVERIFIED
    or FOREIGN (no record, a link, a folder, or a path through a link or a file)."""
    if _blocked_path(folder, rel):
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


def _blocked_path(folder: Path, rel: str) -> bool:
    """Whether a folder on the way from ``folder`` to ``rel`` is a link or a file."""
    parent = folder
    for part in Path(rel).parts[:-1]:
        parent = parent / part
        if parent.is_symlink() or (parent.exists() and not parent.is_dir()):
            return True
    return False


def _holds(path: Path, digest: str) -> bool:
    return path.is_file() and not path.is_symlink() and sha256_file(path) == digest


def _is_scratch(name: str) -> bool:
    """A staging or temp entry of a run writing inside a folder (``.NAME.*.partial``, ``.NAME.*.tmp``)."""
    return name.startswith(".") and name.endswith((".partial", ".old", ".tmp"))


def _walk(folder: Path) -> Iterator[tuple[str, Path]]:
    """Every entry under ``folder`` that is not a folder (files, links, links to folders), as
    (POSIX path relative to ``folder``, path); links are not followed, scratch entries skipped."""
    for root, dirs, files in os.walk(folder, followlinks=False):
        root_path = Path(root)
        links = [d for d in dirs if (root_path / d).is_symlink()]
        dirs[:] = sorted(d for d in dirs if d not in links and not _is_scratch(d))
        for name in sorted(files + links):
            if not _is_scratch(name):
                path = root_path / name
                yield path.relative_to(folder).as_posix(), path


def _free_name(path: Path) -> Path:
    """``path``, or ``path-2``, ``path-3``... the first that does not exist."""
    n, candidate = 1, path
    while candidate.exists() or candidate.is_symlink():
        n += 1
        candidate = path.with_name(f"{path.name}-{n}")
    return candidate


def _empty_folders(folder: Path) -> list[str]:
    return [Path(root).relative_to(folder).as_posix() for root, dirs, files in os.walk(folder)
            if not dirs and not files and Path(root) != folder]


def _nested(folder: Path) -> list[Path]:
    """The outermost sub-folders of ``folder`` holding a stage marker of their own (other stages' artifacts)."""
    found: list[Path] = []
    for rel, _ in _walk(folder):
        parts = rel.split("/")
        if parts[-1] == STAGE_MARKER and len(parts) > 1:
            sub = folder.joinpath(*parts[:-1])
            if not any(sub.is_relative_to(f) for f in found):
                found.append(sub)
    return found


def _intact(folder: Path) -> bool:
    """Whether every file under ``folder`` is still its stages' (recorded, same sha256), nested ones too."""
    record = read_marker(folder)
    if record is None:
        return False
    nested = _nested(folder)
    if not all(_intact(n) for n in nested):
        return False
    return all(rel == STAGE_MARKER or _state(folder, rel, record) == OWN
               for rel, path in _walk(folder) if not any(path.is_relative_to(n) for n in nested))


# ----------------------------------------------------------------------------- refusals
def _listed(rels: list[str]) -> str:
    return ", ".join(rels[:6]) + (f" and {len(rels) - 6} more" if len(rels) > 6 else "")


def _refusal(folder: Path, stage: str, conflicts: dict[str, list[str]], blocked: list[str] = ()) -> RefusedOverwrite:
    parts = [f"{_WHY[kind].format(stage=stage)}: {_listed(rels)}" for kind, rels in conflicts.items() if rels]
    text = (f"{folder}: asc {stage} would replace files it cannot tell are still its own; {'; '.join(parts)}. "
            "Nothing was changed. ")
    ask = _WRITE_BESIDE.get()[1]
    if blocked:
        return RefusedOverwrite(text + f"Writing the new versions beside them cannot help: {_listed(list(blocked))} "
                                "is in the way and is not asc's. Move those files out of the folder and run the "
                                "command again")
    if ask is None:
        return RefusedOverwrite(text + f"Move those files out of {folder} (keep a copy if you need them) and run the "
                                "command again")
    return RefusedOverwrite(
        text + f"To keep yours and have asc write its new version beside each (NAME{BESIDE_SUFFIX}), run the command "
        f"again with {ask}; or move those files out of {folder} and run it again")


def _check_folder(final: Path, *, stage: str, inputs: tuple[Path, ...]) -> None:
    resolved = final.resolve()
    for inp in inputs:
        inp = Path(inp).resolve()
        if resolved == inp or resolved in inp.parents:
            raise RefusedOverwrite(
                f"{final}: is {'the' if resolved == inp else 'a folder holding the'} input {inp} of asc {stage}; "
                f"writing the {stage} there would replace it. Choose another output folder (--out)")
    if not final.exists() and not final.is_symlink():
        return
    if not final.is_dir() or final.is_symlink():
        raise RefusedOverwrite(f"{final}: exists and is not a folder asc {stage} wrote; nothing was changed. "
                               "Choose another output folder (--out), or move that file away yourself")
    if any(final.iterdir()) and not written_by(final, stage):
        raise RefusedOverwrite(
            f"{final}: exists and holds files asc {stage} did not write (no {STAGE_MARKER} of stage "
            f"{stage!r}); nothing was changed. Choose another output folder (--out), or empty or remove "
            "that folder yourself")


def _changed_files(folder: Path, names=None) -> dict[str, list[str]]:
    """The recorded (or unverified) files of ``folder`` (among ``names``, when given) whose content is
    no longer the stage's; for a folder without a marker, the ``names`` that exist."""
    record = read_marker(folder)
    if names is not None:
        candidates = set(names)
    else:
        candidates = set(record.hashes) | set(record.unverified) if record else set()
    found: dict[str, list[str]] = {CHANGED: [], UNVERIFIED: [], FOREIGN: []}
    for rel in sorted(candidates):
        state = _state(folder, rel, record)
        if state in found:
            found[state].append(rel)
    return found


def check_replaceable(final: Path, *, stage: str, inputs: tuple[Path, ...] = (),
                      write_beside: bool | None = None, set_aside: bool = False) -> None:
    """Refuse (:class:`RefusedOverwrite`, naming the path and the fix), before any work, what
    :func:`staging_dir` would refuse: ``final`` being or holding one of ``inputs``, a file, a folder
    of files another stage or the user wrote, or (unless ``write_beside``) a folder of ``stage``'s in
    which a file it wrote was changed since, or cannot be verified (an older version's), unless
    ``set_aside``."""
    final = Path(final)
    _check_folder(final, stage=stage, inputs=inputs)
    if final.is_dir() and not _beside(write_beside) and not set_aside:
        changed = _changed_files(final)
        changed.pop(FOREIGN)  # a file it recorded that became a folder or a link: refused by the merge if rewritten
        if any(changed.values()):
            raise _refusal(final, stage, changed)


def check_adding(folder: Path, *, stage: str, names: tuple[str, ...], write_beside: bool | None = None) -> None:
    """Before any work: refuse (:class:`RefusedOverwrite`) adding ``names`` to ``folder`` when it is
    another stage's, or (unless ``write_beside``) one of ``names`` there was changed since asc wrote it,
    cannot be verified or is not asc's."""
    folder = Path(folder)
    if not folder.is_dir() or folder.is_symlink():
        raise RefusedOverwrite(f"{folder}: not a folder asc {stage} wrote; nothing was changed")
    record = read_marker(folder)
    if record is not None and record.stage != stage:
        raise RefusedOverwrite(f"{folder}: its {STAGE_MARKER} names stage {record.stage!r}, not {stage!r}; asc "
                               f"adds its files only to a folder of asc {stage}, so nothing was changed")
    if not _beside(write_beside):
        changed = _changed_files(folder, names)
        if any(changed.values()):
            raise _refusal(folder, stage, changed)


# ----------------------------------------------------------------------------- the merge
@dataclasses.dataclass
class _Plan:
    place: list[str] = dataclasses.field(default_factory=list)  # new files moved in under their names
    adopt: list[str] = dataclasses.field(default_factory=list)  # already there with the new content
    beside: list[str] = dataclasses.field(default_factory=list)  # written as NAME.asc-new, NAME kept
    aside: list[str] = dataclasses.field(default_factory=list)  # NAME renamed NAME.asc-old, then written
    delete: list[str] = dataclasses.field(default_factory=list)  # the previous version's, unchanged, not rewritten
    kept: list[str] = dataclasses.field(default_factory=list)  # the previous version's, changed: now the user's
    conflicts: dict[str, list[str]] = dataclasses.field(default_factory=lambda: {CHANGED: [], UNVERIFIED: [],
                                                                                   FOREIGN: []})
    blocked: list[str] = dataclasses.field(default_factory=list)  # NAME.asc-new in the way, not asc's
    nested_removed: list[Path] = dataclasses.field(default_factory=list)
    nested_kept: list[Path] = dataclasses.field(default_factory=list)


def _plan(final: Path, new: dict[str, str], record: StageRecord | None, *, scope: frozenset[str] | None,
          beside: bool, aside: bool) -> _Plan:
    plan = _Plan()
    for rel, digest in sorted(new.items()):
        state = _state(final, rel, record)
        if state in (ABSENT, OWN):
            plan.place.append(rel)
        elif _holds(final / rel, digest):
            plan.adopt.append(rel)
        elif aside and not _blocked_path(final, rel):
            plan.aside.append(rel)
        else:
            plan.conflicts[state].append(rel)
            if beside:
                other = rel + BESIDE_SUFFIX
                ok = _state(final, other, record) in (ABSENT, OWN) or _holds(final / other, digest)
                (plan.beside if ok else plan.blocked).append(rel if ok else other)
    previous = set(record.hashes) | set(record.unverified) if record else set()
    if scope is not None:
        previous &= scope
    for rel in sorted(previous - set(new) - {r + BESIDE_SUFFIX for r in plan.beside}):
        state = _state(final, rel, record)
        if state == OWN:
            plan.delete.append(rel)
        elif state in (CHANGED, UNVERIFIED):
            plan.kept.append(rel)
    if scope is None:
        for sub in _nested(final):
            (plan.nested_removed if _intact(sub) else plan.nested_kept).append(sub)
    return plan


def _move(src: Path, dst: Path) -> None:
    dst.parent.mkdir(parents=True, exist_ok=True)
    try:
        os.replace(src, dst)
    except OSError as e:
        if e.errno != errno.EXDEV:  # another file system (a mount point): copy, then rename there
            raise
        atomic_write_bytes(dst, src.read_bytes())


def _remove_file(folder: Path, path: Path) -> None:
    """Delete ``path`` and the folders this leaves empty, up to (not including) ``folder``."""
    path.unlink()
    parent = path.parent
    while parent != folder and parent.is_relative_to(folder):
        try:
            parent.rmdir()
        except OSError:
            break
        parent = parent.parent


def _remove_intact(folder: Path, sub: Path) -> None:
    """Delete every file of ``sub`` (checked intact) and its emptied folders."""
    for _, path in sorted(_walk(sub), key=lambda item: item[0].endswith(STAGE_MARKER)):  # its marker last
        _remove_file(folder, path)


def _commit(tmp: Path, final: Path, *, stage: str, scope: frozenset[str] | None, beside: bool,
            log: Callable[[str], None], aside: bool = False) -> None:
    """Bring the staged files of ``tmp`` into ``final`` by the module's rule (``scope``: the names this
    write manages, None for the stage's whole folder); raises :class:`RefusedOverwrite` before any
    change when a conflict remains."""
    new = {rel: sha256_file(path) for rel, path in _walk(tmp)}
    if scope is None and not final.exists() and not final.is_symlink():
        _write_marker(tmp, stage=stage, sha256=new)
        try:
            os.replace(tmp, final)
            return
        except OSError as e:  # a folder appeared there meanwhile: merged into instead
            if e.errno not in (errno.ENOTEMPTY, errno.EEXIST):
                raise
            (tmp / STAGE_MARKER).unlink()
    record = read_marker(final)
    plan = _plan(final, new, record, scope=scope, beside=beside, aside=aside)
    if plan.blocked or (any(plan.conflicts.values()) and not beside):
        raise _refusal(final, stage, plan.conflicts, plan.blocked)
    old = dict(record.sha256) if record else {}
    unverified = set(record.unverified) if record else set()
    incoming = {rel: new[rel] for rel in plan.place + plan.aside} | {
        rel + BESIDE_SUFFIX: new[rel] for rel in plan.beside}
    _write_marker(final, stage=stage, sha256=old, unverified=unverified,
                  pending={**(record.pending if record else {}), **incoming})  # a killed run's too, until deleted
    for rel in plan.delete:
        if _state(final, rel, record) == OWN:  # still: the user may have written it meanwhile
            _remove_file(final, final / rel)
    for sub in plan.nested_removed:
        _remove_intact(final, sub)
    for rel in plan.place:
        if _state(final, rel, record) not in (ABSENT, OWN):
            raise _refusal(final, stage, {CHANGED: [rel]})  # changed while this run wrote its files
        _move(tmp / rel, final / rel)
    for rel in plan.beside:
        _move(tmp / rel, final / (rel + BESIDE_SUFFIX))
    set_aside = {}
    for rel in plan.aside:
        set_aside[rel] = _free_name(final / (rel + SET_ASIDE_SUFFIX))
        os.replace(final / rel, set_aside[rel])  # renamed, never deleted: a link stays a link
        _move(tmp / rel, final / rel)
    for rel in _empty_folders(tmp):  # folders the stage made and left empty (a rename would have kept them)
        with contextlib.suppress(OSError):
            (final / rel).mkdir(parents=True, exist_ok=True)
    gone = set(plan.delete) | set(plan.kept) | {rel for rels in plan.conflicts.values() for rel in rels}
    for rel, where in set_aside.items():
        log(f"{final / rel}: was not the file asc {stage} wrote; set aside as {where} (delete it when you do not "
            "need it), and written again")
    if scope is None:
        kept_record = {}
        unverified = set()
    else:
        kept_record = {k: v for k, v in old.items() if k not in gone and k not in incoming}
        unverified -= gone | set(new) | set(incoming)
    settled = {**kept_record, **incoming, **{rel: new[rel] for rel in plan.adopt}}
    _write_marker(final, stage=stage, sha256=settled, unverified=unverified)
    for rel in plan.beside:
        log(f"{final / rel}: kept yours; asc {stage}'s new version is {final / (rel + BESIDE_SUFFIX)}")
    for rel in plan.kept:
        log(f"{final / rel}: kept (changed since asc {stage} wrote it, and no longer written by it); it is yours now")
    for sub in plan.nested_kept:
        log(f"{sub}: kept as it is (another stage's folder holding files that are not that stage's, or changed); "
            f"it may describe the previous asc {stage} output")


@contextlib.contextmanager
def staging_dir(final: Path, *, stage: str, inputs: tuple[Path, ...] = (), write_beside: bool | None = None,
                set_aside: bool = False, log: Callable[[str], None] | None = None) -> Iterator[Path]:
    """Yield an empty temp folder next to ``final`` for ``stage``'s whole output; on success it
    becomes ``final`` (one rename when ``final`` is absent, else merged by the module's rule).

    Checked before (:func:`check_replaceable`) and at the end; a conflict raises
    :class:`RefusedOverwrite` with nothing changed. A crash before the end leaves ``final`` as it was;
    the staging folder a killed process left behind is removed by the next call. ``log`` receives a
    line per file kept, written beside or set aside (default: ``asc: note:`` on stderr). ``set_aside``:
    a cache's conflicting files are renamed ``NAME.asc-old`` and written again (see the module)."""
    final = Path(final)
    beside = _beside(write_beside)
    check_replaceable(final, stage=stage, inputs=inputs, write_beside=beside, set_aside=set_aside)
    tmp = staging_folder(final)
    try:
        yield tmp
        _check_folder(final, stage=stage, inputs=inputs)  # nothing else appeared there meanwhile
        _commit(tmp, final, stage=stage, scope=None, beside=beside, aside=set_aside, log=log or _note)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


@contextlib.contextmanager
def adding_files(folder: Path, *, stage: str, names: tuple[str, ...], write_beside: bool | None = None,
                 log: Callable[[str], None] | None = None) -> Iterator[Path]:
    """Yield an empty temp folder for files (among ``names``, relative paths) that asc adds to
    ``folder``, a folder of ``stage``'s; on success they are merged into it by the module's rule,
    only ``names`` (and their ``NAME.asc-new``) managed: a name of an earlier run not written again is
    deleted when unchanged. Checked before (:func:`check_adding`) and at the end."""
    folder = Path(folder)
    beside = _beside(write_beside)
    check_adding(folder, stage=stage, names=names, write_beside=beside)
    tmp = staging_folder(folder)
    try:
        yield tmp
        extra = sorted(rel for rel, _ in _walk(tmp) if rel not in names)
        if extra:
            raise ValueError(f"adding_files({folder}): {extra} written but not among names {names}")  # a bug
        scope = frozenset(names) | {n + BESIDE_SUFFIX for n in names}
        _commit(tmp, folder, stage=stage, scope=scope, beside=beside, log=log or _note)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def claim_folder(folder: Path, *, stage: str, legacy: Callable[[Path], bool] | None = None,
                 writes: tuple[str, ...] = (), write_beside: bool | None = None) -> Path:
    """For a stage that writes into a folder over time instead of at once (``asc grid``): the folder
    must be absent, empty or already ``stage``'s (its :data:`STAGE_MARKER`, or ``legacy`` says so for
    folders made before the marker); it is then created and marked. ``writes``: the files the stage
    will write there with :func:`adding_files`, refused now (not after the work) when changed,
    unverified or not asc's, unless ``write_beside``. Anything else is refused
    (:class:`RefusedOverwrite`) before a file is written, so a user's folder is never written into."""
    folder = Path(folder)
    if folder.exists() and not folder.is_dir():
        raise RefusedOverwrite(f"{folder}: exists and is not a folder; nothing was changed. Choose another output "
                               "folder (--out)")
    is_legacy = not written_by(folder, stage) and bool(legacy and folder.is_dir() and legacy(folder))
    if folder.is_dir() and any(folder.iterdir()) and not written_by(folder, stage) and not is_legacy:
        raise RefusedOverwrite(f"{folder}: exists and holds files asc {stage} did not write (no {STAGE_MARKER} of stage "
                               f"{stage!r}); nothing was changed. Choose another output folder (--out), or empty or "
                               "remove that folder yourself")
    older = [n for n in writes if is_legacy and (folder / n).exists()]  # an older version's: unverified
    if older and not _beside(write_beside):
        raise _refusal(folder, stage, {UNVERIFIED: older})
    if folder.is_dir() and not is_legacy:
        check_adding(folder, stage=stage, names=writes, write_beside=write_beside)
    folder.mkdir(parents=True, exist_ok=True)
    if not written_by(folder, stage):
        _write_marker(folder, stage=stage, sha256={}, unverified=older)
    return folder
