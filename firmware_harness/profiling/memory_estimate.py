"""The cycle estimate of a segment on a microcontroller whose flash caches were simulated:
:func:`estimate_on_mcu`, the core's cycles (:func:`~firmware_harness.profiling.cycle_estimate.estimate_cycles`
at zero wait states) plus the wait states of :func:`~firmware_harness.profiling.memory_system.wait_state_cycles`
priced from the simulated cache counts. Without simulated counts it is ``estimate_cycles(mcu=...)``
itself (the bounded memory model).

(``estimate_cycles`` has no parameter for the simulated counts yet; when it gets one, forwarded to
``wait_state_cycles(simulated=...)``, this module reduces to that call.)
"""
from __future__ import annotations

import dataclasses
from collections.abc import Mapping

from firmware_harness.profiling.cycle_estimate import CycleEstimate, estimate_cycles
from firmware_harness.profiling.instructions import Instruction, classify
from firmware_harness.profiling.memory_system import NO_MCU_ASSUMPTION, wait_state_cycles
from firmware_harness.profiling.qemu_plugin import CacheCounts
from tflite_export.mcu_targets import McuTarget


def estimate_on_mcu(address_counts: Mapping[int, int], taken_counts: Mapping[int, int],
                    instructions: Mapping[int, Instruction], *, mcu: McuTarget, flash_data_reads: int | None,
                    flash_data_bytes: int | None, cache: CacheCounts | None) -> CycleEstimate:
    """Cycles of one profiled segment (or merged segments) on ``mcu``: the arguments of
    ``estimate_cycles`` plus ``cache``, the segments' simulated cache counts on ``mcu``
    (``execution_profile.merge_cache_counts``; None: not simulated, priced by the bounds)."""
    if cache is None:
        return estimate_cycles(address_counts, taken_counts, instructions, mcu=mcu, flash_data_reads=flash_data_reads,
                               flash_data_bytes=flash_data_bytes)
    core = estimate_cycles(address_counts, taken_counts, instructions, core=mcu.core)
    classes = {a: classify(instructions[a]) for a, n in address_counts.items() if n > 0 and a in instructions}
    assumptions = [a for a in core.assumptions if a != NO_MCU_ASSUMPTION]
    waits = wait_state_cycles(address_counts, instructions, classes, mcu=mcu, flash_data_reads=flash_data_reads,
                              flash_data_bytes=flash_data_bytes, assumptions=assumptions, simulated=cache)
    return dataclasses.replace(core, mcu=mcu.name, cycles=int(round(core.core_cycles + waits.total)),
                               wait_state_cycles=float(waits.total), wait_states=waits, assumptions=tuple(assumptions))
