"""Cases of features: the cache's output folder, damaged cache entries, and every kind of odd audio file."""
from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
from pathlib import Path

from .checks import all_checks, described, features_match, no_partials, ok_if, only_feature_dir
from .files import edit_text, read_audio, replace_file, write_audio
from .registry import CaseList
from .settings import DEFAULT_TIMEOUT, asc_command

CASES = CaseList("features")
case = CASES.case


case("features", "--out is an existing user file", "E1", ["notes.txt"])(
    lambda c: ["features", "--data", c.fx.data, "--out", c.user_file("notes.txt"), "--clip-seconds", "2"])


@case("features", "--out is a symlink loop", "E1", ["loop"])
def _(c):
    (c.dir / "loop").symlink_to(c.dir / "loop2")
    (c.dir / "loop2").symlink_to(c.dir / "loop")
    return ["features", "--data", c.fx.data, "--out", c.dir / "loop", "--clip-seconds", "2"]


@case("features", "--out is the dataset itself (cache inside the dataset)", "H|E1", ["{C}/data"])
def _(c):
    d = c.data_copy()
    c.check = described("a cache entry in the dataset folder", lambda p: ok_if(only_feature_dir(d) is not None, "no cache entry in the dataset folder"))
    return ["features", "--data", d, "--out", d, "--clip-seconds", "2"]


@case("features", "config.json of the cache entry truncated, then `asc features` again", "E1|W|H", ["config.json"])
def _(c):
    w = c.work_copy()
    cfg = only_feature_dir(w) / "config.json"
    replace_file(cfg, cfg.read_bytes()[:100])
    c.allow(w / "features")  # a damaged cache entry is asc's own: computed again (documented)

    def recheck(p):  # the message says "run the stage that writes it again": does that work?
        q = subprocess.run(asc_command() + ["features", "--data", str(c.fx.data), "--out", str(w), "--clip-seconds",
                                            "2"], cwd=c.dir, env=c.env, capture_output=True, text=True,
                           timeout=DEFAULT_TIMEOUT)
        if q.returncode != 0 and "again" in p.stderr:
            return ("the fix it gives (run the stage that writes it again) fails the same way: the broken entry is "
                    "reused; the fix is to delete that cache folder")
        return None
    c.recheck = recheck
    return ["features", "--data", c.fx.data, "--out", w, "--clip-seconds", "2"]


