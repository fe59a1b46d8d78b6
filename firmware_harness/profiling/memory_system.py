"""The microcontroller's memory system as the cycle model prices it: flash wait states behind its
cache or accelerator (instruction fetch, literal pools, streamed weight reads) and SRAM wait
states (:func:`wait_state_cycles`), from the :mod:`tflite_export.mcu_targets` row.

Two ways to price the flash, chosen by what the profile holds:

* **Simulated** (:func:`simulated_flash_cycles`): the QEMU plugin ran the MCU's documented caches
  access by access (``firmware/qemu_plugin/cache_model.c``; ``CacheCounts`` per segment), so
  misses include capacity and conflict misses, and the prefetch buffer's hits are known.
* **Bounded** (the rest of this module, for an MCU whose cache geometry is not documented or a
  profile without the simulation): compulsory misses of the code lines, streamed weight reads.
"""
from __future__ import annotations

import dataclasses
import re
from collections.abc import Mapping

from firmware_harness.profiling.errors import CycleModelError
from firmware_harness.profiling.instructions import (
    LOAD,
    LOAD_LITERAL,
    LOAD_MULTIPLE,
    MVE_LOAD,
    Instruction,
    transfer_words,
)
from firmware_harness.profiling.cache_counts import CacheCounts
from keras_asc.errors import AscError
from tflite_export.mcu_targets import McuTarget, get_mcu_target

#: What :func:`wait_state_cycles` says when no microcontroller was given.
NO_MCU_ASSUMPTION = "no microcontroller given: zero wait states"


@dataclasses.dataclass(frozen=True)
class WaitStates:
    """Memory cycles on top of the zero-wait-state core cycles."""

    instruction_fetch: float = 0.0  # simulated fetch misses and prefetch stalls, else compulsory misses
    literal_loads: float = 0.0  # compulsory misses of the literal-pool lines it read
    flash_data: float = 0.0  # simulated data-cache misses (literal pools included), else streamed weight reads
    sram: float = 0.0  # SRAM wait states on data reads

    @property
    def total(self) -> float:
        return self.instruction_fetch + self.literal_loads + self.flash_data + self.sram

    def __add__(self, other: WaitStates) -> WaitStates:
        return WaitStates(*(a + b for a, b in zip(dataclasses.astuple(self), dataclasses.astuple(other))))


def _literal_address(ins: Instruction) -> int | None:
    m = re.search(r"\[\s*pc\s*(?:,\s*#(-?(?:0x)?[0-9a-f]+))?\s*\]", ins.operands)
    if m:
        imm = int(m.group(1), 0) if m.group(1) else 0
        return ((ins.address + 4) & ~3) + imm
    m = re.match(r"\s*r\d+,\s*([0-9a-f]+)\b", ins.operands)
    return int(m.group(1), 16) if m else None


def resolve_mcu(mcu: str | McuTarget | None) -> McuTarget | None:
    """The microcontroller row ``mcu`` names (a row or None passes through); an unknown name is a
    :class:`CycleModelError`."""
    if mcu is None or isinstance(mcu, McuTarget):
        return mcu
    try:
        return get_mcu_target(mcu)
    except AscError as e:
        raise CycleModelError(str(e)) from None


def _flash_priced(mcu: str | McuTarget, *, caller: str) -> tuple[McuTarget | None, float | None]:
    """(the MCU, None) when its flash reads have a documented price; else (None, what ``caller``
    returns: 0.0 in zero-wait-state code memory (ITCM), None when the wait states are not documented)."""
    t = resolve_mcu(mcu)
    if t is None:
        raise CycleModelError(f"{caller} needs a microcontroller (a tflite_export.mcu_targets name)")
    if t.code_memory != "flash":
        return None, 0.0
    if t.flash_wait_states is None:
        return None, None
    return t, None


def flash_read_penalty(mcu: str | McuTarget) -> float | None:
    """Expected wait cycles (core clock) of one 32-bit data read from flash while streaming a
    weight tensor: a miss once per flash line of ``flash_read_bytes`` (4 when not documented: every
    read misses), each ``flash_wait_states x flash_clock_divider`` cycles. 0 when the constants
    are in zero-wait-state memory (ITCM); None when the flash wait states are not documented.
    (:func:`flash_data_cycles` prices counted reads by their bytes.)"""
    t, unpriced = _flash_priced(mcu, caller="flash_read_penalty")
    if t is None:
        return unpriced
    line = t.flash_read_bytes or 4
    return min(1.0, 4 / line) * miss_cycles(t)


