"""Cases of evaluate (damaged runs) and export (output folders, budgets, option combinations, killed exports)."""
from __future__ import annotations

import json
import shutil
import signal
from pathlib import Path

from .checks import all_checks, export_intact, no_partials, ok_if, only_feature_dir, same_metrics
from .files import edit_json, read_audio, replace_file, write_audio
from .registry import CaseList, killed_run

CASES = CaseList("export")
case = CASES.case


case("evaluate", "RUN does not exist", "E1", ["nowhere"])(
    lambda c: ["evaluate", c.dir / "nowhere", "--data", c.fx.data, "--work", c.fx.work])
case("evaluate", "RUN is a user file", "E1", ["notes.txt"])(
    lambda c: ["evaluate", c.user_file("notes.txt"), "--data", c.fx.data, "--work", c.fx.work])
case("evaluate", "RUN is the dataset", "E1", ["{F}/data"])(
    lambda c: ["evaluate", c.fx.data, "--data", c.fx.data, "--work", c.fx.work])
case("evaluate", "RUN is the export folder", "E1", ["{F}/run/export"])(
    lambda c: ["evaluate", c.fx.export, "--data", c.fx.data, "--work", c.fx.work])


@case("evaluate", "the run's config.json truncated", "E1", ["config.json"])
def _(c):
    r = c.run_copy()
    replace_file(r / "config.json", (r / "config.json").read_bytes()[:200])
    return ["evaluate", r, "--data", c.fx.data, "--work", c.fx.work]


@case("evaluate", "the run's config.json without its normalization", "E1", ["config.json", "normalization"])
def _(c):
    r = c.run_copy()
    edit_json(r / "config.json", lambda d: d.pop("normalization"))
    return ["evaluate", r, "--data", c.fx.data, "--work", c.fx.work]


@case("evaluate", "the run's config.json normalization edited (+10 dB mean)", "E1|W", ["config.json"])
def _(c):
    r = c.run_copy()
    edit_json(r / "config.json", lambda d: d["normalization"].update(mean=[m + 10 for m in d["normalization"]["mean"]]))
    c.allow(r / "metrics.json", r / "metrics.csv", r / "predictions.csv", r / "confusion.png")
    c.check = same_metrics(c.fx, r)
    return ["evaluate", r, "--data", c.fx.data, "--work", c.fx.work]


@case("evaluate", "the run's config.json says 64 mel bands (model has 128)", "E1", ["config.json", "mel"])
def _(c):
    r = c.run_copy()
    edit_json(r / "config.json", lambda d: d["features"].update(n_mels=64))
    return ["evaluate", r, "--data", c.fx.data, "--work", c.dir / "w"]


@case("evaluate", "model.keras truncated", "E1", ["model.keras"])
def _(c):
    r = c.run_copy()
    replace_file(r / "model.keras", (r / "model.keras").read_bytes()[:5000])
    return ["evaluate", r, "--data", c.fx.data, "--work", c.fx.work]


@case("evaluate", "model.keras deleted", "E1", ["model.keras"])
def _(c):
    r = c.run_copy()
    (r / "model.keras").unlink()
    return ["evaluate", r, "--data", c.fx.data, "--work", c.fx.work]


@case("evaluate", "model.keras replaced by another run's (config.json records the trained one's sha256)", "E1|W",
      ["model.keras"])
def _(c):
    r = c.run_copy()
    replace_file(r / "model.keras", (c.fx.run2 / "model.keras").read_bytes())
    c.allow(r / "metrics.json", r / "metrics.csv", r / "predictions.csv", r / "confusion.png")
    c.check = same_metrics(c.fx, r)
    return ["evaluate", r, "--data", c.fx.data, "--work", c.fx.work]


@case("evaluate", "an unfinished run (killed mid-epoch)", "E1", ["--resume"])
def _(c):
    r, _argv = killed_run(c, signal.SIGKILL)
    return ["evaluate", r, "--data", c.fx.data, "--work", c.fx.work]


@case("evaluate", "the run folder renamed to a unicode name with spaces", "H")
def _(c):
    r = c.run_copy("renamed run ü, 2")
    c.allow(r / "metrics.json", r / "metrics.csv", r / "predictions.csv", r / "confusion.png")
    c.check = same_metrics(c.fx, r)
    return ["evaluate", r, "--data", c.fx.data, "--work", c.fx.work]


@case("evaluate", "metrics.json garbage before evaluating", "H")
def _(c):
    r = c.run_copy()
    replace_file(r / "metrics.json", "{garbage")
    c.allow(r / "metrics.json", r / "metrics.csv", r / "predictions.csv", r / "confusion.png")
    c.check = same_metrics(c.fx, r)
    return ["evaluate", r, "--data", c.fx.data, "--work", c.fx.work]


