"""``asc fit``: the most accurate model that fits a named microcontroller's flash, RAM and time.

1. The search space's candidates, in the seeded Sobol order (:mod:`asc_cli.fitting.space`), are each
   checked before training (:mod:`asc_cli.fitting.feasibility`); a candidate that breaks a limit is
   listed with the limit and never trained.
2. The feasible ones become grid cells until ``budget_trials`` distinct trainings are chosen
   (candidates that differ only in quantization share one), and run as the grid runs them
   (:func:`asc_cli.grid.run_grid` on this machine, :func:`asc_cli.grid_ray.run_grid_ray` on Ray):
   the same run folders, the same resume of an interrupted cell, the same ``results.csv``.
3. The Pareto front of the trained candidates (int8 accuracy of the trial's PTQ export against the
   estimated ms per clip, RAM and flash) gives up to ``finalists`` finalists, most accurate first;
   each is proven (:mod:`asc_cli.fitting.prove`) and the front is computed again on what was measured.
4. The winner is the most accurate proven finalist within every limit; its ``asc bundle`` is
   made for the microcontroller (its board's when ``asc board`` has one), and the report
   (:mod:`asc_cli.fitting.report`) gives the commands that rebuild it.

Folders under ``OUT`` (a folder of stage ``fit``): ``feasibility/<hash>/`` (one per architecture),
``trials/`` (a grid folder: run folders, ``results.csv``), ``work/`` (feature cache), ``bundle/``
and ``fit_report.md``/``.json``/``fit_chart.png``.
"""
from __future__ import annotations

import dataclasses
from pathlib import Path

import firmware_harness
import keras_asc
import tflite_export
from asc_cli.fitting.feasibility import Feasibility, Limits, check_candidate
from asc_cli.fitting.pareto import pareto_front
from asc_cli.fitting.prove import Finalist, prove_finalist
from asc_cli.fitting.report import FIT_STAGE, REPORT_FILES, write_report
from asc_cli.fitting.space import Candidate, SearchSpace, candidate_sequence, trial_config
from asc_cli.grid import GRID_TABLES, run_grid
from asc_cli.grid_ray import run_grid_ray
from asc_cli.stages import PipelineConfig
from keras_asc import artifacts

DEFAULT_FINALISTS = 3
DEFAULT_BUDGET_TRIALS = 8


@dataclasses.dataclass(frozen=True)
class CandidateRow:
    """One visited candidate: its feasibility and, when trained, its trial's scores (PTQ export)."""

    name: str
    candidate: Candidate
    status: str  # "trained" (feasible: its trial trained it), "infeasible" (a limit broken), "not estimated" (error)
    broken: tuple[str, ...]
    error: str
    trial: str  # the grid cell (run folder under OUT/trials) that trains it; "" if none
    params: int | None
    macs_per_inference: int | None
    flash_bytes: int | None  # estimated: the untrained model's linked image
    ram_bytes: int | None  # estimated: the export's RAM formula on the untrained model's arena
    ms_per_clip: float | None  # estimated: inferences of one clip on the microcontroller
    float_accuracy: float | None = None
    int8_accuracy: float | None = None  # the trial's PTQ export, TFLM


@dataclasses.dataclass(frozen=True)
class FitResult:
    """``fit_report.json``."""

    mcu: str
    limits: Limits
    space: SearchSpace
    seed: int
    engine: str
    budget_trials: int
    clip_seconds: float
    data_dir: str
    candidates: tuple[CandidateRow, ...]  # in the order the search visited them
    finalists: tuple[Finalist, ...]
    front: tuple[str, ...]  # names of the finalists on the measured Pareto front
    winner: str | None  # a finalist's name; None: no finalist is proven within the limits
    commands: tuple[str, ...]  # rebuild the winner, step by step
    bundle: str  # the winner's asc bundle ("" without a winner)


def default_limits(mcu: str, *, clip_seconds: float, flash_bytes: int | None = None, ram_bytes: int | None = None,
                   ms_per_clip: float | None = None) -> Limits:
    """The microcontroller's row (its flash, its largest SRAM block) and real time (the clip's
    length), each replaced by the value given."""
    row = tflite_export.MCU_TARGETS[mcu]
    return Limits(mcu=mcu, flash_bytes=flash_bytes or row.flash_bytes, ram_bytes=ram_bytes or row.largest_sram_bytes,
                  ms_per_clip=ms_per_clip or 1000.0 * clip_seconds)


def _row(f: Feasibility, *, status: str, trial: str = "") -> CandidateRow:
    e = f.estimate
    return CandidateRow(name=f.candidate.name, candidate=f.candidate, status=status, broken=f.broken, error=f.error,
                        trial=trial, params=e and e.params, macs_per_inference=e and e.macs_per_inference,
                        flash_bytes=e and e.image_flash_bytes, ram_bytes=f.ram_bytes, ms_per_clip=f.ms_per_clip)


