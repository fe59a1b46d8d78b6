"""Validation throughput (clips/s through TFLM + LiteRT reference + LiteRT optimized) with 1
and 2 worker processes, in one run, plus each runtime's own time per clip.

    .venv/bin/python benchmarks/bench_validate.py EXPORT/model.tflite [--clips 96]

Inputs are random int8 tensors of the model's input shape (speed does not depend on values).
"""
from __future__ import annotations

import argparse
import time
from pathlib import Path


def main() -> None:
    import numpy as np

    from firmware_harness.validation.runners import RUNNERS, make_runner
    from firmware_harness.validation.export_validation import run_all
    from tflite_export.arena import measure_arena

    ap = argparse.ArgumentParser()
    ap.add_argument("model", type=Path)
    ap.add_argument("--clips", type=int, default=96)
    a = ap.parse_args()
    data = a.model.read_bytes()
    arena = measure_arena(a.model).min_bytes
    probe = make_runner("tflm", data, arena_bytes=arena)
    shape = tuple(probe.input_details["shape"])
    x = np.random.default_rng(0).integers(-128, 128, size=(a.clips, *shape), dtype=np.int8)
    for name in RUNNERS:
        r = make_runner(name, data, arena_bytes=arena)
        r.run(x[0])
        t = time.perf_counter()
        for i in range(16):
            r.run(x[i])
        print(f"{name:>10}: {1000 * (time.perf_counter() - t) / 16:.1f} ms per clip (one process)")
    rates = {}
    for workers in (1, 2):
        t = time.perf_counter()
        run_all(data, x, arena=arena, workers=workers)
        rates[workers] = a.clips / (time.perf_counter() - t)
        print(f"workers={workers}: {rates[workers]:.2f} clips/s (all three runtimes, {a.clips} clips, input {tuple(int(v) for v in shape)})")
    print(f"speed-up 2 vs 1 workers: {rates[2] / rates[1]:.2f}x; "
          f"3,000 clips would take {3000 / rates[2] / 60:.1f} min with 2 workers")


if __name__ == "__main__":
    main()