@case("evaluate", "the cache's evaluate.npy replaced by zeros of the same shape", "E1|W", ["evaluate.npy"])
def _(c):
    import numpy as np

    r = c.run_copy()
    w = c.work_copy()
    npy = only_feature_dir(w) / "evaluate.npy"
    arr = np.load(npy)
    npy.unlink()
    np.save(npy, np.zeros_like(arr))
    c.allow(r / "metrics.json", r / "metrics.csv", r / "predictions.csv", r / "confusion.png",
            w / "features")  # the entry's recorded sha256 no longer matches: computed again (documented)
    c.check = same_metrics(c.fx, r)
    return ["evaluate", r, "--data", c.fx.data, "--work", w]


@case("evaluate", "the run's label list reordered in config.json", "E1", ["config.json", "label"])
def _(c):
    r = c.run_copy()
    edit_json(r / "config.json", lambda d: d.update(labels=list(reversed(d["labels"]))))
    return ["evaluate", r, "--data", c.fx.data, "--work", c.fx.work]


# ---------------------------------------------------------------------------- export
def _export(c, run: Path, *extra, data: Path | None = None, work: Path | None = None) -> list:
    return ["export", run, "--data", data or c.fx.data, "--work", work or c.fx.work, "--arena-targets", "none",
            "--calibration-size", "20", *extra]


def _reexport(c, *extra) -> list:
    """Export a copy of the fixture run into its own RUN/export (allowed), checked intact afterwards."""
    r = c.run_copy()
    c.allow(r / "export")
    c.check = export_intact(r / "export", run=r)
    return _export(c, r, *extra)


case("export", "--out is an existing user file", "E1", ["notes.txt"])(
    lambda c: _export(c, c.fx.run, "--out", c.user_file("notes.txt")))
case("export", "--out is a non-empty user folder", "E1", ["mine"])(
    lambda c: _export(c, c.fx.run, "--out", c.user_dir("mine")))
case("export", "--out is the run itself", "E1", ["{F}/run"])(lambda c: _export(c, c.fx.run, "--out", c.fx.run))
case("export", "--out is the parent of the run", "E1", ["{F}:"])(lambda c: _export(c, c.fx.run, "--out", c.fx.root))
case("export", "--out is the dataset", "E1", ["{F}/data"])(lambda c: _export(c, c.fx.run, "--out", c.fx.data))
case("export", "--out is the work folder", "E1", ["{F}/work"])(lambda c: _export(c, c.fx.run, "--out", c.fx.work))
case("export", "--out is the dataset's audio folder", "E1", ["audio"])(
    lambda c: _export(c, c.fx.run, "--out", c.fx.data / "audio"))
case("export", "--out is the run's checkpoints folder", "E1", ["checkpoints"])(
    lambda c: _export(c, c.fx.run, "--out", c.fx.run / "checkpoints"))


@case("export", "--out is a symlink to the run", "E1", ["link", "run"])
def _(c):
    (c.dir / "link").symlink_to(c.fx.run)
    return _export(c, c.fx.run, "--out", c.dir / "link")


@case("export", "--out is a dangling symlink", "E1|H", ["dangling"])
def _(c):
    (c.dir / "dangling").symlink_to(c.dir / "nowhere")
    c.check = export_intact(c.dir / "nowhere")
    return _export(c, c.fx.run, "--out", c.dir / "dangling")


@case("export", "--out is ANOTHER run's export (with its validation reports)", "E1|W", ["run2"])
def _(c):
    r = c.run_copy()
    r2 = c.run_copy("run2", src=c.fx.run2)
    return _export(c, r, "--out", r2 / "export")


@case("export", "re-export into RUN/export that holds a user's NOTES.md", "H|W|E1", ["NOTES.md"])
def _(c):
    r = c.run_copy()
    notes = c.user_file("run/export/NOTES.md", "measurements on my board: 12.3 ms\n")
    c.allow(r / "export")
    c.keep(notes)
    c.check = export_intact(r / "export", run=r)
    return _export(c, r)


@case("export", "--out nested in a new folder inside the dataset", "H|E1", ["{C}/data"])
def _(c):
    d = c.data_copy()
    c.check = export_intact(d / "exports" / "x")
    return _export(c, c.fx.run, "--out", d / "exports" / "x", data=d)


@case("export", "--out with spaces, a comma and unicode", "H")
def _(c):
    out = c.dir / "exp ü, v1"
    c.check = export_intact(out, run=c.fx.run)
    return _export(c, c.fx.run, "--out", out)


@case("export", "--budget 1000 (below the model)", "E1", ["--budget", "budget"])
def _(c):
    r = c.run_copy()
    return _export(c, r, "--budget", "1000")


@case("export", "--ram-budget 100", "E1", ["--ram-budget"])
def _(c):
    r = c.run_copy()
    return _export(c, r, "--ram-budget", "100")


