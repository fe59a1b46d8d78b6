"""Ownership by hash: every stage writes its folder through here, so that no stage replaces or
deletes a file it did not write, or one the user changed since it wrote it.

**The record** (:mod:`keras_asc.stage_marker`). Each artifact folder holds ``.asc-stage.json``::

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
  model) is removed with the stale files only when it has the name its stage wrote it under and
  every file in it is still its stage's (by hash); otherwise (a copy, a file of the user's in it)
  it is left whole.

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
import os
import shutil
import sys
from pathlib import Path
from typing import Callable, Iterator

from keras_asc.atomic import atomic_write_bytes, sha256_file, staging_folder
from keras_asc.errors import AscError
from keras_asc.stage_marker import (ABSENT, CHANGED, FOREIGN, OWN, STAGE_MARKER, UNVERIFIED, StageRecord,
                                    blocked_path, file_state, holds, intact, nested_stage_folders, read_marker,
                                    walk_files, write_marker, written_by)

#: What a new version of a file the user changed is called, written beside it with ``write_beside``.
BESIDE_SUFFIX = ".asc-new"
#: What a conflicting file of a cache is renamed to, its new version taking its name (``set_aside``).
SET_ASIDE_SUFFIX = ".asc-old"
#: The command-line option that asks for it (every command that writes a stage's folder).
WRITE_BESIDE_OPTION = "--write-beside"
WRITE_BESIDE_HELP = (f"when a file this command would replace was changed since asc wrote it (or is not asc's), keep "
                     f"it and write the new version beside it as NAME{BESIDE_SUFFIX} instead of refusing")
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
        state = file_state(folder, rel, record)
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
        state = file_state(final, rel, record)
        if state in (ABSENT, OWN):
            plan.place.append(rel)
        elif holds(final / rel, digest):
            plan.adopt.append(rel)
        elif aside and not blocked_path(final, rel):
            plan.aside.append(rel)
        else:
            plan.conflicts[state].append(rel)
            if beside:
                other = rel + BESIDE_SUFFIX
                ok = file_state(final, other, record) in (ABSENT, OWN) or holds(final / other, digest)
                (plan.beside if ok else plan.blocked).append(rel if ok else other)
    previous = set(record.hashes) | set(record.unverified) if record else set()
    if scope is not None:
        previous &= scope
    for rel in sorted(previous - set(new) - {r + BESIDE_SUFFIX for r in plan.beside}):
        state = file_state(final, rel, record)
        if state == OWN:
            plan.delete.append(rel)
        elif state in (CHANGED, UNVERIFIED):
            plan.kept.append(rel)
    if scope is None:
        for sub in nested_stage_folders(final):
            (plan.nested_removed if intact(sub) else plan.nested_kept).append(sub)
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
    for _, path in sorted(walk_files(sub), key=lambda item: item[0].endswith(STAGE_MARKER)):  # its marker last
        _remove_file(folder, path)


def _commit(tmp: Path, final: Path, *, stage: str, scope: frozenset[str] | None, beside: bool,
            log: Callable[[str], None], aside: bool = False) -> None:
    """Bring the staged files of ``tmp`` into ``final`` by the module's rule (``scope``: the names this
    write manages, None for the stage's whole folder); raises :class:`RefusedOverwrite` before any
    change when a conflict remains."""
    new = {rel: sha256_file(path) for rel, path in walk_files(tmp)}
    empty = _empty_folders(tmp)  # folders the stage made and left empty (a rename would keep them)
    if scope is None and not final.exists() and not final.is_symlink():
        write_marker(tmp, stage=stage, sha256=new, name=final.name)
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
    write_marker(final, stage=stage, sha256=old, unverified=unverified,
                 pending={**(record.pending if record else {}), **incoming})  # a killed run's too, until deleted
    for rel in plan.delete:
        if file_state(final, rel, record) == OWN:  # still: the user may have written it meanwhile
            _remove_file(final, final / rel)
    for sub in plan.nested_removed:
        _remove_intact(final, sub)
    for rel in plan.place:
        if file_state(final, rel, record) not in (ABSENT, OWN):
            raise _refusal(final, stage, {CHANGED: [rel]})  # changed while this run wrote its files
        _move(tmp / rel, final / rel)
    for rel in plan.beside:
        _move(tmp / rel, final / (rel + BESIDE_SUFFIX))
    set_aside = {}
    for rel in plan.aside:
        set_aside[rel] = _free_name(final / (rel + SET_ASIDE_SUFFIX))
        os.replace(final / rel, set_aside[rel])  # renamed, never deleted: a link stays a link
        _move(tmp / rel, final / rel)
    for rel in empty:
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
    write_marker(final, stage=stage, sha256=settled, unverified=unverified)
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
        extra = sorted(rel for rel, _ in walk_files(tmp) if rel not in names)
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
        write_marker(folder, stage=stage, sha256={}, unverified=older)
    return folder
