#!/usr/bin/env python
"""Hostile inputs over every ``asc`` subcommand: a table of what each one does with them.

Issue "Nothing lost, nothing stale, nothing unexplained": a bad-input run of at least 100 cases
over every command shows no LOST, no SILENT-WRONG and no traceback.

    .venv/bin/python benchmarks/hostile_inputs.py --work /tmp/hostile-run        # everything
    .venv/bin/python benchmarks/hostile_inputs.py --work /tmp/hostile-run --only 'export|validate'
    .venv/bin/python benchmarks/hostile_inputs.py --list

The script first builds its fixtures under ``WORK/fixtures`` with ``asc`` itself (reused by the
next run of the script while the toolkit's sources are unchanged, by a fingerprint of them;
``--rebuild-fixtures`` makes them again, ``--reuse-fixtures`` keeps them anyway): a tiny generated dataset,
its feature cache (2-s clips), a quarter-width ResNet11 trained for 2 epochs, evaluated, exported
(``--arena-targets none``), validated and run on the host firmware target, a second run (seed 1)
with its export, and a copy of the TFLM source archives (``$ASC_THIRD_PARTY`` points at it for
every command, so ``../shared/third_party`` is only read once, to copy it). Then every case runs
in its own folder ``WORK/cases/NNN`` (its working directory), as a subprocess with a timeout, on
its own copies of whatever it damages (datasets are copied with hard-linked audio; an audio file a
case changes is replaced, never written in place). Two cases run ``asc`` as the user "nobody" (to
make a file unreadable; root reads everything) with the system's ``/usr/bin/python3.X`` of the
venv's version and the venv's site-packages, since the venv's interpreter may live under /root.
A case is SETUP-FAILED when the script could not prepare it (e.g. a process ended before it could
be killed); that is a failure of the script, never of the toolkit, and makes the script exit 1.
Cases run while the toolkit's code changed under the script (others editing the checkout) are
marked in the "why" column: rerun them before believing them.

Each outcome gets one verdict:

* OK-ERROR: refused with the documented exit status (1 user error, 2 bad option value), an error
  line naming the file or option the case is about, a fix, no traceback;
* OK-HANDLED: accepted, and a check of the result passed (each case's ``check`` says what it
  compares: e.g. the same ``describe`` table as the clean dataset, the same metrics as the fixture
  run, a report that passed, the number of clips a firmware report ran);
* WARNED: accepted with a warning (stdout or stderr) naming the option or file;
* TRACEBACK: a Python traceback was printed, whatever the exit status;
* CRASH: the process died of a signal (no message at all);
* LOST: a file or folder that existed before the command (the fixtures, the case's own copies and
  user files, the shared archives) was changed or deleted, and it is not one the command is
  documented to (re)write. Every tree is hashed before and after each case;
* SILENT-WRONG: accepted without a warning, but the result is wrong or stale, or an input that
  must be refused (or warned about) was used as if it were fine;
* BAD-MESSAGE: refused, but the message names neither the file nor the option, gives no fix,
  states a wrong cause, or the exit status is not the documented one (or a valid input was refused);
* HANG: the timeout expired.

The report (a Markdown table: case, command, exit status, verdict, the error or warning line or
else the first line of stderr, and why) is printed and written to ``WORK/hostile_report.md`` with
every case's argv, exit status, verdict, stdout and stderr in ``WORK/hostile_report.json``. The
script exits 1 when any case is TRACEBACK, CRASH, LOST, SILENT-WRONG, HANG or SETUP-FAILED, 0
otherwise, 3 when a fixture could not be built. Cases run one at a time; a full run took about 80
minutes on a 2-core machine shared with other jobs (the fixtures 8 of them). The folders of cases
that are not OK (and of the demo cases) are kept under ``WORK/cases`` to look at.
"""
from __future__ import annotations

import argparse
import dataclasses
import hashlib
import json
import os
import re
import shlex
import shutil
import signal
import stat
import subprocess
import sys
import time
from pathlib import Path
from typing import Callable

REPO = Path(__file__).resolve().parent.parent
SHARED_THIRD_PARTY = REPO.parent / "shared" / "third_party"
FIXTURE_VERSION = "3"

FAILING = ("TRACEBACK", "CRASH", "LOST", "SILENT-WRONG", "HANG")
VERDICTS = ("OK-ERROR", "OK-HANDLED", "WARNED", "BAD-MESSAGE", "SILENT-WRONG", "TRACEBACK", "CRASH", "LOST", "HANG")

#: the tiny training recipe of every case that trains (a quarter-width ResNet11 on 2-s clips)
TRAIN_SMALL = ["--model-arg", "width=0.25", "--epochs", "1", "--clip-seconds", "2", "--batch-size", "16"]
#: the fixture run's options (every one explicit, so a changed default does not make it "another" run)
FIXTURE_TRAIN = ["--model-arg", "width=0.25", "--epochs", "2", "--clip-seconds", "2", "--batch-size", "16", "--lr", "0.002",
                 "--seed", "0"]
PIPE_SMALL = ["--model-arg", "width=0.25", "--epochs", "1", "--calibration-size", "20"]


def asc_command() -> list[str]:
    exe = Path(sys.executable).parent / "asc"
    if exe.is_file():
        return [str(exe)]
    return [sys.executable, "-c", "import sys; from asc_cli.main import main; sys.exit(main())"]


# ============================================================================ file helpers
def replace_file(path: Path, data: bytes | str) -> None:
    """Write ``path`` as a new file (never in place: it may be a hard link to a fixture)."""
    path = Path(path)
    if path.exists() or path.is_symlink():
        path.unlink()
    path.write_bytes(data.encode() if isinstance(data, str) else data)


def edit_text(path: Path, fn: Callable[[str], str]) -> None:
    replace_file(path, fn(Path(path).read_text()))


def edit_json(path: Path, fn: Callable[[dict], None]) -> None:
    obj = json.loads(Path(path).read_text())
    fn(obj)
    replace_file(path, json.dumps(obj, indent=2))


def read_tsv(path: Path) -> tuple[list[str], list[list[str]]]:
    lines = Path(path).read_text().splitlines()
    return lines[0].split("\t"), [line.split("\t") for line in lines[1:] if line]


def write_tsv(path: Path, header: list[str], rows: list[list[str]], *, sep: str = "\t", eol: str = "\n") -> None:
    replace_file(path, eol.join(sep.join(r) for r in [header, *rows]) + eol)


def sha256(path: Path) -> str:
    from keras_asc.artifacts import sha256_file

    return sha256_file(path)


def copy_dataset(src: Path, dst: Path) -> Path:
    """A dataset copy whose CSVs and JSON are real files and whose audio is hard-linked."""
    shutil.copytree(src, dst, copy_function=os.link, symlinks=True)
    for f in [*dst.glob("*.csv"), *dst.glob("*.json"), *(dst / "evaluation_setup").glob("*")]:
        if f.is_file():
            replace_file(f, f.read_bytes())
    return dst


def read_audio(path: Path):
    import soundfile as sf

    return sf.read(str(path), dtype="float32", always_2d=True)


def write_audio(path: Path, data, sr: int, *, subtype: str = "PCM_24", fmt: str | None = None) -> None:
    """Write audio as a new file; PCM_24 by default, as the generated dataset's clips are."""
    import soundfile as sf

    path = Path(path)
    if path.exists() or path.is_symlink():
        path.unlink()
    sf.write(str(path), data, sr, subtype=subtype, format=fmt or "WAV")


class Snapshotter:
    """Every file, folder and symlink under some roots, files by sha256 (cached by inode, size,
    mtime and ctime, so an unchanged tree is cheap to snapshot again)."""

    def __init__(self):
        self._cache: dict[tuple, str] = {}

    def file_digest(self, path: str, st: os.stat_result) -> str:
        key = (path, st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns)
        if key not in self._cache:
            try:
                self._cache[key] = sha256(Path(path))
            except OSError as e:
                self._cache[key] = f"unreadable: {e}"
        return self._cache[key]

    def __call__(self, roots: list[Path], exclude: tuple[str, ...] = ()) -> dict[str, tuple]:
        out: dict[str, tuple] = {}
        for root in roots:
            root = str(root)
            if not os.path.lexists(root):
                continue
            for dirpath, dirnames, filenames in os.walk(root):
                dirnames[:] = [d for d in dirnames if os.path.join(dirpath, d) not in exclude]
                for name in dirnames + filenames:
                    p = os.path.join(dirpath, name)
                    try:
                        st = os.lstat(p)
                    except FileNotFoundError:
                        continue
                    if stat.S_ISLNK(st.st_mode):
                        out[p] = ("link", os.readlink(p))
                    elif stat.S_ISDIR(st.st_mode):
                        out[p] = ("dir",)
                    else:
                        out[p] = ("file", self.file_digest(p, st))
        return out


# ============================================================================ fixtures
@dataclasses.dataclass
class Fixtures:
    root: Path

    @property
    def data(self) -> Path:
        return self.root / "data"

    @property
    def work(self) -> Path:
        return self.root / "work"

    @property
    def run(self) -> Path:
        return self.root / "run"

    @property
    def export(self) -> Path:
        return self.root / "run" / "export"

    @property
    def run2(self) -> Path:
        return self.root / "run2"

    @property
    def export2(self) -> Path:
        return self.root / "run2" / "export"

    @property
    def tp(self) -> Path:
        return self.root / "third_party"

    @property
    def pristine(self) -> Path:
        return self.root.parent / "fixtures.pristine"

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
    env = dict(os.environ)
    env["ASC_THIRD_PARTY"] = str(fx.tp)
    env["TQDM_DISABLE"] = "1"
    env.pop("PYTHONPATH", None)
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
        "version": FIXTURE_VERSION, "git_head": _git_head(), "code": code_fingerprint(), "feature_key": keys[0]},
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


def _git_head() -> str:
    p = subprocess.run(["git", "rev-parse", "HEAD"], cwd=REPO, capture_output=True, text=True)
    return p.stdout.strip()


# ============================================================================ cases
@dataclasses.dataclass
class Spec:
    cmd: str
    title: str
    expect: frozenset[str]  # of "E1", "E2", "E130", "H" (handled), "W" (warned)
    names: tuple[str, ...]  # the error/warning must name one of these (file or option)
    fn: Callable
    timeout: int
    forbid: tuple[str, ...]  # phrases that state a wrong cause or fix


CASES: list[Spec] = []


def case(cmd: str, title: str, expect: str, names=(), *, timeout: int = 300, forbid=()):
    def deco(fn):
        CASES.append(Spec(cmd, title, frozenset(expect.split("|")), tuple(names), fn, timeout, tuple(forbid)))
        return fn
    return deco


class SetupError(Exception):
    pass


