"""The end-to-end pipeline behind ``asc demo`` and ``asc grid``: stages chained. Each stage
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

import contextlib
import dataclasses
import json
import os
import time
from pathlib import Path
from typing import TYPE_CHECKING

from keras_asc import artifacts
from keras_asc.errors import AscError
from keras_asc.parallel import DEFAULT_WORKERS
from keras_asc.training_config import TrainConfig
from tflite_export.export import DEFAULT_BUDGET, DEFAULT_CALIBRATION

if TYPE_CHECKING:
    from firmware_harness.firmware.check import FirmwareReport
    from firmware_harness.profiling.profile import ProfileReport
    from firmware_harness.validation.report import ValidationReport
    from tflite_export.export_result import ExportResult

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


def _stage(name: str, log) -> float:
    log(f"\n=== {name} ===")
    return time.perf_counter()


#: The demo's firmware check (and arena probes): the host and the Cortex-M4 under QEMU, a subset of
#: firmware_harness.builds.targets.DEFAULT_TARGETS (`asc firmware`'s default) that keeps the demo short.
DEMO_FIRMWARE_TARGETS = ("host", "cortex-m4")


def available_firmware_targets(wanted: tuple[str, ...] = DEMO_FIRMWARE_TARGETS, log=print) -> tuple[str, ...]:
    """Of ``wanted``, the firmware targets this machine can build and run (archives and tools)."""
    from firmware_harness.builds.targets import get_target
    from firmware_harness.builds.third_party import FirmwareError, locate_third_party

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
    from firmware_harness.validation.export_validation import validate_export
    from firmware_harness.validation.report import reusable_validation
    from keras_asc.evaluation import evaluate_run, metrics_up_to_date
    from keras_asc.feature_cache import build_feature_cache
    from keras_asc.features import FeatureConfig
    from keras_asc.training import finished_run_matches, train
    from tflite_export.export import ExportConfig, export_run
    from tflite_export.export_result import reusable_export

    timings = {}
    t = _stage("features", log)
    fs = build_feature_cache(data_dir, work_dir, config=FeatureConfig.seed(
        frames_per_second=cfg.frames_per_second, n_mels=cfg.n_mels, clip_seconds=clip_seconds), workers=workers,
        train_split=cfg.train_split, log=log)
    timings["features"] = time.perf_counter() - t

    t = _stage(f"train {cfg.name}", log)
    tcfg = cfg.train_config()
    if finished_run_matches(run_dir, config=tcfg, feature_key=fs.config["key"]):
        log(f"train: reusing finished run {run_dir}")
    else:  # absent, or interrupted: train() resumes it and refuses a mismatch
        train(fs, run_dir, config=tcfg, resume=(run_dir / "state.json").is_file(), log=log)
    timings["train"] = time.perf_counter() - t

    t = _stage("evaluate (float)", log)
    if not metrics_up_to_date(run_dir, data_dir):
        evaluate_run(run_dir, data_dir, work_dir, workers=workers, log=log)
    else:
        log("evaluate: reusing metrics.json")
    timings["evaluate"] = time.perf_counter() - t

    t = _stage("export (int8)", log)
    exp = reusable_export(run_dir / "export", source_model_sha256=artifacts.sha256_file(run_dir / "model.keras"),
                          budget=cfg.budget, calibration_size=cfg.calibration_size, seed=cfg.seed)
    if exp is None:
        from firmware_harness.firmware.check import arena_probes

        exp = export_run(run_dir, data_dir, work_dir, config=ExportConfig(  # a cell over DCASE's limits is still
            budget=cfg.budget, calibration_size=cfg.calibration_size, seed=cfg.seed, workers=workers,  # compared
            arena_probes=arena_probes(firmware_targets, log=log), dcase_refuse=False), log=log)  # (warned)
    else:
        log("export: reusing export/")
    timings["export"] = time.perf_counter() - t

    t = _stage("validate (TFLM vs LiteRT, int8 vs float)", log)
    report = reusable_validation(run_dir / "export", tflite_sha256=exp.tflite_sha256, data_dir=data_dir)
    if report is None:
        report = validate_export(run_dir / "export" / "model.tflite", data_dir, work_dir, workers=workers,
                                 max_drop=max_drop, log=log)
    else:
        log("validate: reusing validation_report.json")
    timings["validate"] = time.perf_counter() - t

    firmware = None
    if firmware_targets:
        t = _stage(f"firmware (TFLM C++: {', '.join(firmware_targets)})", log)
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
    from firmware_harness.firmware.check import check_firmware, reusable_firmware_report

    old = reusable_firmware_report(export_dir, tflite_sha256=exp.tflite_sha256, data_dir=data_dir, targets=targets,
                                   clips=clips)
    if old is not None:
        log("firmware: reusing firmware/firmware_report.json")
        return old
    return check_firmware(export_dir, data_dir, work_dir, targets=targets, clips=clips, host_clips="all",
                          from_audio=True, workers=workers, log=log)


def _read(path: Path) -> dict:
    try:
        return artifacts.read_json(path)
    except (FileNotFoundError, ValueError):
        return {}


# ----------------------------------------------------------------------------- demo
def run_demo(work_dir: Path, *, size: str = "demo", seed: int = 0, cfg: PipelineConfig | None = None,
             workers: int = DEFAULT_WORKERS, log=print) -> PipelineResult:
    from keras_asc.synth import make_dataset, resolve_size

    cfg = cfg or PipelineConfig()
    work_dir = Path(work_dir)
    t0 = time.perf_counter()
    t = _stage(f"make-dataset ({size})", log)
    data_dir = make_dataset(work_dir / "data" / size, size=size, seed=seed, workers=workers, log=log)
    gen_seconds = time.perf_counter() - t
    result = run_pipeline(data_dir, work_dir, work_dir / "runs" / cfg.name, cfg,
                          clip_seconds=resolve_size(size).clip_seconds, workers=workers,
                          firmware_targets=available_firmware_targets(log=log), log=log)
    timings = {"make_dataset": round(gen_seconds, 1), **result.timings_seconds}
    profile = None
    targets = available_firmware_targets(DEMO_PROFILE_TARGETS, log=log)
    if targets:
        t = _stage(f"profile (estimated latency: {', '.join(targets)})", log)
        profile = _profile_stage(result.run_dir / "export", targets, log=log)
        timings["profile"] = round(time.perf_counter() - t, 1)
    result = dataclasses.replace(result, timings_seconds=timings, data_dir=Path(data_dir),
                                 wall_seconds=round(time.perf_counter() - t0, 1), profile=profile)
    summary = demo_summary(result)
    artifacts.atomic_write_text(work_dir / "demo_summary.md", summary)
    log("\n" + summary)
    return result


#: The demo's latency estimate: the cores of the three microcontrollers its summary names.
DEMO_PROFILE_TARGETS = ("cortex-m4", "cortex-m7", "cortex-m33")
DEMO_SUMMARY_MCUS = ("stm32f407", "stm32h743", "nrf5340")


def _profile_stage(export_dir: Path, targets: tuple[str, ...], *, log) -> ProfileReport:
    """``asc profile EXPORT --targets ...``, reused when the stored report profiled the same model
    and targets with the same code (firmware program, counting plugin, cycle model, MCU table)."""
    from firmware_harness.profiling.profile import export_sources, profile_sources, reusable_profile

    sources = export_sources(export_dir, log=log)
    old = reusable_profile(sources, export_dir / "profile", targets=targets)
    if old is not None:
        log("profile: reusing profile/profile_report.json")
        return old
    return profile_sources(sources, export_dir / "profile", source=str(export_dir), targets=targets, log=log)


def demo_summary(result: PipelineResult) -> str:
    """The table ``asc demo`` ends with (also saved as WORK/demo_summary.md)."""
    from collections import Counter

    v, size = result.validation, result.export.size
    run = result.run_dir
    ref, opt = v.agreement_with_tflm["litert_ref"], v.agreement_with_tflm["litert_opt"]
    found = Counter(str(d.op) for d in v.reference_divergences)
    ref_ops = ", ".join(f"first at {op} x{c}" for op, c in found.most_common()) or "none"

    lines = [f"# asc demo: {result.name} on generated data (not TAU; not comparable to the seed's figures)", "",
             "| | clips | float acc | int8 (TFLM) acc | float log loss | int8 log loss |", "|---|---|---|---|---|---|"]
    for r in v.scores:
        if r.group not in ("overall", "device"):
            continue
        label = "overall" if r.group == "overall" else f"device {r.name}{'*' if r.unseen_device else ''}"
        lines.append(f"| {label} | {r.clips} | {100 * r.float_accuracy:.1f} % | {100 * r.int8_accuracy:.1f} % "
                     f"| {r.float_log_loss:.3f} | {r.int8_log_loss:.3f} |")
    total = f"; total {result.wall_seconds}" if result.wall_seconds is not None else ""
    lines += ["", "(* device unseen in training)", "",
              f"- flatbuffer: {size.flatbuffer_bytes:,d} bytes of {result.export.budget_bytes:,d} "
              f"({size.budget_used_percent} %); DCASE size {size.dcase2021_nonzero_params:,d} "
              f"non-zero params; {size.macs_per_inference / 1e6:.1f} M MACs",
              f"- tensor arena: {v.arena.measured_min_bytes:,d} bytes measured minimum "
              f"(header: {v.arena.header_bytes:,d})",
              f"- TFLM ran {v.clips} clips; LiteRT reference kernels disagreed on {ref.clips_with_any_difference} "
              f"({ref_ops}), its default optimized interpreter (XNNPACK) on {opt.clips_with_any_difference} "
              "(rounding differences by design, not localized); "
              f"top-1 changed: {ref.top1_changed} / {opt.top1_changed}",
              f"- validation: {'PASSED' if v.passed else 'FAILED: ' + '; '.join(v.failures)}",
              *_firmware_lines(result.firmware),
              *_latency_lines(result.profile),
              "- stage times (s): " + ", ".join(f"{k} {s}" for k, s in result.timings_seconds.items()) + total,
              "", "Artifacts:",
              f"- dataset: {result.data_dir or ''}",
              f"- float model: {run / 'model.keras'} (config.json, metrics.json, confusion.png, tensorboard/)",
              f"- int8 model: {run / 'export' / 'model.tflite'} (config.json, size_report.txt, calibration.csv)",
              f"- C sources: {run / 'export'}/model_data.cc, model_data.h, model_input.h, model_settings.h, "
              "model_frontend.cc, model_frontend.h",
              f"- validation: {run / 'export'}/validation_report.md, validation_report.json, validation_*.png",
              f"- firmware: {run / 'export'}/firmware/firmware_report.md, firmware/<target>/ (program, outputs.npy)",
              ""]
    return "\n".join(lines)


def _latency_lines(profile: ProfileReport | None) -> list[str]:
    if profile is None:
        return ["- latency: not estimated (no Arm toolchain or QEMU; see the log)"]
    rows = {m.mcu: m for m in profile.mcus}
    parts = [f"{m.mcu.upper()} ({m.core}, {m.clock_hz / 1e6:.0f} MHz) {m.ms_per_inference:,.1f} ms per inference, "
             f"real-time factor {m.real_time_factor:.3f}" for name in DEMO_SUMMARY_MCUS if (m := rows.get(name))]
    return [f"- latency (estimated from exact instruction counts with the cycle model, not measured; "
            f"profile/profile_report.md): {'; '.join(parts)}"]


def _firmware_lines(fw: FirmwareReport | None) -> list[str]:
    if fw is None:
        return ["- firmware: not built (no TFLM source archives or toolchain; see the log)"]
    lines = []
    for t in fw.targets:
        per = (f"{t.seconds_per_inference:.2f} s per inference under QEMU (emulation, not a chip's time)"
               if t.emulated else f"{1000 * t.seconds_per_inference:.0f} ms per inference")
        lines.append(f"- firmware {t.target} ({t.kernels} kernels): {t.outputs_identical}/{t.clips} clips "
                     f"bit-identical with TFLM Python (inputs {t.inputs_identical}/{t.clips}); arena used "
                     f"{t.arena_used_bytes:,d} of {t.header_arena_bytes:,d} bytes; {per}")
        f = t.footprint
        if f:
            stack = f"{f.stack_bytes:,d} measured" if f.stack_bytes is not None else "not measured"
            lines.append(f"  - image: flash {f.flash_bytes:,d} bytes (model {f.flash_by_part['model']:,d}, "
                         f"TFLM kernels {f.flash_by_part['tflm_kernels']:,d}, runtime {f.flash_by_part['tflm_runtime']:,d}); "
                         f"RAM {f.ram_bytes:,d} bytes (arena {f.ram_by_part['tensor_arena']:,d}, "
                         f"front end {f.ram_by_part['frontend']:,d}, stack {stack}); front end flash "
                         f"{f.flash_by_part['frontend']:,d} + FFT {f.flash_by_part['frontend_fft']:,d} bytes")
        a = t.from_audio
        if a:
            lines.append(f"  - PCM -> class: {a.clips} clips; int8 input elements identical to the training features' "
                         f"{100 * a.input_identical_fraction:.4f} %, log-mel max diff {a.logmel_max_abs_diff_db:.1e} dB; "
                         f"top-1 = harness {a.top1_agreement}/{a.clips}, outputs identical {a.outputs_identical_to_harness}"
                         f"/{a.clips}; accuracy from PCM {100 * a.accuracy_from_pcm:.1f} % (harness int8 "
                         f"{100 * a.accuracy_harness_int8:.1f} %)")
    if not fw.passed:
        lines.append("- firmware: FAILED: " + "; ".join(fw.failures))
    return lines


# ----------------------------------------------------------------------------- grid
def grid_configs(base: PipelineConfig, *, models, frames, mels, losses, windows=(None,)) -> list[PipelineConfig]:
    """``base`` with every combination of model x frames/s x mel bands x loss x window frames
    (None: the whole clip)."""
    return [dataclasses.replace(base, model=m, frames_per_second=f, n_mels=n, loss=loss, window_frames=w)
            for m in models for f in frames for n in mels for loss in losses for w in windows]


#: A finished cell's row, in its run folder (the grid skips a cell that has one for the same
#: configuration).
GRID_RESULT = "grid_result.json"
#: Beside the run folders (a run folder must hold only what training writes until it has its first
#: epoch): ``OUT/grid_attempts/<name>.json``, one record per attempt at the cell (where it ran, the
#: epoch it resumed from), and ``<name>.lock``, held while a process runs the cell.
GRID_ATTEMPTS = "grid_attempts"
#: The grid's own tables in OUT, their sha256 in OUT's stage marker (a rerun keeps an edited one).
GRID_TABLES = ("results.csv", "results.md")
#: Columns of a row that say where and how the cell ran, not what it produced (the same for
#: both engines: the local engine records this machine).
PLACEMENT_COLUMNS = ("hostname", "node_ip", "attempts")


def finished_cell_row(run_dir: Path, cfg: PipelineConfig) -> dict | None:
    """The row of a cell finished earlier with this very configuration, else None."""
    done = _read(Path(run_dir) / GRID_RESULT)
    if not isinstance(done.get("config"), dict) or "row" not in done:
        return None
    defaults = json.loads(json.dumps(dataclasses.asdict(PipelineConfig())))  # fields added since it was written
    if {**defaults, **done["config"]} == json.loads(json.dumps(dataclasses.asdict(cfg))):
        return done["row"]
    return None


def this_machine() -> dict:
    """Where a local cell runs: hostname and this host's address (no network traffic)."""
    import socket

    host = socket.gethostname()
    try:
        ip = socket.gethostbyname(host)
    except OSError:
        ip = "127.0.0.1"
    return {"hostname": host, "node_ip": ip}


