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
import inspect
import json
import time
from pathlib import Path

import firmware_harness
import keras_asc
import tflite_export
from keras_asc import artifacts

#: FeatureConfig.seed's keyword defaults (keras_asc.features declares them): the seed's named
#: feature configuration a pipeline configuration starts from
_SEED_FEATURES = inspect.signature(keras_asc.FeatureConfig.seed).parameters
#: The seed's feature configurations (Table 5) the options take: frames per second and mel bands
FRAME_RATES = tuple(sorted(keras_asc.HOPS_BY_FRAME_RATE))
MEL_BANDS = (64, 128, 256)


@dataclasses.dataclass(frozen=True)
class PipelineFeatures:
    """The feature options of a pipeline configuration: one of the seed's named log-mel
    configurations (:meth:`keras_asc.FeatureConfig.seed`) and the training subset."""
    frames_per_second: int = _SEED_FEATURES["frames_per_second"].default
    n_mels: int = _SEED_FEATURES["n_mels"].default
    train_split: str | None = None  # a DCASE 2024 training subset of a TAU 2022 layout (--train-split)

    def feature_config(self, *, clip_seconds: float) -> keras_asc.FeatureConfig:
        """The feature configuration for clips of ``clip_seconds`` (the dataset's)."""
        return keras_asc.FeatureConfig.seed(frames_per_second=self.frames_per_second, n_mels=self.n_mels,
                                            clip_seconds=clip_seconds)


#: The export options a pipeline configuration chooses: its record in ``grid_result.json`` and what
#: the export's reuse checks. The pipeline sets ``workers``, ``arena_probes`` and ``dcase_refuse``
#: (False: a cell over DCASE's limits is still compared, with a warning); every other field keeps
#: ExportConfig's default (quantize-aware training, compression, MCU targets: ``asc export``).
PIPELINE_EXPORT_FIELDS = ("budget", "calibration_size", "seed")
_SET_BY_THE_PIPELINE = ("workers", "arena_probes", "dcase_refuse")


@dataclasses.dataclass(frozen=True)
class PipelineConfig:
    """One configuration of the pipeline (a grid cell, or the demo's single run), composed of the
    stages' own records, whose defaults are the pipeline's: ``train`` (:class:`keras_asc.TrainConfig`),
    ``export`` (:class:`tflite_export.ExportConfig`, its :data:`PIPELINE_EXPORT_FIELDS`),
    ``features`` (:class:`PipelineFeatures`) and the firmware check's sample."""
    train: keras_asc.TrainConfig = dataclasses.field(default_factory=keras_asc.TrainConfig)
    export: tflite_export.ExportConfig = dataclasses.field(default_factory=tflite_export.ExportConfig)
    features: PipelineFeatures = dataclasses.field(default_factory=PipelineFeatures)
    firmware_clips: int = 10  # the demo's stratified sample per emulated firmware target (hosts run all)

    def __post_init__(self) -> None:
        default = tflite_export.ExportConfig()
        fixed = [f.name for f in dataclasses.fields(default) if f.name not in PIPELINE_EXPORT_FIELDS + _SET_BY_THE_PIPELINE
                 and getattr(self.export, f.name) != getattr(default, f.name)]
        if fixed:
            raise ValueError(f"PipelineConfig.export: {', '.join(fixed)} cannot be chosen for the pipeline (the demo "
                             f"and the grid export with post-training quantization into RUN/export; they choose "
                             f"{', '.join(PIPELINE_EXPORT_FIELDS)}); export the run with `asc export` or "
                             "tflite_export.export_model for the others")
        if self.firmware_clips < 1:
            raise ValueError(f"PipelineConfig.firmware_clips must be at least 1, got {self.firmware_clips}")

    @property
    def name(self) -> str:
        """The run folder's name (a grid cell's), from the model, its overrides, the features, the
        loss and the window."""
        t, f = self.train, self.features
        extra = "".join(f"_{k}{v:g}" for k, v in t.model_overrides)
        window = "" if t.window_frames is None else f"_w{t.window_frames}" + (
            f"h{t.window_hop}" if t.window_hop else "")
        return f"{t.model}{extra}_{f.frames_per_second}fps_{f.n_mels}mel_{t.loss}{window}"

    def record(self) -> dict:
        """What a grid cell's ``grid_result.json`` keeps of its configuration (JSON types):
        ``{"train": TrainConfig.to_dict(), "export": {budget, calibration_size, seed}, "features":
        {...}, "firmware_clips": n}``."""
        return json.loads(json.dumps({"train": self.train.to_dict(),
                                      "export": {k: getattr(self.export, k) for k in PIPELINE_EXPORT_FIELDS},
                                      "features": dataclasses.asdict(self.features),
                                      "firmware_clips": self.firmware_clips}))


