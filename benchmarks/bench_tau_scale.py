"""TAU scale on one machine (issues #20, #32): `asc features`, `asc validate` and `asc firmware --from-audio`
(host targets, every clip) on an evaluate split of TAU fold 1's size (2,968 clips), with clips/s per
stage, per runner and per target, the peak memory of each stage's process tree, which executor ran on how
many clips (validate's truth and witnesses, TFLM Python's inputs in the firmware check) and where the time
went. ``--extra --full`` runs every witness on every clip (the check before issue #32).

    .venv/bin/python benchmarks/bench_tau_scale.py [--work /work/scratch/scale] [--eval-clips 2968]
        [--label NAME] [--targets host,host-cmsis-nn] [--workers 2] [--stages features,validate,firmware]
        [--source DATASET | --generate N] [--run RUN_DIR]

The dataset (made once, cached in WORK): an evaluate split of exactly ``--eval-clips`` clips.
``--generate N`` makes it with ``asc make-dataset --size N`` (N=246 gives 3,000 evaluate clips; about
1 clip/s on 2 cores, so over an hour) and keeps its first ``--eval-clips`` evaluate rows. Without it
(the default) the evaluate clips of an existing generated dataset (``--source``, default the demo's
240) are hard-linked under ``--eval-clips`` distinct names, cycling: the content repeats every
240 clips, which no stage's speed depends on (every clip is still read, computed and compared on its
own; nothing is cached by content). The train split is the source's. Generated data, never TAU.

The model: a copy of ``--run`` (default the demo's ResNet11 run and its export, 174 M MACs per clip,
the model the issue's figures are for) under WORK/run, so the reports are written there.

Each stage runs as a subprocess (``asc ...``) with PYTHONUNBUFFERED, its lines time-stamped (the
per-target times come from them) and its process tree sampled every 0.5 s for the sum of RSS and of
PSS (PSS counts a page shared by N processes, e.g. a memory-mapped feature array, 1/N in each: the
memory actually used). The feature cache is recomputed for the features stage (its entry under
WORK/work-LABEL is removed first). Then a profile in this process on a few clips: Python start-up,
a spawned worker's start-up, each interpreter's time per clip, the float model, quantization, file I/O
(reading the cached features, writing the program's input file, hashing the WAVs) and the comparison.
Writes WORK/results-LABEL.json and prints a table.
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import threading
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
ASC = [str(Path(sys.executable).parent / "asc")]
DEMO_DATA = REPO / "work" / "demo" / "data" / "demo"
DEMO_RUN = REPO / "work" / "demo" / "runs" / "resnet11_28fps_128mel_ce"
GB = 1e9


# ----------------------------------------------------------------------------- dataset and model
def derive_dataset(source: Path, out: Path, *, eval_clips: int) -> Path:
    """``out``: the source's train split and an evaluate split of exactly ``eval_clips`` rows, the source's
    evaluate files hard-linked (copied across file systems) under distinct names, cycling. Made once."""
    import pandas as pd

    marker = out / "scale_dataset.json"
    if marker.is_file():
        if json.loads(marker.read_text()) == {"source": str(source.resolve()), "eval_clips": eval_clips}:
            return out
        raise SystemExit(f"{out}: holds another derived dataset; use another --work")
    tmp = out.with_name(out.name + ".partial")
    shutil.rmtree(tmp, ignore_errors=True)
    (tmp / "audio").mkdir(parents=True)
    (tmp / "evaluation_setup").mkdir()
    meta = pd.read_csv(source / "meta.csv", sep="\t").set_index("filename", drop=False)
    train = pd.read_csv(source / "evaluation_setup" / "fold1_train.csv", sep="\t")
    evaluate = pd.read_csv(source / "evaluation_setup" / "fold1_evaluate.csv", sep="\t")
    rows, ev = [], []
    for f in train["filename"]:
        _link(source / f, tmp / f)
        rows.append(meta.loc[f].to_dict())
    for i in range(eval_clips):
        f = evaluate["filename"].iloc[i % len(evaluate)]
        rep = i // len(evaluate)
        name = f if rep == 0 else f.replace(".wav", f"-r{rep}.wav")
        _link(source / f, tmp / name)
        rows.append({**meta.loc[f].to_dict(), "filename": name})
        ev.append({"filename": name, "scene_label": meta.loc[f, "scene_label"]})
    pd.DataFrame(rows)[["filename", "scene_label", "identifier", "source_label"]].to_csv(tmp / "meta.csv", sep="\t",
                                                                                        index=False)
    train.to_csv(tmp / "evaluation_setup" / "fold1_train.csv", sep="\t", index=False)
    pd.DataFrame(ev).to_csv(tmp / "evaluation_setup" / "fold1_evaluate.csv", sep="\t", index=False)
    pd.DataFrame(ev)[["filename"]].to_csv(tmp / "evaluation_setup" / "fold1_test.csv", sep="\t", index=False)
    (tmp / "scale_dataset.json").write_text(json.dumps({"source": str(source.resolve()), "eval_clips": eval_clips}))
    shutil.rmtree(out, ignore_errors=True)
    tmp.rename(out)
    return out


def _link(src: Path, dst: Path) -> None:
    try:
        os.link(src, dst)
    except OSError:
        shutil.copy2(src, dst)


def generated_source(work: Path, size: int) -> Path:
    out = work / f"generated-{size}"
    subprocess.run([*ASC, "make-dataset", "--size", str(size), "--out", str(out)], check=True, cwd=REPO)
    return out


def copy_run(run: Path, out: Path, *, data: Path, work: Path, targets: str) -> Path:
    """A copy of the trained run (model.keras, config.json, metrics), exported here once with `asc export`
    (its arena probes: ``targets``), so the export's C sources are the current code's."""
    if not (out / "model.keras").is_file():
        tmp = out.with_name(out.name + ".partial")
        shutil.rmtree(tmp, ignore_errors=True)
        shutil.copytree(run, tmp, ignore=shutil.ignore_patterns("checkpoints", "tensorboard", "export"))
        shutil.rmtree(out, ignore_errors=True)
        tmp.rename(out)
    if not (out / "export" / "model.tflite").is_file():
        subprocess.run([*ASC, "export", str(out), "--data", str(data), "--work", str(work), "--arena-targets",
                        targets], check=True, cwd=REPO)
    return out / "export"


# ----------------------------------------------------------------------------- one stage
class TreeMemory(threading.Thread):
    """Samples a process and its descendants: peak sum of RSS and of PSS, peak single RSS, process count."""

    def __init__(self, pid: int, period: float = 0.5):
        super().__init__(daemon=True)
        self.pid, self.period = pid, period
        self.peak_rss = self.peak_pss = self.peak_single = 0
        self.peak_procs = 0
        self.stop = threading.Event()

    def run(self) -> None:
        import psutil

        try:
            root = psutil.Process(self.pid)
        except psutil.Error:
            return
        while not self.stop.is_set():
            rss = pss = single = n = 0
            try:
                procs = [root, *root.children(recursive=True)]
            except psutil.Error:
                break
            for p in procs:
                try:
                    m = p.memory_full_info()
                except psutil.Error:
                    continue
                rss, pss, single, n = rss + m.rss, pss + getattr(m, "pss", m.rss), max(single, m.rss), n + 1
            self.peak_rss, self.peak_pss = max(self.peak_rss, rss), max(self.peak_pss, pss)
            self.peak_single, self.peak_procs = max(self.peak_single, single), max(self.peak_procs, n)
            self.stop.wait(self.period)


class LoadSampler(threading.Thread):
    """The machine's 1-minute load average every 5 s: how much else ran beside the stage."""

    def __init__(self):
        super().__init__(daemon=True)
        self.samples: list[float] = []
        self.stop = threading.Event()

    def run(self) -> None:
        while not self.stop.is_set():
            self.samples.append(os.getloadavg()[0])
            self.stop.wait(5)

    @property
    def mean(self) -> float:
        return sum(self.samples) / max(len(self.samples), 1)


