"""The tiny grid on the local engine against the Ray engine on two one-CPU nodes (127.0.0.1 only).

    .venv/bin/python benchmarks/bench_ray_grid.py [--grid tiny|demo] [--data DIR] [--local-workers 2] [--keep DIR]

Runs the 2 x 2 grid of tests/asc_cli/test_ray_grid.py (frames/s 28,43 x loss ce,focal; ResNet11
at width 0.25, 64 mel, 3 epochs, 2 s clips of the `tiny` generated dataset) twice, each into a
fresh folder: (a) ``asc grid`` (local engine, cells one after the other, ``--local-workers``
processes for features and validation), (b) a Ray head and one worker node of one CPU each started
here (``ray start``, as the tests do) and ``asc grid --engine ray --address`` on them. Prints wall
times, the time inside the cells (``OUT/grid_attempts/<cell>.json``: each attempt's seconds), and
the Ray overhead per cell: the slot-seconds of the two nodes not spent inside a cell (joining the
cluster, the node check, the feature tasks, scheduling, a fresh process per trial) divided by the
cells. The machine's load average is printed before and after: on a shared machine it moves the
figures. The cluster is stopped (every process of its nodes killed) even if a run fails.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests.asc_cli.test_ray_grid import DRIVER_ENV, GRID_ARGS, PLACEMENT, LoopbackCluster  # noqa: E402

#: The grids this benchmark runs: the tests' tiny 2 x 2, and the README's reduced demo grid.
GRIDS = {"tiny": (GRID_ARGS, "tiny"),
         "demo": (["--models", "resnet11,resnet11_se", "--frames", "28,43", "--epochs", "20"], "demo")}

ASC = Path(sys.executable).with_name("asc")


def run(cmd: list[str], log: Path, env: dict | None = None) -> float:
    t0 = time.perf_counter()
    with open(log, "w") as f:
        rc = subprocess.run(cmd, stdout=f, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, timeout=3600,
                            env={**os.environ, **DRIVER_ENV, **(env or {})}).returncode
    if rc != 0:
        sys.exit(f"{' '.join(cmd[:3])} ... failed ({rc}); see {log}")
    return time.perf_counter() - t0


def cell_seconds(out: Path) -> dict[str, float]:
    """Seconds of each cell's attempts (one each when nothing failed)."""
    return {f.stem: sum(a.get("seconds", 0) for a in json.loads(f.read_text())["attempts"])
            for f in sorted((out / "grid_attempts").glob("*.json"))}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--grid", choices=sorted(GRIDS), default="tiny")
    ap.add_argument("--data", default=None, help="a generated dataset of the grid's size (default: make one)")
    ap.add_argument("--local-workers", type=int, default=2)
    ap.add_argument("--keep", default=None, help="folder to keep the grids in (default: a temp dir, removed)")
    a = ap.parse_args()
    grid_args, size = GRIDS[a.grid]

    work = Path(a.keep or tempfile.mkdtemp(prefix="bench-ray-grid-"))
    work.mkdir(parents=True, exist_ok=True)
    print(f"# bench_ray_grid: {time.strftime('%Y-%m-%d %H:%M')}, {platform.machine()}, {os.cpu_count()} cores, "
          f"Python {platform.python_version()}; load average before {os.getloadavg()[0]:.1f}")
    data = Path(a.data) if a.data else work / "data"
    if not a.data:
        run([str(ASC), "make-dataset", str(data), "--size", size], work / "make-dataset.log")

    local_wall = run([str(ASC), "grid", "--data", str(data), "--out", str(work / "local"), *grid_args,
                      "--workers", str(a.local_workers)], work / "local.log")
    local_cells = cell_seconds(work / "local")

    cluster = LoopbackCluster(cpus_per_node=1)
    try:
        t0 = time.perf_counter()
        cluster.start(workers=1)
        start_seconds = time.perf_counter() - t0
        ray_wall = run([str(ASC), "grid", "--data", str(data), "--out", str(work / "ray"), *grid_args,
                        "--engine", "ray", "--address", cluster.address], work / "ray.log", env=cluster.env)
    finally:
        left = cluster.cleanup()
    if left:
        print(f"WARNING: processes left after stopping the cluster: {left}")
    ray_cells = cell_seconds(work / "ray")
    n, slots = len(ray_cells), 2
    import pandas as pd

    local_table, ray_table = (pd.read_csv(work / e / "results.csv") for e in ("local", "ray"))
    compared = [c for c in local_table.columns if c not in PLACEMENT and not c.endswith("seconds")]
    differ = [c for c in compared if not local_table[c].equals(ray_table[c])]
    same = list(local_table.columns) == list(ray_table.columns) and not differ
    print(f"grid: {n} cells ({' '.join(grid_args)})")
    print(f"local engine (--workers {a.local_workers}): wall {local_wall:.1f} s; inside cells "
          f"{sum(local_cells.values()):.1f} s, {sum(local_cells.values()) / n:.1f} s per cell (the first cell of each "
          "feature configuration also computes its features)")
    print(f"ray, 2 nodes x 1 CPU: cluster start {start_seconds:.1f} s (not in the wall time); wall {ray_wall:.1f} s; "
          f"inside cells {sum(ray_cells.values()):.1f} s, {sum(ray_cells.values()) / n:.1f} s per cell (a fresh "
          "process per cell; features computed before, by Ray tasks)")
    overhead = (ray_wall * slots - sum(ray_cells.values())) / n
    print(f"ray overhead: {overhead:.1f} slot-seconds per cell outside the cells; cells "
          f"{(sum(ray_cells.values()) - sum(local_cells.values())) / n:+.1f} s each against local; "
          f"speed-up local/ray wall {local_wall / ray_wall:.2f}x")
    print(f"same table ({len(compared)} columns compared: all but where a cell ran, its attempts and times): {same}"
          + (f"; differing columns: {differ}" if differ else "") + f"; load average after {os.getloadavg()[0]:.1f}")
    show = ["name", "params", "int8_bytes", *[c for c in compared if "accuracy" in c or "agree" in c]]
    print(local_table[show].merge(ray_table[show], on="name", suffixes=("_local", "_ray")).to_string(index=False))
    if not a.keep:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
