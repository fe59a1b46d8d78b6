"""The cycle model: hand-counted instruction mixes priced from the TRM numbers, classification of
real mnemonics, unpriced instructions reported, the MAC peak check, the memory wait states."""
from __future__ import annotations

import shutil
import subprocess
import textwrap

import pytest

from firmware_harness.profiling.cores import CORES
from firmware_harness.profiling.cycle_estimate import estimate_cycles, ms
from firmware_harness.profiling.cycle_report import check_against_peak, format_estimate
from firmware_harness.profiling.disassembly import disassemble, parse_objdump
from firmware_harness.profiling.errors import CycleModelError, PeakExceeded
from firmware_harness.profiling.instructions import (
    Instruction,
    branch_kind,
    classify,
    register_list,
    transfer_words,
    writes_pc,
)
from firmware_harness.profiling.memory_system import flash_data_cycles, flash_read_penalty
from tflite_export.mcu_targets import MCU_TARGETS, estimated_ms

GCC = "arm-none-eabi-gcc"
needs_gcc = pytest.mark.skipif(shutil.which(GCC) is None or shutil.which("arm-none-eabi-objdump") is None,
                               reason="arm-none-eabi-gcc/binutils not installed (Debian: gcc-arm-none-eabi)")

# A Cortex-M4 mix. The loop runs 10 times: SUBS 10 executions, BNE 10 (taken 9).
M4_MIX = """
    push {r4, r5, lr}
    ldr r0, [r1, #0]
    ldr r2, [r1, #4]
    smlad r3, r0, r2, r3
    sdiv r4, r3, r2
    adds r1, #8
    ldr r5, [r1]
    ldm r1, {r0, r2, r3, r4}
    cmp r0, #0
    it eq
    moveq r0, #1
    vmla.f32 s0, s1, s2
    str r0, [r1, #4]
loop:
    subs r4, #1
    bne loop
    pop {r4, r5, pc}
"""
LOOP_TRIPS = 10

# A Cortex-M55 mix: 8 trips of a Helium loop of three vector loads and one VMLADAV.
M55_MIX = """
    push {r4, lr}
    ldr r0, [r1]
    adds r0, #1
    dls lr, r2
loop:
    vldrb.s8 q0, [r0], #16
    vldrb.s8 q1, [r1], #16
    vldrb.s8 q2, [r3], #16
    vmladava.s8 r4, q0, q1
    le lr, loop
    smlad r3, r4, r4, r3
    mov r0, r3
    pop {r4, pc}
"""
M55_TRIPS = 8


def build(tmp_path, body: str, *, cpu: str, fpu: str = "") -> dict:
    src = tmp_path / "mix.S"
    src.write_text("  .syntax unified\n  .thumb\n  .global _start\n  .type _start, %function\n_start:\n"
                   + textwrap.dedent(body))
    elf = tmp_path / "mix.elf"
    flags = [f"-mcpu={cpu}", "-mthumb", "-mfloat-abi=hard", *([f"-mfpu={fpu}"] if fpu else [])]
    subprocess.run([GCC, *flags, "-nostdlib", "-Wl,-e,_start", "-Wl,-Ttext=0x8000", "-o", str(elf), str(src)],
                   check=True, capture_output=True)
    return disassemble(elf)


def counts(ins: dict, loop_bases: tuple[str, ...], trips: int) -> tuple[dict, dict]:
    """Every instruction once, the loop body ``trips`` times; the loop's branch taken trips-1 times,
    the final POP {..., pc} taken once."""
    addrs = sorted(ins)
    loop_start = min(a for a in addrs if ins[a].base in loop_bases)
    loop_end = next(a for a in addrs if a >= loop_start and ins[a].base in ("b", "le"))
    address_counts = {a: trips if loop_start <= a <= loop_end else 1 for a in addrs}
    return address_counts, {loop_end: trips - 1, addrs[-1]: 1}


@needs_gcc
@pytest.mark.parametrize("core", ["cortex-m4", "cortex-m33"])
def test_m4_table_prices_the_mix_as_counted_by_hand(tmp_path, core):
    ins = build(tmp_path, M4_MIX, cpu="cortex-m4", fpu="fpv4-sp-d16")
    ac, tc = counts(ins, ("sub",), LOOP_TRIPS)
    # Cortex-M4 TRM Table 3-1 / 7-1 (the M33 uses the same table, as LLVM does):
    hand = (1 + 3  # PUSH {r4, r5, lr}: 1+N
            + 2 + 2  # LDR, LDR
            + 1  # SMLAD
            + 7  # SDIV: 2..12, midpoint
            + 1  # ADDS
            + 2  # LDR
            + 1 + 4  # LDM of 4 registers: 1+N
            + 1 + 1 + 1  # CMP, IT, MOVEQ
            + 3  # VMLA.F32
            + 1  # STR Rx,[Ry,#imm]: always one cycle (3.3.2)
            + LOOP_TRIPS * 1 + LOOP_TRIPS * 1  # SUBS, BNE
            + 1 + 3)  # POP {r4, r5, pc}: 1+N
    hand += -1  # the second LDR pipelines after the first (its address does not use r0)
    hand += +1  # LDR r5, [r1] right after ADDS r1 (address dependency on a data-processing result)
    hand += -1  # IT folded onto the 16-bit CMP
    hand += 2 * (LOOP_TRIPS - 1) + 2 * 1  # P = 2 per taken branch: BNE 9 times, POP {pc} once
    assert hand == 74
    assert estimate_cycles(ac, tc, ins, core=core).cycles == hand


