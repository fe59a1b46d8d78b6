"""What the MODEL argument of ``asc validate``, ``firmware``, ``profile`` and ``bundle`` (and
``board``) means, resolved once (:func:`resolve_model_source`) into one record (:class:`ModelSource`).

* An export folder (the folder ``asc export`` wrote, its ``config.json`` of stage ``export``) means
  its ``model.tflite`` and its record. ``EXPORT/model.tflite`` means the same. Outputs go into the
  export folder, as the export's own reports (``validation_report.*``, ``firmware/``, ``profile/``).
* Any other ``.tflite`` means that file's bytes, wherever it lies: also one inside an export folder
  (``EXPORT/model_uncompressed.tflite``, a copy, a renamed model). It is a model of its own, with no
  export record. Its outputs go beside it, ``MODEL.validation/``, ``MODEL.firmware/``,
  ``MODEL.profile/`` (:func:`out_dir_beside`), never into the export's own report folders.

The bytes are read once, here. Their sha256 is the one every report names. The structural and
quantization check of :func:`tflite_export.model_check.check_model` runs on them before any
interpreter sees them. Anything that is not a model source is named, with what to give instead
(:class:`ModelSourceError`). A FIFO, socket or device is refused before it is opened: reading one
would wait for a writer.
"""
from __future__ import annotations

import dataclasses
import json
import stat
from pathlib import Path

from keras_asc import artifacts
from keras_asc.errors import AscError
from tflite_export.export_result import ExportResult, read_export
from tflite_export.model_check import ModelCheckReport, check_model

EXPORT_MODEL = "model.tflite"  # the model of an export folder; any other .tflite is a model of its own
EXPORT_STAGE = "export"
#: Where an export's own outputs go, per command, relative to the export folder ("" is the folder itself).
EXPORT_OUTPUTS = {"validation": ""}
GIVE = ("give the folder `asc export` wrote (RUN_DIR/export by default), its model.tflite, or an int8 .tflite "
        "file")


class ModelSourceError(AscError, ValueError):
    """The MODEL argument is not an export folder or a .tflite file; the message names the path and
    what to give instead."""


@dataclasses.dataclass(frozen=True)
class ModelSource:
    """The model a command works on: one .tflite's bytes, and the export record if it is an export's model."""

    path: Path  # the .tflite whose bytes every step uses
    sha256: str  # of data
    export: ExportResult | None  # the record of the export whose model.tflite this is; None: a .tflite of its own
    data: bytes = dataclasses.field(repr=False, compare=False)
    check: ModelCheckReport | None = dataclasses.field(default=None, repr=False, compare=False)

    @property
    def export_dir(self) -> Path | None:
        """The export folder (its record, C sources and reports), or None for a .tflite of its own."""
        return self.path.parent if self.export is not None else None

    def default_out_dir(self, command: str) -> Path:
        """Where ``asc <command>`` (``validation``, ``firmware``, ``profile``, ``board``) writes when
        no ``--out`` is given: inside the export folder for an export's model, beside the file otherwise."""
        if self.export is not None:
            return self.path.parent / EXPORT_OUTPUTS.get(command, command)
        return out_dir_beside(self.path, command)

    def describe(self) -> str:
        """``PATH (sha256 ...)``, for the reports and the command's output."""
        kind = f"the model of export {self.export_dir}" if self.export is not None else "a .tflite of its own"
        return f"{self.path} ({kind}, {len(self.data):,d} bytes, sha256 {self.sha256})"


def out_dir_beside(model_path: Path, command: str) -> Path:
    """``MODEL.<command>/`` beside ``MODEL.tflite``: the default output folder of a .tflite of its own."""
    path = Path(model_path)
    return path.with_name(f"{path.stem}.{command}")


def not_a_regular_file(path: Path) -> str | None:
    """Why ``path`` cannot be read as a file (a FIFO, a socket, a device), or None: a regular file
    (or a link to one), a folder, or nothing. Decided from ``stat``, without opening the path: an
    open FIFO waits for a writer."""
    try:
        mode = Path(path).stat().st_mode
    except OSError:
        return None
    for test, what in ((stat.S_ISFIFO, "a named pipe (FIFO)"), (stat.S_ISSOCK, "a socket"),
                       (stat.S_ISCHR, "a character device"), (stat.S_ISBLK, "a block device")):
        if test(mode):
            return f"is {what}, not a regular file; reading it would wait for a writer"
    return None


