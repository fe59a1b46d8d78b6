"""The smallest TFLM tensor arena a model runs in, found by measurement.

A child process (``python -m tflite_export.arena MODEL``) loads the model into TFLM's Python
runtime with a large arena, runs one inference and records the allocator's report
(``print_allocations``), then bisects the arena size (16-byte steps) between half that total
and the total, running an inference at each size. It runs in a child because TFLM can abort
the whole process on some too-small arenas instead of returning an error.

The host build's figure is what TFLM's reference kernels need; optimized kernels (e.g.
CMSIS-NN) may add scratch buffers, hence the margin the export adds in the header.
"""
from __future__ import annotations

import dataclasses
import json
import re
import subprocess
import sys
from pathlib import Path

import numpy as np

from keras_asc.errors import AscError
from tflite_export.tflm_runtime import TflmRunner

ALIGN = 16
_TOTAL_RE = re.compile(r"Arena allocation total (\d+) bytes")


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
    from tflite_export.flatbuffer import describe_tensors, operator_names

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


def _runs(model: bytes, arena: int, input_shape) -> bool:
    try:
        TflmRunner(model, arena_bytes=arena).run(np.zeros(input_shape, np.int8))
        return True
    except (RuntimeError, ValueError):
        return False


def _allocation_report(model: bytes, arena: int, input_shape) -> str:
    """Run once and capture what ``print_allocations`` writes to the C-level stderr."""
    runner = TflmRunner(model, arena_bytes=arena)
    runner.run(np.zeros(input_shape, np.int8))
    return runner.allocation_report()


def _probe(path: Path) -> dict:
    model = Path(path).read_bytes()
    big = 64 << 20
    shape = tuple(TflmRunner(model, arena_bytes=big).input_details["shape"])
    report = _allocation_report(model, big, shape)
    m = _TOTAL_RE.search(report)
    total = int(m.group(1)) if m else big
    hi = -(-total // ALIGN) * ALIGN
    while not _runs(model, hi, shape):
        hi *= 2
        if hi > big:
            raise RuntimeError("TFLM does not run this model even with a 64 MiB arena")
    lo = max(ALIGN, (hi // 2) // ALIGN * ALIGN)
    while lo > 4096 and _runs(model, lo, shape):
        lo = (lo // 2) // ALIGN * ALIGN
    if _runs(model, lo, shape):
        hi = lo
    # invariant: hi runs, lo does not
    while hi - lo > ALIGN:
        mid = (lo + hi) // 2 // ALIGN * ALIGN
        if _runs(model, mid, shape):
            hi = mid
        else:
            lo = mid
    return {"min_bytes": hi, "recorded_total": total, "report": report}


def measure_arena(tflite_path: Path, *, timeout: float = 600) -> ArenaMeasurement:
    """Measure ``tflite_path``'s minimal TFLM arena in a child process."""
    proc = subprocess.run([sys.executable, "-m", "tflite_export.arena", str(tflite_path)],
                          capture_output=True, text=True, timeout=timeout)
    if proc.returncode < 0:
        raise ArenaError(
            f"{tflite_path}: TFLM killed the process (signal {-proc.returncode}) while loading or running "
            "the model. A known cause is a degenerate quantization scale (a layer whose activations "
            "collapsed to ~0, e.g. an untrained or diverged model), which TFLM aborts on; check the "
            "export's per-tensor scales and the training run")
    if proc.returncode != 0:
        raise ArenaError(f"{tflite_path}: TFLM arena measurement failed (exit {proc.returncode}):\n"
                           f"{proc.stderr.strip()[-2000:]}")
    d = json.loads(proc.stdout.strip().splitlines()[-1])
    return ArenaMeasurement(int(d["min_bytes"]), int(d["recorded_total"]), d["report"])


if __name__ == "__main__":
    print(json.dumps(_probe(Path(sys.argv[1]))))
