"""The fixtures every case copies or reads, made with ``asc`` itself (WORK/fixtures), and the
environment each command runs in."""
from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import shutil
import subprocess
import time
from pathlib import Path

from .files import Snapshotter, read_tsv
from .settings import FIXTURE_TRAIN, FIXTURE_VERSION, REPO, SHARED_THIRD_PARTY, TRAIN_SMALL, asc_command


@dataclasses.dataclass
class Fixtures:
    """The folders under ``root`` (WORK/fixtures) as :func:`build_fixtures` makes them: the tiny
    dataset ``data``, its feature cache ``work``, the 2-epoch run ``run`` with ``run/export``, a
    second run ``run2`` with its export, the archive copy ``third_party``; ``pristine`` is the copy
    they are restored from, ``extra`` the folder of models some cases make once (not restored)."""

    root: Path
    data: Path = dataclasses.field(init=False)
    work: Path = dataclasses.field(init=False)
    run: Path = dataclasses.field(init=False)
    run2: Path = dataclasses.field(init=False)
    tp: Path = dataclasses.field(init=False)
    export: Path = dataclasses.field(init=False)
    export2: Path = dataclasses.field(init=False)
    pristine: Path = dataclasses.field(init=False)
    extra: Path = dataclasses.field(init=False)

    def __post_init__(self) -> None:
        self.root = Path(self.root)
        self.data, self.work, self.run, self.run2, self.tp = (
            self.root / n for n in ("data", "work", "run", "run2", "third_party"))
        self.export, self.export2 = self.run / "export", self.run2 / "export"
        self.pristine = self.root.parent / "fixtures.pristine"
        self.extra = self.root.parent / "extra"

    @property
    def manifest(self) -> dict:
        return json.loads((self.root / "fixtures.json").read_text())

    def feature_dir(self) -> Path:
        return self.work / "features" / self.manifest["feature_key"]

    def split_rows(self, split: str) -> list[list[str]]:
        return read_tsv(self.data / "evaluation_setup" / f"fold1_{split}.csv")[1]

    def clip(self, split: str, i: int = 0) -> str:
        """The filename (audio/....wav) of the i-th clip of a split."""
        return self.split_rows(split)[i][0]



def base_env(fx: Fixtures) -> dict[str, str]:
    """The environment of every command: the fixtures' archive copy, no progress bars, and this
    checkout's code first on the path (an editable install may point at another checkout)."""
    env = dict(os.environ)
    env["ASC_THIRD_PARTY"] = str(fx.tp)
    env["TQDM_DISABLE"] = "1"
    env["PYTHONPATH"] = str(REPO)
    return env


class FixtureError(Exception):
    pass


def build_fixtures(fx: Fixtures, *, rebuild: bool, reuse: bool = False, log) -> None:
    if (fx.root / "fixtures.json").is_file() and not rebuild:
        m = fx.manifest
        if m.get("version") == FIXTURE_VERSION and (m.get("code") == code_fingerprint() or reuse):
            log(f"fixtures: reusing {fx.root}")
            restore_fixtures(fx, log=log, only_if_changed=True)
            return
    for p in (fx.root, fx.pristine):
        if p.exists():
            shutil.rmtree(p)
    fx.root.mkdir(parents=True)
    shutil.copytree(SHARED_THIRD_PARTY, fx.tp)
    env = base_env(fx)
    asc = asc_command()
    steps = [
        ["make-dataset", fx.data, "--size", "tiny"],
        ["features", "--data", fx.data, "--out", fx.work, "--clip-seconds", "2"],
        ["describe", "--data", fx.data],
        ["train", "--data", fx.data, "--out", fx.run, "--work", fx.work, *FIXTURE_TRAIN],
        ["evaluate", fx.run, "--data", fx.data, "--work", fx.work],
        ["export", fx.run, "--data", fx.data, "--work", fx.work, "--arena-targets", "none", "--calibration-size", "20"],
        ["validate", fx.export / "model.tflite", "--data", fx.data, "--work", fx.work],
        ["firmware", fx.export, "--data", fx.data, "--work", fx.work, "--targets", "host", "--host-clips", "4"],
        ["train", "--data", fx.data, "--out", fx.run2, "--work", fx.work, *TRAIN_SMALL, "--seed", "1"],
        ["export", fx.run2, "--data", fx.data, "--work", fx.work, "--arena-targets", "none", "--calibration-size", "20"],
        ["validate", fx.export2 / "model.tflite", "--data", fx.data, "--work", fx.work],
    ]
    outputs = {}
    for argv in steps:
        argv = [str(a) for a in argv]
        log(f"fixtures: asc {' '.join(argv)}")
        t0 = time.time()
        p = subprocess.run(asc + argv, cwd=fx.root, env=env, capture_output=True, text=True, timeout=1800)
        if p.returncode != 0:
            raise FixtureError(f"fixture step `asc {' '.join(argv)}` failed (exit {p.returncode}):\n{p.stderr[-4000:]}")
        log(f"fixtures:   done in {time.time() - t0:.0f} s")
        outputs[argv[0]] = p.stdout
    keys = [p.name for p in (fx.work / "features").iterdir() if (p / "config.json").is_file()]
    assert len(keys) == 1, keys
    (fx.root / "describe.txt").write_text(outputs["describe"])
    (fx.root / "fixtures.json").write_text(json.dumps({
        "version": FIXTURE_VERSION, "git_head": git_head(), "code": code_fingerprint(), "feature_key": keys[0]},
        indent=2))
    shutil.copytree(fx.root, fx.pristine, symlinks=True)


def restore_fixtures(fx: Fixtures, *, log, only_if_changed: bool = False, snap: Snapshotter | None = None) -> bool:
    """Put the fixtures back as they were built (after a case damaged them). Returns whether it did."""
    snap = snap or Snapshotter()
    if only_if_changed:
        now = {k[len(str(fx.root)):]: v for k, v in snap([fx.root]).items()}
        then = {k[len(str(fx.pristine)):]: v for k, v in snap([fx.pristine]).items()}
        changed = {k for k in set(then) | set(now) if now.get(k) != then.get(k)}
        if not changed:
            return False
        log(f"fixtures: {len(changed)} path(s) differ from the pristine copy; restoring")
    shutil.rmtree(fx.root)
    shutil.copytree(fx.pristine, fx.root, symlinks=True)
    return True


def code_fingerprint() -> str:
    """The toolkit's code as it is now (committed or not): the fixtures are rebuilt when it changes,
    since others may be editing the checkout while this script runs."""
    h = hashlib.sha256()
    for pkg in ("asc_cli", "keras_asc", "tflite_export", "firmware_harness", "firmware"):
        for f in sorted((REPO / pkg).rglob("*")):
            if f.is_file() and f.suffix in (".py", ".cc", ".h", ".c", ".ld", ".S", ".s") and "__pycache__" not in f.parts:
                h.update(str(f.relative_to(REPO)).encode() + b"\0" + f.read_bytes())
    return h.hexdigest()[:16]


def git_head() -> str:
    p = subprocess.run(["git", "rev-parse", "HEAD"], cwd=REPO, capture_output=True, text=True)
    return p.stdout.strip()

