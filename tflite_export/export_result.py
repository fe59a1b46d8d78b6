"""What ``asc export`` produced, as a typed record: the export folder's ``config.json``.

Every later stage (validation, firmware, the pipeline, the grid) reads the export through
:func:`read_export` and uses attributes; the JSON layout is :func:`keras_asc.records.to_json` of
:class:`ExportResult`.
"""
from __future__ import annotations

import dataclasses
from pathlib import Path

from keras_asc import artifacts, records
from keras_asc.errors import AscError
from keras_asc.features import FeatureConfig
from keras_asc.windows import WindowPlan
from tflite_export.arena import RamPeak
from tflite_export.compression import CompressionRecord
from tflite_export.qat import QatRecord
from tflite_export.dcase_rules import DcaseComplexity
from tflite_export.input_quant import InputQuantization
from tflite_export.mcu_targets import Fit


UNCOMPRESSED_MODEL = "model_uncompressed.tflite"  # --compress: the int8 model before LUT compression
FLOAT_MODEL = "float_model.keras"  # --compress: the clustered float model the int8 model comes from


class ExportMissing(AscError, FileNotFoundError):
    """The folder holds no export (no config.json)."""


class StaleExport(AscError, ValueError):
    """An export's files are not the ones it wrote, or its source run's model has moved on."""


@dataclasses.dataclass(frozen=True)
class CalibrationRecord:
    """The representative clips: a stratified, seeded sample of the training split."""

    size: int  # clips used
    requested: int  # --calibration-size
    seed: int
    strata: str
    file_list_sha256: str  # of calibration.csv
    scenes: int
    devices: tuple[str, ...]


@dataclasses.dataclass(frozen=True)
class InputTensorRecord:
    """The model's int8 input tensor plus the training normalization the header applies."""

    name: str
    shape: tuple[int, ...]  # (1, n_mels, n_frames, 1)
    dtype: str
    mean: tuple[float, ...]  # per mel band, dB
    std: tuple[float, ...]
    scale: float
    zero_point: int

    @property
    def quantization(self) -> InputQuantization:
        return InputQuantization(self.mean, self.std, self.scale, self.zero_point)


@dataclasses.dataclass(frozen=True)
class OutputTensorRecord:
    name: str
    shape: tuple[int, ...]  # (1, n_classes)
    dtype: str
    scale: float
    zero_point: int


@dataclasses.dataclass(frozen=True)
class SizeFigures:
    """The size report's figures (``size_report.txt`` has the per-tensor table)."""

    flatbuffer_bytes: int
    budget_bytes: int
    budget_used_percent: float
    constant_tensor_bytes: int
    flatbuffer_overhead_bytes: int
    trainable_params: int
    dcase2021_nonzero_params: int
    dcase2021_size_bytes_at_8_bits: int
    macs_per_inference: int  # one window for a windowed model
    macs_per_clip: int  # macs_per_inference x windows per clip
    # DCASE 2022-2025's measure (30 M allowed per inference on one second of audio): macs_per_clip / clip seconds
    macs_per_second_of_audio: int
    arena_min_bytes: int  # the largest arena need measured (see ExportResult.arena_needs)
    arena_recommended_bytes: int  # kTensorArenaSize in model_settings.h
    ops: tuple[str, ...]
    # the figures under the chosen DCASE year's rules (--dcase-year; None: not checked, or an export
    # made before 2026-11-30)
    dcase: DcaseComplexity | None = None


@dataclasses.dataclass(frozen=True)
class RamFigures:
    """The firmware's RAM as the export estimates it (``asc firmware`` measures the linked image)."""

    arena_bytes: int  # kTensorArenaSize
    frontend_state_bytes: int  # bound of sizeof(FrontEnd), plus the int8 column ring of a windowed model
    besides_estimate_bytes: int  # static data and stack, mcu_targets.RAM_BESIDES_ARENA_ESTIMATE
    needed_bytes: int  # the sum
    budget_bytes: int | None  # --ram-budget (or the --target's largest SRAM block)
    peak: RamPeak  # where the activations peak and which tensors are live there