def choose_trials(space: SearchSpace, *, seed: int, budget_trials: int, base: PipelineConfig,
                  check, log=print) -> tuple[list[CandidateRow], list[PipelineConfig]]:
    """Visit the candidates in order, ``check(candidate) -> Feasibility`` each, until
    ``budget_trials`` distinct grid cells are chosen; returns every visited candidate's row
    (infeasible ones with the limits they broke) and the cells to train, in order."""
    rows, cells = [], {}
    for candidate in candidate_sequence(space, seed=seed):
        cfg = trial_config(candidate, base=base)
        if len(cells) >= budget_trials and cfg.name not in cells:
            continue  # its training would be one more trial: a candidate sharing a chosen cell is still free
        f = check(candidate)
        if not f.fits:
            status = "not estimated" if f.estimate is None else "infeasible"
            log(f"fit: {candidate.name}: {status}: {f.error or '; '.join(f.broken)}")
            rows.append(_row(f, status=status))
            continue
        cells.setdefault(cfg.name, cfg)
        rows.append(_row(f, status="trained", trial=cfg.name))
    return rows, list(cells.values())


def run_trials(configs: list[PipelineConfig], *, data_dir: Path, trials_dir: Path, work_dir: Path,
               clip_seconds: float, engine: str, workers: int, ray_options: dict | None = None, log=print) -> dict:
    """The grid cells on ``engine`` (``local`` or ``ray``) in ``trials_dir`` (a grid folder):
    ``{cell name: the grid's row}``. Finished cells are reused, interrupted ones resume."""
    artifacts.claim_folder(trials_dir, stage="grid", writes=GRID_TABLES)
    if engine == "ray":
        table = run_grid_ray(data_dir, trials_dir, configs, clip_seconds=clip_seconds, work_dir=work_dir,
                             log=log, **(ray_options or {}))
    else:
        table = run_grid(data_dir, trials_dir, configs, clip_seconds=clip_seconds, work_dir=work_dir, workers=workers,
                         log=log)
    return {r["name"]: r for r in table.to_dict("records")}


def _objectives(accuracy, ms, ram, flash) -> dict:
    return {"accuracy": accuracy, "ms_per_clip": ms, "ram_bytes": ram, "flash_bytes": flash}


def fit(*, data_dir: Path, out_dir: Path, mcu: str, base: PipelineConfig, clip_seconds: float,
        space: SearchSpace = SearchSpace(), limits: Limits | None = None, budget_trials: int = DEFAULT_BUDGET_TRIALS,
        finalists: int = DEFAULT_FINALISTS, engine: str = "local", workers: int = keras_asc.DEFAULT_WORKERS,
        ray_options: dict | None = None, log=print) -> FitResult:
    """Search ``space`` for the most accurate model of ``data_dir`` that fits microcontroller
    ``mcu`` within ``limits`` (default :func:`default_limits`), training at most ``budget_trials``
    candidates with ``base``'s recipe (epochs, seed, ...) on ``engine``; writes ``out_dir`` and
    returns its ``fit_report.json`` record."""
    data_dir, out_dir = Path(data_dir).resolve(), Path(out_dir).resolve()
    limits = limits or default_limits(mcu, clip_seconds=clip_seconds)
    artifacts.claim_folder(out_dir, stage=FIT_STAGE, writes=REPORT_FILES)
    firmware_harness.find_third_party(log=log)  # before any work: the estimates build firmware
    for name in ("host", tflite_export.MCU_TARGETS[mcu].core):
        missing = firmware_harness.list_targets()[name].missing_tools()
        if missing:
            raise firmware_harness.FirmwareError(f"asc fit measures every candidate's firmware, and {', '.join(missing)} "
                                                 f"is not installed (Debian: "
                                                 f"{' '.join(firmware_harness.list_targets()[name].debian_packages)})")
    base = dataclasses.replace(base, export=dataclasses.replace(base.export, budget=limits.flash_bytes))  # the flatbuffer may take what the image may
    rows, configs = choose_trials(space, seed=base.train.seed, budget_trials=budget_trials, base=base, log=log, check=lambda c: (
        check_candidate(c, limits=limits, clip_seconds=clip_seconds, out_dir=out_dir / "feasibility", seed=base.train.seed,
                        overrides=base.train.model_overrides,
                        log=log)))
    log(f"fit: {len(rows)} candidate(s) visited, {sum(r.status == 'trained' for r in rows)} feasible in "
        f"{len(configs)} trial(s)")
    results = run_trials(configs, data_dir=data_dir, trials_dir=out_dir / "trials", work_dir=out_dir / "work",
                         clip_seconds=clip_seconds, engine=engine, workers=workers, ray_options=ray_options,
                         log=log) if configs else {}
    rows = [dataclasses.replace(r, float_accuracy=results[r.trial].get("float_accuracy"),
                                int8_accuracy=results[r.trial].get("int8_accuracy")) if r.trial in results else r
            for r in rows]
    trained = [r for r in rows if r.status == "trained"]
    front = pareto_front([_objectives(r.int8_accuracy, r.ms_per_clip, r.ram_bytes, r.flash_bytes) for r in trained])
    chosen = sorted((trained[i] for i in front), key=lambda r: (-r.int8_accuracy, r.ms_per_clip))[:finalists]
    proven = []
    for r in chosen:
        log(f"\n##### fit: proving {r.name}")
        proven.append(prove_finalist(r.candidate, run_dir=out_dir / "trials" / r.trial, data_dir=data_dir,
                                     work_dir=out_dir / "work", limits=limits, clip_seconds=clip_seconds,
                                     budget=base.export.budget, calibration_size=base.export.calibration_size, seed=base.export.seed,
                                     workers=workers, log=log))
    measured = pareto_front([_objectives(f.int8_accuracy, f.ms_per_clip, f.linked_ram_bytes, f.linked_flash_bytes)
                             for f in proven])
    winner = pick_winner(proven)
    bundle = ""
    if winner is not None:
        board = mcu if mcu in firmware_harness.BOARDS else None
        bundle = str(firmware_harness.bundle(source=Path(winner.export_dir), out_dir=out_dir / "bundle", board=board,
                                             target=None if board else bundle_target(mcu), log=log).out)
    result = FitResult(mcu=mcu, limits=limits, space=space, seed=base.train.seed, engine=engine, budget_trials=budget_trials,
                       clip_seconds=clip_seconds, data_dir=str(data_dir), candidates=tuple(rows),
                       finalists=tuple(proven), front=tuple(proven[i].candidate.name for i in measured),
                       winner=winner and winner.candidate.name,
                       commands=rebuild_commands(winner, base=base, data_dir=data_dir, mcu=mcu, clip_seconds=clip_seconds,
                                                 out_dir=out_dir) if winner else (),
                       bundle=bundle)
    write_report(result, out_dir=out_dir, log=log)
    return result