def run_stage(name: str, cmd: list[str], log_path: Path) -> dict:
    """Run ``cmd``; its time-stamped output lines, wall seconds, CPU seconds of its children and peak memory."""
    env = {**os.environ, "PYTHONUNBUFFERED": "1", "TF_CPP_MIN_LOG_LEVEL": "2"}
    load = LoadSampler()
    load.start()
    before = os.times()
    t0 = time.perf_counter()
    lines: list[tuple[float, str]] = []
    with open(log_path, "w") as log:
        proc = subprocess.Popen(cmd, cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                                bufsize=1)
        mem = TreeMemory(proc.pid)
        mem.start()
        for line in proc.stdout:
            t = time.perf_counter() - t0
            log.write(f"{t:8.1f} {line}")
            if "\r" not in line and "it/s]" not in line and "clip/s]" not in line:
                lines.append((t, line.rstrip("\n")))
        proc.wait()
        mem.stop.set()
        mem.join()
    wall = time.perf_counter() - t0
    after = os.times()
    load.stop.set()
    load.join()
    cpu = (after.children_user - before.children_user) + (after.children_system - before.children_system)
    if proc.returncode != 0:
        print(f"{name}: exit status {proc.returncode}; see {log_path}", file=sys.stderr)
    print(f"{name}: {wall:.1f} s wall, {cpu:.1f} CPU-s (mean 1-min load average {load.mean:.1f} on "
          f"{os.cpu_count()} cores), peak RSS sum {mem.peak_rss / GB:.2f} GB, PSS sum "
          f"{mem.peak_pss / GB:.2f} GB, largest process {mem.peak_single / GB:.2f} GB, {mem.peak_procs} processes",
          flush=True)
    return {"stage": name, "cmd": cmd, "exit_status": proc.returncode, "wall_seconds": round(wall, 1),
            "cpu_seconds": round(cpu, 1), "mean_load_average": round(load.mean, 2), "peak_rss_sum_bytes": mem.peak_rss, "peak_pss_sum_bytes": mem.peak_pss,
            "peak_rss_single_bytes": mem.peak_single, "peak_processes": mem.peak_procs,
            "lines": [(round(t, 1), s) for t, s in lines]}