@dataclasses.dataclass(frozen=True)
class ExportResult:
    """An export folder's ``config.json``."""

    quantization_path: str  # "ptq", "qat" or "clustered" (--compress)
    source_run: str  # the run folder, relative to the export folder (absolute in exports before 2026-11-30)
    source_model_sha256: str  # of source_run/model.keras when exported
    tflite_sha256: str
    budget_bytes: int
    calibration: CalibrationRecord
    qat_epochs: int
    input: InputTensorRecord
    output: OutputTensorRecord
    labels: tuple[str, ...]
    features: FeatureConfig
    windows: WindowPlan | None  # a windowed model: input kNumFrames = windows.frames, combined per clip
    ops: tuple[str, ...]  # in first-use order, as model_settings.h registers them
    size: SizeFigures
    ram: RamFigures
    mcu_target: str | None  # --target
    fits: tuple[Fit, ...]  # flash: the linked image (image_flash_bytes) or flatbuffer + runtime estimate; RAM: ram.needed_bytes
    arena_needs: dict[str, int]  # measured arena bytes per interpreter build
    arena_report: str  # TFLM's allocation report (reference kernels)
    convert_seconds: float
    qat_seconds: float
    converter: dict[str, str]
    packages: dict[str, str]
    git_commit: str
    image_flash_bytes: dict[str, int] = dataclasses.field(default_factory=dict)  # probe build -> linked text + data
    # microcontroller -> estimated ms per inference (the Cortex-M probes' instruction counts, firmware_harness.profiling.profile)
    estimated_ms_per_inference: dict[str, float] = dataclasses.field(default_factory=dict)
    compression: CompressionRecord | None = None  # --compress: LUT-compressed weights (model.tflite)
    # the float model the int8 model was converted from when it is not the run's model.keras (the
    # clustered, BatchNorm-folded model of --compress), a file in the export folder
    float_model: str | None = None
    float_model_sha256: str | None = None
    # every file the export wrote (name -> sha256), config.json and the stage marker aside: the
    # generated C sources are compiled into the firmware as code, so an edited one is refused
    files_sha256: dict[str, str] = dataclasses.field(default_factory=dict)
    # the DCASE 2024 training subset the run was trained on (asc train --train-split; None: all of
    # fold1_train.csv): stages that rebuild the feature cache pass it on (build_feature_cache(train_split=...))
    train_split: str | None = None
    # --qat: QAT against PTQ on held-out training clips, and which model.tflite is (quantization_path)
    qat: QatRecord | None = None
    stage: str = "export"


def write_export_result(folder: Path, result: ExportResult) -> None:
    records.write(Path(folder) / "config.json", result)


def read_export(export_dir: Path) -> ExportResult:
    """The export in ``export_dir``; :class:`ExportMissing` when there is none, and
    :class:`keras_asc.artifacts.ArtifactError` naming the file when it is unreadable."""
    path = Path(export_dir) / "config.json"
    if not path.is_file():
        raise ExportMissing(f"{path}: not an export folder (no config.json); run `asc export RUN_DIR` first")
    return records.read(ExportResult, path)


def source_run_dir(export_dir: Path, exp: ExportResult) -> Path:
    """The run the export was made from: ``source_run`` resolved against the export folder (so a
    renamed or copied run with its export inside is found where it is now)."""
    return (Path(export_dir) / exp.source_run).resolve()


def check_replaces_own_export(final: Path, run_dir: Path) -> None:
    """Refuse (:class:`keras_asc.artifacts.RefusedOverwrite`) to replace the export at ``final`` by an
    export of ``run_dir`` when it is another run's export (its ``source_run`` resolves elsewhere, or
    nowhere): that export and the reports beside it are that run's, not this one's."""
    final = Path(final)
    if not (final / "config.json").is_file() or not artifacts.written_by(final, "export"):
        return
    try:
        exp = records.read(ExportResult, final / "config.json")
    except AscError:
        return  # an unreadable record: check_replaceable and the export's own checks decide
    source = source_run_dir(final, exp)
    if source != Path(run_dir).resolve():
        raise artifacts.RefusedOverwrite(
            f"{final}: holds the export of another run ({source}{'' if source.is_dir() else ', not found'}), not of "
            f"{run_dir}; replacing it would delete that run's export and its reports, so nothing was changed. "
            "Choose another output folder (--out), or remove that export yourself if it is no longer wanted")