case("export", "--target stm32f407 with a larger --budget", "W", ["--budget"])(
    lambda c: _reexport(c, "--target", "stm32f407", "--budget", "10000000"))
case("export", "--target stm32f407 with a larger --ram-budget", "W", ["--ram-budget"])(
    lambda c: _reexport(c, "--target", "stm32f407", "--ram-budget", "100000000"))
case("export", "--compress-bits 2 without --compress", "W", ["--compress-bits"])(
    lambda c: _reexport(c, "--compress-bits", "2"))
case("export", "--qat-epochs 5 without --qat", "W", ["--qat-epochs"])(lambda c: _reexport(c, "--qat-epochs", "5"))
case("export", "--qat with --compress (impossible together)", "E2", ["--qat", "--compress"])(
    lambda c: _export(c, c.fx.run, "--qat", "--compress", "--out", c.dir / "e"))


@case("export", "--calibration-size 100000 (the training split has 60 clips)", "H|W", ["--calibration-size"])
def _(c):
    r = c.run_copy()
    c.allow(r / "export")

    def check(p):
        rows = (r / "export" / "calibration.csv").read_text().splitlines()
        cal = json.loads((r / "export" / "config.json").read_text())["calibration"]
        return ok_if(len(rows) == 61 and cal["size"] == 60 and cal["requested"] == 100000,
                     f"calibration.csv has {len(rows) - 1} clips, config {cal}")
    c.check = check
    check.what = 'calibration.csv holds all 60 training clips, config.json records 60 of 100000 requested'
    return ["export", r, "--data", c.fx.data, "--work", c.fx.work, "--arena-targets", "none", "--calibration-size",
            "100000"]


case("export", "--arena-targets host,host", "E2", ["--arena-targets"])(
    lambda c: _export(c, c.fx.run, "--arena-targets", "host,host"))
case("export", "--arena-targets '' (empty list)", "E2", ["--arena-targets"])(
    lambda c: _export(c, c.fx.run, "--arena-targets", ""))


@case("export", "--third-party pointing nowhere with --arena-targets host", "E1|W", ["nowhere"])
def _(c):
    r = c.run_copy()
    c.allow(r / "export")
    c.check = export_intact(r / "export", run=r)
    return ["export", r, "--data", c.fx.data, "--work", c.fx.work, "--calibration-size", "20", "--arena-targets", "host",
            "--third-party", c.dir / "nowhere"]


@case("export", "an unfinished run (killed mid-epoch)", "E1", ["--resume"])
def _(c):
    r, _argv = killed_run(c, signal.SIGKILL)
    return _export(c, r)


@case("export", "model.keras truncated", "E1", ["model.keras"])
def _(c):
    r = c.run_copy()
    replace_file(r / "model.keras", (r / "model.keras").read_bytes()[:5000])
    return _export(c, r)


@case("export", "the run's config.json without input_shape", "E1", ["config.json"])
def _(c):
    r = c.run_copy()
    edit_json(r / "config.json", lambda d: d.pop("input_shape"))
    return _export(c, r)


@case("export", "--data is another dataset than the run was trained on", "W|E1", ["--data", "dataset"])
def _(c):
    import numpy as np

    d = c.data_copy("other data")
    for r in c.fx.split_rows("train"):
        x, sr = read_audio(d / r[0])
        write_audio(d / r[0], np.ascontiguousarray(x[::-1]) * 0.3, sr)
    run = c.run_copy()
    c.allow(run / "export")  # calibrated on the other data, as asked, with a warning naming --data (documented)
    return _export(c, run, data=d, work=c.dir / "w")


case("export", "--work is a user file", "E1", ["notes.txt"])(
    lambda c: _export(c, c.fx.run, "--out", c.dir / "e", work=c.user_file("notes.txt")))


@case("export", "RUN given through a symlink", "H")
def _(c):
    r = c.run_copy()
    (c.dir / "link").symlink_to(r)
    c.allow(r / "export")
    c.check = export_intact(r / "export", run=r)
    return _export(c, c.dir / "link")


case("export", "--seed -1", "E2", ["--seed"])(lambda c: _export(c, c.fx.run, "--seed", "-1"))
case("export", "--target stm32f4 (unknown)", "E2", ["stm32f4", "--target"])(
    lambda c: _export(c, c.fx.run, "--target", "stm32f4"))
case("export", "RUN does not exist", "E1", ["nowhere"])(lambda c: _export(c, c.dir / "nowhere", "--out", c.dir / "e"))


@case("export", "SIGKILL while it writes, then the same command", "H")
def _(c):
    r = c.run_copy()
    shutil.rmtree(r / "export")
    argv = _export(c, r)
    c.start_and_kill(argv, signal.SIGKILL, lambda: any(r.glob(".export.*.partial")), delay=0.3)
    c.allow(r / "export", *r.glob(".export.*"))
    c.check = all_checks(export_intact(r / "export", run=r), no_partials(r))
    return argv