class Ctx:
    """What a case function gets: its folder, the fixtures, helpers to copy and damage them, and
    the hooks it may set (``check``, ``allow``, ``keep``, ``env``, ``interrupt``, ...)."""

    def __init__(self, d: Path, fx: Fixtures, env: dict[str, str]):
        self.dir = d
        self.fx = fx
        self.env = dict(env)
        self.check: Callable[[subprocess.CompletedProcess], str | None] | None = None
        self.allowed: list[Path] = []  # paths the command may change or delete (prefixes)
        self.kept: list[Path] = []  # paths that must survive unchanged even inside allowed ones
        self.interrupt: tuple[int, Callable[[], bool], float] | None = None
        self.rlimit_as: int | None = None
        self.as_nobody = False
        self.recheck: Callable[[subprocess.CompletedProcess], str | None] | None = None
        self.extra_roots: list[Path] = []  # more trees to protect (hash before and after)

    # ------------------------------------------------------------------ copies and user files
    def data_copy(self, name: str = "data") -> Path:
        return copy_dataset(self.fx.data, self.dir / name)

    def run_copy(self, name: str = "run", src: Path | None = None) -> Path:
        return Path(shutil.copytree(src or self.fx.run, self.dir / name, symlinks=True))

    def work_copy(self, name: str = "work") -> Path:
        return Path(shutil.copytree(self.fx.work, self.dir / name, symlinks=True))

    def tp_copy(self, name: str = "third_party") -> Path:
        return Path(shutil.copytree(self.fx.tp, self.dir / name))

    def user_file(self, rel: str, text: str = "my own notes: do not lose\n") -> Path:
        p = self.dir / rel
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_text(text)
        return p

    def user_dir(self, rel: str) -> Path:
        d = self.dir / rel
        d.mkdir(parents=True, exist_ok=True)
        (d / "mine.txt").write_text("my own file: do not lose\n")
        return d

    def allow(self, *paths: Path) -> None:
        self.allowed += [Path(p) for p in paths]

    def keep(self, *paths: Path) -> None:
        self.kept += [Path(p) for p in paths]

    def asc(self, argv: list, *, timeout: int = 600) -> subprocess.CompletedProcess:
        """Run asc as part of a case's setup (must succeed)."""
        p = subprocess.run(asc_command() + [str(a) for a in argv], cwd=self.dir, env=self.env, capture_output=True,
                           text=True, timeout=timeout)
        if p.returncode != 0:
            raise SetupError(f"setup `asc {' '.join(map(str, argv))}` failed: {p.stderr[-1500:]}")
        return p

    def start_and_kill(self, argv: list, sig: int, when: Callable[[], bool], *, delay: float = 0.0,
                       timeout: float = 600) -> None:
        """Start asc (setup), wait until ``when()``, wait ``delay`` more seconds, send ``sig`` to it
        (only the asc process: its workers are meant to die with it), then make sure its process
        group is gone."""
        log = open(self.dir / f"killed-{len(list(self.dir.glob('killed-*')))}.log", "w")
        p = subprocess.Popen(asc_command() + [str(a) for a in argv], cwd=self.dir, env=self.env, stdout=log,
                             stderr=subprocess.STDOUT, start_new_session=True)
        t0 = time.time()
        try:
            while not when():
                if p.poll() is not None:
                    raise SetupError(f"`asc {argv[0]}` ended (exit {p.returncode}) before it could be killed")
                if time.time() - t0 > timeout:
                    raise SetupError("the moment to kill never came")
                time.sleep(0.05)
            time.sleep(delay)
            if p.poll() is not None:
                raise SetupError(f"`asc {argv[0]}` ended (exit {p.returncode}) before it could be killed")
            p.send_signal(sig)
            p.wait(timeout=120)
        finally:
            try:
                os.killpg(p.pid, signal.SIGKILL)
            except (ProcessLookupError, PermissionError):
                pass
            log.close()
        time.sleep(0.5)  # workers told to die with their parent


# ---------------------------------------------------------------------------- checks
def ok_if(cond: bool, problem: str) -> str | None:
    return None if cond else problem


def same_describe(fx: Fixtures):
    want = (fx.root / "describe.txt").read_text()

    def check(p):
        got = "\n".join(line for line in p.stdout.splitlines() if not line.startswith("warning"))
        return ok_if(got.strip() == want.strip(), "the describe table differs from the clean dataset's")
    check.what = 'the same describe table as the clean dataset'
    return check


def only_feature_dir(work: Path) -> Path | None:
    dirs = [d for d in (work / "features").iterdir() if (d / "config.json").is_file()] if (work / "features").is_dir() else []
    return dirs[0] if len(dirs) == 1 else None


def features_row(fdir: Path, split: str, filename: str):
    import numpy as np
    import pandas as pd

    table = pd.read_csv(fdir / f"{split}.csv")
    idx = table.index[table["filename"] == filename]
    if len(idx) != 1:
        return None
    return np.load(fdir / f"{split}.npy", mmap_mode="r")[idx[0]]


def features_match(fx: Fixtures, work: Path, split: str, filename: str, *, tol: float,
                   other_name: str | None = None):
    """The cache in ``work`` holds ``other_name or filename`` with features within ``tol`` dB of
    the fixture's features of ``filename``."""
    def check(p):
        import numpy as np

        fdir = only_feature_dir(work)
        if fdir is None:
            return f"no single feature cache entry under {work}/features"
        got = features_row(fdir, split, other_name or filename)
        want = features_row(fx.feature_dir(), split, filename)
        if got is None:
            return f"{other_name or filename} is not in the cache's {split} table"
        if not np.isfinite(got).all():
            return "non-finite features"
        diff = float(np.abs(np.asarray(got) - np.asarray(want)).max())
        return ok_if(diff <= tol, f"features of {filename} differ from the clean file's by {diff:.3g} dB (> {tol})")
    check.what = f"its features within {tol:g} dB of the clean file's"
    return check


def run_finished(run: Path, epochs: int):
    def check(p):
        try:
            cfg = json.loads((run / "config.json").read_text())
            state = json.loads((run / "state.json").read_text())
        except (OSError, ValueError) as e:
            return f"run not readable: {e}"
        hist = [h["epoch"] for h in state.get("history", [])]
        if cfg.get("status") != "done":
            return f"run status {cfg.get('status')!r}"
        if state.get("epoch") != epochs or hist != list(range(1, epochs + 1)):
            return f"state.json: epoch {state.get('epoch')}, history epochs {hist}, wanted 1..{epochs}"
        if not (run / "model.keras").is_file():
            return "no model.keras"
        return None
    check.what = f"{run.name}: status done, epochs 1..{epochs} in state.json, model.keras"
    return check


def export_intact(export: Path, *, run: Path | None = None):
    """config.json's recorded sha256 of every file matches, and its source_run is ``run``."""
    def check(p):
        try:
            cfg = json.loads((export / "config.json").read_text())
        except (OSError, ValueError) as e:
            return f"no readable export config.json: {e}"
        for name, digest in cfg.get("files_sha256", {}).items():
            if not (export / name).is_file() or sha256(export / name) != digest:
                return f"{name} does not match config.json's sha256"
        if run is not None and (export / cfg["source_run"]).resolve() != run.resolve():
            return f"source_run {cfg['source_run']} is not {run}"
        return None
    check.what = "every exported file matches its sha256 in config.json" + (" and source_run is the run" if run else "")
    return check


def report_passed(path: Path, **want):
    def check(p):
        try:
            r = json.loads(path.read_text())
        except (OSError, ValueError) as e:
            return f"{path.name} not readable: {e}"
        if not r.get("passed"):
            return f"{path.name}: not passed: {r.get('failures')}"
        for k, v in want.items():
            if k == "host_clips":
                got = [t["clips"] for t in r["targets"] if t["target"] == "host"]
                if got != [v]:
                    return f"host ran {got} clips, wanted {v}"
            elif k == "from_audio":
                if not all(t.get("from_audio") for t in r["targets"]):
                    return "no from-audio result"
            elif r.get(k) != v:
                return f"{k} = {r.get(k)}, wanted {v}"
        return None
    check.what = f"{path.name} passed" + "".join(f", {k}={v}" for k, v in want.items())
    return check


def same_metrics(fx: Fixtures, run: Path):
    def check(p):
        try:
            got = json.loads((run / "metrics.json").read_text())["scores"][0]
            want = json.loads((fx.run / "metrics.json").read_text())["scores"][0]
        except (OSError, ValueError, KeyError) as e:
            return f"metrics.json not readable: {e}"
        return ok_if(got["accuracy"] == want["accuracy"] and abs(got["log_loss"] - want["log_loss"]) < 1e-5,
                     f"overall accuracy/log loss {got['accuracy']:.4f}/{got['log_loss']:.5f}, the same model on the "
                     f"same data gave {want['accuracy']:.4f}/{want['log_loss']:.5f}")
    check.what = "metrics.json equal to the fixture run's (same model, same data)"
    return check


def same_tflite(want: Path, got: Path):
    def check(p):
        if not (got / "model.tflite").is_file():
            return "no model.tflite written"
        return ok_if(sha256(got / "model.tflite") == sha256(want / "model.tflite"),
                     "its model.tflite differs from the export of the same run calibrated on the training data "
                     "(the int8 ranges come from other data)")
    check.what = "model.tflite identical to the fixture export (conversion is deterministic)"
    return check


def same_validation(want: Path, got: Path):
    def check(p):
        try:
            a = json.loads((got / "validation_report.json").read_text())["scores"][0]
            b = json.loads((want / "validation_report.json").read_text())["scores"][0]
        except (OSError, ValueError, KeyError) as e:
            return f"validation_report.json not readable: {e}"
        return ok_if(abs(a["int8_log_loss"] - b["int8_log_loss"]) < 1e-6 and a["int8_accuracy"] == b["int8_accuracy"],
                     f"int8 accuracy/log loss {a['int8_accuracy']:.4f}/{a['int8_log_loss']:.5f}; the unedited export "
                     f"gives {b['int8_accuracy']:.4f}/{b['int8_log_loss']:.5f} (what the firmware computes)")
    check.what = "the int8 scores equal the unedited export's"
    return check


def all_checks(*checks):
    def check(p):
        for c in checks:
            r = c(p)
            if r:
                return r
        return None
    check.what = "; ".join(getattr(c, "what", "") for c in checks if getattr(c, "what", ""))
    return check


def no_partials(folder: Path):
    def check(p):
        left = [x.name for x in Path(folder).rglob("*") if x.name.endswith(".partial")]
        return ok_if(not left, f"staging folders left behind: {left[:3]}")
    check.what = 'no staging folder left'
    return check


def described(what: str, check):
    check.what = what
    return check


def in_stdout(text: str):
    return described(f"stdout says {text!r}", lambda p: ok_if(text in p.stdout, f"stdout does not say {text!r}"))


# ============================================================================ the cases
# ---------------------------------------------------------------------------- make-dataset
@case("make-dataset", "--out is an existing user file", "E1", ["notes.txt"])
def _(c):
    return ["make-dataset", c.user_file("notes.txt"), "--size", "tiny"]


@case("make-dataset", "--out is a non-empty user folder", "E1", ["mine"])
def _(c):
    return ["make-dataset", c.user_dir("mine"), "--size", "tiny"]


@case("make-dataset", "--out already holds this very dataset (same parameters)", "H")
def _(c):
    d = c.data_copy()
    c.check = in_stdout("reusing")
    return ["make-dataset", d, "--size", "tiny"]


@case("make-dataset", "--out holds a generated dataset with other parameters (--seed 1)", "E1", ["{C}/data"])
def _(c):
    return ["make-dataset", c.data_copy(), "--size", "tiny", "--seed", "1"]


@case("make-dataset", "--out is a training run folder", "E1", ["{F}/run"])
def _(c):
    return ["make-dataset", c.fx.run, "--size", "tiny"]


@case("make-dataset", "--out is the audio folder inside a dataset", "E1", ["audio"])
def _(c):
    return ["make-dataset", c.fx.data / "audio", "--size", "tiny"]


