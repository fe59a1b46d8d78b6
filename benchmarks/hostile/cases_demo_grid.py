"""Cases of demo (the whole tiny pipeline, rerun over its own folder) and grid (lists, budgets, output folders)."""
from __future__ import annotations

import shutil
from pathlib import Path

from .checks import ok_if, what_was_trained
from .files import copy_dataset
from .registry import CaseList, SetupError
from .settings import PIPE_SMALL

CASES = CaseList("demo")
case = CASES.case


def _demo_work(c, name: str = "demo") -> Path:
    """A demo folder whose generated dataset is already there (the demo reuses it)."""
    w = c.dir / name
    (w / "data").mkdir(parents=True)
    copy_dataset(c.fx.data, w / "data" / "tiny")
    return w


case("demo", "--work is a user file", "E1", ["notes.txt"])(
    lambda c: ["demo", "--work", c.user_file("notes.txt"), "--size", "tiny", *PIPE_SMALL])
case("demo", "--size 2", "E2", ["--size"])(lambda c: ["demo", "--work", c.dir / "w", "--size", "2", *PIPE_SMALL])
case("demo", "--model nope", "E2", ["nope", "--model"])(
    lambda c: ["demo", "--work", c.dir / "w", "--size", "tiny", "--model", "nope"])
case("demo", "--epochs 0", "E2", ["--epochs"])(lambda c: ["demo", "--work", c.dir / "w", "--epochs", "0"])
case("demo", "--calibration-size 0", "E2", ["--calibration-size"])(
    lambda c: ["demo", "--work", c.dir / "w", "--calibration-size", "0"])


@case("demo", "--model-arg depth=3 (not an argument of resnet11)", "E2", ["--model-arg"])
def _(c):
    return ["demo", "--work", _demo_work(c), "--size", "tiny", "--model-arg", "depth=3", "--epochs", "1",
            "--calibration-size", "20", "--firmware-clips", "1"]


@case("demo", "--model-arg width=0", "E2", ["--model-arg", "width"])
def _(c):
    c.check = what_was_trained(c.dir / "demo", "runs/*/config.json")
    return ["demo", "--work", _demo_work(c), "--size", "tiny", "--model-arg", "width=0", "--epochs", "1",
            "--calibration-size", "20", "--firmware-clips", "1"]


@case("demo", "--work/data/tiny is a user folder", "E1", ["tiny"])
def _(c):
    w = c.dir / "w"
    c.user_dir("w/data/tiny")
    return ["demo", "--work", w, "--size", "tiny", *PIPE_SMALL]


@case("demo", "the whole tiny demo (1 epoch, quarter width)", "H", timeout=1200)
def _(c):
    w = _demo_work(c)
    (c.dir / WHOLE_DEMO).write_text("the demo cases after this one reuse demo/\n")

    def check(p):
        s = (w / "demo_summary.md").read_text() if (w / "demo_summary.md").is_file() else ""
        return ok_if("validation: PASSED" in s and "FAILED" not in s, "demo_summary.md does not say validation: PASSED")
    c.check = check
    check.what = 'demo_summary.md says validation: PASSED'
    return ["demo", "--work", w, "--size", "tiny", *PIPE_SMALL, "--firmware-clips", "2"]


WHOLE_DEMO = "whole-demo-case"


def _previous_demo(c, *, in_place: bool = False) -> Path:
    """The folder of the whole tiny demo case, copied (the demo cases after it reuse its stages),
    or itself with ``in_place`` (then protected like the case's own folder)."""
    prev = [d for d in c.dir.parent.iterdir() if (d / WHOLE_DEMO).is_file() and (d / "demo" / "demo_summary.md").is_file()]
    if not prev:
        raise SetupError("needs the folder of the case 'the whole tiny demo' (run it first)")
    if in_place:
        c.extra_roots.append(prev[0] / "demo")
        return prev[0] / "demo"
    w = Path(shutil.copytree(prev[0] / "demo", c.dir / "demo", symlinks=True))
    for run in (w / "runs").iterdir():  # a copy is at another path: the demo evaluates its run again there
        c.allow(*(run / n for n in ("metrics.json", "metrics.csv", "predictions.csv", "confusion.png")))
    return w


@case("demo", "the same demo again (every stage reused)", "H", timeout=900)
def _(c):
    w = _previous_demo(c, in_place=True)
    c.allow(w / "demo_summary.md")

    def check(p):
        reused = [s for s in ("reusing finished run", "reusing metrics.json", "reusing export/",
                              "reusing validation_report.json", "reusing firmware/firmware_report.json")
                  if s not in p.stdout]
        return ok_if(not reused, f"not reused: {reused}")
    c.check = check
    check.what = 'every stage says it reused its result'
    return ["demo", "--work", w, "--size", "tiny", *PIPE_SMALL, "--firmware-clips", "2"]


