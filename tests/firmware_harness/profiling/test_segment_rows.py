"""Cycle rows that add up: every segment of an Invoke in exactly one row, each row priced on its
own counts, the Invoke their sum (plus one memory row, or each row's own memory from simulated
cache counts), on every core; synthetic counts, no QEMU."""
from __future__ import annotations

import numpy as np
import pytest

from firmware_harness.profiling.cores import CORES
from firmware_harness.profiling.cycle_estimate import estimate_cycles
from firmware_harness.profiling.execution_profile import ExecutionProfile, Segment, merge_counts
from firmware_harness.profiling.execution_profile import merge_cache_counts, merge_flash_reads
from firmware_harness.profiling.instructions import Instruction
from firmware_harness.profiling.memory_system import simulated_flash_cycles
from firmware_harness.profiling.cache_counts import CacheCounts
from firmware_harness.profiling.segment_rows import INTERPRETER, OPERATOR, estimate_rows, invoke_rows
from tflite_export.mcu_targets import MCU_TARGETS

# A scalar loop (loads, ALU, a MAC), a Helium loop (vector loads and a VMLADAV) and interpreter
# code (a call-ish LDM and a branch); addresses as an ELF would have them.
CODE = [(2, "ldr", "r0, [r1, #0]"), (2, "ldr", "r2, [r1, #4]"), (4, "smlad", "r3, r0, r2, r3"),
        (2, "adds", "r1, #8"), (2, "subs", "r4, #1"), (2, "bne", "0x8000"),
        (4, "vldrb.s8", "q0, [r0], #16"), (4, "vldrb.s8", "q1, [r1], #16"), (4, "vmladava.s8", "r4, q0, q1"),
        (2, "adds", "r5, #1"), (4, "le", "lr, 0x800c"),
        (2, "ldmia", "r0!, {r1, r2, r3}"), (2, "cmp", "r1, #0"), (2, "beq", "0x8030"), (2, "adds", "r6, #2"),
        (4, "vadd.i8", "q2, q0, q1"), (4, "vadd.i8", "q3, q0, q1")]


def _instructions() -> dict[int, Instruction]:
    out, addr = {}, 0x8000
    for size, mnemonic, operands in CODE:
        out[addr] = Instruction(addr, size, mnemonic, operands)
        addr += size
    return out


