"""firmware_harness's public functions (``import firmware_harness``; ``firmware_harness.validate(...)``):
validation, firmware builds, latency profiles and bundles of a model source, keyword-only, taking
and returning typed records. ``asc validate``, ``firmware``, ``profile`` and ``bundle`` call these.

A model source (:func:`resolve_model_source`) is an export folder (or its ``model.tflite``) or any
other int8 ``.tflite``: each function takes either and chooses the export's path (its dataset's
evaluate clips, its C sources and front end) or the bare ``.tflite``'s (int8 inputs of a file or
seeded random ones, C sources generated aside) itself.
"""
from __future__ import annotations

import tempfile
from pathlib import Path

from firmware_harness.board.boards import BOARDS, get_board
from firmware_harness.board.build import BUNDLE_DIR, build_board_image, flash_commands, format_image, make_board_bundle
from firmware_harness.board.protocol import DEFAULT_BAUD, DEFAULT_TIMEOUT
from firmware_harness.board.qemu import qemu_board
from firmware_harness.board.run import DEFAULT_CLIPS, DEFAULT_PCM_CLIPS, format_board_report, run_board
from firmware_harness.builds.bundle import BUNDLE_TARGETS, Bundle, make_bundle
from firmware_harness.builds.program import MAX_CHUNK_SAMPLES
from firmware_harness.builds.footprint import measure_footprint
from firmware_harness.builds.targets import DEFAULT_TARGETS, TARGETS, Target, get_target
from firmware_harness.builds.third_party import FirmwareError, ThirdParty, locate_third_party
from firmware_harness.firmware.check import (DEFAULT_EMULATED_CLIPS, FirmwareReport, arena_probes,
                                             reusable_firmware_report)
from firmware_harness.firmware.check import check_firmware as _check_export_firmware
from firmware_harness.firmware.check import format_report as _format_firmware
from firmware_harness.firmware.host_truth import host_reference_truth
from firmware_harness.firmware.model_firmware import (ModelFirmwareReport, check_model_firmware,
                                                      format_model_firmware)
from firmware_harness.model_source import (ModelSource, ModelSourceError, names_an_export, not_a_regular_file,
                                           resolve_model_source)
from firmware_harness.profiling.latency import DEFAULT_PROFILE_TARGETS, PROFILE_TARGETS
from firmware_harness.profiling.profile import (MAX_PROFILE_INFERENCES, ProfileReport, export_sources, format_profile,
                                                mcus_for, profile_sources, reusable_profile, tflite_sources)
from firmware_harness.validation.export_validation import validate_export
from firmware_harness.validation.model_validation import (ModelValidationReport, format_model_validation,
                                                          validate_model)
from firmware_harness.validation.report import ValidationReport, read_validation_report, reusable_validation
from firmware_harness.validation.report import format_report as _format_validation
from keras_asc.parallel import DEFAULT_WORKERS

#: The package's public names (``firmware_harness.<name>``, imported on first use): this module's
#: functions, the records they take and return, the registries and defaults, the board functions.
__all__ = [
    # functions of a model source
    "resolve_model_source", "validate", "check_firmware", "profile", "bundle", "list_targets", "profile_mcus",
    "format_report", "read_validation", "find_third_party", "stored_validation", "stored_firmware_check",
    "stored_profile", "profile_image_flash", "arena_probes", "names_an_export", "not_a_regular_file",
    # records and errors
    "ModelSource", "ModelSourceError", "ValidationReport", "ModelValidationReport", "FirmwareReport",
    "ModelFirmwareReport", "ProfileReport", "Target", "Bundle", "FirmwareError",
    # registries and defaults
    "TARGETS", "DEFAULT_TARGETS", "PROFILE_TARGETS", "DEFAULT_PROFILE_TARGETS", "BUNDLE_TARGETS",
    "DEFAULT_EMULATED_CLIPS", "MAX_PROFILE_INFERENCES", "MAX_CHUNK_SAMPLES",
    # boards (asc board)
    "BOARDS", "get_board", "build_board_image", "format_image", "flash_commands", "BUNDLE_DIR", "DEFAULT_BAUD",
    "DEFAULT_TIMEOUT", "run_board", "format_board_report", "DEFAULT_CLIPS", "DEFAULT_PCM_CLIPS", "qemu_board"]

def _source(source: ModelSource | Path) -> ModelSource:
    return source if isinstance(source, ModelSource) else resolve_model_source(Path(source))


def _needs_data(source: ModelSource, data_dir: Path | None) -> Path:
    if data_dir is None:
        raise ModelSourceError(f"{source.path} is an export's model: it runs on the evaluate clips of the dataset it "
                               "was trained on; give data_dir (the CLI's --data DIR)")
    return Path(data_dir)


