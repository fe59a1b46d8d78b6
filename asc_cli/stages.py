"""One configuration through every stage, behind ``asc demo`` and ``asc grid``: stages chained. Each stage
decides its own reuse (``finished_run_matches``, ``metrics_up_to_date``, ``reusable_export``,
``reusable_validation``, ``reusable_firmware_report``, ``reusable_profile``, beside the stage's code):
the pipeline asks, and runs the stage when the answer is no.

Stage folders under ``WORK``::

    data/<size>/                    generated dataset (make-dataset)
    features/<key>/                 log-mel cache (features)
    runs/<name>/                    training run (train, evaluate)
    runs/<name>/export/             int8 model + C sources (export) and validation reports
    runs/<name>/export/firmware/    TFLM C++ builds per target, their outputs, firmware_report.md
"""
from __future__ import annotations

import dataclasses
import time
from pathlib import Path

from firmware_harness.builds.targets import get_target
from firmware_harness.builds.third_party import FirmwareError, locate_third_party
from firmware_harness.firmware.check import FirmwareReport, arena_probes, check_firmware, reusable_firmware_report
from firmware_harness.profiling.profile import ProfileReport
from firmware_harness.validation.export_validation import validate_export
from firmware_harness.validation.report import ValidationReport, reusable_validation
from keras_asc import artifacts
from keras_asc.evaluation import evaluate_run, metrics_up_to_date
from keras_asc.feature_cache import build_feature_cache
from keras_asc.features import FeatureConfig
from keras_asc.parallel import DEFAULT_WORKERS
from keras_asc.training import finished_run_matches, train
from keras_asc.training_config import TrainConfig
from tflite_export.export import ExportConfig, export_run
from tflite_export.export_config import DEFAULT_BUDGET, DEFAULT_CALIBRATION
from tflite_export.export_result import ExportResult, reusable_export

_TRAIN_DEFAULTS = TrainConfig()
@dataclasses.dataclass(frozen=True)
class PipelineConfig:
    """One configuration of the pipeline (a grid cell, or the demo's single run)."""
    model: str = "resnet11"
    model_overrides: tuple[tuple[str, float], ...] = ()
    frames_per_second: int = 28
    n_mels: int = 128
    loss: str = "ce"
    epochs: int = _TRAIN_DEFAULTS.epochs  # training defaults live in keras_asc.training.TrainConfig
    batch_size: int = _TRAIN_DEFAULTS.batch_size
    learning_rate: float = _TRAIN_DEFAULTS.learning_rate
    seed: int = _TRAIN_DEFAULTS.seed
    budget: int = DEFAULT_BUDGET
    calibration_size: int = DEFAULT_CALIBRATION
    firmware_clips: int = 10  # the demo's stratified sample per emulated firmware target (hosts run all)
    window_frames: int | None = None  # frames per inference; None: the whole clip
    window_hop: int | None = None  # None: window_frames
    train_split: str | None = None  # a DCASE 2024 training subset of a TAU 2022 layout (--train-split)
    #: TrainConfig's distillation and augmentation fields as (name, value) pairs, sorted
    #: (asc_cli.main.recipe_options); their defaults are TrainConfig's
    recipe: tuple[tuple[str, object], ...] = ()

    def train_config(self) -> TrainConfig:
        """The cell's training configuration (TrainConfig's defaults for what is not here)."""
        return TrainConfig(model=self.model, model_overrides=self.model_overrides, epochs=self.epochs,
                           batch_size=self.batch_size, learning_rate=self.learning_rate, loss=self.loss,
                           seed=self.seed, window_frames=self.window_frames, window_hop=self.window_hop,
                           **dict(self.recipe))

    @property
    def name(self) -> str:
        extra = "".join(f"_{k}{v:g}" for k, v in self.model_overrides)
        window = "" if self.window_frames is None else f"_w{self.window_frames}" + (
            f"h{self.window_hop}" if self.window_hop else "")
        return f"{self.model}{extra}_{self.frames_per_second}fps_{self.n_mels}mel_{self.loss}{window}"


@dataclasses.dataclass(frozen=True)
class PipelineResult:
    """What one configuration's pipeline produced, stage by stage."""
    config: PipelineConfig
    run_dir: Path
    export: ExportResult
    validation: ValidationReport
    firmware: FirmwareReport | None
    timings_seconds: dict[str, float]
    data_dir: Path | None = None  # set by the demo (the generated dataset)
    wall_seconds: float | None = None
    profile: ProfileReport | None = None  # the demo's latency estimate (asc profile)

    @property
    def name(self) -> str:
        return self.config.name


def stage_banner(name: str, log) -> float:
    log(f"\n=== {name} ===")
    return time.perf_counter()