@case("make-dataset", "--out's parent is a file", "E1", ["notes.txt"])
def _(c):
    return ["make-dataset", c.user_file("notes.txt") / "data", "--size", "tiny"]


@case("make-dataset", "--out is a dangling symlink", "E1|H", ["dangling"])
def _(c):
    (c.dir / "dangling").symlink_to(c.dir / "nowhere")
    c.check = described("a dataset behind the symlink", lambda p: ok_if((c.dir / "nowhere" / "meta.csv").is_file(), "no dataset behind the symlink"))
    return ["make-dataset", c.dir / "dangling", "--size", "3", "--clip-seconds", "0.5"]


@case("make-dataset", "--size 0", "E2", ["--size"])
def _(c):
    return ["make-dataset", c.dir / "d", "--size", "0"]


@case("make-dataset", "--size 2 (a number, but below the 3 segments a split needs)", "E2", ["--size"])
def _(c):
    return ["make-dataset", c.dir / "d", "--size", "2"]


@case("make-dataset", "--size tiny,demo", "E2", ["--size"])
def _(c):
    return ["make-dataset", c.dir / "d", "--size", "tiny,demo"]


@case("make-dataset", "--clip-seconds nan", "E2", ["--clip-seconds"])
def _(c):
    return ["make-dataset", c.dir / "d", "--size", "3", "--clip-seconds", "nan"]


@case("make-dataset", "--clip-seconds 1e6 (11 days per clip)", "E2|E1", ["--clip-seconds"])
def _(c):
    c.rlimit_as = 8 << 30
    return ["make-dataset", c.dir / "d", "--size", "3", "--clip-seconds", "1e6", "--workers", "1"]


@case("make-dataset", "--seed -1", "E2", ["--seed"])
def _(c):
    return ["make-dataset", c.dir / "d", "--seed", "-1"]


@case("make-dataset", "--workers 0", "E2", ["--workers"])
def _(c):
    return ["make-dataset", c.dir / "d", "--workers", "0"]


@case("make-dataset", "--out with spaces, a comma and unicode", "H")
def _(c):
    out = c.dir / "my data, ü v2"

    def check(p):
        header, rows = read_tsv(out / "meta.csv")
        cfg = json.loads((out / "synth_config.json").read_text())
        missing = [r[0] for r in rows if not (out / r[0]).is_file()]
        return ok_if(len(rows) == cfg["clips"] and not missing, f"{len(rows)} rows, {cfg['clips']} clips, missing {missing[:2]}")
    c.check = check
    check.what = "every meta.csv row's audio exists, as many as synth_config.json's clips"
    return ["make-dataset", out, "--size", "3", "--clip-seconds", "0.5"]


@case("make-dataset", "SIGKILL mid-generation, then the same command again", "H")
def _(c):
    out = c.dir / "gen"
    argv = ["make-dataset", out, "--size", "3", "--clip-seconds", "0.5", "--workers", "1"]
    c.start_and_kill(argv, signal.SIGKILL, lambda: any(c.dir.glob(".gen.*.partial")), delay=1.0)
    c.allow(*c.dir.glob(".gen.*"))  # the killed run's staging folder: the rerun may remove it
    c.check = all_checks(lambda p: ok_if((out / "synth_config.json").is_file(), "no finished dataset"),
                         no_partials(c.dir))
    return argv


# ---------------------------------------------------------------------------- describe
@case("describe", "--data does not exist", "E1", ["nowhere"])
def _(c):
    return ["describe", "--data", c.dir / "nowhere"]


@case("describe", "--data is a file", "E1", ["notes.txt"])
def _(c):
    return ["describe", "--data", c.user_file("notes.txt")]


@case("describe", "--data is the dataset's audio folder", "E1", ["meta.csv", "audio"])
def _(c):
    return ["describe", "--data", c.fx.data / "audio"]


@case("describe", "--data is a symlink to the dataset", "H")
def _(c):
    (c.dir / "link").symlink_to(c.fx.data)
    c.check = same_describe(c.fx)
    return ["describe", "--data", c.dir / "link"]


@case("describe", "--data path with spaces, a comma and unicode", "H")
def _(c):
    d = c.data_copy("dataset ü, copy")
    c.check = same_describe(c.fx)
    return ["describe", "--data", d]


@case("describe", "--data is a symlink loop", "E1", ["loop"])
def _(c):
    (c.dir / "loop").symlink_to(c.dir / "loop2")
    (c.dir / "loop2").symlink_to(c.dir / "loop")
    return ["describe", "--data", c.dir / "loop"]


@case("describe", "meta.csv missing", "E1", ["meta.csv"])
def _(c):
    d = c.data_copy()
    (d / "meta.csv").unlink()
    return ["describe", "--data", d]


@case("describe", "meta.csv empty (0 bytes)", "E1", ["meta.csv"])
def _(c):
    d = c.data_copy()
    replace_file(d / "meta.csv", b"")
    return ["describe", "--data", d]


@case("describe", "meta.csv comma-separated instead of tabs", "E1", ["meta.csv"])
def _(c):
    d = c.data_copy()
    edit_text(d / "meta.csv", lambda t: t.replace("\t", ","))
    return ["describe", "--data", d]


@case("describe", "meta.csv without its source_label column", "E1", ["source_label"])
def _(c):
    d = c.data_copy()
    h, rows = read_tsv(d / "meta.csv")
    write_tsv(d / "meta.csv", h[:3], [r[:3] for r in rows])
    return ["describe", "--data", d]


@case("describe", "meta.csv with a duplicated row", "E1", ["meta.csv"])
def _(c):
    d = c.data_copy()
    h, rows = read_tsv(d / "meta.csv")
    write_tsv(d / "meta.csv", h, rows + rows[:1])
    return ["describe", "--data", d]


@case("describe", "fold1_train.csv with a duplicated row", "E1", ["fold1_train.csv"])
def _(c):
    d = c.data_copy()
    p = d / "evaluation_setup" / "fold1_train.csv"
    h, rows = read_tsv(p)
    write_tsv(p, h, rows + rows[3:4])
    return ["describe", "--data", d]


@case("describe", "an unknown scene label (airport -> airprot) in meta and split", "E1", ["airprot"])
def _(c):
    d = c.data_copy()
    for p in (d / "meta.csv", d / "evaluation_setup" / "fold1_train.csv", d / "evaluation_setup" / "fold1_evaluate.csv"):
        edit_text(p, lambda t: t.replace("\tairport", "\tairprot"))
    return ["describe", "--data", d]


@case("describe", "an unknown device (source_label s9)", "E1", ["s9"])
def _(c):
    d = c.data_copy()
    h, rows = read_tsv(d / "meta.csv")
    rows[0][3] = "s9"
    write_tsv(d / "meta.csv", h, rows)
    return ["describe", "--data", d]


@case("describe", "a split lists a clip meta.csv does not have", "E1", ["fold1_evaluate.csv", "meta.csv"])
def _(c):
    d = c.data_copy()
    p = d / "evaluation_setup" / "fold1_evaluate.csv"
    h, rows = read_tsv(p)
    write_tsv(p, h, rows + [["audio/ghost-clip-a.wav", "airport"]])
    return ["describe", "--data", d]


@case("describe", "a split's scene disagrees with meta.csv", "E1", ["fold1_train.csv"])
def _(c):
    d = c.data_copy()
    p = d / "evaluation_setup" / "fold1_train.csv"
    h, rows = read_tsv(p)
    rows[0][1] = "tram" if rows[0][1] != "tram" else "bus"
    write_tsv(p, h, rows)
    return ["describe", "--data", d]


@case("describe", "a split row with an empty field", "E1", ["fold1_train.csv"])
def _(c):
    d = c.data_copy()
    p = d / "evaluation_setup" / "fold1_train.csv"
    h, rows = read_tsv(p)
    rows[2][1] = ""
    write_tsv(p, h, rows)
    return ["describe", "--data", d]


@case("describe", "fold1_evaluate.csv holds only its header", "E1", ["fold1_evaluate.csv"])
def _(c):
    d = c.data_copy()
    p = d / "evaluation_setup" / "fold1_evaluate.csv"
    write_tsv(p, read_tsv(p)[0], [])
    return ["describe", "--data", d]


@case("describe", "an audio file listed in the train split is missing", "E1", [".wav"])
def _(c):
    d = c.data_copy()
    (d / c.fx.clip("train", 5)).unlink()
    return ["describe", "--data", d]


@case("describe", "missing audio with --no-audio-check", "H")
def _(c):
    d = c.data_copy()
    (d / c.fx.clip("train", 5)).unlink()
    c.check = same_describe(c.fx)
    return ["describe", "--data", d, "--no-audio-check"]


@case("describe", "one recording location in both train and evaluate", "E1", ["location"])
def _(c):
    d = c.data_copy()
    h, rows = read_tsv(d / "meta.csv")
    meta = {r[0]: r for r in rows}
    train_row = meta[c.fx.clip("train", 0)]
    eval_row = next(meta[f] for f, scene in c.fx.split_rows("evaluate") if scene == train_row[1])
    eval_row[2] = train_row[2]  # an evaluate clip recorded at a training location
    write_tsv(d / "meta.csv", h, rows)
    return ["describe", "--data", d]


@case("describe", "the train split has no clip of scene 'tram'", "W", ["tram"])
def _(c):
    d = c.data_copy()
    p = d / "evaluation_setup" / "fold1_train.csv"
    h, rows = read_tsv(p)
    write_tsv(p, h, [r for r in rows if r[1] != "tram"])
    return ["describe", "--data", d]


@case("describe", "CSV files with Windows (CRLF) line endings", "H")
def _(c):
    d = c.data_copy()
    for p in (d / "meta.csv", *(d / "evaluation_setup").glob("*.csv")):
        edit_text(p, lambda t: t.replace("\n", "\r\n"))
    c.check = same_describe(c.fx)
    return ["describe", "--data", d]


@case("describe", "meta.csv saved with a UTF-8 byte-order mark", "H|E1", ["meta.csv"])
def _(c):
    d = c.data_copy()
    replace_file(d / "meta.csv", b"\xef\xbb\xbf" + (d / "meta.csv").read_bytes())
    c.check = same_describe(c.fx)
    return ["describe", "--data", d]


@case("describe", "split files with an extra column, columns reordered", "H")
def _(c):
    d = c.data_copy()
    for split in ("train", "evaluate"):
        p = d / "evaluation_setup" / f"fold1_{split}.csv"
        h, rows = read_tsv(p)
        write_tsv(p, ["scene_label", "comment", "filename"], [[r[1], "ok", r[0]] for r in rows])
    c.check = same_describe(c.fx)
    return ["describe", "--data", d]


@case("describe", "meta.csv is a folder", "E1", ["meta.csv"], forbid=("file not found",))
def _(c):
    d = c.data_copy()
    (d / "meta.csv").unlink()
    (d / "meta.csv").mkdir()
    return ["describe", "--data", d]


@case("describe", "meta.csv holds bytes that are not UTF-8", "E1", ["meta.csv"])
def _(c):
    d = c.data_copy()
    replace_file(d / "meta.csv", (d / "meta.csv").read_bytes().replace(b"airport", b"a\xffrport", 1))
    return ["describe", "--data", d]


