"""Estimated ms per inference of a built Cortex-M image on every MCU of its core, and the profile targets.

What ``asc export``'s fit table and ``asc firmware``'s reports show beside each image
(:func:`invoke_latency_ms`): one seeded random input counted under QEMU with the plugin
(:mod:`firmware_harness.profiling.instruction_counts`) and priced by the cycle model
(:mod:`firmware_harness.profiling.cycle_estimate`) with each MCU's wait states, its flash caches
simulated in the same QEMU pass where its row documents them. The run has no operator marks (the
interpreter exactly as in a normal run), so the whole Invoke is one row, priced by ``asc profile``'s
own :func:`~firmware_harness.profiling.segment_rows.estimate_rows`; ``asc profile``
(:mod:`firmware_harness.profiling.profile`) gives the per-operator detail.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from firmware_harness.builds import program as fw_program
from firmware_harness.profiling.cycle_estimate import ms
from firmware_harness.profiling.disassembly import disassemble
from firmware_harness.profiling.instruction_counts import profile_inferences
from firmware_harness.profiling.segment_rows import estimate_rows, invoke_rows
from tflite_export.flatbuffer import io_tensors, read_model_shared
from tflite_export.mcu_targets import MCU_TARGETS

#: The firmware targets ``asc profile`` counts under QEMU (the Cortex-M cores of the cycle model).
PROFILE_TARGETS = ("cortex-m4", "cortex-m7", "cortex-m33", "cortex-m55", "cortex-m85")
DEFAULT_PROFILE_TARGETS = ("cortex-m4",)


def input_elements(model: bytes) -> int:
    """The number of int8 elements of ``model``'s one input tensor."""
    (inp,), _ = io_tensors(read_model_shared(model))
    return int(np.prod(inp.shape))


def invoke_latency_ms(prog: fw_program.Program, model: bytes, work: Path, *, seed: int = 0,
                      log=print) -> dict[str, float]:
    """Microcontroller -> estimated ms per inference on Cortex-M image ``prog`` (one seeded random
    int8 input, the interpreter exactly as in a normal run), for every MCU of ``prog``'s core."""
    rng = np.random.default_rng(seed)
    x = rng.integers(-128, 128, size=(1, input_elements(model)), dtype=np.int8)
    run = profile_inferences(prog, work, int8=x, model=model, mode="invoke", log=log)
    disasm = disassemble(prog.path, objdump=f"{prog.target.prefix}objdump")
    rows = invoke_rows(run, 0)  # no operator marks: one row, the whole Invoke
    return {m.name: round(ms(estimate_rows(rows, disasm, core=m.core, mcu=m).cycles, m.clock_hz), 2)
            for m in MCU_TARGETS.values() if m.core == prog.target.name}
