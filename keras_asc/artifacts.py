"""Small helpers every stage uses to write artifacts safely and say what produced them."""
from __future__ import annotations

import contextlib
import hashlib
import json
import os
import shutil
import subprocess
import tempfile
from importlib import metadata
from pathlib import Path
from typing import Any, Callable, Iterator

from keras_asc.errors import AscError

TRACKED_PACKAGES = (
    "tensorflow", "tf_keras", "tensorflow-model-optimization", "ai-edge-litert",
    "tflite-micro", "numpy", "librosa", "soundfile", "pandas",
)


class ArtifactError(AscError, ValueError):
    """An artifact file exists but cannot be read (empty, truncated, not what it should be)."""


def _umask() -> int:
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
        os.chmod(tmp, 0o666 & ~_umask())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


def atomic_write_text(path: Path, text: str) -> None:
    atomic_write_bytes(path, text.encode("utf-8"))


def write_json(path: Path, obj: Any) -> None:
    atomic_write_text(path, json.dumps(obj, indent=2, sort_keys=False, default=_json_default) + "\n")


def read_json(path: Path) -> Any:
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path} not found: run the stage that writes it first")
    try:
        return json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise ArtifactError(f"{path}: not readable JSON ({e}); the file is empty, truncated or edited. "
                            "Run the stage that writes it again") from None


def _json_default(o: Any) -> Any:
    import numpy as np

    if isinstance(o, np.generic):
        return o.item()
    if isinstance(o, np.ndarray):
        return o.tolist()
    if isinstance(o, Path):
        return str(o)
    raise TypeError(f"not JSON serializable: {type(o).__name__}")


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
    import socket

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


#: The file every staged artifact folder holds: which stage wrote it (JSON ``{"stage": ...}``).
STAGE_MARKER = ".asc-stage.json"
#: Folders written before the marker existed: the record in them that names their stage.
_LEGACY_RECORDS = {"export": "config.json", "features": "config.json", "firmware": "firmware_report.json",
                   "make-dataset": "synth_config.json"}


class RefusedOverwrite(AscError, FileExistsError):
    """An artifact would replace a file or folder that its stage did not write, or its own input."""


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


def _marker_files(folder: Path) -> set[str] | None:
    """The files (relative to ``folder``) its stage marker lists as written by asc, or None when the
    marker predates the list (or is unreadable)."""
    try:
        files = json.loads((Path(folder) / STAGE_MARKER).read_text()).get("files")
    except (OSError, json.JSONDecodeError, UnicodeDecodeError, AttributeError):
        return None
    return set(files) if isinstance(files, list) else None


def _marker_derived(folder: Path) -> tuple[str, ...]:
    """The sub-folders the stage's own instructions fill (e.g. a bundle's ``build/``), whose files
    a rerun of the stage may replace."""
    try:
        derived = json.loads((Path(folder) / STAGE_MARKER).read_text()).get("derived", [])
    except (OSError, json.JSONDecodeError, UnicodeDecodeError, AttributeError):
        return ()
    return tuple(d for d in derived if isinstance(d, str))


def _listed_files(folder: Path) -> list[str]:
    """Every file under ``folder``, relative to it and in POSIX form; staging and replaced
    folders of a stage running inside it (``.NAME.*.partial``, ``.NAME.*.old``) are not its files."""
    out = []
    for p in sorted(Path(folder).rglob("*")):
        rel = p.relative_to(folder)
        if any(part.startswith(".") and part.endswith((".partial", ".old")) for part in rel.parts):
            continue
        if p.is_file() or p.is_symlink():
            out.append(rel.as_posix())
    return out


def files_not_written_by_asc(folder: Path) -> list[str]:
    """The files under ``folder`` (relative paths) that no asc stage recorded writing: not in its
    marker's list, nor in the list of a marked sub-folder (another stage's artifact inside it, such
    as an export's ``firmware/``), nor added later with :func:`record_added`. Empty for folders whose
    marker predates the list (nothing can be told about them)."""
    folder = Path(folder)
    known = _marker_files(folder)
    if known is None:
        return []
    unknown = []
    derived = _marker_derived(folder)
    marked = sorted((p for p in folder.rglob(STAGE_MARKER) if p.parent != folder), key=lambda p: len(p.parts))
    inner = {m.parent.relative_to(folder).as_posix(): files_not_written_by_asc(m.parent) for m in marked}
    for rel in _listed_files(folder):
        if rel == STAGE_MARKER or any(rel.startswith(d.rstrip("/") + "/") for d in derived):
            continue
        owner = next((d for d in inner if rel == d or rel.startswith(d + "/")), None)
        if owner is None and rel not in known:
            unknown.append(rel)
    for d, files in inner.items():
        if not any(d.startswith(o + "/") for o in inner if o != d):  # nested ones are reported by their parent
            unknown.extend(f"{d}/{f}" for f in files)
    return sorted(unknown)


#: The records a stage writes that later stages read and trust: their sha256 is kept in the stage
#: marker, so an edit is found (:func:`record_unchanged`); a record cannot hold its own hash.
HASHED_RECORDS = ("config.json",)