def hash_export_files(folder: Path, names) -> dict[str, str]:
    """``{name: sha256}`` of the files ``names`` in ``folder``."""
    return {name: artifacts.sha256_file(Path(folder) / name) for name in sorted(names)}


def check_export_files(export_dir: Path, exp: ExportResult) -> None:
    """Refuse (:class:`StaleExport`, naming the file) an export whose files are not the ones it
    wrote: edited, replaced by another export's, or missing."""
    export_dir = Path(export_dir)
    if artifacts.record_unchanged(export_dir, "config.json") is False:
        raise StaleExport(
            f"{export_dir / 'config.json'}: differs from the record `asc export` wrote (its sha256 is kept in "
            f"{artifacts.STAGE_MARKER}): it was edited. Validation and the firmware read the input quantization, "
            "normalization and output scale from it, so an edited record would check the wrong thing. Re-run "
            "`asc export` (change the export options, never config.json)")
    if not exp.files_sha256:
        raise StaleExport(f"{export_dir / 'config.json'}: records no hashes of the files the export wrote (made by an "
                          "older version of asc), so its C sources cannot be tied to model.tflite. Re-run `asc export`")
    for name, digest in exp.files_sha256.items():
        path = export_dir / name
        if not path.is_file():
            raise StaleExport(f"{path}: missing; it is one of the files `asc export` wrote into {export_dir}. "
                              "Re-run `asc export` (or restore the file)")
        if artifacts.sha256_file(path) != digest:
            raise StaleExport(
                f"{path}: differs from the file `asc export` wrote (its sha256 is recorded in config.json): it was "
                "edited, or copied from another export. The generated sources and headers are compiled into the "
                "firmware as code, so the firmware would no longer be the model that was validated. Re-run `asc "
                "export` to regenerate it (change the model or the export options, never the generated files)")


def check_source_run(export_dir: Path, exp: ExportResult, *, log=print) -> Path | None:
    """The source run's folder when its ``model.keras`` is the one exported (by content hash);
    :class:`StaleExport` when it holds another model; ``None``, with a warning that the check
    could not run, when the run is not where the export says (e.g. the export was moved)."""
    run = source_run_dir(export_dir, exp)
    model = run / "model.keras"
    if not model.is_file():
        log(f"warning: {Path(export_dir)}: the staleness check could not run: the run this export was made from "
            f"is not at {run} (recorded in config.json relative to the export), so whether the export still "
            "matches its float model is unknown. Keep the export inside its run folder (the default), or re-run "
            "`asc export` where the run is")
        return None
    if artifacts.sha256_file(model) != exp.source_model_sha256:
        raise StaleExport(
            f"{model}: is not the model {Path(export_dir)} was exported from (sha256 differs): the run was "
            "retrained or resumed since, or the export was moved next to another run; its accuracy and C sources "
            f"describe a model that is not there. Re-run `asc export {run}`")
    return run


def reusable_export(export_dir: Path, *, source_model_sha256: str, budget: int, calibration_size: int, seed: int,
                    quantization_path: str = "ptq") -> ExportResult | None:
    """The export in ``export_dir`` when its files are the ones it wrote and it was made from this
    model (by sha256) with this budget, calibration sample and quantization path; None when
    ``asc export`` must run again."""
    exp = artifacts.read_or_none(read_export, export_dir)
    if (exp is None or exp.source_model_sha256 != source_model_sha256 or exp.budget_bytes != budget
            or exp.calibration.requested != calibration_size or exp.calibration.seed != seed
            or exp.quantization_path != quantization_path):
        return None
    try:
        check_export_files(export_dir, exp)
    except StaleExport:
        return None
    return exp