def _first(lines, needle: str, after: float = -1.0) -> float | None:
    return next((t for t, s in lines if needle in s and t > after), None)


def firmware_phases(stage: dict, targets: list[str]) -> dict[str, dict]:
    """Per target, from the time-stamped log: seconds of the log-mel run (build included) and of the PCM run."""
    lines, out = stage["lines"], {}
    for name in targets:
        start = _first(lines, f"firmware: {name}: running")
        pcm = _first(lines, f"firmware: {name}: PCM -> class")
        done = next((t for t, s in lines if s.startswith(f"firmware: {name}: ") and "bit-identical" in s), None)
        if start is not None and done is not None:
            out[name] = {"logmel_seconds": round((pcm or done) - start, 1),
                         "pcm_seconds": round(done - pcm, 1) if pcm is not None else None}
    return out


# ----------------------------------------------------------------------------- the profile
def profile(export: Path, fs_path: Path, data: Path, *, clips: int = 16) -> dict:
    """Where a clip's time goes, measured in this process on ``clips`` evaluate clips."""
    import numpy as np

    from firmware_harness.validation.runners import RUNNERS, make_runner
    from firmware_harness.validation.export_validation import load_checked_export
    from keras_asc import artifacts
    from keras_asc.feature_cache import FeatureSet
    from firmware_harness.validation.export_validation import quantize_features
    from firmware_harness.validation.report import agreement

    p: dict = {"note": "CPU seconds of this process (time.process_time) or of the started process (its "
                       "children's rusage): what contention with other jobs does not inflate; *_wall_s are wall"}

    def child_cpu(cmd: list[str]) -> tuple[float, float]:
        before, t = os.times(), time.perf_counter()
        subprocess.run(cmd, capture_output=True, check=True, cwd=REPO)
        after = os.times()
        return (round((after.children_user - before.children_user) + (after.children_system - before.children_system), 2),
                round(time.perf_counter() - t, 2))

    p["start_asc_help_cpu_s"], p["start_asc_help_wall_s"] = child_cpu([*ASC, "--help"])
    p["start_import_interpreters_cpu_s"], p["start_import_interpreters_wall_s"] = child_cpu(
        [sys.executable, "-c", "import tflite_micro.python.tflite_micro.runtime, ai_edge_litert.interpreter"])
    p["start_import_tf_keras_cpu_s"], p["start_import_tf_keras_wall_s"] = child_cpu(
        [sys.executable, "-c", "import tf_keras"])
    model, exp, quant = load_checked_export(export / "model.tflite", log=lambda *_: None)
    fs = FeatureSet.open(fs_path)
    feats = fs.features("evaluate")
    cpu = time.process_time
    t = cpu()
    whole = np.array(feats)  # the whole evaluate array, from the page cache
    p["read_evaluate_features_cpu_s"] = round(cpu() - t, 2)
    p["evaluate_features_bytes"] = int(whole.nbytes)
    t = cpu()
    x = quantize_features(whole, quant=quant)
    p["quantize_all_cpu_s"] = round(cpu() - t, 2)
    tmp = Path(os.environ.get("TMPDIR", "/tmp")) / f"bench-scale-{os.getpid()}.f32"
    t = cpu()
    with open(tmp, "wb") as f:
        whole.tofile(f)
    p["write_program_input_cpu_s"] = round(cpu() - t, 2)
    tmp.unlink()
    del whole
    paths = [Path(s) for s in fs.table("evaluate")["path"]]
    t = cpu()
    for q in paths:
        artifacts.sha256_file(q)
    p["sha256_all_wavs_cpu_s"] = round(cpu() - t, 2)
    arena = exp.size.arena_recommended_bytes
    ms = {}
    outs = {}
    for name in RUNNERS:
        r = make_runner(name, model, arena_bytes=arena)
        r.run(x[0][None])
        t = cpu()
        outs[name] = np.stack([r.run(x[i][None]) for i in range(clips)])
        ms[name] = round(1000 * (cpu() - t) / clips, 1)
    p["runner_cpu_ms_per_clip"] = ms
    import tf_keras as keras
    from keras_asc.run_record import load_run_model
    from keras_asc.features import Normalization
    from tflite_export.export_result import source_run_dir

    km = load_run_model(source_run_dir(export, exp))
    norm = Normalization.from_dict({"mean": quant.mean, "std": quant.std})
    xf = norm.apply(np.asarray(feats[:128]))[..., None]
    km.predict(xf[:8], verbose=0)
    t = cpu()
    km.predict(xf, batch_size=64, verbose=0)
    ms["float"] = round(1000 * (cpu() - t) / len(xf), 1)  # all of TensorFlow's threads
    del keras
    t = cpu()
    for _ in range(100):
        agreement(outs["tflm"], outs["litert_ref"])
    p["comparison_cpu_ms_per_clip"] = round(1000 * (cpu() - t) / 100 / clips, 4)
    return p


