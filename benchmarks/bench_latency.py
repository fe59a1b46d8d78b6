"""The cycle model against real boards: MLPerf Tiny's ResNet-8 and DS-CNN, predicted by
``asc profile`` against the latencies published for TFLM + CMSIS-NN on a NUCLEO-L4R5ZI
(Cortex-M4F, 120 MHz) and an EK-RA6M4 (Cortex-M33, 200 MHz).

The models and the measured figures are those of ``../shared/reference/mlperf_tiny/`` (its
README's table is parsed, not copied here). Nothing in the cycle model is fitted to them: this
script only reads them to print the error.

    python benchmarks/bench_latency.py [--reference DIR] [--inferences 2]

Prints one Markdown row per model x board: predicted ms, measured ms, error in percent, and the
estimate's parts (core cycles, wait-state cycles), then the per-class instruction mix of the
largest operator so a systematic error can be traced to its class.
"""
from __future__ import annotations

import argparse
import re
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import keras_asc.tf_setup  # noqa: E402,F401  (tf_keras, never Keras 3; before TensorFlow)
from firmware_harness.profiling.profile import profile_sources, tflite_sources  # noqa: E402
from firmware_harness.profiling.execution_profile import merge_counts  # noqa: E402
from tflite_export.mcu_targets import get_mcu_target  # noqa: E402

BOARDS = {"NUCLEO-L4R5ZI": ("nucleo-l4r5zi", "cortex-m4"), "EK-RA6M4": ("ek-ra6m4", "cortex-m33")}
MODELS = {"IC": "ic_resnet8_int8.tflite", "KWS": "kws_dscnn_int8.tflite"}


def published(reference: Path) -> dict[tuple[str, str], float]:
    """(model, board) -> measured ms per inference, from the reference README's table."""
    text = (reference / "README.md").read_text()
    out = {}
    for line in text.splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if len(cells) >= 9 and cells[2] in BOARDS and re.fullmatch(r"[\d.]+", cells[6]):
            out[("IC", cells[2])] = float(cells[6])
            out[("KWS", cells[2])] = float(cells[7])
    if len(out) != 4:
        raise SystemExit(f"{reference / 'README.md'}: expected the measured IC and KWS ms of {list(BOARDS)}, found {out}")
    return out


def fetch_bracket(raw, mcu_name: str) -> tuple[int, int, float, float]:
    """What instruction fetch from flash could cost beyond the model's compulsory misses: the hot
    code (instructions executed 1,000 times or more in one Invoke) against the cache, and the
    extra ms if every fetched flash line missed (no cache, no prefetch: an upper bound)."""
    run, disasm = raw
    counts, _ = merge_counts(run.invoke_segments(0))
    mcu = get_mcu_target(mcu_name)
    hot = sum(disasm[a].size for a, n in counts.items() if n >= 1000 and a in disasm)
    fetched = sum(disasm[a].size * n for a, n in counts.items() if a in disasm)
    line = mcu.flash_read_bytes or 4
    all_miss_cycles = fetched / line * (mcu.flash_wait_states or 0) * mcu.flash_clock_divider
    return hot, mcu.cache_bytes, all_miss_cycles, 1000 * all_miss_cycles / mcu.clock_hz


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--reference", type=Path,
                    default=Path(__file__).resolve().parents[2] / "shared" / "reference" / "mlperf_tiny")
    ap.add_argument("--inferences", type=int, default=2)
    a = ap.parse_args()
    measured = published(a.reference)
    targets = tuple(sorted({core for _, core in BOARDS.values()}))
    rows, fetch, t0 = [], [], time.perf_counter()
    for model, file in MODELS.items():
        with tempfile.TemporaryDirectory(prefix="bench-latency-") as tmp:
            sources = tflite_sources(a.reference / file, Path(tmp) / "sources", targets=targets, log=lambda *_: None)
            raw: dict = {}
            report = profile_sources(sources, Path(tmp) / "profile", source=file, targets=targets,
                                     mcus=tuple(m for m, _ in BOARDS.values()), inferences=a.inferences,
                                     raw_runs=raw, log=lambda *_: None)
        by_mcu = {m.mcu: m for m in report.mcus}
        by_target = {t.target: t for t in report.targets}
        for board, (mcu, core) in BOARDS.items():
            m, t = by_mcu[mcu], by_target[core]
            truth = measured[(model, board)]
            rows.append((model, board, core, m.clock_hz, t.invoke_instructions, t.invoke_cycles, m.wait_state_cycles,
                         m.ms_per_inference, truth, t))
            fetch.append((model, board, *fetch_bracket(raw[core], mcu)))
    print(f"Cycle model against MLPerf Tiny boards ({time.strftime('%Y-%m-%d')}; {time.perf_counter() - t0:.0f} s)\n")
    print("| model | board | core, clock | instructions | core cycles | wait-state cycles | predicted ms | "
          "measured ms | error |")
    print("|---|---|---|---|---|---|---|---|---|")
    for model, board, core, clock, instr, cycles, wait, ms, truth, _ in rows:
        print(f"| {model} | {board} | {core}, {clock / 1e6:.0f} MHz | {instr:,d} | {cycles:,.0f} | {wait:,.0f} | "
              f"{ms:.1f} | {truth:.1f} | {100 * (ms - truth) / truth:+.1f} % |")
    print("\nInstruction fetch, the part the model prices least (compulsory misses only):\n")
    print("| model | board | hot code (bytes run 1,000+ times) | cache | extra ms if every fetched line missed |")
    print("|---|---|---|---|---|")
    for model, board, hot, cache, _, extra in fetch:
        print(f"| {model} | {board} | {hot:,d} | {cache:,d} | +{extra:.1f} |")
    print("\nCycles per instruction and MACs per cycle of each profile (zero wait states):\n")
    for model, board, core, _, instr, cycles, _, _, _, t in rows:
        print(f"- {model} on {core}: CPI {cycles / instr:.3f}, {t.macs / cycles:.3f} MACs per cycle "
              f"(peak {t.peak_int8_macs_per_cycle:g}); largest operator "
              + max(((o.op_type, o.share) for o in t.operators), key=lambda x: x[1])[0])


if __name__ == "__main__":
    main()