@case("describe", "meta.csv not readable by the user (run as nobody, mode 000)", "E1", ["meta.csv"],
      forbid=("not writable", "not found"))
def _(c):
    d = c.data_copy()
    os.chmod(d / "meta.csv", 0)
    c.as_nobody = True
    return ["describe", "--data", d]


# ---------------------------------------------------------------------------- features
@case("features", "--out is an existing user file", "E1", ["notes.txt"])
def _(c):
    return ["features", "--data", c.fx.data, "--out", c.user_file("notes.txt"), "--clip-seconds", "2"]


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
                                            "2"], cwd=c.dir, env=c.env, capture_output=True, text=True)
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


@case("features", "--frames-per-second 30", "E2", ["--frames-per-second"])
def _(c):
    return ["features", "--data", c.fx.data, "--out", c.dir / "work", "--frames-per-second", "30"]


@case("features", "SIGKILL while computing, then the same command again", "H")
def _(c):
    w = c.dir / "work"
    argv = ["features", "--data", c.fx.data, "--out", w, "--clip-seconds", "2", "--workers", "1"]
    c.start_and_kill(argv, signal.SIGKILL, lambda: any((w / "features").glob(".*.partial")) if (w / "features").is_dir()
                     else False, delay=1.0)
    c.allow(w / "features")
    c.check = all_checks(features_match(c.fx, w, "evaluate", c.fx.clip("evaluate", 0), tol=0.0), no_partials(w))
    return argv


# ---------------------------------------------------------------------------- train
@case("train", "--out is a non-empty user folder", "E1", ["mine"])
def _(c):
    return ["train", "--data", c.fx.data, "--work", c.fx.work, "--out", c.user_dir("mine"), *TRAIN_SMALL]


@case("train", "--out is a user file", "E1", ["notes.txt"])
def _(c):
    return ["train", "--data", c.fx.data, "--work", c.fx.work, "--out", c.user_file("notes.txt"), *TRAIN_SMALL]


@case("train", "--out is the dataset", "E1", ["{F}/data"])
def _(c):
    return ["train", "--data", c.fx.data, "--work", c.fx.work, "--out", c.fx.data, *TRAIN_SMALL]


@case("train", "--out is the run's export folder", "E1", ["{F}/run/export"])
def _(c):
    return ["train", "--data", c.fx.data, "--work", c.fx.work, "--out", c.fx.export, *TRAIN_SMALL]


@case("train", "--out is a finished run, same options, no --resume", "E1", ["{F}/run"])
def _(c):
    return ["train", "--data", c.fx.data, "--work", c.fx.work, "--out", c.fx.run, *FIXTURE_TRAIN]


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


def _what_was_trained(folder: Path, pattern: str = "config.json"):
    """Evidence for an option that should have been refused: what the run(s) under ``folder``
    (``pattern``) trained."""
    def check(p):
        found = []
        for f in sorted(Path(folder).glob(pattern)):
            try:
                cfg = json.loads(f.read_text())
                found.append(f"{cfg['model']['name']} with {cfg['train']['model_overrides']}: "
                             f"{cfg['model']['trainable_params']:,d} parameters")
            except (OSError, ValueError, KeyError):
                continue
        return f"it trained {'; '.join(found)}" if found else None
    check.what = "evidence of what was trained"
    return check


@case("train", "--model-arg width=0", "E2", ["--model-arg", "width"], forbid=("--window-frames", "more frames"))
def _(c):
    c.check = _what_was_trained(c.dir / "r")
    return ["train", "--data", c.fx.data, "--work", c.fx.work, "--out", c.dir / "r", *TRAIN_SMALL[2:], "--model-arg", "width=0"]


@case("train", "--model-arg width=-1", "E2", ["--model-arg", "width"], forbid=("--window-frames", "more frames"))
def _(c):
    c.check = _what_was_trained(c.dir / "r")
    return ["train", "--data", c.fx.data, "--work", c.fx.work, "--out", c.dir / "r", *TRAIN_SMALL[2:], "--model-arg=width=-1"]


@case("train", "--model-arg width=inf", "E2", ["--model-arg", "width"])
def _(c):
    return ["train", "--data", c.fx.data, "--work", c.fx.work, "--out", c.dir / "r", *TRAIN_SMALL[2:], "--model-arg", "width=inf"]


@case("train", "--model-arg width=0.25 --model-arg width=0.5 (one silently overrides the other?)", "W|E2",
      ["width", "--model-arg"])
def _(c):
    return ["train", "--data", c.fx.data, "--work", c.fx.work, "--out", c.dir / "r", "--model-arg", "width=0.25",
            "--model-arg", "width=0.5", "--epochs", "1", "--clip-seconds", "2", "--batch-size", "16"]


@case("train", "--epochs 0", "E2", ["--epochs"])
def _(c):
    return ["train", "--data", c.fx.data, "--out", c.dir / "r", "--epochs", "0"]


@case("train", "--epochs 1.5", "E2", ["--epochs"])
def _(c):
    return ["train", "--data", c.fx.data, "--out", c.dir / "r", "--epochs", "1.5"]


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


@case("train", "--lr inf", "E2", ["--lr"])
def _(c):
    return ["train", "--data", c.fx.data, "--out", c.dir / "r", "--lr", "inf"]


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


@case("train", "--work is a user file", "E1", ["notes.txt"])
def _(c):
    return ["train", "--data", c.fx.data, "--work", c.user_file("notes.txt"), "--out", c.dir / "r", *TRAIN_SMALL]


@case("train", "--data does not exist", "E1", ["nowhere"])
def _(c):
    return ["train", "--data", c.dir / "nowhere", "--work", c.dir / "w", "--out", c.dir / "r", *TRAIN_SMALL]


def _killed_run(c, sig, *, epochs=6, first_epoch_done=True) -> tuple[Path, list]:
    r = c.dir / "r"
    argv = ["train", "--data", c.fx.data, "--work", c.fx.work, "--out", r, "--model-arg", "width=0.25", "--epochs",
            str(epochs), "--clip-seconds", "2", "--batch-size", "16"]
    if first_epoch_done:
        c.start_and_kill(argv, sig, lambda: (r / "state.json").is_file(), delay=0.4)
    else:
        c.start_and_kill(argv, sig, lambda: (r / "config.json").is_file(), delay=0.0)
    return r, argv


@case("train", "SIGKILL mid-epoch, then the same command without --resume", "E1", ["--resume"])
def _(c):
    r, argv = _killed_run(c, signal.SIGKILL)
    return argv


@case("train", "SIGKILL mid-epoch, then --resume", "H")
def _(c):
    r, argv = _killed_run(c, signal.SIGKILL)
    c.allow(r)
    c.check = run_finished(r, 6)
    return argv + ["--resume"]


@case("train", "SIGTERM mid-epoch, then --resume", "H")
def _(c):
    r, argv = _killed_run(c, signal.SIGTERM)
    c.allow(r)
    c.check = run_finished(r, 6)
    return argv + ["--resume"]


@case("train", "SIGKILL before the first epoch ends, then the same command", "H")
def _(c):
    r, argv = _killed_run(c, signal.SIGKILL, epochs=2, first_epoch_done=False)
    c.allow(r)
    c.check = run_finished(r, 2)
    return argv


@case("train", "SIGKILL mid-epoch, checkpoints deleted, then --resume", "E1", ["checkpoint"])
def _(c):
    r, argv = _killed_run(c, signal.SIGKILL)
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
@case("models", "--input abc", "E2", ["--input"])
def _(c):
    return ["models", "--input", "abc"]


@case("models", "--input 0x0", "E2", ["--input"])
def _(c):
    return ["models", "--input", "0x0"]


@case("models", "--input 128 (one number)", "E2", ["--input"])
def _(c):
    return ["models", "--input", "128"]


@case("models", "--input 128x4 (too few frames for most models)", "E2|H", ["--input"])
def _(c):
    return ["models", "--input", "128x4"]


@case("models", "--input -5x288", "E2", ["--input"])
def _(c):
    return ["models", "--input=-5x288"]


@case("models", "--input ' 128 X 288 ' (spaces, capital X)", "H")
def _(c):
    c.check = described("the resnet11 row says 83,572 parameters", lambda p: ok_if(re.search(r"resnet11\s+83,572", p.stdout) is not None, "no 'resnet11 83,572' row"))
    return ["models", "--input", " 128 X 288 "]


# ---------------------------------------------------------------------------- evaluate
@case("evaluate", "RUN does not exist", "E1", ["nowhere"])
def _(c):
    return ["evaluate", c.dir / "nowhere", "--data", c.fx.data, "--work", c.fx.work]


@case("evaluate", "RUN is a user file", "E1", ["notes.txt"])
def _(c):
    return ["evaluate", c.user_file("notes.txt"), "--data", c.fx.data, "--work", c.fx.work]


@case("evaluate", "RUN is the dataset", "E1", ["{F}/data"])
def _(c):
    return ["evaluate", c.fx.data, "--data", c.fx.data, "--work", c.fx.work]


@case("evaluate", "RUN is the export folder", "E1", ["{F}/run/export"])
def _(c):
    return ["evaluate", c.fx.export, "--data", c.fx.data, "--work", c.fx.work]


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
    r, _argv = _killed_run(c, signal.SIGKILL)
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


@case("export", "--out is an existing user file", "E1", ["notes.txt"])
def _(c):
    return _export(c, c.fx.run, "--out", c.user_file("notes.txt"))


@case("export", "--out is a non-empty user folder", "E1", ["mine"])
def _(c):
    return _export(c, c.fx.run, "--out", c.user_dir("mine"))


@case("export", "--out is the run itself", "E1", ["{F}/run"])
def _(c):
    return _export(c, c.fx.run, "--out", c.fx.run)


@case("export", "--out is the parent of the run", "E1", ["{F}:"])
def _(c):
    return _export(c, c.fx.run, "--out", c.fx.root)


@case("export", "--out is the dataset", "E1", ["{F}/data"])
def _(c):
    return _export(c, c.fx.run, "--out", c.fx.data)


@case("export", "--out is the work folder", "E1", ["{F}/work"])
def _(c):
    return _export(c, c.fx.run, "--out", c.fx.work)


@case("export", "--out is the dataset's audio folder", "E1", ["audio"])
def _(c):
    return _export(c, c.fx.run, "--out", c.fx.data / "audio")


@case("export", "--out is the run's checkpoints folder", "E1", ["checkpoints"])
def _(c):
    return _export(c, c.fx.run, "--out", c.fx.run / "checkpoints")


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


@case("export", "--target stm32f407 with a larger --budget", "W", ["--budget"])
def _(c):
    r = c.run_copy()
    c.allow(r / "export")
    c.check = export_intact(r / "export", run=r)
    return _export(c, r, "--target", "stm32f407", "--budget", "10000000")


@case("export", "--target stm32f407 with a larger --ram-budget", "W", ["--ram-budget"])
def _(c):
    r = c.run_copy()
    c.allow(r / "export")
    c.check = export_intact(r / "export", run=r)
    return _export(c, r, "--target", "stm32f407", "--ram-budget", "100000000")


@case("export", "--compress-bits 2 without --compress", "W", ["--compress-bits"])
def _(c):
    r = c.run_copy()
    c.allow(r / "export")
    c.check = export_intact(r / "export", run=r)
    return _export(c, r, "--compress-bits", "2")


