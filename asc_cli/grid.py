"""``asc grid``: configurations (a grid cell each) through every stage
(:func:`asc_cli.stages.run_pipeline`), one after the other in this process (the local engine;
:mod:`asc_cli.grid_ray` is the Ray one), and the results table both engines write. A cell runs under
its lock, records each attempt and leaves ``grid_result.json`` when it finishes."""
from __future__ import annotations

import contextlib
import dataclasses
import fcntl
import os
import socket
import time
from pathlib import Path

import pandas as pd

from asc_cli.stages import (PIPELINE_EXPORT_FIELDS, PipelineConfig, PipelineFeatures, read_json_or_empty,
                            run_pipeline)
import keras_asc
import tflite_export
from keras_asc import artifacts
from keras_asc.errors import AscError


def grid_configs(base: PipelineConfig, *, models, frames, mels, losses, windows=(None,)) -> list[PipelineConfig]:
    """``base`` with every combination of model x frames/s x mel bands x loss x window frames
    (None: the whole clip)."""
    return [dataclasses.replace(base, train=dataclasses.replace(base.train, model=m, loss=loss, window_frames=w),
                                features=dataclasses.replace(base.features, frames_per_second=f, n_mels=n))
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
    """The row of a cell finished earlier with this very configuration, else None. A record
    written before a field existed (or before the configuration was composed: :func:`_composed`)
    matches the configuration that leaves that field at its default."""
    done = read_json_or_empty(Path(run_dir) / GRID_RESULT)
    stored = done.get("config")
    if not isinstance(stored, dict) or "row" not in done:
        return None
    if "train" not in stored:
        stored = _composed(stored)
    defaults = PipelineConfig().record()
    with_defaults = {**defaults, **{k: {**defaults[k], **v} if isinstance(defaults.get(k), dict) and isinstance(v, dict)
                                    else v for k, v in stored.items()}}
    return done["row"] if with_defaults == cfg.record() else None


def _composed(flat: dict) -> dict:
    """A configuration recorded as one flat record (grid folders of asc before PipelineConfig was
    composed: the TrainConfig, export and feature fields side by side, the recipe's TrainConfig
    fields as ``[name, value]`` pairs, one seed for training and export) as
    :meth:`PipelineConfig.record` writes it."""
    def of(record) -> dict:
        names = {f.name for f in dataclasses.fields(record)}
        return {k: v for k, v in flat.items() if k in names}

    train = {**of(keras_asc.TrainConfig), **dict(flat.get("recipe") or [])}
    train["model_overrides"] = dict(train.get("model_overrides") or [])
    return {"train": train, "export": {k: flat[k] for k in PIPELINE_EXPORT_FIELDS if k in flat},
            "features": of(PipelineFeatures), **{k: flat[k] for k in ("firmware_clips",) if k in flat}}


def this_machine() -> dict:
    """Where a local cell runs: hostname and this host's address (no network traffic)."""
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
    attempts = read_json_or_empty(record).get("attempts", [])
    state = read_json_or_empty(run_dir / "state.json")
    attempts.append({**placement, "started": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
                     "resumed_from_epoch": int(state.get("epoch", 0)),
                     "training_done": read_json_or_empty(run_dir / "config.json").get("status") == "done"})
    artifacts.write_json(record, {"cell": run_dir.name, "attempts": attempts})
    return attempts


def attempts_file(run_dir: Path) -> Path:
    """``OUT/grid_attempts/<name>.json`` of the cell whose run folder is ``run_dir``."""
    return Path(run_dir).parent / GRID_ATTEMPTS / f"{Path(run_dir).name}.json"


def run_grid_cell(data_dir: Path, work_dir: Path, run_dir: Path, cfg: PipelineConfig, *, clip_seconds: float,
                  workers: int = keras_asc.DEFAULT_WORKERS, placement: dict | None = None, log=print) -> dict:
    """One grid cell, for either engine: under the cell's lock, record the attempt, run the
    pipeline (resuming what an earlier attempt left), build the row and write ``grid_result.json``.
    A cell already finished with this configuration returns its row without running again."""
    run_dir = Path(run_dir)
    with cell_lock(run_dir, log=log):
        old = finished_cell_row(run_dir, cfg)
        if old is not None:
            log("grid: already finished; reusing")
            return old
        placement = {**this_machine(), "pid": os.getpid(), **(placement or {})}
        t0 = time.perf_counter()
        attempts = _record_attempt(run_dir, placement)
        row = {"name": cfg.name, "model": cfg.train.model, "frames_per_second": cfg.features.frames_per_second,
               "n_mels": cfg.features.n_mels, "loss": cfg.train.loss, "window_frames": cfg.train.window_frames,
               "train_split": cfg.features.train_split, "recipe": cfg.train.recipe_text(),
               "arena_bytes": None, "macs_per_inference": None, "macs_per_clip": None, "ram_estimate_bytes": None}
        try:
            r = run_pipeline(data_dir, work_dir, run_dir, cfg, clip_seconds=clip_seconds, workers=workers, log=log)
            overall = r.validation.overall
            row.update(float_accuracy=overall.float_accuracy, float_log_loss=overall.float_log_loss,
                       params=r.export.size.trainable_params, int8_bytes=r.export.size.flatbuffer_bytes,
                       within_budget=True, int8_accuracy=overall.int8_accuracy, int8_log_loss=overall.int8_log_loss,
                       arena_bytes=r.export.size.arena_min_bytes, macs_per_inference=r.export.size.macs_per_inference,
                       macs_per_clip=r.export.size.macs_per_clip, ram_estimate_bytes=r.export.ram.needed_bytes)
        except tflite_export.BudgetError as e:
            metrics = read_json_or_empty(run_dir / "metrics.json").get("scores", [{}])[0]
            run_cfg = read_json_or_empty(run_dir / "config.json")
            row.update(float_accuracy=metrics.get("accuracy"), float_log_loss=metrics.get("log_loss"),
                       params=run_cfg.get("model", {}).get("trainable_params"),
                       int8_bytes=e.nbytes, within_budget=False, int8_accuracy=None, int8_log_loss=None)
        row.update(hostname=placement["hostname"], node_ip=placement["node_ip"], attempts=len(attempts))
        attempts[-1]["seconds"] = round(time.perf_counter() - t0, 1)  # this attempt, start to finish
        artifacts.write_json(attempts_file(run_dir), {"cell": run_dir.name, "attempts": attempts})
        artifacts.write_json(run_dir / GRID_RESULT, {"config": cfg.record(), "row": row})
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
    table = pd.DataFrame(rows)
    with artifacts.adding_files(Path(out_dir), stage="grid", names=GRID_TABLES) as tmp:
        artifacts.atomic_write_text(tmp / "results.csv", table.to_csv(index=False))
        artifacts.atomic_write_text(tmp / "results.md", _grid_markdown(table))
    log("\n" + _grid_markdown(table))
    return table


def run_grid(data_dir: Path, out_dir: Path, configs: list[PipelineConfig], *, clip_seconds: float,
             work_dir: Path | None = None, workers: int = keras_asc.DEFAULT_WORKERS, log=print):
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