def flash_data_cycles(mcu: str | McuTarget, reads: int, nbytes: int | None = None) -> float | None:
    """Wait cycles (core clock) of ``reads`` data reads from flash of ``nbytes`` bytes in all
    (literal pools excluded: those are priced with the code's flash lines), read as a stream.

    A flash access returns a whole flash line of ``flash_read_bytes`` and the cache or
    accelerator in front of the flash serves the rest of that line, so streaming through a
    weight tensor misses once per line's worth of bytes: ``nbytes / flash_read_bytes`` misses of
    ``flash_wait_states x flash_clock_divider`` cycles each (never more than one per read). Bytes,
    not reads, because the kernels read weights with any access size: an int8 LDRB uses a
    sixteenth of a 128-bit line, an LDRD two words of it. Line widths: each family's flash read
    width as ``tflite_export/mcu_targets.py`` records it from the reference manuals (recalled
    there, not re-read): STM32F4 128 bits (RM0090 3.5.2; ART data cache of 8 x 128-bit lines),
    STM32L4+ 64 bits (RM0432 "Read access latency"), STM32F7 and STM32H7 256-bit flash words
    (RM0385, RM0433; the Cortex-M7 L1 data cache's lines are 32 bytes too, [M7-TRM]). Data the
    cache keeps between two passes over a tensor is not credited (an upper bound when a segment's
    flash data fits the data cache: small tensors re-read by every output pixel). When the line width
    is not documented (RA6M4) every read misses, as when only ``reads`` is known (``nbytes`` None)
    on a documented line: ``reads x`` :func:`flash_read_penalty` (32-bit reads assumed).
    0 in zero-wait-state code memory (ITCM); None when the flash wait states are not documented."""
    t, unpriced = _flash_priced(mcu, caller="flash_data_cycles")
    if t is None:
        return unpriced
    per_miss = miss_cycles(t)
    if t.flash_read_bytes is None:
        return float(reads * per_miss)
    if nbytes is None:
        return reads * flash_read_penalty(t)
    return min(float(reads), nbytes / t.flash_read_bytes) * per_miss


def miss_cycles(mcu: McuTarget) -> int | None:
    """Core cycles one flash access costs: ``flash_wait_states x flash_clock_divider`` (None when
    the wait states are not documented)."""
    return mcu.flash_miss_cycles


def simulated_flash_cycles(mcu: McuTarget, counts: CacheCounts) -> tuple[float, float] | None:
    """(instruction fetch, data) wait cycles of ``counts``, one segment's (or several segments')
    simulated flash caches on ``mcu``; None when its flash wait states are not documented.

    * A miss (fetch or data) costs :func:`miss_cycles`: one flash access; the rest of a line longer
      than one flash read is filled by later accesses, each a miss of its own when it is used
      (sectored lines), and the critical word is returned first ([M7-TRM] 5.9), so nothing more
      is charged per line.
    * A prefetch hit costs what the buffer had not yet read when the fetch came:
      ``max(0, miss_cycles - instructions executed since the prefetch began)``, counted by the
      plugin with each instruction taken as one cycle (an upper bound on the stall: an instruction
      that takes longer hides more). A prefetch that had time to finish costs nothing.
    * A hit costs nothing (the ART and the L1 caches return a hit with zero wait states)."""
    per_miss = miss_cycles(mcu)
    if per_miss is None:
        return None
    fetch = counts.fetch_misses * per_miss + counts.prefetch_stall_cycles
    return float(fetch), float(counts.data_misses * per_miss)