#: The demo's firmware check (and arena probes): the host and the Cortex-M4 under QEMU, a subset of
#: firmware_harness.builds.targets.DEFAULT_TARGETS (`asc firmware`'s default) that keeps the demo short.
DEMO_FIRMWARE_TARGETS = ("host", "cortex-m4")
def available_firmware_targets(wanted: tuple[str, ...] = DEMO_FIRMWARE_TARGETS, log=print) -> tuple[str, ...]:
    """Of ``wanted``, the firmware targets this machine can build and run (archives and tools)."""
    try:
        locate_third_party()
    except FirmwareError as e:
        log(f"firmware: skipped: {e}")
        return ()
    found = []
    for name in wanted:
        missing = get_target(name).missing_tools()
        if missing:
            log(f"firmware: {name} skipped: {', '.join(missing)} not installed "
                f"(Debian: {' '.join(get_target(name).debian_packages)})")
        else:
            found.append(name)
    return tuple(found)


def run_pipeline(data_dir: Path, work_dir: Path, run_dir: Path, cfg: PipelineConfig, *, clip_seconds: float,
                 workers: int = DEFAULT_WORKERS, max_drop: float | None = None, firmware_targets: tuple[str, ...] = (),
                 log=print) -> PipelineResult:
    """features -> train -> evaluate -> export -> validate (-> firmware) for one configuration.
    Raises the stage's own errors (BudgetError, ...)."""

    timings = {}
    t = stage_banner("features", log)
    fs = build_feature_cache(data_dir, work_dir, config=FeatureConfig.seed(
        frames_per_second=cfg.frames_per_second, n_mels=cfg.n_mels, clip_seconds=clip_seconds), workers=workers,
        train_split=cfg.train_split, log=log)
    timings["features"] = time.perf_counter() - t

    t = stage_banner(f"train {cfg.name}", log)
    tcfg = cfg.train_config()
    if finished_run_matches(run_dir, config=tcfg, feature_key=fs.config["key"]):
        log(f"train: reusing finished run {run_dir}")
    else:  # absent, or interrupted: train() resumes it and refuses a mismatch
        train(fs, run_dir, config=tcfg, resume=(run_dir / "state.json").is_file(), log=log)
    timings["train"] = time.perf_counter() - t

    t = stage_banner("evaluate (float)", log)
    if not metrics_up_to_date(run_dir, data_dir):
        evaluate_run(run_dir, data_dir, work_dir, workers=workers, log=log)
    else:
        log("evaluate: reusing metrics.json")
    timings["evaluate"] = time.perf_counter() - t

    t = stage_banner("export (int8)", log)
    exp = reusable_export(run_dir / "export", source_model_sha256=artifacts.sha256_file(run_dir / "model.keras"),
                          budget=cfg.budget, calibration_size=cfg.calibration_size, seed=cfg.seed)
    if exp is None:
        exp = export_run(run_dir, data_dir, work_dir, config=ExportConfig(  # a cell over DCASE's limits is still
            budget=cfg.budget, calibration_size=cfg.calibration_size, seed=cfg.seed, workers=workers,  # compared
            arena_probes=arena_probes(firmware_targets, log=log), dcase_refuse=False), log=log)  # (warned)
    else:
        log("export: reusing export/")
    timings["export"] = time.perf_counter() - t

    t = stage_banner("validate (TFLM vs LiteRT, int8 vs float)", log)
    report = reusable_validation(run_dir / "export", tflite_sha256=exp.tflite_sha256, data_dir=data_dir)
    if report is None:
        report = validate_export(run_dir / "export" / "model.tflite", data_dir, work_dir, workers=workers,
                                 max_drop=max_drop, log=log)
    else:
        log("validate: reusing validation_report.json")
    timings["validate"] = time.perf_counter() - t

    firmware = None
    if firmware_targets:
        t = stage_banner(f"firmware (TFLM C++: {', '.join(firmware_targets)})", log)
        firmware = _firmware_stage(run_dir / "export", data_dir, work_dir, firmware_targets, cfg.firmware_clips,
                                   exp, workers=workers, log=log)
        timings["firmware"] = time.perf_counter() - t
    return PipelineResult(config=cfg, run_dir=Path(run_dir), export=exp, validation=report, firmware=firmware,
                          timings_seconds={k: round(v, 1) for k, v in timings.items()})


def _firmware_stage(export_dir: Path, data_dir: Path, work_dir: Path, targets: tuple[str, ...], clips: int,
                    exp: ExportResult, *, workers: int, log) -> FirmwareReport:
    """``asc firmware --from-audio``: every evaluate clip on host targets, a stratified sample of
    ``clips`` on emulated ones; reused when the stored report was made from the same model,
    sources, targets and data."""
    old = reusable_firmware_report(export_dir, tflite_sha256=exp.tflite_sha256, data_dir=data_dir, targets=targets,
                                   clips=clips)
    if old is not None:
        log("firmware: reusing firmware/firmware_report.json")
        return old
    return check_firmware(export_dir, data_dir, work_dir, targets=targets, clips=clips, host_clips="all",
                          from_audio=True, workers=workers, log=log)


def read_json_or_empty(path: Path) -> dict:
    try:
        return artifacts.read_json(path)
    except (FileNotFoundError, ValueError):
        return {}
