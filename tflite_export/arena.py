"""The smallest TFLM tensor arena a model runs in, found by measurement.

:func:`measure_arena` first runs the model check (:func:`tflite_export.model_check.check_model`),
then starts a child process (``python -m tflite_export.arena MODEL``) that runs TFLM's Python
runtime in **forked trials**, one per arena size: TFLM does not survive every too-small arena
(some sizes end in "Failed to allocate tail memory" and signal 11 instead of an error), so no
trial size can take the measurement down with it, and a crash at a size only means "does not
fit". The first trial runs the model with a large arena (:data:`LARGE_ARENA`) and records the
allocator's report (``print_allocations``); only if that run succeeds is the model measured:
the smallest size (16-byte steps) at which allocation and one inference succeed, by bisection
between half the recorded total and a size that runs. A model TFLM cannot run even then is
refused with one paragraph giving TFLM's own reason (or the signal it died of), never the
child's traceback.

The host build's figure is what TFLM's reference kernels need; optimized kernels (e.g.
CMSIS-NN) may add scratch buffers, hence the margin the export adds in the header.
"""
from __future__ import annotations

import dataclasses
import faulthandler
import json
import os
import re
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Callable

import numpy as np

from keras_asc.errors import AscError
from tflite_export.flatbuffer import describe_tensors, operator_names
from tflite_export.model_check import ModelCheckError, check_model, check_parsed_model
from tflite_export.tflm_runtime import TflmRunner

ALIGN = 16
_TOTAL_RE = re.compile(r"Arena allocation total (\d+) bytes")
LARGE_ARENA = 64 << 20  # the first trial's arena: far above any microcontroller's RAM
FIRST_TRIAL_TIMEOUT = 300.0  # seconds for loading and running the model once with LARGE_ARENA
#: Each later trial's bound: this many times the first trial's duration, at least MIN_TRIAL_TIMEOUT.
TRIAL_TIMEOUT_FACTOR = 20
MIN_TRIAL_TIMEOUT = 30.0
MEASURE_TIMEOUT = 600.0  # seconds for the whole measurement (the child process)


class ArenaError(AscError, RuntimeError):
    """TFLM could not run the model at all (it crashed, or failed at every arena size)."""


@dataclasses.dataclass(frozen=True)
class ArenaMeasurement:
    min_bytes: int  # smallest size (multiple of 16) in which allocate + invoke succeed
    recorded_total: int  # what the recording allocator reports with a large arena
    report: str  # the allocator's own report text


