"""Cases of train (option values, killed and resumed runs, damaged caches) and models (the --input shape)."""
from __future__ import annotations

import re
import shutil
import signal

from .checks import all_checks, described, no_partials, ok_if, only_feature_dir, run_finished, what_was_trained
from .files import read_audio, replace_file, sha256, write_audio
from .registry import CaseList, killed_run
from .settings import FIXTURE_TRAIN, TRAIN_SMALL

CASES = CaseList("train")
case = CASES.case


case("train", "--out is a non-empty user folder", "E1", ["mine"])(
    lambda c: ["train", "--data", c.fx.data, "--work", c.fx.work, "--out", c.user_dir("mine"), *TRAIN_SMALL])
case("train", "--out is a user file", "E1", ["notes.txt"])(
    lambda c: ["train", "--data", c.fx.data, "--work", c.fx.work, "--out", c.user_file("notes.txt"), *TRAIN_SMALL])
case("train", "--out is the dataset", "E1", ["{F}/data"])(
    lambda c: ["train", "--data", c.fx.data, "--work", c.fx.work, "--out", c.fx.data, *TRAIN_SMALL])
case("train", "--out is the run's export folder", "E1", ["{F}/run/export"])(
    lambda c: ["train", "--data", c.fx.data, "--work", c.fx.work, "--out", c.fx.export, *TRAIN_SMALL])
case("train", "--out is a finished run, same options, no --resume", "E1", ["{F}/run"])(
    lambda c: ["train", "--data", c.fx.data, "--work", c.fx.work, "--out", c.fx.run, *FIXTURE_TRAIN])


@case("train", "--resume a finished run with the same options", "H")
def _(c):
    r = c.run_copy()
    before = sha256(r / "model.keras")
    c.allow(r / "config.json", r / "history.csv", r / "tensorboard")
    c.check = all_checks(run_finished(r, 2), described("model.keras unchanged", lambda p: ok_if(
        sha256(r / "model.keras") == before, "model.keras changed")))
    return ["train", "--data", c.fx.data, "--work", c.fx.work, "--out", r, "--resume", *FIXTURE_TRAIN]


@case("train", "--resume a finished run with other --epochs", "E1", ["--epochs", "epochs"])
def _(c):
    return ["train", "--data", c.fx.data, "--work", c.fx.work, "--out", c.fx.run, "--resume",
            *[("3" if a == "2" and FIXTURE_TRAIN[i - 1] == "--epochs" else a) for i, a in enumerate(FIXTURE_TRAIN)]]


@case("train", "--resume a run with another --lr (or after the default --lr changed)", "E1", ["--lr", "learning_rate"])
def _(c):
    return ["train", "--data", c.fx.data, "--work", c.fx.work, "--out", c.fx.run, "--resume",
            *[("0.001" if FIXTURE_TRAIN[i - 1] == "--lr" else a) for i, a in enumerate(FIXTURE_TRAIN)]]


@case("train", "--model resnet12 (unknown)", "E2", ["resnet12", "--model"])
def _(c):
    return ["train", "--data", c.fx.data, "--work", c.fx.work, "--out", c.dir / "r", *TRAIN_SMALL, "--model", "resnet12"]


@case("train", "--model-arg depth=3 (not an argument of the model)", "E2", ["--model-arg"])
def _(c):
    return ["train", "--data", c.fx.data, "--work", c.fx.work, "--out", c.dir / "r", *TRAIN_SMALL, "--model-arg", "depth=3"]


@case("train", "--model-arg width=0", "E2", ["--model-arg", "width"], forbid=("--window-frames", "more frames"))
def _(c):
    c.check = what_was_trained(c.dir / "r")
    return ["train", "--data", c.fx.data, "--work", c.fx.work, "--out", c.dir / "r", *TRAIN_SMALL[2:], "--model-arg", "width=0"]


@case("train", "--model-arg width=-1", "E2", ["--model-arg", "width"], forbid=("--window-frames", "more frames"))
def _(c):
    c.check = what_was_trained(c.dir / "r")
    return ["train", "--data", c.fx.data, "--work", c.fx.work, "--out", c.dir / "r", *TRAIN_SMALL[2:], "--model-arg=width=-1"]


@case("train", "--model-arg width=inf", "E2", ["--model-arg", "width"])
def _(c):
    return ["train", "--data", c.fx.data, "--work", c.fx.work, "--out", c.dir / "r", *TRAIN_SMALL[2:], "--model-arg", "width=inf"]


@case("train", "--model-arg width=0.25 --model-arg width=0.5 (one silently overrides the other?)", "W|E2",
      ["width", "--model-arg"])
