"""Feature extraction throughput (clips/s) with 1 and 2 worker processes, in one run.

    .venv/bin/python benchmarks/bench_features.py [--data DIR] [--clips N]

Without --data it generates the demo dataset into work/bench-data (and reports how long that
took). Prints clips/s per worker count and the speed-up ratio, both measured in this run.
"""
from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np


def main() -> None:
    from keras_asc.dataset import read_split
    from keras_asc.feature_cache import extract_features
    from keras_asc.features import FeatureConfig
    from keras_asc.synth import make_dataset

    ap = argparse.ArgumentParser()
    ap.add_argument("--data", type=Path)
    ap.add_argument("--clips", type=int, default=600)
    a = ap.parse_args()
    if a.data is None:
        a.data = Path("work/bench-data/demo")
        t = time.perf_counter()
        make_dataset(a.data, size="demo", seed=0, workers=2)
        print(f"make-dataset demo (or reuse): {time.perf_counter() - t:.1f} s")
    available = read_split(a.data, "train")["path"].tolist()
    paths = [available[i % len(available)] for i in range(a.clips)]  # repeat if the set is small
    cfg = FeatureConfig.seed()
    rates = {}
    for workers in (1, 2):
        out = np.empty((len(paths), *cfg.shape), np.float32)
        t, cpu = time.perf_counter(), time.process_time()
        extract_features(paths, config=cfg, out=out, workers=workers)
        wall = time.perf_counter() - t
        rates[workers] = len(paths) / wall
        busy = f"; this process used {(time.process_time() - cpu) / wall:.2f} cores" if workers == 1 else ""
        print(f"workers={workers}: {rates[workers]:.1f} clips/s ({len(paths)} clips of {cfg.clip_seconds:g} s){busy}")
    print(f"speed-up 2 vs 1 workers: {rates[2] / rates[1]:.2f}x")


if __name__ == "__main__":
    main()