@case("export", "--qat-epochs 5 without --qat", "W", ["--qat-epochs"])
def _(c):
    r = c.run_copy()
    c.allow(r / "export")
    c.check = export_intact(r / "export", run=r)
    return _export(c, r, "--qat-epochs", "5")


@case("export", "--qat with --compress (impossible together)", "E2", ["--qat", "--compress"])
def _(c):
    return _export(c, c.fx.run, "--qat", "--compress", "--out", c.dir / "e")


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


@case("export", "--arena-targets host,host", "E2", ["--arena-targets"])
def _(c):
    return _export(c, c.fx.run, "--arena-targets", "host,host")


@case("export", "--arena-targets '' (empty list)", "E2", ["--arena-targets"])
def _(c):
    return _export(c, c.fx.run, "--arena-targets", "")


@case("export", "--third-party pointing nowhere with --arena-targets host", "E1|W", ["nowhere"])
def _(c):
    r = c.run_copy()
    c.allow(r / "export")
    c.check = export_intact(r / "export", run=r)
    return ["export", r, "--data", c.fx.data, "--work", c.fx.work, "--calibration-size", "20", "--arena-targets", "host",
            "--third-party", c.dir / "nowhere"]


@case("export", "an unfinished run (killed mid-epoch)", "E1", ["--resume"])
def _(c):
    r, _argv = _killed_run(c, signal.SIGKILL)
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


@case("export", "--work is a user file", "E1", ["notes.txt"])
def _(c):
    return _export(c, c.fx.run, "--out", c.dir / "e", work=c.user_file("notes.txt"))


@case("export", "RUN given through a symlink", "H")
def _(c):
    r = c.run_copy()
    (c.dir / "link").symlink_to(r)
    c.allow(r / "export")
    c.check = export_intact(r / "export", run=r)
    return _export(c, c.dir / "link")


@case("export", "--seed -1", "E2", ["--seed"])
def _(c):
    return _export(c, c.fx.run, "--seed", "-1")


@case("export", "--target stm32f4 (unknown)", "E2", ["stm32f4", "--target"])
def _(c):
    return _export(c, c.fx.run, "--target", "stm32f4")


@case("export", "RUN does not exist", "E1", ["nowhere"])
def _(c):
    return _export(c, c.dir / "nowhere", "--out", c.dir / "e")


@case("export", "SIGKILL while it writes, then the same command", "H")
def _(c):
    r = c.run_copy()
    shutil.rmtree(r / "export")
    argv = _export(c, r)
    c.start_and_kill(argv, signal.SIGKILL, lambda: any(r.glob(".export.*.partial")), delay=0.3)
    c.allow(r / "export", *r.glob(".export.*"))
    c.check = all_checks(export_intact(r / "export", run=r), no_partials(r))
    return argv


# ---------------------------------------------------------------------------- validate
def _validate(c, model: Path, *extra, data: Path | None = None, work: Path | None = None) -> list:
    return ["validate", model, "--data", data or c.fx.data, "--work", work or c.fx.work, *extra]


def _allow_validation(c, export: Path) -> None:
    c.allow(*(export / n for n in ("validation_report.json", "validation_report.md", "validation_per_device.png",
                                   "validation_output_diff.png")))


@case("validate", "MODEL does not exist", "E1", ["nowhere"])
def _(c):
    return _validate(c, c.dir / "nowhere" / "model.tflite")


@case("validate", "MODEL is the export folder, not its model.tflite", "H")
def _(c):
    r = c.run_copy()  # validate writes its reports into the export (documented): a copy of the fixture's
    _allow_validation(c, r / "export")
    c.check = report_passed(r / "export" / "validation_report.json")
    return _validate(c, r / "export")


@case("validate", "model.tflite copied elsewhere without its config.json", "E1|W", ["config.json", "--data"])
def _(c):
    (c.dir / "m").mkdir()
    shutil.copy(c.fx.export / "model.tflite", c.dir / "m" / "model.tflite")
    return _validate(c, c.dir / "m" / "model.tflite")