def recommended_arena(min_bytes: int, *, margin_fraction: float = 0.10, margin_min: int = 1024) -> int:
    """``min_bytes`` plus ``max(margin_min, margin_fraction * min_bytes)``, rounded up to 16."""
    size = min_bytes + max(margin_min, int(np.ceil(margin_fraction * min_bytes)))
    return -(-size // ALIGN) * ALIGN


@dataclasses.dataclass(frozen=True)
class LiveTensor:
    name: str
    shape: tuple[int, ...]
    nbytes: int


@dataclasses.dataclass(frozen=True)
class RamPeak:
    """The operator at which the most activation bytes are live, and which tensors they are."""

    op_index: int
    op: str
    live_bytes: int
    tensors: tuple[LiveTensor, ...]  # largest first

    def describe(self) -> str:
        rows = "\n".join(f"  {t.nbytes:>10,d} B  {list(t.shape)}  {t.name}" for t in self.tensors)
        return (f"peak at operator {self.op_index} ({self.op}): {self.live_bytes:,d} bytes of activations live "
                f"at once:\n{rows}")


def peak_live_tensors(model) -> RamPeak:
    """Where the activations of parsed flatbuffer ``model`` peak, by tensor lifetimes.

    A non-constant tensor lives from the operator that writes it (the model's inputs from the
    start) to the last operator that reads it (the outputs to the end). TFLM's planner packs
    these lifetimes into the arena, so the peak's sum is a lower bound of the arena, which adds
    scratch buffers and TFLM's own structures; what to shrink is in the peak's list.
    """
    tensors = describe_tensors(model)
    graph = model.subgraphs[0]
    names = operator_names(model)
    n_ops = len(graph.operators)
    first: dict[int, int] = {int(i): 0 for i in graph.inputs}
    last: dict[int, int] = {int(i): n_ops - 1 for i in graph.outputs}
    for k, op in enumerate(graph.operators):
        for i in op.outputs:
            first.setdefault(int(i), k)
        for i in op.inputs:
            if i >= 0 and not tensors[i].constant:
                last[int(i)] = max(last.get(int(i), k), k)
    best = None
    for k in range(n_ops):
        live = [i for i in first if first[i] <= k <= last.get(i, first[i])]
        total = sum(tensors[i].activation_bytes for i in live)
        if best is None or total > best[1]:
            best = (k, total, live)
    k, total, live = best
    rows = sorted((LiveTensor(tensors[i].name.split(";")[0], tuple(tensors[i].shape), tensors[i].activation_bytes)
                   for i in live), key=lambda t: -t.nbytes)
    return RamPeak(k, names[k], total, tuple(rows))


@dataclasses.dataclass(frozen=True)
class Trial:
    """How one forked trial ended: ``status`` "ok" (``value`` is what the function returned),
    "error" (it raised: ``error``), "signal" (the process died of ``signal``) or "timeout"."""

    status: str
    seconds: float
    value: object = None
    error: str = ""
    signal: int = 0
    tflm_said: str = ""  # what TFLM printed (its C-level stderr), last lines

    def cause(self, *, arena: int) -> str:
        said = f" TFLM said: {self.tflm_said}." if self.tflm_said else ""
        if self.status == "error":
            return f"TFLM refused to run it with a {arena:,d}-byte arena ({self.error}).{said}"
        if self.status == "signal":
            return (f"TFLM crashed ({_signal_name(self.signal)}) loading and running it with a {arena:,d}-byte arena, "
                    f"although the model passed the model check, so the cause is not one the check knows.{said}")
        return f"loading and running it once with a {arena:,d}-byte arena did not finish within {self.seconds:.0f} s."


def _signal_name(number: int) -> str:
    try:
        return f"signal {number}, {signal.Signals(number).name}"
    except ValueError:
        return f"signal {number}"


def _last_lines(text: str, n: int = 3) -> str:
    lines = [ln.strip() for ln in text.replace("\r", "\n").splitlines() if ln.strip()]
    return "; ".join(dict.fromkeys(lines[-n:]))[:600]


def isolated(fn: Callable[[], object], *, timeout: float) -> Trial:
    """Run ``fn()`` in a forked process bounded by ``timeout`` seconds: a crash or abort of TFLM
    there ends only that process. ``fn``'s return value must be JSON-serializable. Only for a
    process that has not started threads (the arena child: TFLM and numpy only)."""
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        sys.stdout.flush()
        sys.stderr.flush()
        t0 = time.perf_counter()
        pid = os.fork()
        if pid == 0:  # the trial: never returns into the caller's code
            try:
                faulthandler.disable()  # a crash here is an outcome, not a report for the parent's stderr
                os.dup2(err.fileno(), 1)
                os.dup2(err.fileno(), 2)
                try:
                    payload = {"ok": fn()}
                except Exception as e:  # what TFLM's Python wrapper raises, reported to the parent
                    payload = {"error": f"{type(e).__name__}: {e}"}
                os.write(out.fileno(), json.dumps(payload).encode())
            finally:
                os._exit(0)
        status = _wait(pid, timeout)
        seconds = time.perf_counter() - t0
        err.seek(0)
        said = _last_lines(err.read().decode(errors="replace"))
        if status is None:
            return Trial("timeout", seconds, tflm_said=said)
        if os.WIFSIGNALED(status):
            return Trial("signal", seconds, signal=os.WTERMSIG(status), tflm_said=said)
        out.seek(0)
        try:
            payload = json.loads(out.read().decode() or "{}")
        except ValueError:
            payload = {}
        if "ok" in payload:
            return Trial("ok", seconds, value=payload["ok"], tflm_said=said)
        return Trial("error", seconds, error=payload.get("error", "no result"), tflm_said=said)


def _wait(pid: int, timeout: float) -> int | None:
    """The wait status of child ``pid``, or None after killing it at ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    pause = 0.001
    while True:
        done, status = os.waitpid(pid, os.WNOHANG)
        if done:
            return status
        if time.monotonic() >= deadline:
            os.kill(pid, signal.SIGKILL)
            os.waitpid(pid, 0)
            return None
        time.sleep(pause)
        pause = min(pause * 2, 0.01)


def _zero_input(runner: TflmRunner) -> np.ndarray:
    return np.zeros(runner.input_details["shape"], runner.input_details["dtype"])


def _first_run(model: bytes, arena: int) -> dict:
    """Load and run once with ``arena`` bytes: TFLM's allocation report."""
    runner = TflmRunner(model, arena_bytes=arena)
    runner.run(_zero_input(runner))
    return {"report": runner.allocation_report()}


def _run_once(model: bytes, arena: int) -> bool:
    runner = TflmRunner(model, arena_bytes=arena)
    runner.run(_zero_input(runner))
    return True


def probe(path: Path) -> dict:
    """The measurement itself, in a process without threads (see :func:`isolated`): min_bytes,
    recorded_total and report; raises :class:`ArenaError` when TFLM cannot run the model."""
    model = Path(path).read_bytes()
    check_model(model, source=str(path))
    first = isolated(lambda: _first_run(model, LARGE_ARENA), timeout=FIRST_TRIAL_TIMEOUT)
    if first.status != "ok":
        raise ArenaError(f"{path}: TFLM cannot run this model, so its arena cannot be measured: "
                         f"{first.cause(arena=LARGE_ARENA)} Check that TFLM supports every operator of the model "
                         "in this configuration, or convert the model again")
    report = first.value["report"]
    m = _TOTAL_RE.search(report)
    total = int(m.group(1)) if m else LARGE_ARENA
    trial_timeout = max(MIN_TRIAL_TIMEOUT, TRIAL_TIMEOUT_FACTOR * first.seconds)

    def runs(arena: int) -> bool:
        return isolated(lambda: _run_once(model, arena), timeout=trial_timeout).status == "ok"

    hi = -(-total // ALIGN) * ALIGN
    while not runs(hi):
        hi *= 2
        if hi >= LARGE_ARENA:
            hi = LARGE_ARENA
            break
    lo = (hi // 2) // ALIGN * ALIGN
    if runs(lo):
        hi, lo = lo, 0
    # invariant: hi runs, lo does not (0 never does)
    while hi - lo > ALIGN:
        mid = (lo + hi) // 2 // ALIGN * ALIGN
        if runs(mid):
            hi = mid
        else:
            lo = mid
    return {"min_bytes": hi, "recorded_total": total, "report": report}


def measure_arena(tflite_path: Path, *, model=None, timeout: float = MEASURE_TIMEOUT) -> ArenaMeasurement:
    """Measure ``tflite_path``'s minimal TFLM arena (in a child process, each trial forked).
    ``model``: the file's content already parsed (:func:`tflite_export.flatbuffer.read_model_shared`),
    when the caller has it: the model check runs on it instead of reading and parsing the file again.

    Raises :class:`ModelCheckError` for a model the model check refuses and :class:`ArenaError`
    (one paragraph naming the file and the cause) when TFLM cannot run it or the measurement
    fails."""
    path = Path(tflite_path)
    if model is None:
        check_model(path.read_bytes(), source=str(path))
    else:
        check_parsed_model(model, source=str(path))
    try:
        proc = subprocess.run([sys.executable, "-m", "tflite_export.arena", str(path)],
                              capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        raise ArenaError(f"{path}: the TFLM arena measurement did not finish within {timeout:.0f} s; a model for a "
                         "microcontroller loads and runs in well under a second per trial. Check the machine's "
                         "load, or measure a smaller model") from None
    lines = proc.stdout.strip().splitlines()
    try:
        d = json.loads(lines[-1]) if lines else None
    except ValueError:
        d = None
    if proc.returncode != 0 or not isinstance(d, dict):
        how = (f"was killed by {_signal_name(-proc.returncode)}" if proc.returncode < 0
               else f"failed (exit {proc.returncode})")
        said = _last_lines(proc.stderr, 1)
        raise ArenaError(f"{path}: the TFLM arena measurement process {how} outside TFLM's trials (each of which runs "
                         f"in its own process){': ' + said if said else ''}. Out of memory? Run the command again, "
                         "and report it if it persists")
    if "error" in d:
        cls = ModelCheckError if d.get("kind") == "check" else ArenaError
        raise cls(d["error"])
    return ArenaMeasurement(int(d["min_bytes"]), int(d["recorded_total"]), d["report"])


def _main(path: str) -> None:
    try:
        result = probe(Path(path))
    except ModelCheckError as e:
        result = {"error": str(e), "kind": "check"}
    except AscError as e:
        result = {"error": str(e), "kind": "arena"}
    except Exception as e:  # one line for the parent, never a traceback
        result = {"error": f"{path}: the TFLM arena measurement failed: {type(e).__name__}: {e}", "kind": "arena"}
    print(json.dumps(result))


if __name__ == "__main__":
    _main(sys.argv[1])