def validate(*, source: ModelSource | Path, data_dir: Path | None = None, work_dir: Path = Path("work"),
             max_drop: float | None = None, inputs_path: Path | None = None, random_count: int | None = None,
             seed: int = 0, out_dir: Path | None = None, workers: int = DEFAULT_WORKERS, full: bool = False,
             log=print) -> ValidationReport | ModelValidationReport:
    """Run the model through TFLM (the truth) and LiteRT and compare.

    An export's model: every evaluate clip of ``data_dir`` (features from the cache in ``work_dir``),
    int8 against float accuracy (``max_drop``: the most percentage points int8 may lose), the arena;
    reports into the export folder; returns a :class:`ValidationReport`. A ``.tflite`` of its own:
    the int8 inputs of ``inputs_path`` (a .npy of shape (N, *input shape)) or ``random_count``
    seeded random ones (``seed``); reports into ``out_dir`` (default ``MODEL.validation/``); returns
    a :class:`ModelValidationReport`. ``report.failures`` lists every failed check.

    An export's model runs one TFLM truth on every clip (the host C++ build of TFLM's reference kernels
    when the toolchain and the pinned archives are present, else TFLM's Python runtime), LiteRT's default
    interpreter and the float model on every clip, and the redundant witnesses (TFLM Python, LiteRT's
    reference kernels) on a sample (docs/scale.md); ``full``: every witness on every clip."""
    source = _source(source)
    if source.export is None:
        return validate_model(source, inputs_path=inputs_path, random_count=random_count, seed=seed,
                              out_dir=out_dir, workers=workers, log=log)
    return validate_export(source.path, _needs_data(source, data_dir), Path(work_dir), workers=workers,
                           max_drop=max_drop, full=full, truth_program=host_reference_truth, log=log)


def check_firmware(*, source: ModelSource | Path, data_dir: Path | None = None, work_dir: Path = Path("work"),
                   targets: tuple[str, ...] | None = None, clips: int | str = DEFAULT_EMULATED_CLIPS,
                   host_clips: int | str = "all", from_audio: bool = False, chunk: int | None = None,
                   inputs_path: Path | None = None, random_count: int | None = None, seed: int = 0,
                   out_dir: Path | None = None, third_party_dir: Path | None = None,
                   workers: int = DEFAULT_WORKERS, full: bool = False, log=print) -> FirmwareReport | ModelFirmwareReport:
    """Compile the model with TFLM C++ for each of ``targets`` (names of :func:`list_targets`;
    default ``DEFAULT_TARGETS``), run it (emulated targets under QEMU) and compare its int8 outputs
    bit for bit with TFLM's Python runtime.

    An export: its C sources on ``data_dir``'s evaluate clips (``clips`` per emulated target,
    ``host_clips`` per host one: a number or ``"all"``), ``from_audio`` also streams each WAV through
    the exported front end in ``chunk`` samples; returns a :class:`FirmwareReport`. A ``.tflite`` of
    its own: C sources generated, run on ``inputs_path``'s or ``random_count`` random int8 inputs;
    returns a :class:`ModelFirmwareReport`. ``report.failures`` lists what failed. An export takes
    ``validate``'s truth when it matches (the host C++ build's, or with ``full`` TFLM Python's only)."""
    source = _source(source)
    kwargs = {} if targets is None else {"targets": tuple(targets)}
    if source.export is None:
        if from_audio:
            raise ModelSourceError(f"{source.path} is a .tflite without an export folder: it has no audio front "
                                   "end to run from audio; it runs on int8 inputs only")
        return check_model_firmware(source, inputs_path=inputs_path, random_count=random_count, seed=seed,
                                    out_dir=out_dir, third_party_dir=third_party_dir, log=log, **kwargs)
    return _check_export_firmware(source.export_dir, _needs_data(source, data_dir), Path(work_dir), clips=clips,
                                  host_clips=host_clips, from_audio=from_audio, chunk=chunk,
                                  third_party_dir=third_party_dir, workers=workers, full=full, log=log, **kwargs)


def profile(*, source: ModelSource | Path, out_dir: Path | None = None,
            targets: tuple[str, ...] = DEFAULT_PROFILE_TARGETS, mcus: tuple[str, ...] | None = None,
            inferences: int = 1, seed: int = 0, third_party_dir: Path | None = None, label: str | None = None,
            log=print) -> ProfileReport:
    """Estimated milliseconds per inference on Cortex-M microcontrollers: exact per-operator
    instruction counts of ``inferences`` seeded random int8 inputs under QEMU for each core of
    ``targets`` (``PROFILE_TARGETS``), turned into time by the cycle model of each of ``mcus``
    (default: every microcontroller whose core was counted). An export's own C sources, or a
    ``.tflite``'s generated aside. Writes ``out_dir`` (default ``EXPORT/profile`` or
    ``MODEL.profile/``) and returns the report, which names the model ``label`` (default its path)."""
    source = _source(source)
    out = Path(out_dir) if out_dir is not None else source.default_out_dir("profile")
    options = dict(source=label or str(source.path), targets=tuple(targets), mcus=mcus, inferences=inferences, seed=seed,
                   third_party_dir=third_party_dir, log=log)
    if source.export is not None:  # an export: its own C sources, front end included
        return profile_sources(export_sources(source.export_dir, log=log), out, **options)
    with tempfile.TemporaryDirectory(prefix="asc-profile-") as tmp:  # a .tflite of its own: C sources aside
        sources = tflite_sources(source, Path(tmp) / "sources", targets=tuple(targets),
                                 third_party_dir=third_party_dir, log=log)
        return profile_sources(sources, out, **options)


