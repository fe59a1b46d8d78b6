"""A case: its spec (command, title, expected outcomes), the lists the case modules register
into, and the context a case function prepares its command in."""
from __future__ import annotations

import dataclasses
import os
import shutil
import signal
import subprocess
import time
from pathlib import Path
from typing import Callable

from .files import copy_dataset
from .fixtures import Fixtures
from .settings import DEFAULT_TIMEOUT, asc_command


@dataclasses.dataclass
class Spec:
    cmd: str
    title: str
    expect: frozenset[str]  # of "E1", "E2", "E130", "H" (handled), "W" (warned)
    names: tuple[str, ...]  # the error/warning must name one of these (file or option)
    fn: Callable
    timeout: int
    forbid: tuple[str, ...]  # phrases that state a wrong cause or fix
    group: str = ""  # the case module's name, selected by --stage


class CaseList(list):
    """The cases of one module, in the order they run; ``group`` is the name ``--stage`` selects."""

    def __init__(self, group: str):
        super().__init__()
        self.group = group

    def case(self, cmd: str, title: str, expect: str, names=(), *, timeout: int = DEFAULT_TIMEOUT, forbid=()):
        """Register the decorated function ``fn(ctx) -> argv`` as a case."""
        def deco(fn):
            self.append(Spec(cmd, title, frozenset(expect.split("|")), tuple(names), fn, timeout, tuple(forbid),
                             self.group))
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
        #: at exit 0 with a warning: a problem with that warning (e.g. on the wrong stream) makes it BAD-MESSAGE
        self.warning_check: Callable[[subprocess.CompletedProcess], str | None] | None = None

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


def killed_run(c: Ctx, sig: int, *, epochs: int = 6, first_epoch_done: bool = True) -> tuple[Path, list]:
    """Start a small training run into CASE/r and kill it with ``sig`` once its first epoch is
    done (or before, as soon as its config.json exists). Returns the run folder and its argv."""
    r = c.dir / "r"
    argv = ["train", "--data", c.fx.data, "--work", c.fx.work, "--out", r, "--model-arg", "width=0.25", "--epochs",
            str(epochs), "--clip-seconds", "2", "--batch-size", "16"]
    if first_epoch_done:
        c.start_and_kill(argv, sig, lambda: (r / "state.json").is_file(), delay=0.4)
    else:
        c.start_and_kill(argv, sig, lambda: (r / "config.json").is_file(), delay=0.0)
    return r, argv