def _segment(index: int, kind: str, op: int | None, counts: dict[int, int], taken: dict[int, int],
             mcus: tuple[str, ...] = ()) -> Segment:
    # simulated cache counts that differ per segment (fetches, misses, prefetch, data)
    cache = {m: CacheCounts(fetches=50 + index, fetch_misses=1 + index, fetch_prefetch_hits=index,
                            prefetch_stall_cycles=2 * index, data_reads=3 * index, data_misses=index // 2)
             for m in mcus}
    return Segment(index=index, kind=kind, mark="m", invoke=0, op_index=op, op_type=None if op is None else "OP",
                   clip=None, frame=None, instructions=sum(counts.values()), marker_instructions=0,
                   address_counts=counts, taken_counts=taken, flash_data_reads=3 * index, flash_data_bytes=12 * index,
                   cache=cache)


def _run(mcus: tuple[str, ...] = ()) -> ExecutionProfile:
    """An Invoke: interpreter, op 0 (scalar loop, 40 trips), interpreter, op 1 (Helium loop, 16
    trips) in two segments, op 2: op 0's loop again with its branch's majority flipped, op 3: vector
    adds on the integer pipe, interpreter."""
    ins = sorted(_instructions())
    scalar, vector, interp, vadd = ins[0:6], ins[6:11], ins[11:15], ins[15:17]
    loop = {a: 40 for a in scalar}
    segs = [_segment(0, "interpreter", None, {a: 2 for a in interp}, {interp[2]: 1}, mcus),
            _segment(1, "operator", 0, loop, {scalar[-1]: 39}, mcus),
            _segment(2, "interpreter", None, {a: 1 for a in interp}, {}, mcus),
            _segment(3, "operator", 1, {a: 16 for a in vector}, {vector[-1]: 15}, mcus),
            _segment(4, "operator", 1, {a: 16 for a in vector}, {vector[-1]: 15}, mcus),
            _segment(5, "operator", 2, {a: 40 for a in scalar}, {scalar[-1]: 1}, mcus),
            _segment(6, "operator", 3, {a: 16 for a in vadd}, {}, mcus),
            _segment(7, "interpreter", None, {a: 3 for a in interp}, {interp[2]: 3}, mcus)]
    return ExecutionProfile(target="t", mode="ops", segments=tuple(segs), invokes=(), frontend=(),
                            total_instructions=0, translation_blocks=0, functions=None, outputs=np.zeros((1, 1)))


def test_every_segment_of_the_invoke_is_in_exactly_one_row():
    run = _run()
    rows = invoke_rows(run, 0)
    assert [(r.label, r.kind) for r in rows] == [("0 OP", OPERATOR), ("1 OP", OPERATOR), ("2 OP", OPERATOR),
                                                 ("3 OP", OPERATOR), ("interpreter", INTERPRETER)]
    whole, _ = merge_counts(run.invoke_segments(0))
    assert sum(sum(r.address_counts.values()) for r in rows) == sum(whole.values())
    assert rows[1].address_counts == {a: 32 for a in sorted(_instructions())[6:11]}
    assert (rows[4].flash_data_reads, rows[4].flash_data_bytes) == (3 * (0 + 2 + 7), 12 * (0 + 2 + 7))


@pytest.mark.parametrize("core", list(CORES))
def test_rows_are_priced_alone_and_add_up_to_the_invoke(core):
    ins = _instructions()
    rows = invoke_rows(_run(), 0)
    est = estimate_rows(rows, ins, core=core)
    alone = [estimate_cycles(r.address_counts, r.taken_counts, ins, core=core).core_cycles for r in rows]
    assert [r.core_cycles for r in est.rows] == pytest.approx(alone)
    assert est.core_cycles == pytest.approx(sum(alone), rel=1e-12)
    operators = estimate_rows([r for r in rows if r.kind == OPERATOR], ins, core=core)
    assert operators.core_cycles == pytest.approx(est.kind_cycles(OPERATOR), rel=1e-12)
    assert est.core_cycles - est.kind_cycles(OPERATOR) == pytest.approx(alone[-1], rel=1e-12)


@pytest.mark.parametrize("core", ["cortex-m7", "cortex-m55", "cortex-m85"])
def test_the_merged_counts_of_the_bound_cores_do_not_add_up(core):
    """Why the rows are priced alone: a throughput bound over the merged Invoke overlaps one
    operator's work with another's (and the M7/M85 branch rule sees op 0 and op 2's loop branch
    merged), so its total is not the sum of the rows."""
    ins = _instructions()
    run = _run()
    est = estimate_rows(invoke_rows(run, 0), ins, core=core)
    counts, taken = merge_counts(run.invoke_segments(0))
    assert estimate_cycles(counts, taken, ins, core=core).core_cycles != pytest.approx(est.core_cycles)


def test_the_memory_row_is_priced_once_on_the_rows_counts():
    ins = _instructions()
    rows = invoke_rows(_run(), 0)
    est = estimate_rows(rows, ins, core="cortex-m4", mcu="nucleo-l4r5zi")
    counts, taken = merge_counts(_run().invoke_segments(0))
    whole = estimate_cycles(counts, taken, ins, mcu="nucleo-l4r5zi", flash_data_reads=sum(r.flash_data_reads for r in rows),
                            flash_data_bytes=sum(r.flash_data_bytes for r in rows))
    assert est.wait_state_cycles == whole.wait_state_cycles > 0
    assert est.wait_states == whole.wait_states
    assert est.cycles == pytest.approx(est.core_cycles + est.wait_state_cycles)
    assert not any("zero wait states" in a for a in est.assumptions)


#: per core, a microcontroller row of that core (flash behind caches where the core has one)
MCU_OF_CORE = {core: next(m for m in MCU_TARGETS.values() if m.core == core and
                          (m.code_memory != "flash" or m.flash_wait_states is not None)).name for core in CORES}


@pytest.mark.parametrize("core", list(CORES))
def test_with_simulated_caches_every_row_carries_its_memory_and_the_rows_add_up(core):
    mcu = MCU_OF_CORE[core]
    ins = _instructions()
    run = _run((mcu,))
    rows = invoke_rows(run, 0)
    est = estimate_rows(rows, ins, core=core, mcu=mcu)
    assert est.memory_per_row  # (that the rows' cycles add up is how RowsEstimate sums them: not tested here)
    assert est.wait_states.total == pytest.approx(est.wait_state_cycles, rel=1e-12)
    operators = estimate_rows([r for r in rows if r.kind == OPERATOR], ins, core=core, mcu=mcu)
    assert operators.cycles == pytest.approx(sum(r.cycles for r in est.rows if r.kind == OPERATOR), rel=1e-12)


@pytest.mark.parametrize("core", list(CORES))
def test_each_rows_memory_is_its_own_simulated_counts_priced(core):
    mcu = MCU_TARGETS[MCU_OF_CORE[core]]
    ins = _instructions()
    run = _run((mcu.name,))
    est = estimate_rows(invoke_rows(run, 0), ins, core=core, mcu=mcu)
    for row in est.rows:
        segs = ([s for s in run.invoke_segments(0) if s.kind == OPERATOR and s.op_index == row.op_index]
                if row.kind == OPERATOR else [s for s in run.invoke_segments(0) if s.kind != OPERATOR])
        counts, taken = merge_counts(segs)
        reads, nbytes = merge_flash_reads(segs)
        alone = estimate_cycles(counts, taken, ins, mcu=mcu, flash_data_reads=reads, flash_data_bytes=nbytes,
                                cache=merge_cache_counts(segs, mcu.name))
        assert (row.core_cycles, row.wait_state_cycles) == pytest.approx((alone.core_cycles, alone.wait_state_cycles))


def test_simulated_misses_are_priced_one_flash_access_each():
    mcu = MCU_TARGETS["nucleo-l4r5zi"]  # flash, no SRAM wait states: the memory row is the flash's alone
    ins = _instructions()
    run = _run((mcu.name,))
    est = estimate_rows(invoke_rows(run, 0), ins, core=mcu.core, mcu=mcu)
    merged = merge_cache_counts(run.invoke_segments(0), mcu.name)
    assert mcu.sram_wait_states == 0 and merged.fetch_misses > 0 and merged.data_misses > 0
    assert est.wait_state_cycles == pytest.approx(sum(simulated_flash_cycles(mcu, merged)))


def test_a_row_without_the_simulation_prices_the_memory_once_on_the_merged_counts():
    ins = _instructions()
    rows = invoke_rows(_run(("stm32f407",)), 0)
    est = estimate_rows(rows, ins, core="cortex-m4", mcu="nucleo-l4r5zi")  # simulated for another MCU only
    assert not est.memory_per_row and all(r.wait_state_cycles is None for r in est.rows)
    assert est.wait_state_cycles == estimate_rows(invoke_rows(_run(), 0), ins, core="cortex-m4",
                                                  mcu="nucleo-l4r5zi").wait_state_cycles > 0