@case("validate", "a truncated model.tflite alone in a folder (no export around it)", "E1", ["model.tflite"])
def _(c):
    (c.dir / "m").mkdir()
    data = (c.fx.export / "model.tflite").read_bytes()
    (c.dir / "m" / "model.tflite").write_bytes(data[: len(data) // 2])
    return _validate(c, c.dir / "m" / "model.tflite")


@case("validate", "model.tflite truncated to half", "E1", ["model.tflite"])
def _(c):
    r = c.run_copy()
    p = r / "export" / "model.tflite"
    replace_file(p, p.read_bytes()[: p.stat().st_size // 2])
    return _validate(c, p)


@case("validate", "model.tflite empty (0 bytes)", "E1", ["model.tflite"])
def _(c):
    r = c.run_copy()
    replace_file(r / "export" / "model.tflite", b"")
    return _validate(c, r / "export" / "model.tflite")


@case("validate", "model.tflite random bytes", "E1", ["model.tflite"])
def _(c):
    r = c.run_copy()
    replace_file(r / "export" / "model.tflite", bytes(range(256)) * 16)
    return _validate(c, r / "export" / "model.tflite")


@case("validate", "model.tflite replaced by another run's model", "E1", ["model.tflite"])
def _(c):
    r = c.run_copy()
    replace_file(r / "export" / "model.tflite", (c.fx.export2 / "model.tflite").read_bytes())
    return _validate(c, r / "export" / "model.tflite")


@case("validate", "the export's config.json truncated", "E1", ["config.json"])
def _(c):
    r = c.run_copy()
    replace_file(r / "export" / "config.json", (r / "export" / "config.json").read_bytes()[:300])
    return _validate(c, r / "export" / "model.tflite")


@case("validate", "the export's config.json input mean edited (+10 dB)", "E1|W", ["config.json"])
def _(c):
    r = c.run_copy()
    edit_json(r / "export" / "config.json", lambda d: d["input"].update(mean=[m + 10 for m in d["input"]["mean"]]))
    _allow_validation(c, r / "export")
    c.check = same_validation(c.fx.export, r / "export")
    return _validate(c, r / "export" / "model.tflite")


@case("validate", "the export's config.json output scale edited (x2)", "E1|W", ["config.json"])
def _(c):
    r = c.run_copy()
    edit_json(r / "export" / "config.json", lambda d: d["output"].update(scale=d["output"]["scale"] * 2))
    _allow_validation(c, r / "export")
    c.check = same_validation(c.fx.export, r / "export")
    return _validate(c, r / "export" / "model.tflite")


@case("validate", "one byte of model_data.cc's array edited", "E1", ["model_data.cc"])
def _(c):
    r = c.run_copy()
    edit_text(r / "export" / "model_data.cc", lambda t: t.replace("0x1c,", "0x1d,", 1))
    return _validate(c, r / "export" / "model.tflite")


@case("validate", "kTensorArenaSize in model_settings.h edited", "E1", ["model_settings.h"])
def _(c):
    r = c.run_copy()
    edit_text(r / "export" / "model_settings.h",
              lambda t: re.sub(r"kTensorArenaSize = \d+;", "kTensorArenaSize = 1024;", t))
    return _validate(c, r / "export" / "model.tflite")


@case("validate", "calibration.csv edited", "E1", ["calibration.csv"])
def _(c):
    r = c.run_copy()
    edit_text(r / "export" / "calibration.csv", lambda t: t + "audio/extra.wav,airport,a,x\n")
    return _validate(c, r / "export" / "model.tflite")


@case("validate", "model_input.h deleted", "E1", ["model_input.h"])
def _(c):
    r = c.run_copy()
    (r / "export" / "model_input.h").unlink()
    return _validate(c, r / "export" / "model.tflite")


@case("validate", "the run retrained after export (model.keras replaced)", "E1", ["model.keras"])
def _(c):
    r = c.run_copy()
    replace_file(r / "model.keras", (c.fx.run2 / "model.keras").read_bytes())
    return _validate(c, r / "export" / "model.tflite")


@case("validate", "the export folder copied away from its run", "W|E1", ["staleness", "model.keras"])
def _(c):
    e = Path(shutil.copytree(c.fx.export, c.dir / "elsewhere" / "export"))
    _allow_validation(c, e)
    c.check = report_passed(e / "validation_report.json")
    return _validate(c, e / "model.tflite")


@case("validate", "the run (with its export) renamed", "H")
def _(c):
    r = c.run_copy("renamed run")
    _allow_validation(c, r / "export")
    c.check = report_passed(r / "export" / "validation_report.json", clips=80)
    return _validate(c, r / "export" / "model.tflite")


@case("validate", "an export copied next to another run (RUN2/export)", "E1", ["model.keras"])
def _(c):
    r2 = c.run_copy("run2", src=c.fx.run2)
    shutil.rmtree(r2 / "export")
    shutil.copytree(c.fx.export, r2 / "export")
    return _validate(c, r2 / "export" / "model.tflite")


@case("validate", "--max-drop nan", "E2", ["--max-drop"])
def _(c):
    return _validate(c, c.fx.export / "model.tflite", "--max-drop", "nan")


@case("validate", "--max-drop 0", "H|E1", ["max-drop", "drop"])
def _(c):
    r = c.run_copy()
    _allow_validation(c, r / "export")
    c.check = report_passed(r / "export" / "validation_report.json")
    return _validate(c, r / "export" / "model.tflite", "--max-drop", "0")


@case("validate", "--data with an evaluate clip missing", "E1", [".wav"])
def _(c):
    d = c.data_copy()
    (d / c.fx.clip("evaluate", 3)).unlink()
    return _validate(c, c.fx.export / "model.tflite", data=d, work=c.dir / "w")


@case("validate", "--work is a user file", "E1", ["notes.txt"])
def _(c):
    return _validate(c, c.fx.export / "model.tflite", work=c.user_file("notes.txt"))


@case("validate", "MODEL is a symlink to model.tflite in another folder", "E1|H", ["config.json"])
def _(c):
    r = c.run_copy()
    (c.dir / "m").mkdir()
    (c.dir / "m" / "model.tflite").symlink_to(r / "export" / "model.tflite")
    _allow_validation(c, c.dir / "m")
    c.check = described("a validation report was written", lambda p: ok_if((c.dir / "m" / "validation_report.json").is_file() or
                              (r / "export" / "validation_report.json").is_file(), "no report"))
    return _validate(c, c.dir / "m" / "model.tflite")


@case("validate", "an export folder with a user's NOTES.md", "H")
def _(c):
    r = c.run_copy()
    notes = c.user_file("run/export/NOTES.md")
    _allow_validation(c, r / "export")
    c.keep(notes)
    c.check = report_passed(r / "export" / "validation_report.json", clips=80)
    return _validate(c, r / "export" / "model.tflite")


# ---------------------------------------------------------------------------- firmware
def _firmware(c, export: Path, *extra, data: Path | None = None, work: Path | None = None) -> list:
    args = ["firmware", export, "--data", data or c.fx.data, "--work", work or c.fx.work]
    if "--targets" not in extra:
        args += ["--targets", "host"]
    if "--host-clips" not in extra:
        args += ["--host-clips", "4"]
    return args + list(extra)


@case("firmware", "EXPORT does not exist", "E1", ["nowhere"])
def _(c):
    return _firmware(c, c.dir / "nowhere")


@case("firmware", "EXPORT is model.tflite (a file)", "E1|H", ["model.tflite"])
def _(c):
    r = c.run_copy()
    c.allow(r / "export" / "firmware")
    c.check = report_passed(r / "export" / "firmware" / "firmware_report.json", host_clips=4)
    return _firmware(c, r / "export" / "model.tflite")


@case("firmware", "EXPORT is a model.tflite alone in a folder (no C sources, no config.json)", "E1|W",
      ["config.json", "--data", "--host-clips"])
def _(c):
    (c.dir / "m").mkdir()
    c.check = described("a firmware report that passed next to the model", lambda p: ok_if(
        any(json.loads(f.read_text()).get("passed") for f in (c.dir / "m").rglob("firmware_report.json")),
        "no passed firmware_report.json"))
    shutil.copy(c.fx.export / "model.tflite", c.dir / "m" / "model.tflite")
    return _firmware(c, c.dir / "m" / "model.tflite")


@case("firmware", "EXPORT is the run folder", "E1", ["{F}/run"])
def _(c):
    return _firmware(c, c.fx.run)


@case("firmware", "one byte of model_data.cc's array edited", "E1", ["model_data.cc"])
def _(c):
    r = c.run_copy()
    edit_text(r / "export" / "model_data.cc", lambda t: t.replace("0x1c,", "0x1d,", 1))
    return _firmware(c, r / "export")


@case("firmware", "kTensorArenaSize in model_settings.h lowered to 4096", "E1", ["model_settings.h"])
def _(c):
    r = c.run_copy()
    edit_text(r / "export" / "model_settings.h",
              lambda t: re.sub(r"kTensorArenaSize = \d+;", "kTensorArenaSize = 4096;", t))
    return _firmware(c, r / "export")


@case("firmware", "--targets host,host", "E2", ["--targets"])
def _(c):
    return _firmware(c, c.fx.export, "--targets", "host,host")


@case("firmware", "--targets ''", "E2", ["--targets"])
def _(c):
    return _firmware(c, c.fx.export, "--targets", "")


@case("firmware", "--targets cortex-m3 (unknown)", "E2", ["--targets", "cortex-m3"])
def _(c):
    return _firmware(c, c.fx.export, "--targets", "cortex-m3")


@case("firmware", "--chunk 100 without --from-audio", "W", ["--chunk"])
def _(c):
    r = c.run_copy()
    c.allow(r / "export" / "firmware")
    c.check = report_passed(r / "export" / "firmware" / "firmware_report.json", host_clips=4)
    return _firmware(c, r / "export", "--chunk", "100")


@case("firmware", "--chunk 0", "E2", ["--chunk"])
def _(c):
    return _firmware(c, c.fx.export, "--from-audio", "--chunk", "0")


@case("firmware", "--chunk 2049 (above the microphone buffer)", "E2", ["--chunk"])
def _(c):
    return _firmware(c, c.fx.export, "--from-audio", "--chunk", "2049")


@case("firmware", "--clips 5 with only the host target", "W", ["--clips"])
def _(c):
    r = c.run_copy()
    c.allow(r / "export" / "firmware")
    c.check = report_passed(r / "export" / "firmware" / "firmware_report.json", host_clips=4)
    return _firmware(c, r / "export", "--clips", "5")


@case("firmware", "--host-clips 0", "E2", ["--host-clips"])
def _(c):
    return _firmware(c, c.fx.export, "--host-clips", "0")


@case("firmware", "--host-clips 1000 (more than the 80 evaluate clips)", "H|W", ["--host-clips"])
def _(c):
    r = c.run_copy()
    c.allow(r / "export" / "firmware")
    c.check = report_passed(r / "export" / "firmware" / "firmware_report.json", host_clips=80)
    return _firmware(c, r / "export", "--host-clips", "1000")


@case("firmware", "--host-clips 3", "H")
def _(c):
    r = c.run_copy()
    c.allow(r / "export" / "firmware")
    c.check = report_passed(r / "export" / "firmware" / "firmware_report.json", host_clips=3)
    return _firmware(c, r / "export", "--host-clips", "3")


@case("firmware", "--from-audio --chunk 1 (one sample per call)", "H")
def _(c):
    r = c.run_copy()
    c.allow(r / "export" / "firmware")
    c.check = report_passed(r / "export" / "firmware" / "firmware_report.json", host_clips=2, from_audio=True)
    return _firmware(c, r / "export", "--host-clips", "2", "--from-audio", "--chunk", "1")


@case("firmware", "--from-audio with an evaluate WAV replaced by other audio (same size, same mtime)", "E1", [".wav"])
def _(c):
    d = c.data_copy()
    a, b = d / c.fx.clip("evaluate", 0), d / c.fx.clip("evaluate", 1)
    st = a.stat()
    replace_file(a, b.read_bytes())
    os.utime(a, ns=(st.st_atime_ns, st.st_mtime_ns))
    w = c.work_copy()
    return _firmware(c, c.fx.export, "--from-audio", "--host-clips", "2", data=d, work=w)


@case("firmware", "--from-audio with a 48 kHz stereo evaluate WAV (features recomputed)", "E1", [".wav"])
def _(c):
    import librosa
    import numpy as np

    d = c.data_copy()
    p = d / c.fx.clip("evaluate", 0)
    x, sr = read_audio(p)
    y = librosa.resample(x[:, 0], orig_sr=sr, target_sr=48000)
    write_audio(p, np.stack([y, y], axis=1), 48000)
    r = c.run_copy()
    return _firmware(c, r / "export", "--from-audio", "--host-clips", "2", data=d, work=c.dir / "w")


@case("firmware", "--third-party copy missing kissfft.tar.gz", "E1", ["kissfft"])
def _(c):
    tp = c.tp_copy()
    (tp / "kissfft.tar.gz").unlink()
    return _firmware(c, c.fx.export, "--third-party", tp)


@case("firmware", "--third-party copy with a truncated tflite-micro.tar.gz (SHA256SUMS present)", "E1",
      ["tflite-micro.tar.gz"])
def _(c):
    tp = c.tp_copy()
    p = tp / "tflite-micro.tar.gz"
    replace_file(p, p.read_bytes()[: p.stat().st_size // 2])
    return _firmware(c, c.fx.export, "--third-party", tp)


@case("firmware", "--third-party copy with a truncated archive and no SHA256SUMS (fresh build cache)", "E1",
      ["ruy.tar.gz"])
def _(c):
    tp = c.tp_copy()
    (tp / "SHA256SUMS").unlink()
    p = tp / "ruy.tar.gz"
    replace_file(p, p.read_bytes()[: p.stat().st_size // 2])
    c.env["ASC_CACHE_DIR"] = str(c.dir / "cache")
    return _firmware(c, c.fx.export, "--third-party", tp)


@case("firmware", "--third-party copy without SHA256SUMS (archives intact)", "W", ["SHA256SUMS"])
def _(c):
    tp = c.tp_copy()
    (tp / "SHA256SUMS").unlink()
    r = c.run_copy()
    c.allow(r / "export" / "firmware")
    c.check = report_passed(r / "export" / "firmware" / "firmware_report.json", host_clips=4)
    return _firmware(c, r / "export", "--third-party", tp)


@case("firmware", "$ASC_THIRD_PARTY is an empty folder", "E1", ["ASC_THIRD_PARTY"])
def _(c):
    (c.dir / "empty").mkdir()
    c.env["ASC_THIRD_PARTY"] = str(c.dir / "empty")
    return _firmware(c, c.fx.export)


@case("firmware", "$ASC_CACHE_DIR is a user file", "E1", ["notes.txt", "ASC_CACHE_DIR"])
def _(c):
    c.env["ASC_CACHE_DIR"] = str(c.user_file("notes.txt"))
    r = c.run_copy()
    return _firmware(c, r / "export")


@case("firmware", "the run retrained after export (model.keras replaced)", "E1", ["model.keras"])
def _(c):
    r = c.run_copy()
    replace_file(r / "model.keras", (c.fx.run2 / "model.keras").read_bytes())
    return _firmware(c, r / "export")


@case("firmware", "re-run where EXPORT/firmware/ holds a user's NOTES.md", "H|W|E1", ["NOTES.md"])
def _(c):
    r = c.run_copy()
    notes = c.user_file("run/export/firmware/NOTES.md", "scope traces of my board\n")
    c.allow(r / "export" / "firmware")
    c.keep(notes)
    c.check = report_passed(r / "export" / "firmware" / "firmware_report.json", host_clips=4)
    return _firmware(c, r / "export")


@case("firmware", "--work is a user file", "E1", ["notes.txt"])
def _(c):
    r = c.run_copy()
    return _firmware(c, r / "export", work=c.user_file("notes.txt"))


@case("firmware", "the export folder copied away from its run", "W", ["staleness", "export"])
def _(c):
    e = Path(shutil.copytree(c.fx.export, c.dir / "elsewhere" / "export"))
    c.allow(e / "firmware")
    c.check = report_passed(e / "firmware" / "firmware_report.json", host_clips=4)
    return _firmware(c, e)


@case("firmware", "the run renamed to a unicode name with a space and a comma", "H")
def _(c):
    r = c.run_copy("run ü, x")
    c.allow(r / "export" / "firmware")
    c.check = report_passed(r / "export" / "firmware" / "firmware_report.json", host_clips=4)
    return _firmware(c, r / "export")


# ---------------------------------------------------------------------------- demo
def _demo_work(c, name: str = "demo") -> Path:
    """A demo folder whose generated dataset is already there (the demo reuses it)."""
    w = c.dir / name
    (w / "data").mkdir(parents=True)
    copy_dataset(c.fx.data, w / "data" / "tiny")
    return w


@case("demo", "--work is a user file", "E1", ["notes.txt"])
def _(c):
    return ["demo", "--work", c.user_file("notes.txt"), "--size", "tiny", *PIPE_SMALL]


@case("demo", "--size 2", "E2", ["--size"])
def _(c):
    return ["demo", "--work", c.dir / "w", "--size", "2", *PIPE_SMALL]


@case("demo", "--model nope", "E2", ["nope", "--model"])
def _(c):
    return ["demo", "--work", c.dir / "w", "--size", "tiny", "--model", "nope"]


@case("demo", "--epochs 0", "E2", ["--epochs"])
def _(c):
    return ["demo", "--work", c.dir / "w", "--epochs", "0"]


@case("demo", "--calibration-size 0", "E2", ["--calibration-size"])
def _(c):
    return ["demo", "--work", c.dir / "w", "--calibration-size", "0"]


@case("demo", "--model-arg depth=3 (not an argument of resnet11)", "E2", ["--model-arg"])
def _(c):
    return ["demo", "--work", _demo_work(c), "--size", "tiny", "--model-arg", "depth=3", "--epochs", "1",
            "--calibration-size", "20", "--firmware-clips", "1"]


@case("demo", "--model-arg width=0", "E2", ["--model-arg", "width"])
def _(c):
    c.check = _what_was_trained(c.dir / "demo", "runs/*/config.json")
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


@case("grid", "--out is a user file", "E1", ["notes.txt"])
def _(c):
    return _grid(c, c.user_file("notes.txt"))


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


@case("grid", "--models resnet11,nope", "E2", ["nope", "--models"])
def _(c):
    return _grid(c, c.dir / "g", "--models", "resnet11,nope")


@case("grid", "--mels ',' (empty list)", "E2", ["--mels"])
def _(c):
    return _grid(c, c.dir / "g", "--mels", ",")


@case("grid", "--window-frames 300 (longer than a 2-s clip)", "E2", ["--window-frames"])
def _(c):
    return _grid(c, c.dir / "g", "--window-frames", "300")


@case("grid", "--window-frames clip,1", "E2", ["--window-frames"])
def _(c):
    return _grid(c, c.dir / "g", "--window-frames", "clip,1")


@case("grid", "--clip-seconds 0", "E2", ["--clip-seconds"])
def _(c):
    return ["grid", "--data", c.fx.data, "--out", c.dir / "g", "--clip-seconds", "0"]


@case("grid", "--work is a user file", "E1", ["notes.txt"])
def _(c):
    return ["grid", "--data", c.fx.data, "--out", c.dir / "g", "--work", c.user_file("notes.txt"), "--clip-seconds", "2",
            *PIPE_SMALL]


@case("grid", "--data does not exist", "E1", ["nowhere"])
def _(c):
    return ["grid", "--data", c.dir / "nowhere", "--out", c.dir / "g", "--clip-seconds", "2", *PIPE_SMALL]


@case("grid", "--model-arg width=0", "E2", ["--model-arg", "width"], forbid=("--window-frames", "more frames"))
def _(c):
    c.check = _what_was_trained(c.dir / "g", "*/config.json")
    return ["grid", "--data", c.fx.data, "--out", c.dir / "g", "--work", c.fx.work, "--clip-seconds", "2",
            "--model-arg", "width=0", "--epochs", "1", "--calibration-size", "20"]


@case("grid", "--window-hop (grid has none)", "E2", ["--window-hop"])
def _(c):
    return _grid(c, c.dir / "g", "--window-hop", "8")


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


# ---------------------------------------------------------------------------- profile (when it exists)
def profile_cases(asc: list[str], env: dict) -> None:
    p = subprocess.run(asc + ["profile", "--help"], capture_output=True, text=True, env=env)
    if p.returncode != 0:
        return
    usage = p.stdout
    extra = []
    for opt, which in (("--data", "data"), ("--work", "work")):
        if opt in usage:
            extra.append((opt, which))

    def common(c):
        out = []
        for opt, which in extra:
            out += [opt, getattr(c.fx, which)]
        return out

    @case("profile", "no arguments", "E2", ["usage", "profile"])
    def _(c):
        return ["profile"]

    @case("profile", "the export does not exist", "E1", ["nowhere"])
    def _(c):
        return ["profile", c.dir / "nowhere", *common(c)]

    @case("profile", "a user file instead of an export", "E1", ["notes.txt"])
    def _(c):
        return ["profile", c.user_file("notes.txt"), *common(c)]

    @case("profile", "an export with model_data.cc edited", "E1", ["model_data.cc"])
    def _(c):
        r = c.run_copy()
        edit_text(r / "export" / "model_data.cc", lambda t: t.replace("0x1c,", "0x1d,", 1))
        return ["profile", r / "export", *common(c)]

    if "--targets" in usage:
        @case("profile", "--targets cortex-m4,cortex-m4", "E2", ["--targets"])
        def _(c):
            return ["profile", c.fx.export, *common(c), "--targets", "cortex-m4,cortex-m4"]

        @case("profile", "--targets host (not a Cortex-M image)", "E2", ["--targets", "host"])
        def _(c):
            return ["profile", c.fx.export, *common(c), "--targets", "host"]

    if "--mcu" in usage:
        @case("profile", "--mcu stm32f9 (unknown)", "E2", ["--mcu", "stm32f9"])
        def _(c):
            return ["profile", c.fx.export, *common(c), "--mcu", "stm32f9"]

    if "--inferences" in usage:
        @case("profile", "--inferences 0", "E2", ["--inferences"])
        def _(c):
            return ["profile", c.fx.export, *common(c), "--inferences", "0"]

    if "--out" in usage:
        @case("profile", "--out is a non-empty user folder", "E1", ["mine"])
        def _(c):
            return ["profile", c.fx.export, *common(c), "--out", c.user_dir("mine")]

        @case("profile", "--out is the run itself", "E1", ["{F}/run"])
        def _(c):
            return ["profile", c.fx.export, *common(c), "--out", c.fx.run]

        @case("profile", "--out is the export itself", "E1", ["{F}/run/export"])
        def _(c):
            return ["profile", c.fx.export, *common(c), "--out", c.fx.export]

    @case("profile", "the run retrained after export (model.keras replaced)", "E1|W", ["model.keras", "stale"])
    def _(c):
        r = c.run_copy()
        replace_file(r / "model.keras", (c.fx.run2 / "model.keras").read_bytes())
        c.allow(r / "export" / "profile")
        return ["profile", r / "export", *common(c)]

    @case("profile", "a whole profile of a copied export with a user's NOTES.md in it", "H|W", timeout=900)
    def _(c):
        r = c.run_copy()
        notes = c.user_file("run/export/NOTES.md")
        c.allow(r / "export" / "profile")
        c.keep(notes)
        c.check = described("EXPORT/profile/ written", lambda p: ok_if((r / "export" / "profile").is_dir() and any((r / "export" / "profile").iterdir()),
                                  "no profile folder written"))
        return ["profile", r / "export", *common(c)]


# ============================================================================ running and judging
NOISE = re.compile(r"^(WARNING: All log messages before absl|[IWEF]\d{4} \d\d:\d\d:\d\d|.*oneDNN custom operations"
                   r"|.*cudart_stub|.*Could not find cuda|.*TF-TRT Warning|.*computation placer already registered"
                   r"|.*Unable to register cu|fully_quantize: |INFO: |\s*$)")
WARN = re.compile(r"warning|no effect|skipped|ignored|no firmware arena probes|no arena probe", re.I)
FIX = re.compile(r"\b(use|choose|run (?:`|the|it|again|asc)|re-run|rerun|give|point|pass|fix|remove|delete|restore|install|replace|check|"
                 r"lower|raise|move|keep|continue|download|re-download|extract|re-extract|fetch|copy|rename|empty|add|"
                 r"set|name each|takes|accepts|one of|choose from|expected|must|needs?|at least|at most|try|free|"
                 r"regenerate|resume|start|convert|fill|generate|increase|shorten|see|registered|one or more of|required|"
                 r"unrecognized arguments)\b", re.I)


def clean_lines(text: str) -> list[str]:
    out = []
    for chunk in text.replace("\r", "\n").splitlines():
        if NOISE.match(chunk) or "it/s]" in chunk or "%|" in chunk:
            continue
        out.append(chunk.rstrip())
    return out


@dataclasses.dataclass
class Outcome:
    n: int
    spec: Spec
    argv: list[str]
    env_extra: dict[str, str]
    returncode: int | None
    seconds: float
    verdict: str
    why: str
    line: str
    stdout: str
    stderr: str
    case_dir: str


def judge(spec: Spec, c: Ctx, p: subprocess.CompletedProcess | None, timed_out: bool, lost: list[str],
          created_junk: list[str]) -> tuple[str, str, str]:
    spec = dataclasses.replace(spec, names=tuple(n.replace("{F}", str(c.fx.root)).replace("{C}", str(c.dir))
                                                 for n in spec.names))
    out, err = (p.stdout, p.stderr) if p else ("", "")
    lines_err, lines_out = clean_lines(err), clean_lines(out)
    err_idx = next((i for i, line in enumerate(lines_err) if re.search(r"\berror:|^error\b", line, re.I)), None)
    message = "\n".join(lines_err[err_idx:]) if err_idx is not None else ""
    warnings = [line for line in lines_err + lines_out if WARN.search(line)]
    named_warnings = [w for w in warnings if not spec.names or any(n.lower() in w.lower() for n in spec.names)]
    show = (lines_err[err_idx] if err_idx is not None else named_warnings[0] if named_warnings
            else lines_err[0] if lines_err else "")
    traceback = "Traceback (most recent call last)" in err or "Traceback (most recent call last)" in out
    if traceback:
        last = [line for line in lines_err if line and not line.startswith(" ")]
        tb_line = next((line for line in reversed(last) if re.match(r"^[\w.]+(Error|Exception|Interrupt)\b", line)), "")
        show = tb_line or show
    rc = p.returncode if p else None
    junk = f"; left behind {created_junk[:3]}" if created_junk else ""

    if lost:
        return "LOST", f"changed or deleted: {', '.join(lost[:4])}{' ...' if len(lost) > 4 else ''}", show
    if timed_out:
        return "HANG", f"no exit within {spec.timeout} s", show
    if traceback:
        return "TRACEBACK", f"exit {rc}, a Python traceback", show
    if rc is not None and rc < 0:
        return "CRASH", f"killed by signal {-rc}", show

    if rc != 0:
        if f"E{rc}" not in spec.expect:
            if rc == 130 or not any(e.startswith("E") for e in spec.expect):
                return "BAD-MESSAGE", f"refused (exit {rc}) an input that should be accepted", show
            if rc not in (1, 2):
                return "BAD-MESSAGE", f"exit status {rc}, documented {sorted(spec.expect)}", show
        problems = []
        if f"E{rc}" not in spec.expect:
            problems.append(f"exit status {rc}, documented {'/'.join(e[1:] for e in sorted(spec.expect) if e[0] == 'E')}")
        if not message and rc != 130:
            problems.append("no error line on stderr")
        text = message if rc != 130 else "\n".join(lines_err)
        if spec.names and not any(n.lower() in text.lower() for n in spec.names):
            problems.append(f"names none of {list(spec.names)}")
        if rc != 130 and not FIX.search(text.split("error:", 1)[-1]):
            problems.append("gives no fix")
        wrong = [f for f in spec.forbid if f.lower() in text.lower()]
        if wrong:
            problems.append(f"wrong cause or fix: says {wrong[0]!r}")
        if not problems and c.recheck is not None:
            r = c.recheck(p)
            if r:
                problems.append(r)
        if problems:
            return "BAD-MESSAGE", "; ".join(problems) + junk, show
        if rc == 130:
            bad = c.check(p) if c.check else None
            return ("OK-HANDLED", "exit 130 and the documented message; " + getattr(c.check, "what", "") + junk, show) if not bad else (
                "SILENT-WRONG", bad, show)
        named = next((n for n in spec.names if n.lower() in text.lower()), None)
        named = os.path.relpath(named, c.dir) if named and named.startswith(str(c.dir)) else named
        named = os.path.relpath(named, c.fx.root) if named and named.startswith(str(c.fx.root)) else named
        return "OK-ERROR", f"exit {rc}; names {named!r}; gives a fix" + junk if named else (
            f"exit {rc}; gives a fix" + junk), show

    # exit status 0: a case's check, when it has one, says whether the result is right
    bad = c.check(p) if c.check else None
    what = getattr(c.check, "what", "the case's check")
    if bad:
        return "SILENT-WRONG", f"accepted, but {bad}" + (" (a warning was printed)" if named_warnings else ""), show
    if "W" in spec.expect and named_warnings:
        named = next((n for n in spec.names if n.lower() in named_warnings[0].lower()), "it")
        return "WARNED", f"accepted with a warning naming {named!r}", named_warnings[0]
    if "H" in spec.expect or c.check:
        checked = f"checked: {what}" if c.check else "accepted"
        return "OK-HANDLED", checked + (f" (warned: {named_warnings[0][:80]})" if named_warnings else ""), show
    if named_warnings:
        return "WARNED", "accepted with a warning (a refusal was expected)", named_warnings[0]
    if "W" in spec.expect:
        return "SILENT-WRONG", f"accepted without a warning naming {list(spec.names)}", show
    return "SILENT-WRONG", "accepted (exit 0, no warning) an input that must be refused", show


def _preexec(rlimit_as: int | None, nobody: bool):
    def fn():
        os.setsid()
        if rlimit_as:
            import resource

            resource.setrlimit(resource.RLIMIT_AS, (rlimit_as, rlimit_as))
        if nobody:
            os.setgroups([])
            os.setgid(65534)
            os.setuid(65534)
    return fn


def run_one(n: int, spec: Spec, fx: Fixtures, cases_root: Path, env: dict, snap: Snapshotter, log) -> Outcome:
    d = cases_root / f"{n:03d}"
    if d.exists():
        shutil.rmtree(d)
    d.mkdir(parents=True)
    c = Ctx(d, fx, env)
    t0 = time.time()
    try:
        argv = [str(a) for a in spec.fn(c)]
    except SetupError as e:
        return Outcome(n, spec, [], {}, None, 0.0, "SETUP-FAILED", str(e), "", "", "", str(d))
    env_extra = {k: v for k, v in c.env.items() if env.get(k) != v}
    if c.as_nobody:  # a scratch HOME the unprivileged user can write
        home = d / ".nobody-home"
        home.mkdir()
        os.chmod(home, 0o777)
        env_nobody = dict(c.env, HOME=str(home), MPLCONFIGDIR=str(home), NUMBA_CACHE_DIR=str(home))
    roots = [fx.root, d, SHARED_THIRD_PARTY, *c.extra_roots]
    before = snap(roots)
    timed_out = False
    p = None
    command = asc_command()
    if c.as_nobody:  # the venv's interpreter lives under /root, which "nobody" cannot enter
        system_python = Path(f"/usr/bin/python{sys.version_info.major}.{sys.version_info.minor}")
        if not system_python.is_file():
            return Outcome(n, spec, argv, {}, None, 0.0, "SETUP-FAILED", f"no {system_python} to run as nobody", "",
                           "", "", str(d))
        site = Path(sys.executable).parent.parent / "lib" / f"python{sys.version_info.major}.{sys.version_info.minor}" / "site-packages"
        env_nobody["PYTHONPATH"] = f"{site}{os.pathsep}{REPO}"
        command = [str(system_python), "-c", "import sys; from asc_cli.main import main; sys.exit(main())"]
    proc = subprocess.Popen(command + argv, cwd=d, env=env_nobody if c.as_nobody else c.env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            preexec_fn=_preexec(c.rlimit_as, c.as_nobody))
    try:
        if c.interrupt is not None:
            sig, when, delay = c.interrupt
            t_start = time.time()
            while proc.poll() is None and not when() and time.time() - t_start < spec.timeout:
                time.sleep(0.05)
            time.sleep(delay)
            if proc.poll() is None:
                os.killpg(proc.pid, sig)
        stdout, stderr = proc.communicate(timeout=spec.timeout)
    except subprocess.TimeoutExpired:
        timed_out = True
        os.killpg(proc.pid, signal.SIGKILL)
        stdout, stderr = proc.communicate()
    p = subprocess.CompletedProcess(argv, proc.returncode, stdout, stderr)
    try:
        os.killpg(proc.pid, signal.SIGKILL)  # leftovers of our own process group, if any
    except (ProcessLookupError, PermissionError):
        pass
    seconds = time.time() - t0
    after = snap(roots)
    allowed = [str(a) for a in c.allowed]
    kept = {str(k) for k in c.kept}

    def is_allowed(path: str) -> bool:
        if path in kept:
            return False
        return any(path == a or path.startswith(a.rstrip("/") + "/") for a in allowed)

    lost = [k[len(str(cases_root)) + 1:] if k.startswith(str(cases_root)) else k
            for k, v in before.items() if after.get(k) != v and not is_allowed(k)]
    junk = [k for k in after if k not in before and (k.startswith(str(fx.root)) or k.startswith(str(SHARED_THIRD_PARTY)))
            and not is_allowed(k)]
    try:
        verdict, why, line = judge(spec, c, p, timed_out, lost, [os.path.relpath(j, fx.root) for j in junk])
    except Exception as e:  # noqa: BLE001  a check of the script itself failed
        verdict, why, line = "SETUP-FAILED", f"the script's check failed: {type(e).__name__}: {e}", ""
    return Outcome(n, spec, argv, env_extra, p.returncode, seconds, verdict, why, line, stdout, stderr, str(d))


def shorten(text: str, fx: Fixtures, cases_root: Path, case_dir: str) -> str:
    return (text.replace(case_dir, "$C").replace(str(fx.root), "$F").replace(str(cases_root), "$CASES")
            .replace(str(REPO), "$REPO"))


def md_cell(text: str, limit: int = 150) -> str:
    text = text.replace("|", "\\|").replace("\n", " ")
    return text if len(text) <= limit else text[: limit - 1] + "…"


def report(outcomes: list[Outcome], fx: Fixtures, cases_root: Path, seconds: float) -> str:
    counts = {v: 0 for v in VERDICTS}
    for o in outcomes:
        counts[o.verdict] = counts.get(o.verdict, 0) + 1
    lines = [f"# Hostile inputs: {len(outcomes)} cases over {len({o.spec.cmd for o in outcomes})} subcommands "
             f"({time.strftime('%Y-%m-%d')}, {seconds / 60:.0f} min, git {_git_head()[:10]})", "",
             "`$F` = the fixtures folder (tiny dataset `data`, feature cache `work`, 2-epoch quarter-width run `run` "
             "with `run/export`, `run2`, archive copy `third_party`); `$C` = the case's own folder (its working "
             "directory). Verdicts and how each case is judged: see the docstring of "
             "`benchmarks/hostile_inputs.py`.", "", "## Summary", "", "| verdict | cases |", "|---|---|"]
    lines += [f"| {v} | {n} |" for v, n in counts.items() if n or v in VERDICTS]
    lines += ["", "## Cases", "", "| # | case | command | exit | verdict | error / warning / first stderr line | why |",
              "|---|---|---|---|---|---|---|"]
    for o in outcomes:
        env = " ".join(f"{k}={shlex.quote(shorten(v, fx, cases_root, o.case_dir))}" for k, v in o.env_extra.items())
        cmd = shorten(" ".join(["asc", *map(shlex.quote, o.argv)]), fx, cases_root, o.case_dir)
        cmd = f"{env} {cmd}".strip()
        lines.append(f"| {o.n} | {o.spec.cmd}: {md_cell(o.spec.title, 90)} | `{md_cell(cmd, 200)}` | "
                     f"{o.returncode if o.returncode is not None else '-'} | **{o.verdict}** | "
                     f"{md_cell(shorten(o.line, fx, cases_root, o.case_dir))} | {md_cell(shorten(o.why, fx, cases_root, o.case_dir), 160)} |")
    bad = [o for o in outcomes if o.verdict not in ("OK-ERROR", "OK-HANDLED", "WARNED")]
    if bad:
        lines += ["", "## Cases that are not OK-ERROR, OK-HANDLED or WARNED", ""]
        for o in bad:
            env = " ".join(f"{k}={shlex.quote(v)}" for k, v in o.env_extra.items())
            tail = "\n".join(clean_lines(o.stderr)[-12:])
            lines += [f"### {o.n}. {o.spec.cmd}: {o.spec.title}: {o.verdict}", "",
                      f"- command (in `{o.case_dir}`): `{(env + ' ') if env else ''}asc {' '.join(map(shlex.quote, o.argv))}`",
                      f"- exit status {o.returncode}; {o.why}", "", "```", tail or "(no stderr)", "```", ""]
    return "\n".join(lines) + "\n"


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--work", default="/tmp/hostile-inputs", help="folder for fixtures, cases and the report")
    ap.add_argument("--only", default=None, help="regular expression on 'NNN command: title' of the cases to run")
    ap.add_argument("--list", action="store_true", help="list the cases and exit")
    ap.add_argument("--rebuild-fixtures", action="store_true")
    ap.add_argument("--reuse-fixtures", action="store_true",
                    help="reuse the fixtures even if they were built at another git commit (by default they are rebuilt)")
    ap.add_argument("--keep-all", action="store_true", help="keep the folders of OK cases too")
    a = ap.parse_args()
    work = Path(a.work).resolve()
    fx = Fixtures(work / "fixtures")
    asc = asc_command()
    env = base_env(fx)
    profile_cases(asc, env)
    numbered = list(enumerate(CASES, 1))
    if a.only:
        numbered = [(n, s) for n, s in numbered if re.search(a.only, f"{n:03d} {s.cmd}: {s.title}")]
    if a.list:
        for n, s in numbered:
            print(f"{n:3d} {s.cmd:<13} {'|'.join(sorted(s.expect)):<8} {s.title}")
        print(f"{len(numbered)} cases over {len({s.cmd for _, s in numbered})} subcommands")
        return 0

    def log(msg: str) -> None:
        print(msg, file=sys.stderr, flush=True)

    t0 = time.time()
    work.mkdir(parents=True, exist_ok=True)
    try:
        build_fixtures(fx, rebuild=a.rebuild_fixtures, reuse=a.reuse_fixtures, log=log)
    except FixtureError as e:
        log(str(e))
        return 3
    shared_before = Snapshotter()([SHARED_THIRD_PARTY])
    cases_root = work / "cases"
    snap = Snapshotter()
    outcomes = []
    for n, spec in numbered:
        log(f"[{n:3d}/{len(CASES)}] {spec.cmd}: {spec.title}")
        o = run_one(n, spec, fx, cases_root, env, snap, log)
        if code_fingerprint() != fx.manifest.get("code"):
            o.why += " (NOTE: the toolkit's code changed after the fixtures were built; rerun to be sure)"
        log(f"        -> {o.verdict} (exit {o.returncode}, {o.seconds:.0f} s): {o.why[:150]}")
        outcomes.append(o)
        if restore_fixtures(fx, log=log, only_if_changed=True, snap=snap):
            o.why += " (the fixtures were restored afterwards)"
        if o.verdict in ("OK-ERROR", "OK-HANDLED", "WARNED") and not a.keep_all and spec.cmd != "demo":
            shutil.rmtree(o.case_dir, ignore_errors=True)
    if Snapshotter()([SHARED_THIRD_PARTY]) != shared_before:
        log(f"WARNING: {SHARED_THIRD_PARTY} changed during the run")
    text = report(outcomes, fx, cases_root, time.time() - t0)
    (work / "hostile_report.md").write_text(text)
    (work / "hostile_report.json").write_text(json.dumps([{
        "n": o.n, "command": o.spec.cmd, "case": o.spec.title, "argv": o.argv, "env": o.env_extra,
        "exit": o.returncode, "verdict": o.verdict, "why": o.why, "line": o.line, "seconds": round(o.seconds, 1),
        "stderr": o.stderr[-20000:], "stdout": o.stdout[-5000:], "folder": o.case_dir} for o in outcomes], indent=1))
    print(text)
    print(f"report: {work / 'hostile_report.md'} (stderr of every case in hostile_report.json)")
    failing = [o for o in outcomes if o.verdict in FAILING or o.verdict == "SETUP-FAILED"]
    return 1 if failing else 0


if __name__ == "__main__":
    sys.exit(main())