def record_unchanged(folder: Path, name: str = "config.json") -> bool | None:
    """Whether ``folder/name`` is the record its stage wrote (sha256 kept in the stage marker);
    None when the marker keeps no hash of it (a folder of an older version)."""
    try:
        recorded = json.loads((Path(folder) / STAGE_MARKER).read_text()).get("sha256", {}).get(name)
    except (OSError, json.JSONDecodeError, UnicodeDecodeError, AttributeError):
        return None
    if recorded is None:
        return None
    path = Path(folder) / name
    return path.is_file() and sha256_file(path) == recorded


def record_added(folder: Path, names: tuple[str, ...]) -> None:
    """Record in ``folder``'s stage marker that asc added ``names`` (relative paths) to it after the
    folder was written (for example ``asc validate``'s reports in an export), so a later
    replacement of the folder knows they are asc's and not the user's."""
    folder = Path(folder)
    marker = folder / STAGE_MARKER
    known = _marker_files(folder)
    if known is None:
        return
    record = json.loads(marker.read_text())
    record["files"] = sorted(known | set(names))
    write_json(marker, record)


def check_replaceable(final: Path, *, stage: str, inputs: tuple[Path, ...] = ()) -> None:
    """Refuse (:class:`RefusedOverwrite`, naming the path and the fix) to write ``stage``'s folder
    ``final`` over anything but nothing, an empty folder or a folder the same stage wrote; or
    over (or around) one of the stage's own ``inputs``."""
    final = Path(final)
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
    if final.is_dir():
        unknown = files_not_written_by_asc(final)
        if unknown:
            shown = ", ".join(unknown[:5]) + (f" and {len(unknown) - 5} more" if len(unknown) > 5 else "")
            raise RefusedOverwrite(
                f"{final}: is a folder asc {stage} wrote, but it now also holds files no asc stage wrote ({shown}); "
                f"replacing the folder would delete them, so nothing was changed. Move those files out of {final} "
                "(or choose another output folder with --out) and run the command again")


def claim_folder(folder: Path, *, stage: str, legacy: Callable[[Path], bool] | None = None) -> Path:
    """For a stage that writes into a folder over time instead of replacing it at once (``asc grid``):
    the folder must be absent, empty or already ``stage``'s (its :data:`STAGE_MARKER`, or ``legacy``
    says so for folders made before the marker); it is then created and marked. Anything else is
    refused (:class:`RefusedOverwrite`) before a file is written, so a user's folder is never written into."""
    folder = Path(folder)
    if folder.exists() and not folder.is_dir():
        raise RefusedOverwrite(f"{folder}: exists and is not a folder; nothing was changed. Choose another output "
                               "folder (--out)")
    if folder.is_dir() and any(folder.iterdir()) and not written_by(folder, stage) and not (legacy and legacy(folder)):
        raise RefusedOverwrite(f"{folder}: exists and holds files asc {stage} did not write (no {STAGE_MARKER} of stage "
                               f"{stage!r}); nothing was changed. Choose another output folder (--out), or empty or "
                               "remove that folder yourself")
    folder.mkdir(parents=True, exist_ok=True)
    if not written_by(folder, stage):
        write_json(folder / STAGE_MARKER, {"stage": stage})
    return folder


@contextlib.contextmanager
def staging_dir(final: Path, *, stage: str, inputs: tuple[Path, ...] = (),
                derived: tuple[str, ...] = ()) -> Iterator[Path]:
    """Yield a temp folder next to ``final``; on success it replaces ``final`` in one rename.

    ``final`` may only be absent, an empty folder or a folder that the same ``stage`` wrote
    (:func:`check_replaceable`, checked before and again just before the rename); it must not be
    or hold one of the stage's ``inputs``. The staged folder gets :data:`STAGE_MARKER`. A crash
    leaves ``final`` as it was (absent or the previous complete version); the staging folder a
    killed process left behind is removed by the next call. ``derived`` names sub-folders the
    stage's own instructions fill (a bundle's ``build/``): a rerun may replace their files. The folder gets the user's umask
    (``mkdtemp`` alone would leave it 0700).
    """
    final = Path(final)
    check_replaceable(final, stage=stage, inputs=inputs)
    final.parent.mkdir(parents=True, exist_ok=True)
    remove_abandoned_staging(final)
    tmp = Path(tempfile.mkdtemp(dir=final.parent, prefix=f".{final.name}.{_staging_owner()}.", suffix=".partial"))
    os.chmod(tmp, 0o777 & ~_umask())
    try:
        yield tmp
        write_json(tmp / STAGE_MARKER, {
            "stage": stage, "files": [f for f in _listed_files(tmp) if f != STAGE_MARKER], "derived": list(derived),
            "sha256": {name: sha256_file(tmp / name) for name in HASHED_RECORDS if (tmp / name).is_file()}})
        check_replaceable(final, stage=stage, inputs=inputs)  # nothing appeared there meanwhile
        if final.exists():
            old = final.with_name(f".{final.name}.{os.getpid()}.old")
            os.replace(final, old)
            os.replace(tmp, final)
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.replace(tmp, final)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def sha256_bytes(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


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
