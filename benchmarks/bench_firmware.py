"""Firmware build and run times, measured in one run.

    python benchmarks/bench_firmware.py EXPORT_DIR --data DATA_DIR [--work WORK] [--clips 10]

For each target: the TFLM library build from an empty cache (a temporary ASC_CACHE_DIR) and
again with the cache warm, the program build, and the time per inference on ``--clips``
evaluate clips (host: real time; QEMU: emulation time, not a chip's). Prints one table.
"""
from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("export_dir")
    p.add_argument("--data", required=True)
    p.add_argument("--work", default="work")
    p.add_argument("--clips", type=int, default=10)
    p.add_argument("--targets", default="host,host-cmsis-nn,cortex-m4")
    a = p.parse_args()

    import numpy as np

    from firmware_harness.builds import program
    from firmware_harness.builds import third_party
    from firmware_harness.builds.targets import get_target
    from firmware_harness.validation.export_validation import load_checked_export
    from keras_asc.feature_cache import build_feature_cache

    export = Path(a.export_dir).resolve()
    _, exp, _ = load_checked_export(export / "model.tflite")
    logmel = np.asarray(build_feature_cache(Path(a.data), Path(a.work), config=exp.features, log=lambda *_: None)
                        .features("evaluate")[:a.clips], np.float32)
    rows = []
    with tempfile.TemporaryDirectory(prefix="asc-bench-") as tmp:
        os.environ[third_party.ENV_CACHE] = str(Path(tmp) / "cache")
        t0 = time.perf_counter()
        tree = third_party.prepare_tflm_tree(third_party.locate_third_party(), log=lambda *_: None)
        prepare = time.perf_counter() - t0
        for name in a.targets.split(","):
            target = get_target(name)
            cold = program.build_program(export, target, Path(tmp) / name, tree=tree, log=lambda *_: None)
            warm = program.build_program(export, target, Path(tmp) / name, tree=tree, log=lambda *_: None)
            run = program.run_program(cold, Path(tmp) / name / "work", logmel=logmel)
            rows.append((name, len(cold.library.sources), cold.build_seconds, warm.build_seconds,
                         run.invoke_seconds / len(logmel), run.wall_seconds / len(logmel)))
    print(f"TFLM tree preparation (extract + patch, once per archive set): {prepare:.1f} s")
    print(f"{'target':<15} {'TFLM files':>10} {'cold build s':>13} {'cached build s':>15} "
          f"{'s/inference':>12} {'wall s/clip':>12}")
    for name, files, cold_s, warm_s, per, wall in rows:
        print(f"{name:<15} {files:>10} {cold_s:>13.1f} {warm_s:>15.1f} {per:>12.4f} {wall:>12.4f}")
    print(f"{os.cpu_count()} cores; {len(logmel)} clips of {export}; QEMU times are emulation, not a chip's")


if __name__ == "__main__":
    main()