@needs_gcc
def test_m7_prices_the_mix_as_a_dual_issue_bound(tmp_path):
    ins = build(tmp_path, M4_MIX, cpu="cortex-m7", fpu="fpv5-sp-d16")
    ac, tc = counts(ins, ("sub",), LOOP_TRIPS)
    single_issue = (1 + 3) + 7 + (1 + 4) + (1 + 3)  # PUSH, SDIV, LDM, POP: single issue (LLVM M7)
    # dual-issuable: 3 LDR, SMLAD, ADDS, CMP, IT, MOVEQ, VMLA, STR, 10 SUBS, 10 BNE = 30
    pairable = 3 + 1 + 1 + 1 + 1 + 1 + 1 + 1 + LOOP_TRIPS + LOOP_TRIPS
    alu_users = 1 + 1 + 1 + 1 + LOOP_TRIPS  # ADDS, CMP, IT, MOVEQ, SUBS on 2 ALUs
    bound = max(-(-pairable // 2), 1, -(-alu_users // 2), -(-3 // 2), 1, LOOP_TRIPS, 1)
    mispredicts = min(LOOP_TRIPS - 1, 1) + 1  # BNE's minority direction once; the return always
    hand = single_issue + bound + 4 * mispredicts
    assert (bound, hand) == (15, 43)
    assert estimate_cycles(ac, tc, ins, core="cortex-m7").cycles == hand


@needs_gcc
def test_m55_prices_helium_by_beats_per_pipe(tmp_path):
    ins = build(tmp_path, M55_MIX, cpu="cortex-m55")
    ac, tc = counts(ins, ("vldrb",), M55_TRIPS)
    scalar = ((1 + 2) + 1 + 1 + 1  # PUSH {r4, lr}, LDR, ADDS, DLS
              + M55_TRIPS * 1  # LE: no refill (low-overhead loop)
              + 1 + 1 + (1 + 2))  # SMLAD, MOV, POP {r4, pc}
    vector = max(4 * M55_TRIPS, 2 * (3 * M55_TRIPS))  # 2 beats per instruction; the load/store pipe is busiest
    stalls = 1 + 1  # ADDS reads the LDR's r0; MOV reads the SMLAD's r3 (latency 2, issue 1)
    hand = scalar + vector + stalls + 3 * 1  # POP {pc} taken: P = 3
    assert hand == 72
    est = estimate_cycles(ac, tc, ins, core="cortex-m55")
    assert est.cycles == hand
    assert est.by_class["mve_load"].instructions == 3 * M55_TRIPS


def test_real_mnemonics_fall_in_their_timing_classes():
    cases = [("smlad", "r0, r1, r2, r0", "dsp_mac"), ("ldrd", "r2, r3, [r1]", "load_multiple"),
             ("ldmia.w", "r1, {r4, r5, r6, r7}", "load_multiple"), ("vmladav.s8", "r2, q0, q1", "mve_mac"),
             ("vmlava.s8", "r2, q0, q1", "mve_mac"), ("vldrb.8", "q0, [r0]", "mve_load"),
             ("vldrbt.u8", "q2, [r3, #0]", "mve_load"), ("vstrb.8", "q0, [r0]", "mve_store"),
             ("vadd.i8", "q0, q0, q1", "mve_alu"), ("vadd.f32", "s0, s1, s2", "fp"),
             ("vadd.f64", "d0, d1, d2", "fp_double"), ("vfma.f32", "s0, s1, s2", "fp_mac"),
             ("vdiv.f32", "s0, s1, s2", "fp_div_sqrt"), ("sxtb16", "r3, r4", "simd_alu"),
             ("pkhbt", "r3, r4, r5, lsl #16", "simd_alu"), ("umlal", "r0, r1, r2, r3", "mac32"),
             ("mls", "r0, r1, r2, r3", "mul"), ("sdiv", "r0, r1, r2", "div"), ("itte", "ge", "it"),
             ("ldrge", "r1, [r0]", "load"), ("addge.w", "r1, r1, #300", "alu"), ("movlt", "r1, #0", "alu"),
             ("ldr", "r0, [pc, #88]", "load_literal"), ("bx", "lr", "branch"), ("pop", "{r4, pc}", "load_multiple"),
             ("bls.n", "8042 <x>", "branch"), ("teq", "r0, r1", "alu"), ("letp", "lr, 8040 <x>", "loop")]
    got = [classify(Instruction(0x8000, 4, m, o)) for m, o, _ in cases]
    assert got == [c for _, _, c in cases]
    assert Instruction(0, 4, "ldrge", "r1, [r0]").parsed.condition == "ge"
    assert transfer_words(Instruction(0, 4, "ldrd", "r2, r3, [r1]")) == 2
    assert register_list(Instruction(0, 4, "ldmia.w", "r1, {r4, r5, r6, r7}")) == ["r4", "r5", "r6", "r7"]
    assert transfer_words(Instruction(0, 4, "vpush", "{d8-d15}")) == 16
    assert branch_kind(Instruction(0, 2, "bx", "lr")) == "return"
    pop = Instruction(0, 2, "pop", "{r4, pc}")
    assert (branch_kind(pop), writes_pc(pop), transfer_words(pop)) == ("return", True, 2)
    assert branch_kind(Instruction(0, 2, "bls.n", "8042 <x>")) == "conditional"


@needs_gcc
def test_disassembly_reads_helium_and_it_blocks_from_the_elf(tmp_path):
    ins = build(tmp_path, """
        vldrb.8 q0, [r0]
        vmladav.s8 r2, q0, q1
        cmp r0, #0
        itte ge
        ldrge r1, [r0]
        addge r1, r1, #1
        movlt r1, #0
        ldrd r2, r3, [r1]
        bx lr
    """, cpu="cortex-m55")
    got = [(i.size, classify(i)) for _, i in sorted(ins.items())]
    assert got == [(4, "mve_load"), (4, "mve_mac"), (2, "alu"), (2, "it"), (2, "load"), (2, "alu"), (2, "alu"),
                   (4, "load_multiple"), (2, "branch")]


def test_objdump_text_without_raw_bytes_still_gives_sizes():
    text = ("00008000 <_start>:\n    8000:\tpush\t{r4, r5, lr}\n    8002:\tldr.w\tr1, [r2, #4]\n"
            "    8006:\tldr\tr0, [pc, #8]\t@ (8010 <_start+0x10>)\n    8008:\tbx\tlr\n    800a:\t.short\t0x0000\n")
    ins = parse_objdump(text)
    assert [(hex(a), i.size, i.operands) for a, i in sorted(ins.items())] == [
        ("0x8000", 2, "{r4, r5, lr}"), ("0x8002", 4, "r1, [r2, #4]"), ("0x8006", 2, "r0, [pc, #8]"),
        ("0x8008", 2, "lr")]


def test_unpriced_instructions_are_reported_not_dropped():
    ins = {0x100: Instruction(0x100, 2, "adds", "r0, #1"), 0x102: Instruction(0x102, 4, "frobnicate", "r0"),
           0x106: Instruction(0x106, 4, "vmladav.s8", "r2, q0, q1")}
    est = estimate_cycles({0x100: 5, 0x102: 3, 0x106: 2, 0x200: 7}, {}, ins, core="cortex-m4")
    assert est.cycles == 5  # only the ADDS is priced
    assert est.instructions == 17
    assert est.unclassified_instructions == 3 + 2 + 7
    assert est.unclassified == {"frobnicate": 3, "vmladav.s8 (mve_mac: not on cortex-m4)": 2,
                                "<no instruction at 0x200>": 7}
    report = format_estimate(est)
    assert "| unclassified | 12 | not priced |" in report and "frobnicate" in report and "0x200" in report


def test_more_macs_per_cycle_than_the_core_peak_is_flagged():
    ok = check_against_peak(1_000, 600, "cortex-m4")
    assert ok.ok and ok.peak == 2.0
    over = check_against_peak(1_000, 400, "cortex-m4")
    assert not over.ok and "ABOVE the cortex-m4 peak of 2" in over.message
    assert check_against_peak(1_000, 400, "cortex-m55").ok  # 2.5 <= 8 (VMLADAV.S8: 16 MACs in 2 cycles)
    with pytest.raises(PeakExceeded, match="2.50 MACs/cycle"):
        check_against_peak(1_000, 400, "cortex-m33", raise_on_exceed=True)


@needs_gcc
def test_flash_fetch_wait_states_are_the_compulsory_line_misses(tmp_path):
    ins = build(tmp_path, M4_MIX, cpu="cortex-m4", fpu="fpv4-sp-d16")
    ac, tc = counts(ins, ("sub",), LOOP_TRIPS)
    # STM32L4R5 at 120 MHz: 5 wait states, 64-bit flash reads behind the ART accelerator. The mix
    # spans 0x8000-0x8027: five 8-byte lines, each missed once.
    est = estimate_cycles(ac, tc, ins, mcu="nucleo-l4r5zi")
    assert est.wait_states.instruction_fetch == 5 * 5
    assert est.cycles == 74 + 25
    assert any("weight reads from flash not counted" in a for a in est.assumptions)


@needs_gcc
def test_flash_weight_reads_and_sram_wait_states(tmp_path):
    ins = build(tmp_path, M4_MIX, cpu="cortex-m4", fpu="fpv4-sp-d16")
    ac, tc = counts(ins, ("sub",), LOOP_TRIPS)
    # 32-bit weight reads streamed from 64-bit flash lines: one miss per 2 reads, 5 wait states.
    assert flash_read_penalty("nucleo-l4r5zi") == 4 / 8 * 5
    est = estimate_cycles(ac, tc, ins, mcu="nucleo-l4r5zi", flash_data_reads=100)
    assert est.wait_states.flash_data == 100 * 2.5
    # RA6M4 at 200 MHz: one SRAM wait cycle per data read. The mix reads 3 LDR + 4 (LDM) + 3 (POP)
    # words; 2 of them declared flash reads.
    ra = estimate_cycles(ac, tc, ins, core="cortex-m33", mcu="ek-ra6m4", flash_data_reads=2)
    assert ra.wait_states.sram == 3 + 4 + 3 - 2


def test_counted_flash_reads_are_priced_by_the_flash_lines_their_bytes_fill():
    # streamed reads miss once per flash line of bytes: STM32F407 16-byte lines, 5 wait states
    assert flash_data_cycles("stm32f407", 100, 400) == 400 / 16 * 5  # 32-bit reads: 4 per line
    assert flash_data_cycles("stm32f407", 400, 400) == 400 / 16 * 5  # int8 LDRB: 16 per line, same lines
    assert flash_data_cycles("nucleo-l4r5zi", 50, 400) == 400 / 8 * 5  # LDRD-sized reads, 8-byte lines
    assert flash_data_cycles("nucleo-l4r5zi", 100, None) == 100 * flash_read_penalty("nucleo-l4r5zi")
    assert flash_data_cycles("stm32h743", 10, 320) == 320 / 32 * 4 * 2  # 32-byte lines, 2 core cycles per AXI wait
    assert flash_data_cycles("stm32f407", 3, 3) == 3 / 16 * 5  # never more than a miss per read ...
    assert flash_data_cycles("stm32f407", 1, 8) == 8 / 16 * 5
    assert flash_data_cycles("ek-ra6m4", 10, 10) == 10 * 3  # ... which is every read when the width is unknown
    assert flash_data_cycles("corstone-300", 10, 40) == 0.0  # constants in the ITCM
    assert flash_data_cycles("nrf5340", 10, 40) is None  # wait states not documented


@needs_gcc
def test_counted_flash_reads_replace_the_not_counted_assumption(tmp_path):
    ins = build(tmp_path, M4_MIX, cpu="cortex-m4", fpu="fpv4-sp-d16")
    ac, tc = counts(ins, ("sub",), LOOP_TRIPS)
    est = estimate_cycles(ac, tc, ins, mcu="stm32f407", flash_data_reads=40, flash_data_bytes=160)
    assert est.wait_states.flash_data == 160 / 16 * 5
    assert not any("not counted" in a for a in est.assumptions)
    assert any("priced as streamed: one 5-cycle miss per 16 bytes" in a for a in est.assumptions)
    base = estimate_cycles(ac, tc, ins, mcu="stm32f407")
    assert est.cycles == base.cycles + 50


def test_every_microcontroller_row_has_a_modelled_core_and_a_clock():
    assert {t.core for t in MCU_TARGETS.values()} <= set(CORES)
    assert all(t.clock_hz > 0 for t in MCU_TARGETS.values())
    assert (MCU_TARGETS["nucleo-l4r5zi"].clock_hz, MCU_TARGETS["ek-ra6m4"].clock_hz) == (120_000_000, 200_000_000)
    assert estimated_ms(1_200_000, "nucleo-l4r5zi") == pytest.approx(10.0)
    assert ms(200_000, 200e6) == pytest.approx(1.0)


def test_counts_from_another_run_are_refused():
    ins = {0x100: Instruction(0x100, 2, "bne.n", "100 <x>")}
    with pytest.raises(CycleModelError, match="exceeds its 3 executions"):
        estimate_cycles({0x100: 3}, {0x100: 4}, ins, core="cortex-m4")
    with pytest.raises(CycleModelError, match="does not match microcontroller"):
        estimate_cycles({}, {}, {}, core="cortex-m55", mcu="stm32f407")