# ----------------------------------------------------------------------------- main
def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--work", type=Path, default=Path("/work/scratch/scale"))
    ap.add_argument("--eval-clips", type=int, default=2968)
    ap.add_argument("--label", default="run")
    ap.add_argument("--source", type=Path, default=DEMO_DATA)
    ap.add_argument("--generate", type=int, default=None, metavar="N")
    ap.add_argument("--run", type=Path, default=DEMO_RUN)
    ap.add_argument("--targets", default="host,host-cmsis-nn")
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--stages", default="features,validate,firmware,profile")
    ap.add_argument("--extra", default="", help="extra arguments for validate and firmware, e.g. '--no-reuse'")
    a = ap.parse_args()
    a.work.mkdir(parents=True, exist_ok=True)
    stages = a.stages.split(",")
    source = generated_source(a.work, a.generate) if a.generate else a.source
    data = derive_dataset(source, a.work / f"data-{a.eval_clips}", eval_clips=a.eval_clips)
    work = a.work / f"work-{a.label}"
    export = copy_run(a.run, a.work / "run", data=data, work=a.work / "work-export", targets=a.targets)
    logs = a.work / "logs"
    logs.mkdir(exist_ok=True)
    n = a.eval_clips
    res: dict = {"label": a.label, "date_utc": time.strftime("%Y-%m-%d %H:%M", time.gmtime()),
                 "machine": f"{os.cpu_count()} cores, {os.uname().nodename}", "eval_clips": n,
                 "uptime_before": subprocess.run(["uptime"], capture_output=True, text=True).stdout.strip(),
                 "data": str(data), "export": str(export), "stages": {}}
    w = ["--workers", str(a.workers)]
    extra = a.extra.split() if a.extra else []
    if "features" in stages:
        shutil.rmtree(work / "features", ignore_errors=True)
        s = run_stage("features", [*ASC, "features", "--data", str(data), "--out", str(work), *w],
                      logs / f"{a.label}-features.log")
        import pandas as pd

        train = len(pd.read_csv(data / "evaluation_setup" / "fold1_train.csv", sep="\t"))
        s["clips"] = n + train
        s["clips_per_second"] = round((n + train) / s["wall_seconds"], 1)
        res["stages"]["features"] = s
    if "validate" in stages:
        s = run_stage("validate", [*ASC, "validate", str(export / "model.tflite"), "--data", str(data), "--work",
                                   str(work), *w, *extra], logs / f"{a.label}-validate.log")
        rep = json.loads((export / "validation_report.json").read_text())
        s["clips_per_second"] = round(n / s["wall_seconds"], 2)
        s["interpreters_seconds"] = rep["throughput"]["seconds"]
        s["interpreters_clips_per_second"] = rep["throughput"]["clips_per_second"]
        s["passed"] = not rep["failures"]
        s["truth"] = rep["truth"]
        s["executor_clips"] = {w["executor"]: w["clips"] for w in rep.get("witnesses", [])}
        if rep.get("sample"):
            s["sample"] = {k: len(rep["sample"][k]) for k in ("stratified", "disagreeing", "small_margin", "rows")}
        res["stages"]["validate"] = s
    if "firmware" in stages:
        targets = a.targets.split(",")
        s = run_stage("firmware", [*ASC, "firmware", str(export), "--data", str(data), "--work", str(work),
                                   "--from-audio", "--targets", a.targets, "--host-clips", "all", *w, *extra],
                      logs / f"{a.label}-firmware.log")
        rep = json.loads((export / "firmware" / "firmware_report.json").read_text())
        s["clips_per_second"] = round(n / s["wall_seconds"], 2)
        s["passed"] = rep["passed"]
        s["truth"] = rep.get("truth")
        s["tflm_python_inputs"] = rep.get("tflm_python_inputs")
        s["targets"] = {t["target"]: {
            "clips": t["clips"], "outputs_identical": t["outputs_identical"], "ms_per_inference": round(
                1000 * t["seconds_per_inference"], 1),
            "from_audio_model_bit_exact": (t.get("from_audio") or {}).get("model_bit_exact"),
            "front_end_us_per_frame": round(1e6 * (t.get("from_audio") or {}).get("frontend_seconds_per_frame", 0), 1),
            "pcm_invokes_skipped": (t.get("from_audio") or {}).get("invokes_skipped"),
            "worker_processes": t.get("worker_processes", 1),
            "logmel_run_from_validate": t.get("logmel_run_from_validate", False)}
            for t in rep["targets"]}
        for name, ph in firmware_phases(s, targets).items():
            s["targets"][name].update(ph)
            s["targets"][name]["clips_per_second"] = round(
                n / max(ph["logmel_seconds"] + (ph["pcm_seconds"] or 0), 1e-9), 2)
        res["stages"]["firmware"] = s
    if "profile" in stages:
        from keras_asc.feature_cache import FeatureSet  # noqa: F401

        entries = sorted((work / "features").glob("*/config.json"))
        res["profile"] = profile(export, entries[-1].parent, data)
    for s in res["stages"].values():
        s["cpu_ms_per_clip"] = round(1000 * s["cpu_seconds"] / s.get("clips", n), 1)
    res["uptime_after"] = subprocess.run(["uptime"], capture_output=True, text=True).stdout.strip()
    out = a.work / f"results-{a.label}.json"
    out.write_text(json.dumps(res, indent=1))
    print(json.dumps({k: v for k, v in res.items() if k != "stages"}, indent=1))
    for k, s in res["stages"].items():
        print(k, json.dumps({x: y for x, y in s.items() if x not in ("lines", "cmd")}))
    print(f"results: {out}")
    print_summary(res, targets=a.targets, workers=a.workers)


