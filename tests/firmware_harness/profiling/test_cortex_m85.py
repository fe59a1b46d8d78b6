"""The Cortex-M85 (EK-RA8D1): priced from the Cortex-M55's Helium instruction stream with the M85's
own timings ([LLVM-M85]: dual issue, 2-beat MVE pipes, a branch predictor), its MCU row, and
``asc profile --mcu ek-ra8d1``; synthetic counts, no QEMU."""
from __future__ import annotations

import firmware_harness
from asc_cli.main import build_parser, main
from firmware_harness.builds.targets import get_target
from firmware_harness.profiling.cores import CORES
from firmware_harness.profiling.cycle_estimate import estimate_cycles
from firmware_harness.profiling.instructions import Instruction
from tests.firmware_harness.profiling.test_cycle_model import M55_MIX, M55_TRIPS, build, counts, needs_gcc
from tflite_export.mcu_targets import get_mcu_target

N = 100


def _code(*lines: tuple[int, str, str]) -> dict[int, Instruction]:
    out, addr = {}, 0x8000
    for size, mnemonic, operands in lines:
        out[addr] = Instruction(addr, size, mnemonic, operands)
        addr += size
    return out


def _cycles(ins: dict[int, Instruction], core: str, taken: dict[int, int] | None = None) -> float:
    return estimate_cycles({a: N for a in ins}, taken or {}, ins, core=core).core_cycles


def test_m85_issues_two_independent_alu_instructions_in_one_cycle_where_the_m55_takes_two():
    ins = _code((2, "adds", "r0, #1"), (2, "adds", "r1, #1"))
    assert _cycles(ins, "cortex-m55") == 2 * N
    assert _cycles(ins, "cortex-m85") == N


def test_m85_issues_scalar_work_while_a_vector_instruction_holds_its_pipe():
    """One VMLADAV holds the multiply pipe 2 cycles on both cores (2 beats per tick); the M55 adds
    the scalar ADDS after it, the M85 issues it in the second beat's cycle."""
    ins = _code((4, "vmladava.s8", "r4, q0, q1"), (2, "adds", "r1, #1"))
    assert _cycles(ins, "cortex-m55") == 2 * N + N
    assert _cycles(ins, "cortex-m85") == 2 * N


def test_m85_pays_mispredictions_where_the_m55_pays_every_taken_branch():
    ins = _code((2, "subs", "r4, #1"), (2, "bne", "0x8000"))
    loop = {0x8002: N - 1}  # a loop branch taken 99 times, falling through once
    m55 = estimate_cycles({a: N for a in ins}, loop, ins, core="cortex-m55")
    m85 = estimate_cycles({a: N for a in ins}, loop, ins, core="cortex-m85")
    assert m55.adjustments["taken_branch_refill"] == 3 * (N - 1)  # [LLVM-M55] MispredictPenalty 3, no predictor
    assert m85.adjustments["branch_mispredict"] == 4 * 1  # [LLVM-M85] 4 per misprediction: the one exit


def test_m85_vector_loads_hold_both_load_pipes_for_two_cycles():
    ins = _code((4, "vldrb.s8", "q0, [r0], #16"), (2, "ldr", "r2, [r1, #4]"), (2, "ldr", "r3, [r1, #8]"))
    assert _cycles(ins, "cortex-m85") == 2 * N + N  # load pipes: 2 per VLDRB + 2 scalar loads / 2 pipes


@needs_gcc
def test_m85_prices_the_m55_helium_mix_as_counted_by_hand(tmp_path):
    """The M55 test's ELF (three VLDRB and a VMLADAV per trip), priced with [LLVM-M85]'s resources."""
    ins = build(tmp_path, M55_MIX, cpu="cortex-m55")
    ac, tc = counts(ins, ("vldrb",), M55_TRIPS)
    single = (1 + 2) + (1 + 2)  # PUSH {r4, lr}, POP {r4, pc}: single issue, 1+N
    scalar = 1 + 1 + 1 + M55_TRIPS + 1 + 1  # LDR, ADDS, DLS, LE x trips, SMLAD, MOV: dual-issuable
    vector = 4 * M55_TRIPS
    load_pipes = -(-1 // 2) + 2 * 3 * M55_TRIPS  # the scalar LDR on one pipe; each VLDRB holds both for 2 cycles
    bound = max(-(-scalar // 2) + vector, 1, vector, 1, load_pipes, 0, 0, 2 * M55_TRIPS, 0)
    hand = single + bound + 4 * 1  # the return mispredicts (LE never refills)
    assert (bound, hand) == (49, 59)
    assert estimate_cycles(ac, tc, ins, core="cortex-m85").cycles == hand < estimate_cycles(ac, tc, ins,
                                                                                            core="cortex-m55").cycles


def test_m85_has_the_m55_peak_and_a_cited_source_for_every_priced_class():
    m85 = CORES["cortex-m85"]
    assert m85.peak_int8_macs_per_cycle == CORES["cortex-m55"].peak_int8_macs_per_cycle == 8
    assert all(c is not None and "[LLVM-M85]" in c.source for c in m85.costs.values())


def test_ek_ra8d1_runs_the_cortex_m55_image_priced_as_a_cortex_m85():
    mcu = get_mcu_target("ek-ra8d1")
    assert (mcu.core, mcu.clock_hz) == ("cortex-m85", 480_000_000)
    m85, m55 = get_target("cortex-m85"), get_target("cortex-m55")
    assert (m85.arch_flags, m85.qemu, m85.shares_build) == (m55.arch_flags, m55.qemu, "cortex-m55")
    assert "cortex-m85" in firmware_harness.PROFILE_TARGETS


def test_profile_accepts_mcu_ek_ra8d1_with_the_cortex_m85_target():
    a = build_parser().parse_args(["profile", "E", "--targets", "cortex-m85", "--mcu", "ek-ra8d1"])
    assert firmware_harness.profile_mcus(targets=a.targets, mcus=a.mcu) == ("ek-ra8d1",)


def test_profile_mcu_ek_ra8d1_without_its_core_names_the_target_to_add(capsys, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    try:
        status = main(["profile", "E", "--mcu", "ek-ra8d1"])
    except SystemExit as e:  # argparse refuses an option value before any work
        status = e.code
    err = capsys.readouterr().err
    assert status == 2 and "ek-ra8d1 (cortex-m85)" in err and "--targets" in err
    assert list(tmp_path.iterdir()) == []