def profile_mcus(*, targets: tuple[str, ...], mcus: tuple[str, ...] | None = None) -> tuple[str, ...]:
    """The microcontrollers :func:`profile` reports for ``targets`` and ``mcus``; raises
    :class:`~firmware_harness.builds.third_party.FirmwareError` for one whose core is not in ``targets``."""
    return mcus_for(tuple(targets), mcus)


def bundle(*, source: ModelSource | Path, out_dir: Path, target: str | None = None, board: str | None = None,
           third_party_dir: Path | None = None, log=print) -> Bundle:
    """A self-contained CMake folder in ``out_dir``: the export's model, C sources and front end,
    TFLM and only the sources it needs, an example main and the verified flags for ``target``
    (None: ``host``, or the board's). With ``board`` (a name of ``BOARDS``), its real folder (memory
    map, ST's start-up, clock, UART, the UART protocol program) instead of the placeholders in
    ``board/``. Needs an export (a ``.tflite`` of its own has no C sources or front end to bundle)."""
    source = _source(source)
    if source.export is None:
        raise ModelSourceError(f"{source.path}: a .tflite of its own, not an export's model.tflite; asc bundle packs "
                               "an export (its model, generated C sources and audio front end), and this file has "
                               "none. Give the export folder to bundle its model.tflite, or export the model this "
                               "file came from with `asc export RUN_DIR`")
    if board is not None:
        return make_board_bundle(source.export_dir, Path(out_dir), board=board, target=target,
                                 third_party_dir=third_party_dir, log=log)
    return make_bundle(source.export_dir, Path(out_dir), target=target or "host", third_party_dir=third_party_dir,
                       log=log)


def list_targets() -> dict[str, Target]:
    """The firmware targets (host builds and Cortex-M images under QEMU), by name."""
    return dict(TARGETS)


def format_report(report: ValidationReport | ModelValidationReport | FirmwareReport | ModelFirmwareReport
                  | ProfileReport) -> str:
    """The Markdown text of any report :func:`validate`, :func:`check_firmware` or :func:`profile`
    returned (what the CLI prints)."""
    for kind, text in ((ValidationReport, _format_validation), (ModelValidationReport, format_model_validation),
                       (FirmwareReport, _format_firmware), (ModelFirmwareReport, format_model_firmware),
                       (ProfileReport, format_profile)):
        if isinstance(report, kind):
            return text(report)
    raise TypeError(f"not a report of firmware_harness: {type(report).__name__}")


def read_validation(*, export_dir: Path) -> ValidationReport:
    """The validation report :func:`validate` wrote into an export folder (``validation_report.json``)."""
    return read_validation_report(Path(export_dir))


def find_third_party(*, folder: Path | None = None, log=print) -> ThirdParty:
    """The pinned TFLM source archives in ``folder`` (default ``$ASC_THIRD_PARTY``, else
    ``../shared/third_party`` beside this checkout), checked against its ``SHA256SUMS``; raises
    :class:`~firmware_harness.builds.third_party.FirmwareError` naming what is missing."""
    return locate_third_party(folder, log=log)


def stored_validation(*, export_dir: Path, tflite_sha256: str, data_dir: Path) -> ValidationReport | None:
    """The validation :func:`validate` stored in ``export_dir`` when it validated this model
    (``tflite_sha256``) on ``data_dir`` with the interpreters installed now; None: validate again."""
    return reusable_validation(Path(export_dir), tflite_sha256=tflite_sha256, data_dir=Path(data_dir))


def stored_firmware_check(*, export_dir: Path, tflite_sha256: str, data_dir: Path, targets: tuple[str, ...],
                          clips: int) -> FirmwareReport | None:
    """The ``from_audio`` firmware check stored in ``export_dir`` when it passed for this model, these
    sources and toolchains, ``data_dir``, ``targets`` and ``clips`` per emulated target; None: check again."""
    return reusable_firmware_report(Path(export_dir), tflite_sha256=tflite_sha256, data_dir=Path(data_dir),
                                    targets=tuple(targets), clips=clips)


def stored_profile(*, source: ModelSource | Path, out_dir: Path, targets: tuple[str, ...], log=print) -> ProfileReport | None:
    """The profile stored in ``out_dir`` when it passed and profiled this export's sources on
    ``targets`` with the same code (firmware program, counting plugin, cycle model, MCU table);
    None: profile again. Exports only (a .tflite of its own has its sources generated aside)."""
    source = _source(source)
    if source.export is None:
        return None
    return reusable_profile(export_sources(source.export_dir, log=log), Path(out_dir), targets=tuple(targets))


def profile_image_flash(*, out_dir: Path, target: str) -> int:
    """Flash bytes (text + data) of the image :func:`profile` linked for Cortex-M ``target`` into
    ``out_dir`` (its ``<target>/asc_firmware.elf`` and ``.map``)."""
    image = Path(out_dir) / target
    return measure_footprint(image / "asc_firmware.elf", image / "asc_firmware.map",
                             size_tool=f"{get_target(target).prefix}size", stack_bytes=None).flash_bytes