@case("features", "train.npy of the cache truncated to half, then `asc features` again", "E1|W|H", ["train.npy"])
def _(c):
    w = c.work_copy()
    npy = only_feature_dir(w) / "train.npy"
    replace_file(npy, npy.read_bytes()[: npy.stat().st_size // 2])

    def check(p):
        import numpy as np

        try:
            arr = np.load(only_feature_dir(w) / "train.npy")
            return ok_if(np.isfinite(arr).all(), "non-finite")
        except Exception as e:  # noqa: BLE001
            return f"`reusing cache` but the entry it reuses is broken ({type(e).__name__}: {e})"
    c.check = check
    check.what = 'the reused train.npy loads, all finite'
    c.allow(w / "features")
    return ["features", "--data", c.fx.data, "--out", w, "--clip-seconds", "2"]


def _dataset_with(c, split: str, i: int, make) -> tuple[Path, str]:
    """A dataset copy whose i-th clip of ``split`` is replaced by ``make(path, data, sr)``."""
    d = c.data_copy()
    name = c.fx.clip(split, i)
    data, sr = read_audio(d / name)
    make(d / name, data, sr)
    return d, name


@case("features", "a train clip resampled to 22,050 Hz", "W", ["22050", "Hz"])
def _(c):
    import librosa

    d, name = _dataset_with(c, "train", 1, lambda p, x, sr: write_audio(
        p, librosa.resample(x[:, 0], orig_sr=sr, target_sr=22050), 22050))
    return ["features", "--data", d, "--out", c.dir / "work", "--clip-seconds", "2"]


@case("features", "a train clip at 8 kHz", "W", ["8000"])
def _(c):
    import librosa

    d, name = _dataset_with(c, "train", 1, lambda p, x, sr: write_audio(
        p, librosa.resample(x[:, 0], orig_sr=sr, target_sr=8000), 8000))
    return ["features", "--data", d, "--out", c.dir / "work", "--clip-seconds", "2"]


@case("features", "a train clip as stereo with both channels equal", "H")
def _(c):
    import numpy as np

    d, name = _dataset_with(c, "train", 1, lambda p, x, sr: write_audio(p, np.repeat(x, 2, axis=1), sr))
    c.check = features_match(c.fx, c.dir / "work", "train", name, tol=1e-4)
    return ["features", "--data", d, "--out", c.dir / "work", "--clip-seconds", "2"]


@case("features", "a train clip as stereo with one channel inverted", "W", ["channel"])
def _(c):
    import numpy as np

    d, name = _dataset_with(c, "train", 1, lambda p, x, sr: write_audio(p, np.concatenate([x, -x], axis=1), sr))
    return ["features", "--data", d, "--out", c.dir / "work", "--clip-seconds", "2"]


@case("features", "a 0-byte .wav file", "E1", [".wav"])
def _(c):
    d, name = _dataset_with(c, "train", 2, lambda p, x, sr: replace_file(p, b""))
    return ["features", "--data", d, "--out", c.dir / "work", "--clip-seconds", "2"]


@case("features", "a WAV header with no samples", "E1", [".wav"])
def _(c):
    import numpy as np

    d, name = _dataset_with(c, "train", 2, lambda p, x, sr: write_audio(p, np.zeros((0, 1), np.float32), sr))
    return ["features", "--data", d, "--out", c.dir / "work", "--clip-seconds", "2"]


@case("features", "a WAV truncated to a third of its bytes", "E1", [".wav"])
def _(c):
    d, name = _dataset_with(c, "evaluate", 2, lambda p, x, sr: replace_file(p, p.read_bytes()[: p.stat().st_size // 3]))
    return ["features", "--data", d, "--out", c.dir / "work", "--clip-seconds", "2"]


@case("features", "a text file named .wav", "E1", [".wav"])
def _(c):
    d, name = _dataset_with(c, "train", 2, lambda p, x, sr: replace_file(p, "this is not audio\n" * 50))
    return ["features", "--data", d, "--out", c.dir / "work", "--clip-seconds", "2"]


@case("features", "a float WAV holding NaN samples", "E1", [".wav"])
def _(c):
    import numpy as np

    def make(p, x, sr):
        x = x.copy()
        x[1000:1010] = np.nan
        write_audio(p, x, sr, subtype="FLOAT")
    d, name = _dataset_with(c, "train", 2, make)
    return ["features", "--data", d, "--out", c.dir / "work", "--clip-seconds", "2"]


@case("features", "a float WAV scaled x50 (beyond full scale)", "W", ["full scale"])
def _(c):
    d, name = _dataset_with(c, "train", 2, lambda p, x, sr: write_audio(p, x * 50, sr, subtype="FLOAT"))
    return ["features", "--data", d, "--out", c.dir / "work", "--clip-seconds", "2"]


@case("features", "a silent train clip", "W", ["silent"])
def _(c):
    d, name = _dataset_with(c, "train", 2, lambda p, x, sr: write_audio(p, x * 0, sr))
    return ["features", "--data", d, "--out", c.dir / "work", "--clip-seconds", "2"]


@case("features", "a 0.1-s train clip", "W", ["long", "padded"])
def _(c):
    d, name = _dataset_with(c, "train", 2, lambda p, x, sr: write_audio(p, x[: sr // 10], sr))
    return ["features", "--data", d, "--out", c.dir / "work", "--clip-seconds", "2"]


@case("features", "a FLAC file (24-bit) named .wav", "H")
def _(c):
    d, name = _dataset_with(c, "train", 3, lambda p, x, sr: write_audio(p, x, sr, fmt="FLAC"))
    c.check = features_match(c.fx, c.dir / "work", "train", name, tol=0.0)
    return ["features", "--data", d, "--out", c.dir / "work", "--clip-seconds", "2"]


@case("features", "a 32-bit integer PCM train clip (the dataset's are 24-bit)", "H")
def _(c):
    d, name = _dataset_with(c, "train", 3, lambda p, x, sr: write_audio(p, x, sr, subtype="PCM_32"))
    c.check = features_match(c.fx, c.dir / "work", "train", name, tol=1e-3)
    return ["features", "--data", d, "--out", c.dir / "work", "--clip-seconds", "2"]


@case("features", "an audio path that is a folder", "E1", [".wav"])
def _(c):
    d, name = _dataset_with(c, "train", 4, lambda p, x, sr: (p.unlink(), p.mkdir()))
    return ["features", "--data", d, "--out", c.dir / "work", "--clip-seconds", "2"]


@case("features", "an audio file that is a dangling symlink", "E1", [".wav"])
def _(c):
    d, name = _dataset_with(c, "train", 4, lambda p, x, sr: (p.unlink(), p.symlink_to(p.with_name("gone.wav"))))
    return ["features", "--data", d, "--out", c.dir / "work", "--clip-seconds", "2"]


@case("features", "an audio file that is a symlink to a copy elsewhere", "H")
def _(c):
    def make(p, x, sr):
        (c.dir / "elsewhere").mkdir()
        shutil.copy(p, c.dir / "elsewhere" / "clip.wav")
        p.unlink()
        p.symlink_to(c.dir / "elsewhere" / "clip.wav")
    d, name = _dataset_with(c, "train", 4, make)
    c.check = features_match(c.fx, c.dir / "work", "train", name, tol=0.0)
    return ["features", "--data", d, "--out", c.dir / "work", "--clip-seconds", "2"]


@case("features", "a clip renamed to a unicode name with a space and a comma (CSVs updated)", "H")
def _(c):
    d = c.data_copy()
    old = c.fx.clip("train", 6)
    new = "audio/airport-ü, x.wav"
    os.rename(d / old, d / new)
    for p in (d / "meta.csv", d / "evaluation_setup" / "fold1_train.csv"):
        edit_text(p, lambda t: t.replace(old + "\t", new + "\t"))
    c.check = features_match(c.fx, c.dir / "work", "train", old, tol=0.0, other_name=new)
    return ["features", "--data", d, "--out", c.dir / "work", "--clip-seconds", "2"]


@case("features", "an audio file not readable by the user (run as nobody, mode 000)", "E1", [".wav"],
      forbid=("not writable", "not found", "missing"))
def _(c):
    d = c.data_copy()
    name = c.fx.clip("train", 7)
    replace_file(d / name, (d / name).read_bytes())
    os.chmod(d / name, 0)
    out = c.dir / "work"
    out.mkdir()
    os.chmod(out, 0o777)
    c.as_nobody = True
    return ["features", "--data", d, "--out", out, "--clip-seconds", "2", "--workers", "1"]


@case("features", "--clip-seconds 1e6", "E2|E1", ["--clip-seconds"])
def _(c):
    c.rlimit_as = 8 << 30
    return ["features", "--data", c.fx.data, "--out", c.dir / "work", "--clip-seconds", "1e6", "--workers", "1"]


@case("features", "--clip-seconds 0.001 (shorter than one hop)", "H|W|E2", ["--clip-seconds"])
def _(c):
    def check(p):
        fdir = only_feature_dir(c.dir / "work")
        return ok_if(fdir is not None and json.loads((fdir / "config.json").read_text())["shape"][1] >= 1,
                     "no usable cache entry")
    c.check = check
    check.what = 'a cache entry with at least one frame per clip'
    return ["features", "--data", c.fx.data, "--out", c.dir / "work", "--clip-seconds", "0.001"]


case("features", "--frames-per-second 30", "E2", ["--frames-per-second"])(
    lambda c: ["features", "--data", c.fx.data, "--out", c.dir / "work", "--frames-per-second", "30"])


@case("features", "SIGKILL while computing, then the same command again", "H")
def _(c):
    w = c.dir / "work"
    argv = ["features", "--data", c.fx.data, "--out", w, "--clip-seconds", "2", "--workers", "1"]
    c.start_and_kill(argv, signal.SIGKILL, lambda: any((w / "features").glob(".*.partial")) if (w / "features").is_dir()
                     else False, delay=1.0)
    c.allow(w / "features")
    c.check = all_checks(features_match(c.fx, w, "evaluate", c.fx.clip("evaluate", 0), tol=0.0), no_partials(w))
    return argv
