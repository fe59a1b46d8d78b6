"""The cycle model against every comparable MLPerf Tiny board row: MLPerf Tiny's ResNet-8 (IC)
and DS-CNN (KWS), profiled by ``asc profile``'s API, predicted per board and compared with the
latencies published for them.

The models and the measured figures are those of ``../shared/reference/mlperf_tiny/``: every row
of its README's tables is parsed (``benchmarks/mlperf_reference.py``), none is copied here.
Nothing in the cycle model is fitted to them: this script only reads them to print the error.

    python benchmarks/bench_latency.py [--reference DIR] [--inferences 2]

Runs from a clean checkout: it generates each model's C sources, builds the firmware of every
core it needs (cortex-m4, cortex-m33, cortex-m85 = the Cortex-M55 build) and counts them under
QEMU. Per row it prints predicted ms, measured ms, the error in percent and the criterion:

* TFLM rows: the whole Invoke (operators + TFLM's interpreter) behind the board's memory;
* microTVM rows: the operators' sum only (microTVM calls the same CMSIS-NN kernels ahead of
  time, without TFLM's interpreter), said in the row;
* rows of 2022-or-newer software must be within 15 %, the Cortex-M85 (RA8D1) within 25 %; the
  2020 row has no criterion: what is left after the memory model is printed, with the
  instruction-fetch bracket (every fetched flash line missing), without fitting anything.

After the table: for the rows whose caches are not simulated, the bracket of their flash data
reads (all misses, as priced / all hits); and the one kernel microTVM's submission chose
differently from TFLM (KWS's layer 0, read from its generated code), counted as a one-layer
model on each microTVM board, to say how much of those rows' error it is (not applied to the
table; ``--no-microtvm-kernels`` skips it).

Predictions are ``asc profile``'s own (``firmware_harness.profiling.profile.mcu_estimate`` and
``operators_estimate``): the last profiled Invoke (caches warm from the ones before: the default
is two inferences), each operator and the interpreter priced on its own counts
(:mod:`firmware_harness.profiling.segment_rows`), each with its memory cycles from the flash
caches the QEMU plugin simulated where the MCU's row documents them (else the bounded model, one
memory row).
"""
from __future__ import annotations

import argparse
import os
import platform
import resource
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import keras_asc.tf_setup  # noqa: E402,F401  (tf_keras, never Keras 3; before TensorFlow)
from benchmarks.mlperf_reference import (  # noqa: E402
    MODELS, OPERATORS, ReferenceTableError, board_label, check_rows, default_reference, read_reference, software_label)
from firmware_harness.profiling.cycle_estimate import ms  # noqa: E402
from firmware_harness.profiling.execution_profile import merge_counts  # noqa: E402
from firmware_harness.profiling.profile import (  # noqa: E402
    mcu_estimate, operators_estimate, profile_sources, tflite_sources)
from tflite_export.mcu_targets import get_mcu_target  # noqa: E402


def fetch_bracket(run, disasm, mcu_name: str) -> float:
    """Extra cycles if every fetched flash line missed (no cache, no prefetch): the upper bound of
    what instruction fetch could add beyond the model's compulsory misses."""
    counts, _ = merge_counts(run.invoke_segments(len(run.invokes) - 1))
    mcu = get_mcu_target(mcu_name)
    fetched = sum(disasm[a].size * n for a, n in counts.items() if a in disasm)
    return fetched / (mcu.flash_read_bytes or 4) * (mcu.flash_miss_cycles or 0)


def profile_models(reference: Path, targets: tuple[str, ...], mcus: tuple[str, ...], inferences: int) -> dict:
    """model -> target -> (ExecutionProfile, disassembly, TargetProfile), and model -> its report."""
    out, reports = {}, {}
    for model, file in MODELS.items():
        with tempfile.TemporaryDirectory(prefix="bench-latency-") as tmp:
            sources = tflite_sources(reference / file, Path(tmp) / "sources", targets=targets, log=lambda *_: None)
            raw: dict = {}
            report = profile_sources(sources, Path(tmp) / "profile", source=file, targets=targets, mcus=mcus,
                                     inferences=inferences, raw_runs=raw, log=lambda *_: None)
        by_target = {t.target: t for t in report.targets}
        out[model] = {t: (raw[t].run, raw[t].disasm, by_target[t]) for t in targets}
        reports[model] = report
        for failure in report.failures:  # an operator above its core's MAC peak: the model is wrong there
            print(f"PROFILE FAILURE ({model}): {failure}")
    return out, reports