def print_summary(res: dict, *, targets: str, workers: int) -> None:
    """The figures issue #32 asks for, last: validate + firmware wall, CPU-s, clips/s, features clips/s, peak
    RSS and which executor ran on how many clips."""
    st, n = res["stages"], res["eval_clips"]
    print(f"summary ({res['date_utc']} UTC, {res['machine']}; load before: {res['uptime_before']})")
    if "features" in st:
        f = st["features"]
        print(f"  features: {f['clips']} clips in {f['wall_seconds']} s wall = {f['clips_per_second']} clips/s; "
              f"{f['cpu_seconds']} CPU-s ({f['cpu_ms_per_clip']} CPU-ms per clip); peak RSS "
              f"{f['peak_rss_sum_bytes'] / GB:.2f} GB; mean load {f['mean_load_average']}")
    if {"validate", "firmware"} <= set(st):
        v, f = st["validate"], st["firmware"]
        total, cpu = v["wall_seconds"] + f["wall_seconds"], v["cpu_seconds"] + f["cpu_seconds"]
        rss = max(v["peak_rss_sum_bytes"], f["peak_rss_sum_bytes"])
        print(f"  validate + firmware (log-mel and PCM, {targets}): {total:.0f} s = {total / 60:.1f} min wall, "
              f"{n / total:.2f} clips/s, {cpu:.0f} CPU-s = {1000 * cpu / n:.0f} CPU-ms per clip (on {workers} idle "
              f"cores at least {cpu / workers / 60:.1f} min); peak RSS {rss / GB:.2f} GB; passed: validate "
              f"{v['passed']}, firmware {f['passed']}; mean load {v['mean_load_average']} / {f['mean_load_average']}")
    if "validate" in st:
        v = st["validate"]
        print(f"  validate: truth {v.get('truth')}; clips per executor {v.get('executor_clips')}; "
              f"sample {v.get('sample')}")
    if "firmware" in st:
        f = st["firmware"]
        print(f"  firmware: {f.get('truth')}; TFLM Python ran {f.get('tflm_python_inputs')} input(s); per target "
              + ", ".join(f"{t}: {d['clips']} clips, log-mel run from validate {d['logmel_run_from_validate']}"
                          for t, d in f["targets"].items()))


if __name__ == "__main__":
    main()