def _stage_of(record: Path) -> str | None:
    """The ``stage`` of a ``config.json``; ``EXPORT_STAGE`` for one that cannot be read (so that
    :func:`read_export` names the fault), None when there is none or it names another stage."""
    if not record.is_file():
        return None
    try:
        stage = json.loads(record.read_text()).get("stage")
    except (ValueError, UnicodeDecodeError, AttributeError, OSError):
        return EXPORT_STAGE
    return stage if isinstance(stage, str) else None


def _read(path: Path) -> tuple[bytes, str, ModelCheckReport]:
    data = path.read_bytes()
    return data, artifacts.sha256_bytes(data), check_model(data, source=str(path))


def tflite_file(path: Path) -> ModelSource:
    """``path`` as a .tflite of its own (its bytes, no export record), wherever it lies."""
    path = Path(path)
    if not path.exists():
        link = f" (a symbolic link to {path.readlink()}, which does not exist)" if path.is_symlink() else ""
        raise ModelSourceError(f"{path}: no such file{link}; give the path of an int8 .tflite model")
    reason = not_a_regular_file(path)
    if reason is not None or path.is_dir():
        raise ModelSourceError(f"{path}: {reason or 'is a folder'}; give the path of an int8 .tflite model")
    data, digest, report = _read(path)
    return ModelSource(path=path, sha256=digest, export=None, data=data, check=report)


def _export_folder(folder: Path) -> ModelSource:
    """The export in ``folder``: its model.tflite and its record."""
    record = folder / "config.json"
    stage = _stage_of(record)
    model = folder / EXPORT_MODEL
    if stage == "train":
        raise ModelSourceError(f"{folder}: is a training run folder, not an export; give {folder / 'export'} (run "
                               f"`asc export {folder}` first if it has none)")
    if stage == EXPORT_STAGE:
        if not model.is_file() and not model.is_symlink():
            again = (f"`asc export {folder.parent}`" if folder.name == "export"
                     else "`asc export` on the run it came from")
            raise ModelSourceError(f"{folder}: holds an export's config.json but no {EXPORT_MODEL} (removed or never "
                                   f"written); run {again} again to write the export")
        reason = not_a_regular_file(model)
        if reason is not None:
            raise ModelSourceError(f"{model}: {reason}; run `asc export` again to write the export's model")
        exp = read_export(folder)  # an unreadable record: ArtifactError naming it
        data, digest, report = _read(model)
        return ModelSource(path=model, sha256=digest, export=exp, data=data, check=report)
    if stage is not None:
        raise ModelSourceError(f"{folder}: its config.json is of stage {stage!r}, not an export's; {GIVE}")
    if model.is_file():
        raise ModelSourceError(f"{folder}: holds {EXPORT_MODEL} but no export config.json; give {model} to check it as "
                               "a .tflite of its own (with --inputs or --random), or re-run `asc export`")
    raise ModelSourceError(f"{folder}: not an export folder (no config.json, no {EXPORT_MODEL}); {GIVE}")


def names_an_export(path: Path) -> bool:
    """Whether the MODEL argument ``path`` names an export (a folder with an export's ``config.json``,
    or that folder's ``model.tflite``), from the record's stage alone: what the commands need to know
    to check their options before the model is read (:func:`resolve_model_source` reads and checks it)."""
    path = Path(path)
    folder = path if path.is_dir() else path.parent if path.name == EXPORT_MODEL else None
    return folder is not None and _stage_of(folder / "config.json") == EXPORT_STAGE


def resolve_model_source(path: Path) -> ModelSource:
    """What the MODEL argument ``path`` means (see the module's docstring): an export folder or its
    ``model.tflite`` -> that export's model and record; any other ``.tflite`` -> that file alone.
    Refuses (:class:`ModelSourceError`, naming the path and what to give) anything else, and a
    model the check of :func:`tflite_export.model_check.check_model` refuses."""
    path = Path(path)
    if not path.exists():
        link = f" (a symbolic link to {path.readlink()}, which does not exist)" if path.is_symlink() else ""
        raise ModelSourceError(f"{path}: no such file or folder{link}; {GIVE}")
    if path.is_dir():
        return _export_folder(path)
    reason = not_a_regular_file(path)
    if reason is not None:
        raise ModelSourceError(f"{path}: {reason}; {GIVE}")
    if path.suffix != ".tflite":
        raise ModelSourceError(f"{path}: not a .tflite file or an export folder; {GIVE}")
    if path.name == EXPORT_MODEL and _stage_of(path.parent / "config.json") == EXPORT_STAGE:
        return _export_folder(path.parent)
    return tflite_file(path)