#: KWS's first layer as microTVM's CMSIS-NN partition ran it in MLPerf Tiny v1.0 (tiny_results_v1.0,
#: closed/OctoML/code/microtvm_cmsis_nn/{NUCLEO_L4R5ZI,NRF5340DK}/kws/model/codegen/host/src/default_lib2.c,
#: tvmgen_default_cmsis_nn_main_0: arm_depthwise_conv_wrapper_s8, input 1x49x10x1, filter 1x10x4x64, stride 2,
#: padding w 1 h 4 = "same"), where TFLM runs the model's CONV_2D (arm_convolve_s8).
KWS_LAYER0 = dict(kernel_size=(10, 4), strides=2, padding="same", activation="relu")


def kws_layer0_ms(mcus: tuple[str, ...], targets: tuple[str, ...]) -> dict[str, dict[str, float]]:
    """MCU -> {"conv": ms, "depthwise": ms}: KWS's layer 0 alone as a CONV_2D (TFLM) and as a
    DEPTHWISE_CONV_2D with depth multiplier 64 (microTVM), counted and priced as every row here
    (random weights: the kernels' instruction counts do not depend on them)."""
    import numpy as np  # with TensorFlow: only for this check
    import tf_keras as keras  # heavy: TensorFlow

    from tflite_export.convert import convert_int8

    rng = np.random.default_rng(0)
    calibration = rng.standard_normal((20, 49, 10, 1)).astype(np.float32)
    out: dict[str, dict[str, float]] = {m: {} for m in mcus}
    for name in ("conv", "depthwise"):
        inp = keras.Input((49, 10, 1))
        if name == "conv":
            x = keras.layers.Conv2D(64, **KWS_LAYER0)(inp)
        else:  # the firmware build links TFLM's conv_common.cc only with a CONV_2D: a 1x1 one follows
            x = keras.layers.Conv2D(1, 1)(keras.layers.DepthwiseConv2D(depth_multiplier=64, **KWS_LAYER0)(inp))
        with tempfile.TemporaryDirectory(prefix="bench-latency-layer0-") as tmp:
            path = Path(tmp) / f"{name}.tflite"
            path.write_bytes(convert_int8(keras.Model(inp, x), calibration))
            sources = tflite_sources(path, Path(tmp) / "sources", targets=targets, log=lambda *_: None)
            raw: dict = {}
            report = profile_sources(sources, Path(tmp) / "profile", source=path.name, targets=targets, mcus=mcus,
                                     inferences=2, raw_runs=raw, log=lambda *_: None)
        for m in report.mcus:
            layer = mcu_estimate(m.mcu, raw[m.target].run, raw[m.target].disasm).row(0)
            out[m.mcu][name] = ms(layer.cycles, get_mcu_target(m.mcu).clock_hz)
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--reference", type=Path, default=default_reference())
    ap.add_argument("--inferences", type=int, default=2,
                    help="inferences counted; the last is priced, its caches warm from the ones before (default 2)")
    ap.add_argument("--no-microtvm-kernels", dest="microtvm_kernels", action="store_false",
                    help="skip the count of microTVM's kernel for KWS's layer 0 (two one-layer models, about a minute)")
    a = ap.parse_args()
    try:
        published, notes = read_reference(a.reference)
        comparisons = check_rows(published)
    except ReferenceTableError as e:
        raise SystemExit(f"bench_latency: {e}") from None
    targets = tuple(sorted({c.target for c in comparisons}))
    mcus = tuple(sorted({c.mcu for c in comparisons}))
    t0, c0 = time.perf_counter(), time.process_time()
    runs, reports = profile_models(a.reference, targets, mcus, a.inferences)
    child = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = time.process_time() - c0 + child.ru_utime + child.ru_stime

    lines, gaps, bounds = [], [], []
    for model in MODELS:
        for row, cmp in zip(published, comparisons):
            run, disasm, _ = runs[model][cmp.target]
            est = (operators_estimate if cmp.scope == OPERATORS else mcu_estimate)(cmp.mcu, run, disasm)
            clock = get_mcu_target(cmp.mcu).clock_hz
            predicted, truth = ms(est.cycles, clock), row.ms[model]
            err = (predicted - truth) / truth
            if cmp.tolerance is None:
                left = truth - predicted
                verdict = f"no criterion (2020): {left:+.1f} ms ({left / truth:+.0%} of measured) left after the memory model"
                gaps.append((model, row, est, predicted, truth, ms(fetch_bracket(run, disasm, cmp.mcu), clock), clock))
            else:
                verdict = f"within {cmp.tolerance:.0%}: {'yes' if abs(err) <= cmp.tolerance else '**NO**'}"
            if not est.memory_per_row and est.wait_states.flash_data:  # not simulated: the data reads are a bound
                hits = ms(est.cycles - est.wait_states.flash_data, clock)
                bounds.append(f"{model} on {row.board}: caches not simulated; the flash data reads priced by the "
                              f"bounded model add {ms(est.wait_states.flash_data, clock):.2f} ms; were every one a hit "
                              f"(the lower bound) the row would be {hits:.2f} ms ({100 * (hits - truth) / truth:+.1f} %): "
                              f"measured {truth:g} ms")
            compared = ("operators' sum (no interpreter: microTVM)" if cmp.scope == OPERATORS
                        else "whole Invoke (TFLM)")
            lines.append(f"| {model} | {board_label(row)} | {software_label(row)} | {row.core}, {row.clock} | {compared} "
                         f"| {est.core_cycles:,.0f} | {est.wait_state_cycles:,.0f} | {predicted:.2f} | {truth:g} | "
                         f"{100 * err:+.1f} % | {verdict} |")

    print(f"Cycle model against MLPerf Tiny boards ({time.strftime('%Y-%m-%d')}, {platform.node()}, "
          f"{os.cpu_count()} CPUs; {time.perf_counter() - t0:.0f} s wall, {cpu:.0f} CPU-s incl. QEMU and compilers; "
          f"{a.inferences} seeded input(s))\n")
    print("| model | board (round, submitter) | software | core, clock | compared with | core cycles | "
          "wait-state cycles | predicted ms | measured ms | error | criterion |")
    print("|---|---|---|---|---|---|---|---|---|---|---|")
    print("\n".join(lines))
    print("\nmicroTVM rows: microTVM compiles the graph ahead of time and calls CMSIS-NN's kernels itself, so they are "
          "compared with the sum of the operators' rows (TFLM's interpreter rows left out); its per-layer kernel "
          "choice may differ from TFLM's.")
    for note in notes:
        print(f"\n{note}.")
    for model, row, est, predicted, truth, extra, clock in gaps:
        print(f"\n2020 row, {model} on {row.board} ({row.software}): predicted {predicted:.1f} ms of which memory "
              f"{ms(est.wait_state_cycles, clock):.1f} ms; measured {truth:g} ms; "
              f"if every fetched flash line missed (no cache, no prefetch: the upper bound) {predicted + extra:.1f} ms.")
    for note in bounds:
        print(f"\n{note}.")
    tvm = [(row, cmp) for row, cmp in zip(published, comparisons) if cmp.scope == OPERATORS]
    if a.microtvm_kernels and tvm:
        layer0 = kws_layer0_ms(tuple(sorted({c.mcu for _, c in tvm})), tuple(sorted({c.target for _, c in tvm})))
        print("\nmicroTVM's kernel choice (not in the table): its KWS runs layer 0 (CONV_2D, 1 input channel) as "
              "CMSIS-NN's depthwise convolution with depth multiplier 64 (the submission's generated code), where "
              "TFLM runs arm_convolve_s8; the layer alone, counted and priced as above:")
        for row, cmp in tvm:
            est = operators_estimate(cmp.mcu, runs["KWS"][cmp.target][0], runs["KWS"][cmp.target][1])
            k = layer0[cmp.mcu]
            predicted = ms(est.cycles, get_mcu_target(cmp.mcu).clock_hz) + k["depthwise"] - k["conv"]
            truth = row.ms["KWS"]
            print(f"- {row.board}: layer 0 as CONV_2D {k['conv']:.2f} ms, as depthwise {k['depthwise']:.2f} ms; the "
                  f"KWS row with microTVM's kernel {predicted:.2f} ms against {truth:g} ms measured "
                  f"({100 * (predicted - truth) / truth:+.1f} %)")
    print("\nThe Invoke by rows (the Invoke is the rows' sum by construction: this shows the split, it checks "
          "nothing): per core, the operators' and the interpreter's core cycles (zero wait states, `asc profile`'s "
          "table); per MCU, the rows with their own memory cycles (simulated caches):\n")
    for model in MODELS:
        for target, (run, disasm, tp) in runs[model].items():
            ops = sum(o.cycles for o in tp.operators)
            print(f"- {model} on {target}: operators {ops:,.0f} + interpreter {tp.interpreter_cycles:,.0f} = "
                  f"{tp.invoke_cycles:,.0f} cycles ({tp.invoke_instructions:,d} instructions)")
        for m in reports[model].mcus:
            est = mcu_estimate(m.mcu, runs[model][m.target][0], runs[model][m.target][1])
            if est.memory_per_row:
                print(f"  - {model} on {m.mcu}: rows (core + own memory) {sum(r.cycles for r in est.rows):,.0f} = "
                      f"Invoke {m.cycles_per_inference:,d} cycles (memory {est.wait_state_cycles:,.0f})")


if __name__ == "__main__":
    main()