@case("demo", "again with --epochs 2 where runs/ holds the 1-epoch run", "E1", ["runs"])
def _(c):
    w = _previous_demo(c)
    return ["demo", "--work", w, "--size", "tiny", "--model-arg", "width=0.25", "--epochs", "2", "--calibration-size",
            "20", "--firmware-clips", "2"]


@case("demo", "again with --budget 1000 (below the model)", "E1", ["--budget", "budget"])
def _(c):
    w = _previous_demo(c)
    return ["demo", "--work", w, "--size", "tiny", *PIPE_SMALL, "--firmware-clips", "2", "--budget", "1000"]


# ---------------------------------------------------------------------------- grid
def _grid(c, out: Path, *extra) -> list:
    return ["grid", "--data", c.fx.data, "--out", out, "--work", c.fx.work, "--clip-seconds", "2", *PIPE_SMALL, *extra]


def _grid_duplicates(g: Path):
    def check(p):
        import csv

        try:
            names = [r["name"] for r in csv.DictReader(open(g / "results.csv"))]
        except OSError as e:
            return f"no results.csv: {e}"
        twice = sorted({n for n in names if names.count(n) > 1})
        return ok_if(not twice, f"results.csv lists {twice[0]} {names.count(twice[0])} times (one configuration, its "
                                "row repeated)" if twice else "")
    check.what = "results.csv lists each configuration once"
    return check


case("grid", "--out is a user file", "E1", ["notes.txt"])(lambda c: _grid(c, c.user_file("notes.txt")))


@case("grid", "--out is a user folder holding its own results.md", "E1|H|W", ["results.md", "mine"], timeout=900)
def _(c):
    d = c.user_dir("mine")
    notes = c.user_file("mine/results.md", "| my | own | results |\n")
    c.keep(notes, d / "mine.txt")
    c.allow(d)
    return _grid(c, d)


@case("grid", "--models resnet11,resnet11", "E2", ["--models", "resnet11"], timeout=900)
def _(c):
    c.check = _grid_duplicates(c.dir / "g")
    return _grid(c, c.dir / "g", "--models", "resnet11,resnet11")


@case("grid", "--frames 28,28", "E2", ["--frames"], timeout=900)
def _(c):
    c.check = _grid_duplicates(c.dir / "g")
    return _grid(c, c.dir / "g", "--frames", "28,28")


@case("grid", "--window-frames clip,clip", "E2", ["--window-frames"], timeout=900)
def _(c):
    c.check = _grid_duplicates(c.dir / "g")
    return _grid(c, c.dir / "g", "--window-frames", "clip,clip")


case("grid", "--models resnet11,nope", "E2", ["nope", "--models"])(
    lambda c: _grid(c, c.dir / "g", "--models", "resnet11,nope"))
case("grid", "--mels ',' (empty list)", "E2", ["--mels"])(lambda c: _grid(c, c.dir / "g", "--mels", ","))
case("grid", "--window-frames 300 (longer than a 2-s clip)", "E2", ["--window-frames"])(
    lambda c: _grid(c, c.dir / "g", "--window-frames", "300"))
case("grid", "--window-frames clip,1", "E2", ["--window-frames"])(
    lambda c: _grid(c, c.dir / "g", "--window-frames", "clip,1"))
case("grid", "--clip-seconds 0", "E2", ["--clip-seconds"])(
    lambda c: ["grid", "--data", c.fx.data, "--out", c.dir / "g", "--clip-seconds", "0"])


@case("grid", "--work is a user file", "E1", ["notes.txt"])
def _(c):
    return ["grid", "--data", c.fx.data, "--out", c.dir / "g", "--work", c.user_file("notes.txt"), "--clip-seconds", "2",
            *PIPE_SMALL]


case("grid", "--data does not exist", "E1", ["nowhere"])(
    lambda c: ["grid", "--data", c.dir / "nowhere", "--out", c.dir / "g", "--clip-seconds", "2", *PIPE_SMALL])


@case("grid", "--model-arg width=0", "E2", ["--model-arg", "width"], forbid=("--window-frames", "more frames"))
def _(c):
    c.check = what_was_trained(c.dir / "g", "*/config.json")
    return ["grid", "--data", c.fx.data, "--out", c.dir / "g", "--work", c.fx.work, "--clip-seconds", "2",
            "--model-arg", "width=0", "--epochs", "1", "--calibration-size", "20"]


case("grid", "--window-hop (grid has none)", "E2", ["--window-hop"])(
    lambda c: _grid(c, c.dir / "g", "--window-hop", "8"))


@case("grid", "--budget 1000: the configuration is over budget", "H", timeout=900)
def _(c):
    g = c.dir / "g"

    def check(p):
        import csv

        rows = list(csv.DictReader(open(g / "results.csv")))
        return ok_if(len(rows) == 1 and rows[0]["within_budget"] == "False" and not rows[0]["int8_accuracy"],
                     f"results.csv rows {rows}")
    c.check = check
    check.what = 'results.csv: one row, over budget, no int8 accuracy'
    return _grid(c, g, "--budget", "1000")