def wait_state_cycles(address_counts: Mapping[int, int], instructions: Mapping[int, Instruction],
                      classes: Mapping[int, str], *, mcu: McuTarget | None, flash_data_reads: int | None,
                      assumptions: list[str], flash_data_bytes: int | None = None,
                      simulated: CacheCounts | None = None) -> WaitStates:
    """Memory wait cycles of a segment (core clock cycles); appends its assumptions.

    With ``simulated`` (the segment's simulated cache counts on ``mcu``), instruction fetch and every
    data read from flash (literal pools included) are priced by :func:`simulated_flash_cycles`;
    without, as follows (bounds):

    * Instruction fetch and literal pools (code memory in flash behind the MCU's cache or
      accelerator): one miss per distinct flash line the segment touched (``flash_read_bytes``;
      4 when not documented), each ``flash_wait_states x flash_clock_divider`` cycles. The
      segment's loops are assumed to fit the cache; when the executed code is larger than
      ``cache_bytes`` that is said in the assumptions (capacity misses are not priced).
    * Weight and constant reads from flash (``flash_data_reads`` reads of ``flash_data_bytes``
      bytes, literal loads not among them): :func:`flash_data_cycles`, one miss per flash line of
      bytes streamed.
    * SRAM: ``sram_wait_states`` per 32-bit data read that is not from flash (loads, LDM words,
      4 per 128-bit vector load, less the flash data reads). Stores retire into the write buffer
      ([M4-TRM] 3.3.2) and are not charged."""
    if mcu is None:
        assumptions.append(NO_MCU_ASSUMPTION)
        return WaitStates()
    fetch = literal = flash = sram = 0.0
    data_reads = 0
    literal_reads = 0
    for addr, cls in classes.items():
        if cls in (LOAD, LOAD_MULTIPLE, MVE_LOAD):
            data_reads += transfer_words(instructions[addr]) * address_counts[addr]
        elif cls == LOAD_LITERAL:
            literal_reads += address_counts[addr]
    if mcu.code_memory == "flash" and simulated is not None:
        priced = simulated_flash_cycles(mcu, simulated)
        geometry = f"I {mcu.icache.lines} x {mcu.icache.line_bytes} B, {mcu.icache.ways}-way" if mcu.icache else ""
        assumptions.append(f"{mcu.name}: flash caches simulated access by access ({mcu.cache}; {geometry}); the "
                           "hit rates are in the report's per-operator table")
        if priced is None:
            assumptions.append(f"{mcu.name}: flash wait states at {mcu.clock_hz / 1e6:g} MHz not documented here; "
                               "the simulated misses are not priced")
        else:
            fetch, flash = priced
            assumptions.append(f"{mcu.name}: a flash miss costs {miss_cycles(mcu)} cycles, a prefetch hit what the "
                               "instructions since the prefetch began did not hide (one cycle each)")
    elif mcu.code_memory == "flash":
        if mcu.flash_wait_states is None:
            assumptions.append(f"{mcu.name}: flash wait states at {mcu.clock_hz / 1e6:g} MHz not documented here; "
                               "instruction-fetch and flash-data wait cycles not counted")
        else:
            line = mcu.flash_read_bytes or 4
            per_miss = miss_cycles(mcu)
            code_lines = {a // line for a, n in address_counts.items() if n > 0}
            lit_lines = set()
            for a, cls in classes.items():
                if cls == LOAD_LITERAL:
                    la = _literal_address(instructions[a])
                    if la is not None:
                        lit_lines.add(la // line)
            fetch = len(code_lines) * per_miss
            literal = len(lit_lines - code_lines) * per_miss
            footprint = len(code_lines) * line
            if mcu.cache_bytes and footprint > mcu.cache_bytes:
                assumptions.append(f"{mcu.name}: the segment executed {footprint:,d} bytes of code, more than the "
                                   f"{mcu.cache_bytes:,d}-byte {mcu.cache or 'cache'}; only compulsory misses are priced")
            if flash_data_reads is None:
                pen = flash_read_penalty(mcu) or 0.0
                assumptions.append(f"{mcu.name}: weight reads from flash not counted (no memory trace: pass "
                                   f"flash_data_reads=); each would add about {pen:.2f} cycles")
            else:
                flash = flash_data_cycles(mcu, flash_data_reads, flash_data_bytes) or 0.0
                if mcu.flash_read_bytes is None:
                    assumptions.append(f"{mcu.name}: flash read width not documented here: every data read from "
                                       f"flash (weights, constants) misses, {per_miss} wait cycles")
                elif flash_data_bytes is None:
                    assumptions.append(f"{mcu.name}: data reads from flash assumed 32-bit, streamed: one "
                                       f"{per_miss}-cycle miss per {line}-byte flash line")
                else:
                    assumptions.append(f"{mcu.name}: data reads from flash (weights, constants; literal pools "
                                       f"excluded) priced as streamed: one {per_miss}-cycle miss per {line} bytes "
                                       f"read (flash line), reuse in the {mcu.cache or 'cache'} not credited")
    if mcu.sram_wait_states:
        from_sram = max(0, data_reads - (flash_data_reads or 0))
        sram = from_sram * mcu.sram_wait_states
    return WaitStates(instruction_fetch=float(fetch), literal_loads=float(literal), flash_data=float(flash),
                      sram=float(sram))
