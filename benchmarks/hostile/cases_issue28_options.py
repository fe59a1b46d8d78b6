"""Cases of issue 28 (round 3), option values, network waits and messages: every value that can be
checked without work refused with exit 2 before anything is created, a Ray address that answers
nothing ends within a bounded connect timeout, and each message names its option or file with the
right cause and a fix (warnings on stderr).

Expected as issue 28 demands after its fix."""
from __future__ import annotations

import os
import random
import shutil
from pathlib import Path

from .checks import nothing_at, warning_on_stderr
from .registry import CaseList, Ctx
from .settings import PIPE_SMALL, TRAIN_SMALL

CASES = CaseList("issue28")
case = CASES.case

#: `asc grid --engine ray --address` of a port nothing listens on: the connect timeout (default 60 s)
#: plus the start-up; the case is a HANG past this
RAY_CONNECT_CASE_TIMEOUT = 240


def _ray_grid(c: Ctx, *extra) -> list:
    """``asc grid --engine ray`` of the tiny recipe on the fixtures into CASE/g (RAY_ADDRESS unset)."""
    c.env.pop("RAY_ADDRESS", None)
    return ["grid", "--data", c.fx.data, "--out", c.dir / "g", "--work", c.fx.work, "--clip-seconds", "2", *PIPE_SMALL,
            "--engine", "ray", *extra]


def _train(c: Ctx, *extra, data: Path | None = None) -> list:
    """``asc train`` of the tiny recipe into CASE/r, checked (on a refusal) to have created nothing there."""
    c.recheck = nothing_at(c.dir / "r")
    return ["train", "--data", data or c.fx.data, "--work", c.fx.work, "--out", c.dir / "r", *TRAIN_SMALL, *extra]


# ---------------------------------------------------------------------------- network waits
case("grid", "--engine ray --address 127.0.0.1:1 (nothing listens there)", "E1", ["127.0.0.1:1"],
     timeout=RAY_CONNECT_CASE_TIMEOUT)(lambda c: _ray_grid(c, "--address", "127.0.0.1:1"))
case("grid", "--engine ray --address http://127.0.0.1:8265 (the dashboard's URL)", "E2", ["--address"],
     forbid=("RAY_ADDRESS",))(lambda c: _ray_grid(c, "--address", "http://127.0.0.1:8265"))


@case("grid", "--engine ray --storage FILE (a user file)", "E2", ["--storage"])
def _(c):
    notes = c.user_file("notes.txt")
    c.recheck = lambda p: None if "notes.txt" in p.stderr else "names --storage but not the path notes.txt"
    return _ray_grid(c, "--storage", notes)


# ---------------------------------------------------------------------------- option values (exit 2)
@case("profile", "--inferences 100000000000 (a 1.6-PiB input array)", "E2", ["--inferences"])
def _(c):
    c.rlimit_as = 8 << 30  # an attempt to allocate fails at once instead of swapping the machine
    return ["profile", c.fx.export, "--inferences", "100000000000"]


case("profile", "--mcu stm32h743 (a Cortex-M7) with --targets cortex-m4", "E2", ["--mcu", "stm32h743"])(
    lambda c: ["profile", c.fx.export, "--targets", "cortex-m4", "--mcu", "stm32h743"])
case("profile", "--targets cortex-m99 (unknown; host is not a profile target)", "E2", ["cortex-m99"],
     forbid=("host,", ", host"))(lambda c: ["profile", c.fx.export, "--targets", "cortex-m99"])
case("train", "--train-split 0", "E2", ["--train-split"])(lambda c: _train(c, "--train-split", "0"))
case("train", "--train-split 7 (no DCASE subset of 7 %)", "E2", ["--train-split"])(
    lambda c: _train(c, "--train-split", "7"))
case("train", "--train-split 101", "E2", ["--train-split"])(lambda c: _train(c, "--train-split", "101"))
case("train", "--kd-temperature 1e30 with a teacher", "E2", ["--kd-temperature"])(
    lambda c: _train(c, "--teacher", c.fx.run2, "--kd-temperature", "1e30"))


# ---------------------------------------------------------------------------- files that are not what they seem
@case("validate", "MODEL is a FIFO (named pipe) called fifo.tflite", "E1", ["fifo.tflite"],
      forbid=("no such file", "not found", "does not exist"), timeout=120)
def _(c):
    os.mkfifo(c.dir / "fifo.tflite")
    return ["validate", c.dir / "fifo.tflite"]


@case("train", "--train-split FILE holding binary bytes (TAU 2022 layout)", "E1|E2", ["split25.csv"])
def _(c):
    d = c.dir / "data22"
    c.asc(["make-dataset", d, "--size", "3", "--clip-seconds", "1"])
    (c.dir / "split25.csv").write_bytes(random.Random(0).randbytes(4096))
    return ["train", "--data", d, "--work", c.dir / "w", "--out", c.dir / "r", "--model-arg", "width=0.25", "--epochs",
            "1", "--batch-size", "16", "--train-split", c.dir / "split25.csv"]


@case("firmware", "the export copied away from its run: the warning goes to stderr", "W", ["staleness", "export"])
def _(c):
    e = Path(shutil.copytree(c.fx.export, c.dir / "elsewhere" / "export"))
    c.allow(e / "firmware")
    c.warning_check = warning_on_stderr("staleness")
    return ["firmware", e, "--data", c.fx.data, "--work", c.fx.work, "--targets", "host", "--host-clips", "4"]