def _(c):
    return ["train", "--data", c.fx.data, "--work", c.fx.work, "--out", c.dir / "r", "--model-arg", "width=0.25",
            "--model-arg", "width=0.5", "--epochs", "1", "--clip-seconds", "2", "--batch-size", "16"]


case("train", "--epochs 0", "E2", ["--epochs"])(
    lambda c: ["train", "--data", c.fx.data, "--out", c.dir / "r", "--epochs", "0"])
case("train", "--epochs 1.5", "E2", ["--epochs"])(
    lambda c: ["train", "--data", c.fx.data, "--out", c.dir / "r", "--epochs", "1.5"])


@case("train", "--batch-size 100000 (more than the 60 training clips)", "H")
def _(c):
    r = c.dir / "r"
    c.check = run_finished(r, 1)
    return ["train", "--data", c.fx.data, "--work", c.fx.work, "--out", r, *TRAIN_SMALL[:-2], "--batch-size", "100000"]


@case("train", "--lr 1e6 (training diverges)", "E1|H", ["--lr"])
def _(c):
    r = c.dir / "r"
    c.check = run_finished(r, 2)
    return ["train", "--data", c.fx.data, "--work", c.fx.work, "--out", r, "--model-arg", "width=0.25", "--epochs", "2",
            "--clip-seconds", "2", "--batch-size", "16", "--lr", "1e6"]


case("train", "--lr inf", "E2", ["--lr"])(lambda c: ["train", "--data", c.fx.data, "--out", c.dir / "r", "--lr", "inf"])


@case("train", "--seed 4294967296 (2**32)", "E2|H", ["--seed"])
def _(c):
    r = c.dir / "r"
    c.check = run_finished(r, 1)
    return ["train", "--data", c.fx.data, "--work", c.fx.work, "--out", r, *TRAIN_SMALL, "--seed", "4294967296"]


@case("train", "--device-aug 1e9", "E2|E1|H", ["--device-aug"])
def _(c):
    r = c.dir / "r"
    c.check = run_finished(r, 1)
    return ["train", "--data", c.fx.data, "--work", c.fx.work, "--out", r, *TRAIN_SMALL, "--device-aug", "1e9"]


@case("train", "--window-frames 100, longer than the 58 frames of a 2-s clip", "E2", ["--window-frames"])
def _(c):
    return ["train", "--data", c.fx.data, "--work", c.fx.work, "--out", c.dir / "r", *TRAIN_SMALL, "--window-frames", "100"]


@case("train", "--window-frames 1 (the network's pooling cannot process it)", "E2", ["--window-frames"])
def _(c):
    return ["train", "--data", c.fx.data, "--work", c.fx.work, "--out", c.dir / "r", *TRAIN_SMALL, "--window-frames", "1"]


@case("train", "--n-mels 64 --window-frames 4", "E2", ["--window-frames"])
def _(c):
    return ["train", "--data", c.fx.data, "--work", c.fx.work, "--out", c.dir / "r", *TRAIN_SMALL, "--n-mels", "64",
            "--window-frames", "4"]


@case("train", "--window-hop without --window-frames", "E2", ["--window-hop"])
def _(c):
    return ["train", "--data", c.fx.data, "--work", c.fx.work, "--out", c.dir / "r", *TRAIN_SMALL, "--window-hop", "8"]


@case("train", "--window-hop 40 longer than --window-frames 32", "W", ["--window-hop"])
def _(c):
    r = c.dir / "r"
    c.check = run_finished(r, 1)
    return ["train", "--data", c.fx.data, "--work", c.fx.work, "--out", r, *TRAIN_SMALL, "--window-frames", "32",
            "--window-hop", "40"]


@case("train", "--clip-seconds 0.05 (2 frames: the network cannot process it)", "E2", ["--clip-seconds", "frames"])
def _(c):
    return ["train", "--data", c.fx.data, "--work", c.dir / "w", "--out", c.dir / "r", *TRAIN_SMALL[:-4],
            "--clip-seconds", "0.05"]


@case("train", "default --clip-seconds 10 on 2-s audio (features padded)", "W", ["padded", "long"])
def _(c):
    r = c.dir / "r"
    c.check = run_finished(r, 1)
    return ["train", "--data", c.fx.data, "--work", c.dir / "w", "--out", r, "--model-arg", "width=0.25", "--epochs", "1",
            "--batch-size", "16"]


case("train", "--work is a user file", "E1", ["notes.txt"])(
    lambda c: ["train", "--data", c.fx.data, "--work", c.user_file("notes.txt"), "--out", c.dir / "r", *TRAIN_SMALL])
case("train", "--data does not exist", "E1", ["nowhere"])(
    lambda c: ["train", "--data", c.dir / "nowhere", "--work", c.dir / "w", "--out", c.dir / "r", *TRAIN_SMALL])