@contextlib.contextmanager
def cell_lock(run_dir: Path, *, timeout: float = 600.0, log=print):
    """Hold ``OUT/grid_attempts/<name>.lock`` (a POSIX lock: also across NFS clients) while a cell runs, so two
    processes never write one run folder: a second `asc grid` on the same folder, or a retried
    Ray trial while its first attempt still winds down. A dead process holds no lock."""
    import fcntl

    run_dir = Path(run_dir)
    path = run_dir.parent / GRID_ATTEMPTS / f"{run_dir.name}.lock"
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a+") as f:
        deadline, said = time.monotonic() + timeout, False
        while True:
            try:
                fcntl.lockf(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except OSError:
                if time.monotonic() > deadline:
                    f.seek(0)
                    raise CellBusy(f"{path}: another process ({f.read().strip() or 'unknown'}) has been running this "
                                   f"grid cell for over {timeout:.0f} s; wait for it to finish or stop that process, "
                                   "then run the grid again") from None
                if not said:
                    log(f"grid: {run_dir.name} is being run by another process; waiting for it")
                    said = True
                time.sleep(0.5)
        try:
            f.seek(0)
            f.truncate()
            f.write(f"pid {os.getpid()} on {this_machine()['hostname']}\n")
            f.flush()
            yield
        finally:
            fcntl.lockf(f, fcntl.LOCK_UN)


class CellBusy(AscError):
    """A grid cell's folder is locked by another live process."""


def _record_attempt(run_dir: Path, placement: dict) -> list[dict]:
    """Append this attempt (where it runs, from which finished epoch it resumes) to the cell's
    ``OUT/grid_attempts/<name>.json``; returns every attempt so far."""
    record = attempts_file(run_dir)
    attempts = _read(record).get("attempts", [])
    state = _read(run_dir / "state.json")
    attempts.append({**placement, "started": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
                     "resumed_from_epoch": int(state.get("epoch", 0)),
                     "training_done": _read(run_dir / "config.json").get("status") == "done"})
    artifacts.write_json(record, {"cell": run_dir.name, "attempts": attempts})
    return attempts


def attempts_file(run_dir: Path) -> Path:
    """``OUT/grid_attempts/<name>.json`` of the cell whose run folder is ``run_dir``."""
    return Path(run_dir).parent / GRID_ATTEMPTS / f"{Path(run_dir).name}.json"


def run_grid_cell(data_dir: Path, work_dir: Path, run_dir: Path, cfg: PipelineConfig, *, clip_seconds: float,
                  workers: int = DEFAULT_WORKERS, placement: dict | None = None, log=print) -> dict:
    """One grid cell, for either engine: under the cell's lock, record the attempt, run the
    pipeline (resuming what an earlier attempt left), build the row and write ``grid_result.json``.
    A cell already finished with this configuration returns its row without running again."""
    from tflite_export.export import BudgetError

    run_dir = Path(run_dir)
    with cell_lock(run_dir, log=log):
        old = finished_cell_row(run_dir, cfg)
        if old is not None:
            log("grid: already finished; reusing")
            return old
        placement = {**this_machine(), "pid": os.getpid(), **(placement or {})}
        t0 = time.perf_counter()
        attempts = _record_attempt(run_dir, placement)
        row = {"name": cfg.name, "model": cfg.model, "frames_per_second": cfg.frames_per_second,
               "n_mels": cfg.n_mels, "loss": cfg.loss, "window_frames": cfg.window_frames,
               "train_split": cfg.train_split, "recipe": cfg.train_config().recipe_text(),
               "arena_bytes": None, "macs_per_inference": None, "macs_per_clip": None, "ram_estimate_bytes": None}
        try:
            r = run_pipeline(data_dir, work_dir, run_dir, cfg, clip_seconds=clip_seconds, workers=workers, log=log)
            overall = r.validation.overall
            row.update(float_accuracy=overall.float_accuracy, float_log_loss=overall.float_log_loss,
                       params=r.export.size.trainable_params, int8_bytes=r.export.size.flatbuffer_bytes,
                       within_budget=True, int8_accuracy=overall.int8_accuracy, int8_log_loss=overall.int8_log_loss,
                       arena_bytes=r.export.size.arena_min_bytes, macs_per_inference=r.export.size.macs_per_inference,
                       macs_per_clip=r.export.size.macs_per_clip, ram_estimate_bytes=r.export.ram.needed_bytes)
        except BudgetError as e:
            metrics = _read(run_dir / "metrics.json").get("scores", [{}])[0]
            run_cfg = _read(run_dir / "config.json")
            row.update(float_accuracy=metrics.get("accuracy"), float_log_loss=metrics.get("log_loss"),
                       params=run_cfg.get("model", {}).get("trainable_params"),
                       int8_bytes=e.nbytes, within_budget=False, int8_accuracy=None, int8_log_loss=None)
        row.update(hostname=placement["hostname"], node_ip=placement["node_ip"], attempts=len(attempts))
        attempts[-1]["seconds"] = round(time.perf_counter() - t0, 1)  # this attempt, start to finish
        artifacts.write_json(attempts_file(run_dir), {"cell": run_dir.name, "attempts": attempts})
        artifacts.write_json(run_dir / GRID_RESULT, {"config": dataclasses.asdict(cfg), "row": row})
    return row


def cell_line(row: dict, done: int, total: int) -> str:
    """The grid's own line per finished cell (both engines)."""
    pct = lambda v: "-" if v is None or v != v else f"{100 * v:.1f} %"  # noqa: E731
    budget = "" if row.get("within_budget") else " (over budget)"
    return (f"grid: finished {done}/{total} {row['name']} on {row.get('hostname')} ({row.get('node_ip')}) after "
            f"{row.get('attempts')} attempt(s): float {pct(row.get('float_accuracy'))}, int8 "
            f"{pct(row.get('int8_accuracy'))}, {row.get('int8_bytes') or 0:,d} bytes{budget}")


def write_grid_tables(out_dir: Path, rows: list[dict], *, log=print):
    """``results.csv`` and ``results.md`` from the rows, in grid order (both engines)."""
    import pandas as pd

    table = pd.DataFrame(rows)
    with artifacts.adding_files(Path(out_dir), stage="grid", names=GRID_TABLES) as tmp:
        artifacts.atomic_write_text(tmp / "results.csv", table.to_csv(index=False))
        artifacts.atomic_write_text(tmp / "results.md", _grid_markdown(table))
    log("\n" + _grid_markdown(table))
    return table


def run_grid(data_dir: Path, out_dir: Path, configs: list[PipelineConfig], *, clip_seconds: float,
             work_dir: Path | None = None, workers: int = DEFAULT_WORKERS, log=print):
    """Run every configuration (each in ``out_dir/<name>/``), one after the other in this process
    (the local engine; :func:`asc_cli.grid_ray.run_grid_ray` is the Ray one), and write
    ``results.csv``/``.md``.

    A finished configuration leaves ``grid_result.json`` and is skipped next time; an
    interrupted one resumes its training from the last epoch.
    """
    out_dir = Path(out_dir)
    work_dir = Path(work_dir or out_dir / "work")
    rows = []
    for i, cfg in enumerate(configs, 1):
        run_dir = out_dir / cfg.name
        log(f"\n##### grid {i}/{len(configs)}: {cfg.name}")
        row = finished_cell_row(run_dir, cfg)
        if row is not None:
            log("grid: already finished; reusing")
        else:
            row = run_grid_cell(data_dir, work_dir, run_dir, cfg, clip_seconds=clip_seconds, workers=workers,
                                placement={"engine": "local"}, log=log)
            log(cell_line(row, i, len(configs)))
        rows.append(row)
    return write_grid_tables(out_dir, rows, log=log)


def _grid_markdown(table) -> str:
    def missing(v) -> bool:
        return v is None or v != v

    lines = []  # what every cell of the grid shares (the columns of rows written before them may be absent)
    for column, what in (("train_split", "trained on the training subset"), ("recipe", "recipe")):
        values = sorted({str(v) for v in table.get(column, ()) if not missing(v) and v != ""})
        if values:
            lines.append(f"{what}: {', '.join(values)}\n")
    lines += ["| configuration | window | params | float acc | float log loss | int8 bytes | int8 acc | arena | "
              "M MACs per inference / clip | RAM estimate | ran on | attempts |",
              "|---|---|---|---|---|---|---|---|---|---|---|---|"]

    def where(r) -> str:
        host, ip = r.get("hostname"), r.get("node_ip")
        return "-" if missing(host) else f"{host} ({ip})" if not missing(ip) and ip != host else str(host)

    for _, r in table.iterrows():
        pct = lambda v: "-" if missing(v) else f"{100 * v:.1f} %"  # noqa: E731
        num = lambda v: "-" if missing(v) else f"{int(v):,d}"  # noqa: E731
        ll = "-" if missing(r["float_log_loss"]) else f"{r['float_log_loss']:.3f}"
        budget = "" if r["within_budget"] else " (over budget)"
        window = "clip" if missing(r["window_frames"]) else f"{int(r['window_frames'])} frames"
        macs = ("-" if missing(r["macs_per_inference"]) else
                f"{r['macs_per_inference'] / 1e6:.1f} / {r['macs_per_clip'] / 1e6:.1f}")
        lines.append(f"| {r['name']} | {window} | {r['params']:,} | {pct(r['float_accuracy'])} | {ll} | "
                     f"{r['int8_bytes']:,}{budget} | {pct(r['int8_accuracy'])} | {num(r['arena_bytes'])} | {macs} | "
                     f"{num(r['ram_estimate_bytes'])} | {where(r)} | {num(r.get('attempts'))} |")
    return "\n".join(lines) + "\n"