@dataclasses.dataclass(frozen=True)
class PipelineResult:
    """What one configuration's pipeline produced, stage by stage."""
    config: PipelineConfig
    run_dir: Path
    export: tflite_export.ExportResult
    validation: firmware_harness.ValidationReport
    firmware: firmware_harness.FirmwareReport | None
    timings_seconds: dict[str, float]
    data_dir: Path | None = None  # set by the demo (the generated dataset)
    wall_seconds: float | None = None
    profile: firmware_harness.ProfileReport | None = None  # the demo's latency estimate (asc profile)

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
        firmware_harness.find_third_party()
    except firmware_harness.FirmwareError as e:
        log(f"firmware: skipped: {e}")
        return ()
    found = []
    for name in wanted:
        target = firmware_harness.list_targets()[name]
        missing = target.missing_tools()
        if missing:
            log(f"firmware: {name} skipped: {', '.join(missing)} not installed "
                f"(Debian: {' '.join(target.debian_packages)})")
        else:
            found.append(name)
    return tuple(found)


def run_pipeline(data_dir: Path, work_dir: Path, run_dir: Path, cfg: PipelineConfig, *, clip_seconds: float,
                 workers: int = keras_asc.DEFAULT_WORKERS, max_drop: float | None = None, firmware_targets: tuple[str, ...] = (),
                 log=print) -> PipelineResult:
    """features -> train -> evaluate -> export -> validate (-> firmware) for one configuration.
    Raises the stage's own errors (BudgetError, ...)."""

    timings = {}
    t = stage_banner("features", log)
    fs = keras_asc.extract_features(data_dir=data_dir, work_dir=work_dir, config=cfg.features.feature_config(
        clip_seconds=clip_seconds), workers=workers, train_split=cfg.features.train_split, log=log)
    timings["features"] = time.perf_counter() - t

    t = stage_banner(f"train {cfg.name}", log)
    tcfg = cfg.train
    if keras_asc.run_is_finished(run_dir=run_dir, config=tcfg, feature_key=fs.config["key"]):
        log(f"train: reusing finished run {run_dir}")
    else:  # absent, or interrupted: train() resumes it and refuses a mismatch
        keras_asc.train(features=fs, run_dir=run_dir, config=tcfg, resume=(run_dir / "state.json").is_file(), log=log)
    timings["train"] = time.perf_counter() - t

    t = stage_banner("evaluate (float)", log)
    if not keras_asc.metrics_are_current(run_dir=run_dir, data_dir=data_dir):
        keras_asc.evaluate(run_dir=run_dir, data_dir=data_dir, work_dir=work_dir, workers=workers, log=log)
    else:
        log("evaluate: reusing metrics.json")
    timings["evaluate"] = time.perf_counter() - t

    t = stage_banner("export (int8)", log)
    exp = tflite_export.reusable_export_record(
        export_dir=run_dir / "export", source_model_sha256=artifacts.sha256_file(run_dir / "model.keras"),
        **{k: getattr(cfg.export, k) for k in PIPELINE_EXPORT_FIELDS})
    if exp is None:
        exp = tflite_export.export_model(run_dir=run_dir, data_dir=data_dir, work_dir=work_dir, config=dataclasses.replace(
            cfg.export, workers=workers, arena_probes=firmware_harness.arena_probes(firmware_targets, log=log),
            dcase_refuse=False), log=log)  # a cell over DCASE's limits is still compared (warned)
    else:
        log("export: reusing export/")
    timings["export"] = time.perf_counter() - t

    t = stage_banner("validate (TFLM vs LiteRT, int8 vs float)", log)
    report = firmware_harness.stored_validation(export_dir=run_dir / "export", tflite_sha256=exp.tflite_sha256,
                                                data_dir=data_dir)
    if report is None:
        report = firmware_harness.validate(source=run_dir / "export" / "model.tflite", data_dir=data_dir,
                                           work_dir=work_dir, workers=workers, max_drop=max_drop, log=log)
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
                    exp: tflite_export.ExportResult, *, workers: int, log) -> firmware_harness.FirmwareReport:
    """``asc firmware --from-audio``: every evaluate clip on host targets, a stratified sample of
    ``clips`` on emulated ones; reused when the stored report was made from the same model,
    sources, targets and data."""
    old = firmware_harness.stored_firmware_check(export_dir=export_dir, tflite_sha256=exp.tflite_sha256,
                                                 data_dir=data_dir, targets=targets, clips=clips)
    if old is not None:
        log("firmware: reusing firmware/firmware_report.json")
        return old
    return firmware_harness.check_firmware(source=export_dir, data_dir=data_dir, work_dir=work_dir, targets=targets,
                                           clips=clips, host_clips="all", from_audio=True, workers=workers, log=log)


def read_json_or_empty(path: Path) -> dict:
    try:
        return artifacts.read_json(path)
    except (FileNotFoundError, ValueError):
        return {}