@case("train", "SIGKILL mid-epoch, then the same command without --resume", "E1", ["--resume"])
def _(c):
    r, argv = killed_run(c, signal.SIGKILL)
    return argv


def _resumed(c, sig: int) -> list:
    """A small run killed by ``sig`` after its first epoch, then ``--resume``d: checked to finish."""
    r, argv = killed_run(c, sig)
    c.allow(r)
    c.check = run_finished(r, 6)
    return argv + ["--resume"]


case("train", "SIGKILL mid-epoch, then --resume", "H")(lambda c: _resumed(c, signal.SIGKILL))
case("train", "SIGTERM mid-epoch, then --resume", "H")(lambda c: _resumed(c, signal.SIGTERM))


@case("train", "SIGKILL before the first epoch ends, then the same command", "H")
def _(c):
    r, argv = killed_run(c, signal.SIGKILL, epochs=2, first_epoch_done=False)
    c.allow(r)
    c.check = run_finished(r, 2)
    return argv


@case("train", "SIGKILL mid-epoch, checkpoints deleted, then --resume", "E1", ["checkpoint"])
def _(c):
    r, argv = killed_run(c, signal.SIGKILL)
    shutil.rmtree(r / "checkpoints")
    return argv + ["--resume"]


@case("train", "SIGINT (Ctrl-C) mid-epoch", "E130", ["interrupted"])
def _(c):
    r = c.dir / "r"
    c.interrupt = (signal.SIGINT, lambda: (r / "state.json").is_file(), 0.4)
    c.check = described("state.json kept for --resume", lambda p: ok_if((r / "state.json").is_file(), "nothing to resume"))
    return ["train", "--data", c.fx.data, "--work", c.fx.work, "--out", r, "--model-arg", "width=0.25", "--epochs", "20",
            "--clip-seconds", "2", "--batch-size", "16"]


@case("train", "SIGKILL while its features are computed, then the same command", "H")
def _(c):
    w, r = c.dir / "w", c.dir / "r"
    argv = ["train", "--data", c.fx.data, "--work", w, "--out", r, *TRAIN_SMALL, "--workers", "1"]
    c.start_and_kill(argv, signal.SIGKILL, lambda: any((w / "features").glob(".*.partial")) if (w / "features").is_dir()
                     else False, delay=1.0)
    c.allow(w, r)
    c.check = all_checks(run_finished(r, 1), no_partials(w))
    return argv


@case("train", "--resume where there is no run yet", "H|W", ["--resume"])
def _(c):
    r = c.dir / "r"
    c.check = run_finished(r, 1)
    return ["train", "--data", c.fx.data, "--work", c.fx.work, "--out", r, *TRAIN_SMALL, "--resume"]


@case("train", "the cache's train.npy truncated to half", "E1|W", ["train.npy"])
def _(c):
    w = c.work_copy()
    npy = only_feature_dir(w) / "train.npy"
    replace_file(npy, npy.read_bytes()[: npy.stat().st_size // 2])
    c.allow(w / "features")  # the damaged entry is computed again, with a warning naming the array (documented)
    return ["train", "--data", c.fx.data, "--work", w, "--out", c.dir / "r", *TRAIN_SMALL]


@case("train", "every train clip silent", "W|E1", ["silent"])
def _(c):
    import numpy as np

    d = c.data_copy()
    for r in c.fx.split_rows("train"):
        x, sr = read_audio(d / r[0])
        write_audio(d / r[0], np.zeros_like(x), sr)
    run = c.dir / "r"
    c.check = run_finished(run, 1)
    return ["train", "--data", d, "--work", c.dir / "w", "--out", run, *TRAIN_SMALL]


# ---------------------------------------------------------------------------- models
case("models", "--input abc", "E2", ["--input"])(lambda c: ["models", "--input", "abc"])
case("models", "--input 0x0", "E2", ["--input"])(lambda c: ["models", "--input", "0x0"])
case("models", "--input 128 (one number)", "E2", ["--input"])(lambda c: ["models", "--input", "128"])
case("models", "--input 128x4 (too few frames for most models)", "E2|H", ["--input"])(
    lambda c: ["models", "--input", "128x4"])
case("models", "--input -5x288", "E2", ["--input"])(lambda c: ["models", "--input=-5x288"])


@case("models", "--input ' 128 X 288 ' (spaces, capital X)", "H")
def _(c):
    c.check = described("the resnet11 row says 83,572 parameters", lambda p: ok_if(re.search(r"resnet11\s+83,572", p.stdout) is not None, "no 'resnet11 83,572' row"))
    return ["models", "--input", " 128 X 288 "]