def bundle_target(mcu: str) -> str:
    """The firmware target whose build a bundle for ``mcu``'s core holds (the Cortex-M85's is the M55's)."""
    core = tflite_export.MCU_TARGETS[mcu].core
    return firmware_harness.list_targets()[core].shares_build or core


def pick_winner(finalists: list[Finalist]) -> Finalist | None:
    """The most accurate (int8) finalist that is proven and within every limit; ties: fewer ms per clip."""
    ok = [f for f in finalists if f.proven and f.fits]
    return min(ok, key=lambda f: (-f.int8_accuracy, f.ms_per_clip)) if ok else None


def rebuild_commands(winner: Finalist, *, base: PipelineConfig, data_dir: Path, mcu: str, clip_seconds: float,
                     out_dir: Path) -> tuple[str, ...]:
    """The ``asc`` commands that rebuild ``winner`` from the data, step by step."""
    c = winner.candidate
    run, work = Path(winner.run_dir), out_dir / "work"
    export = Path(winner.export_dir)
    cfg = trial_config(c, base=base)
    window = "" if c.window_frames is None else f" --window-frames {c.window_frames}" + (
        f" --window-hop {c.window_hop}" if c.window_hop else "")
    t = cfg.train
    extra = "".join([f" --teacher {','.join(t.teachers)}" if t.teachers else "",
                     f" --kd-weight {t.kd_weight:g} --kd-temperature {t.kd_temperature:g}" if t.teachers else "",
                     f" --freq-mixstyle {t.freq_mixstyle_p:g},{t.freq_mixstyle_alpha:g}" if t.freq_mixstyle_p else "",
                     f" --dir-aug {t.dir_folder},{t.dir_p:g}" if t.dir_folder else "",
                     f" --train-split {cfg.features.train_split}" if cfg.features.train_split else ""])
    quant = {"ptq": "", "qat": " --qat", "lut4": " --compress --compress-bits 4"}[c.quantization]
    core = tflite_export.MCU_TARGETS[mcu].core
    board = mcu in firmware_harness.BOARDS
    model_args = "".join(f" --model-arg {k}={v:g}" for k, v in t.model_overrides)
    return (f"asc train --data {data_dir} --out {run} --work {work} --model {c.model}{model_args} "
            f"--frames-per-second {c.frames_per_second} --n-mels {c.n_mels} --clip-seconds {clip_seconds:g}{window} "
            f"--loss {t.loss} --epochs {t.epochs} --batch-size {t.batch_size} --lr {t.learning_rate:g} "
            f"--seed {t.seed}{extra}",
            f"asc evaluate {run} --data {data_dir} --work {work}",
            f"asc export {run} --data {data_dir} --work {work} --out {export} --budget {base.export.budget} "
            f"--calibration-size {base.export.calibration_size} --seed {base.export.seed} --dcase-year none "
            f"--arena-targets host,{core}{quant}",
            f"asc validate {export}/model.tflite --data {data_dir} --work {work}",
            f"asc firmware {export} --data {data_dir} --work {work} --targets host --from-audio",
            *([f"asc board build {export} --board {mcu}"] if board else []),
            f"asc profile {export} --targets {core} --mcu {mcu}",
            f"asc bundle {export} --out {out_dir / 'bundle'} " + (f"--board {mcu}" if board else f"--target {bundle_target(mcu)}"))
