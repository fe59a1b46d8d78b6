"""The documented timing of each Cortex-M core (:data:`CORES`): cycles per instruction class, the
taken-branch penalty, the issue model and the peak int8 MACs per cycle, each cited.

Sources (cited by the short names in brackets beside each constant):

* [M4-TRM] Arm Cortex-M4 Processor Technical Reference Manual r0p1 (DDI 0439B / 100166_0001_00),
  section 3.3.1 "Cortex-M4 instruction timings", Table 3-1 (cycles at zero wait states; P =
  pipeline refill, 1 to 3 cycles; N = registers in the list), section 3.3.2 "Load/store timings",
  and section 7.2.3 Table 7-1 "FPU instruction set". Read here from TI's reprint of the Cortex-M4F
  tables (TI SWCU192, Table 3-25 "Cortex-M4F instructions and their cycle counts": MUL/MLA/MLS,
  long multiplies, saturate, logic, shifts 1, SDIV/UDIV 2 to 12; Table 3-27 FPU: VADD/VMUL/VCVT/
  VCMP 1, VMLA/VFMA family 3, VDIV 14, VLDR.32 2, VLDR.64 3, VLDM/VPOP 1+N singles or 1+2N
  doubles) and from the identical load/store text of the Cortex-M3 TRM (DDI 0337I, 3.3:
  "LDR [any] are pipelined when possible ... one cycle is removed from the cost of the next
  instruction", "STR Rx,[Ry,#imm] is always one cycle", "Any load or store that generates an
  address dependent on the result of a preceding data processing operation stalls the pipeline
  for an additional cycle", "LDRD and STRD cannot be pipelined", TBB/TBH "at least two cycles
  for the load ... and three cycles for the pipeline reload"). Loads 2, LDM/STM/PUSH/POP/LDRD
  1+N, branches 1+P and DSP MACs (SMLAD...) 1 are the Table 3-1 values as recalled, consistent
  with [LLVM-M4].
* [M3-TRM] Arm Cortex-M3 TRM r1p1 (DDI 0337E), 18.2 "Processor instruction timings", Table 18-1:
  "If branch taken, pipeline reloads (two cycles are added)" -- the P used for the M4 and M33.
* [M4-TRM-IT] [M4-TRM] Table 3-1, IT: IT instructions can be folded onto a preceding 16-bit Thumb
  instruction and then take no cycle (the table's note, as recalled; not re-read here).
* [LLVM-M4] LLVM ``llvm/lib/Target/ARM/ARMScheduleM4.td`` (CortexM4Model, filled in "as per the
  Cortex-M4 TRM", LLVM review D54142); ``ARM.td`` schedules ``cortex-m33`` with the same
  CortexM4Model.
* [LLVM-M7] LLVM ``ARMScheduleM7.td`` (CortexM7Model, contributed by Arm): IssueWidth 2; two ALU,
  two load (LoadL/LoadH group), one store, one MAC, one branch, one VFP pipe; SIMD/DSP ops
  BeginGroup (issue in slot 0 only); SDIV latency 7 single-issue; load/store multiples and
  LDRD/STRD single-issue; "Mispredict cost for forward branches is 6, but 4 works better".
* [M7-TRM] Arm Cortex-M7 Processor TRM (DDI 0489): in-order, dual-issue superscalar, six-stage
  pipeline with a branch target address cache. Arm publishes no per-instruction cycle table for
  the M7; [LLVM-M7] is the public Arm-written description of its issue resources.
* [NRF53-PS] Nordic nRF5340 Product Specification, CPU chapter: the Cortex-M33 application core
  has "single-cycle multiply and accumulate (MAC) instructions" and "8- and 16-bit SIMD"; executing
  from flash has a wait-state penalty hidden by the instruction/data CACHE.
* [M33] Arm's Cortex-M33 TRM (100230) publishes no instruction timing table. The M33 here is
  the [M4-TRM] table, as LLVM schedules it ([LLVM-M4]); DSP MACs single-cycle per [NRF53-PS].
* [LLVM-M55] LLVM ``ARMScheduleM55.td`` (CortexM55Model, contributed by Arm): the M55 is "a lot
  like the M4/M33" for scalar code with 2-cycle loads and multiplies (latency 2, one issue per
  cycle); "Each MVE instruction needs to take 2 beats, each performing 64bits of the 128bit vector
  operation" on one of the load/store, integer and float/mul pipelines; instructions on different
  pipes overlap by a beat; IT dual-issues; MispredictPenalty 3; VDIV.F32 latency 16; F64
  add/multiply/MAC latencies 15/21/36.
* [HELIUM] Arm, "Helium / MVE" architecture (Armv8.1-M): a 128-bit vector is 4 beats of 32 bits;
  the M55 is a dual-beat implementation (2 beats per cycle), so VMLADAV.S8 (16 int8 MACs) takes 2
  cycles: 8 int8 MACs per cycle.
* [LLVM-M85] LLVM ``llvm/lib/Target/ARM/ARMScheduleM85.td`` (CortexM85Model, LLVM 17, the
  M85 counterpart of [LLVM-M7] and [LLVM-M55]): "IssueWidth = 2 // Dual issue for most
  instructions", in-order, "LoadLatency = 2 // Best case for load-use case", "MispredictPenalty =
  4 // Mispredict cost for forward branches is 7, but 4 works better"; "two ALU, two LOAD, two
  STORE, a MAC, a BRANCH and two VFP pipes"; multiplies and MACs latency 2 on the one MAC pipe;
  SDIV/UDIV latency 7 ("they stall for their latency"); load/store multiples, TBB/TBH and
  exclusives single issue; barriers/MRS/MSR ``M85NonGeneralPurpose`` latency 3, single issue;
  SIMD (DSP) and all FP/MVE instructions use ``M85UnitSlot0`` (issue slot 0 only); every MVE
  instruction "EndGroup = 1" (nothing issues after it in its cycle) and holds its pipe halves
  (VFPA integer, VFPB multiply/MAC, VFPC compare/VPT, VFPD VPST/VCTP) with ``ReleaseAtCycles =
  [2,2,...]``, vector loads both load pipes and vector stores both store pipes for 2 cycles:
  each 128-bit vector instruction takes 2 cycles of its pipe, i.e. 2 beats per tick (dual-beat,
  as the M55); FP32 ALU latency 2, MUL 3, MAC 5, VDIV/VSQRT.F32 14, F64 on both pipe halves.
* [LLVM-M85-BP] LLVM ``ARM.td``/``ARMProcessors.td``: ``cortex-m55`` carries
  ``FeatureHasNoBranchPredictor``, ``cortex-m85`` does not: the M85 predicts branches (the M55
  pays every taken branch). Arm's Cortex-M85 TRM (101924) was not read here: the size and kind of
  the M85's predictor, and any per-instruction cycle table, are not published in what was read.

"""
from __future__ import annotations

import dataclasses
from collections.abc import Mapping

from firmware_harness.profiling.errors import CycleModelError
from firmware_harness.profiling.instructions import (ALU, BRANCH, DIV, DSP_MAC, FP, FP_DIV_SQRT, FP_DOUBLE, FP_MAC, IT,
                                                     LOAD, LOAD_LITERAL, LOAD_MULTIPLE, LOOP, MAC32, MUL, MVE_ALU,
                                                     MVE_LOAD, MVE_MAC, MVE_STORE, OTHER, SIMD_ALU, STORE,
                                                     STORE_MULTIPLE)


@dataclasses.dataclass(frozen=True)
class ClassCost:
    """Cycles of one execution of a class at zero wait states: ``cycles`` + ``per_register`` x
    the words transferred (multiples). ``latency``: cycles until the result can be used by the
    next instruction (a stall of ``latency - cycles`` when it is, on cores that model it)."""

    cycles: float
    per_register: float = 0.0
    latency: float = 0.0
    source: str = ""


@dataclasses.dataclass(frozen=True)
class CoreModel:
    """One core's documented timing. ``costs[cls]`` is None for a class the core does not have
    (MVE on the M4): executions of it are reported as unclassified."""

    name: str
    costs: Mapping[str, ClassCost | None]
    taken_branch_penalty: int  # P: cycles added each time control leaves the fall-through path
    taken_branch_source: str
    peak_int8_macs_per_cycle: float
    peak_derivation: str
    issue: str = "single"  # "single", "dual" (M7 resource bound), "beats" (M55 MVE), "dual-beats" (M85: both)
    ldr_pipelining: bool = False  # [M4-TRM] 3.3.2
    address_dependency_stall: int = 0  # [M4-TRM] 3.3.2
    it_folding: bool = False  # [M4-TRM-IT]
    result_use_stalls: bool = False  # [LLVM-M55] latency-2 loads and multiplies
    store_immediate_one_cycle: bool = False  # [M4-TRM] 3.3.2 "STR Rx,[Ry,#imm] is always one cycle"
    mispredict_only: bool = False  # M7: the refill is paid on mispredictions only
    mve_beats: int = 0  # cycles a vector instruction holds its pipe
    assumptions: tuple[str, ...] = ()


def _c(cycles: float, source: str, *, per_register: float = 0.0, latency: float | None = None) -> ClassCost:
    return ClassCost(cycles, per_register, cycles if latency is None else latency, source)


_M4_COSTS: dict[str, ClassCost | None] = {
    ALU: _c(1, "[M4-TRM] Table 3-1: MOV/ADD/logical/shift/compare/bit-field/extend 1"),
    IT: _c(1, "[M4-TRM-IT]: 1, folded to 0 after a 16-bit instruction"),
    MUL: _c(1, "[M4-TRM] Table 3-1: MUL, MLA, MLS 1"),
    MAC32: _c(1, "[M4-TRM] Table 3-1: SMULL/UMULL/SMLAL/UMLAL 1"),
    DSP_MAC: _c(1, "[M4-TRM] Table 3-1: SMLAD, SMUAD, SMLA<x><y>, SMLAL<x><y> 1"),
    SIMD_ALU: _c(1, "[M4-TRM] Table 3-1: parallel add/sub, saturate, pack, extend 1"),
    DIV: _c(7, "[M4-TRM] Table 3-1: SDIV/UDIV 2 to 12 (early termination on operand size); "
               "assumed midpoint 7"),
    LOAD: _c(2, "[M4-TRM] Table 3-1: LDR/LDRB/LDRH/LDRSB/LDRSH 2; VLDR.32 2 (Table 7-1)"),
    LOAD_LITERAL: _c(2, "[M4-TRM] Table 3-1: LDR 2 (3.3.2: 'LDR Rx,[PC,#imm] might add a cycle': not added)"),
    STORE: _c(2, "[M4-TRM] Table 3-1: STR 2; 3.3.2: STR Rx,[Ry,#imm] always 1"),
    LOAD_MULTIPLE: _c(1, "[M4-TRM] Table 3-1: LDM/POP/LDRD 1+N; Table 7-1: VLDM/VPOP 1+N "
                         "(N words: 2 per D register), VLDR.64 3", per_register=1),
    STORE_MULTIPLE: _c(1, "[M4-TRM] Table 3-1: STM/PUSH/STRD 1+N; Table 7-1: VSTM/VPUSH 1+N",
                       per_register=1),
    BRANCH: _c(1, "[M4-TRM] Table 3-1: B/BL/BX/CBZ 1 (+P taken); TBB/TBH 2+P counted as 1+P"),
    LOOP: None,
    FP: _c(1, "[M4-TRM] Table 7-1: VADD/VSUB/VMUL/VNEG/VABS/VCMP/VCVT/VMOV 1"),
    FP_MAC: _c(3, "[M4-TRM] Table 7-1: VMLA/VMLS/VNMLA/VNMLS/VFMA/VFMS/VFNMA/VFNMS 3"),
    FP_DIV_SQRT: _c(14, "[M4-TRM] Table 7-1: VDIV/VSQRT 14"),
    FP_DOUBLE: None,
    MVE_LOAD: None, MVE_STORE: None, MVE_MAC: None, MVE_ALU: None,
    OTHER: _c(1, "[M4-TRM] Table 3-1: barriers, hints, MRS/MSR, CPS 1 (barrier B=0 assumed)"),
}

CORTEX_M4 = CoreModel(
    name="cortex-m4",
    costs=_M4_COSTS,
    taken_branch_penalty=2,
    taken_branch_source="[M4-TRM] Table 3-1: P = 1 to 3 (target alignment, width, early speculation); "
                        "[M3-TRM] Table 18-1: 'if branch taken, pipeline reloads (two cycles are added)': P = 2",
    peak_int8_macs_per_cycle=2.0,
    peak_derivation="SMLAD: two 16x16 MACs in 1 cycle ([M4-TRM] Table 3-1); int8 operands are widened "
                    "to 16 bits (SXTB16) first, so at most 2 int8 MACs per cycle",
    ldr_pipelining=True, address_dependency_stall=1, it_folding=True, store_immediate_one_cycle=True,
)

CORTEX_M33 = dataclasses.replace(
    CORTEX_M4,
    name="cortex-m33",
    costs={**_M4_COSTS,
           DSP_MAC: _c(1, "[NRF53-PS]: single-cycle MAC instructions; [M4-TRM] Table 3-1 via [M33]"),
           MUL: _c(1, "[NRF53-PS]: single-cycle multiply; [M4-TRM] Table 3-1 via [M33]")},
    taken_branch_source="[M33]: no published table; [LLVM-M4] schedules the M33 with the M4 model "
                        "(MispredictPenalty 2 'best case branch taken cost'): P = 2",
    peak_derivation="SMLAD single-cycle ([NRF53-PS], [M33]): 2 int8 MACs per cycle, as the M4",
    assumptions=("Cortex-M33: Arm publishes no instruction timing table; the Cortex-M4 TRM table and its "
                 "load/store pipelining rules are used, as LLVM does ([M33], [LLVM-M4])",),
)

CORTEX_M7 = CoreModel(
    name="cortex-m7",
    costs={
        ALU: _c(1, "[LLVM-M7] WriteALU: 2 ALU pipes, latency 1"),
        IT: _c(1, "[LLVM-M7]: issue slot, dual-issuable"),
        MUL: _c(1, "[LLVM-M7] WriteMUL32: 1 MAC pipe, latency 2, fully pipelined"),
        MAC32: _c(1, "[LLVM-M7] WriteMAC64: 1 MAC pipe, pipelined"),
        DSP_MAC: _c(1, "[LLVM-M7] t2SMLAD -> WriteMAC32: 1 MAC pipe, pipelined"),
        SIMD_ALU: _c(1, "[LLVM-M7] M7WriteSIMD1/2: SIMD unit, slot 0 only (BeginGroup)"),
        DIV: _c(7, "[LLVM-M7] WriteDIV: latency 7, single issue, stalls"),
        LOAD: _c(1, "[LLVM-M7] WriteLd: load pipes (2), latency 1-2"),
        LOAD_LITERAL: _c(1, "[LLVM-M7] t2LDRpc: WriteLd"),
        STORE: _c(1, "[LLVM-M7] WriteST: 1 store pipe"),
        LOAD_MULTIPLE: _c(1, "[LLVM-M7]: single issue; 1+N assumed ([M4-TRM] formula, no M7 table)",
                          per_register=1),
        STORE_MULTIPLE: _c(1, "[LLVM-M7]: single issue; 1+N assumed ([M4-TRM] formula, no M7 table)",
                           per_register=1),
        BRANCH: _c(1, "[LLVM-M7] WriteBr: 1 branch pipe; refill on misprediction only (BTAC, [M7-TRM])"),
        LOOP: None,
        FP: _c(1, "[LLVM-M7] WriteFPALU32/FPMUL32: 1 VFP pipe, pipelined (latency 3)"),
        FP_MAC: _c(1, "[LLVM-M7] WriteFPMAC32: 1 VFP pipe, pipelined (latency 6)"),
        FP_DIV_SQRT: _c(16, "[LLVM-M7] WriteFPDIV32/FPSQRT32 latency 16; the divider assumed unpipelined"),
        FP_DOUBLE: _c(2, "[LLVM-M7] F64 ops take both VFP register-port halves (ResourceUses [1,2], "
                         "BeginGroup): 2 issue cycles assumed"),
        MVE_LOAD: None, MVE_STORE: None, MVE_MAC: None, MVE_ALU: None,
        OTHER: _c(3, "[LLVM-M7] M7NonGeneralPurpose: barriers/MRS/MSR latency 3, single issue"),
    },
    taken_branch_penalty=4,
    taken_branch_source="[LLVM-M7] MispredictPenalty 4 (comment: 6 for forward branches); paid per "
                        "misprediction: min(taken, not taken) per conditional branch, every indirect branch",
    peak_int8_macs_per_cycle=2.0,
    peak_derivation="one MAC pipe ([LLVM-M7] M7UnitMAC ProcResource<1>): one SMLAD (2 16-bit MACs) per "
                    "cycle even when dual-issuing; int8 widened to 16 bits first: 2 int8 MACs per cycle",
    issue="dual",
    mispredict_only=True,
    assumptions=("Cortex-M7: dual issue as a throughput bound over LLVM's Arm-written M7 resources; operand "
                 "dependencies and load-use latencies are not modelled (an optimistic bound)",
                 "Cortex-M7: a conditional branch mispredicts min(taken, not taken) times (the BTAC learns "
                 "the majority direction); returns and indirect branches always mispredict"),
)

CORTEX_M55 = CoreModel(
    name="cortex-m55",
    costs={
        ALU: _c(1, "[LLVM-M55] DX: ALU 1 cycle"),
        IT: _c(0, "[LLVM-M55] M55WriteDI: IT dual-issues (no cycle)"),
        MUL: _c(1, "[LLVM-M55] CX: issue 1, latency 2", latency=2),
        MAC32: _c(1, "[LLVM-M55] CX: WriteMAC64 issue 1, latency 2", latency=2),
        DSP_MAC: _c(1, "[LLVM-M55] CX: t2SML* issue 1, latency 2, no accumulator forwarding", latency=2),
        SIMD_ALU: _c(1, "[LLVM-M55] CX: t2Q*/t2[SU]ADD* issue 1, latency 2", latency=2),
        DIV: _c(7, "[LLVM-M55] models WriteDIV as a 2-cycle CX ('may be higher in practice'); the M4 "
                   "TRM's 2-12 midpoint 7 assumed"),
        LOAD: _c(1, "[LLVM-M55] WriteLd: issue 1, latency 2", latency=2),
        LOAD_LITERAL: _c(1, "[LLVM-M55] tLDRpci: issue 1, latency 2", latency=2),
        STORE: _c(1, "[LLVM-M55] WriteST: 1"),
        LOAD_MULTIPLE: _c(1, "[LLVM-M55] t2LDM CX; 1+N assumed ([M4-TRM] formula)", per_register=1),
        STORE_MULTIPLE: _c(1, "[LLVM-M55] t2STM; 1+N assumed ([M4-TRM] formula)", per_register=1),
        BRANCH: _c(1, "[LLVM-M55] WriteBr 1 (+P taken)"),
        LOOP: _c(1, "Armv8.1-M low-overhead loops: LE/LETP branch back from the cached loop info without "
                    "a refill (assumed 1 cycle, no P); DLS/WLS 1"),
        FP: _c(1, "[LLVM-M55] M55WriteFloatE3: float pipe, issue 1 (latency 2)"),
        FP_MAC: _c(1, "[LLVM-M55] WriteFPMAC32: float pipe, issue 1 (latency 4)"),
        FP_DIV_SQRT: _c(16, "[LLVM-M55] WriteFPDIV32/FPSQRT32 latency 16; assumed unpipelined"),
        FP_DOUBLE: _c(15, "[LLVM-M55] WriteFPALU64 latency 15 (MUL64 21, MAC64 36); assumed unpipelined"),
        MVE_LOAD: _c(1, "[LLVM-M55] M55Write2LSE2: load/store pipe, 2 beats"),
        MVE_STORE: _c(1, "[LLVM-M55] M55Write2LSE2: load/store pipe, 2 beats"),
        MVE_MAC: _c(1, "[LLVM-M55] M55Write2FloatE3: float/mul pipe, 2 beats (VMLADAV, VQDMULH, VMUL...)"),
        MVE_ALU: _c(1, "[LLVM-M55] M55Write2IntE2: integer pipe, 2 beats (VADD, VSHL, VMAX, VPST...)"),
        OTHER: _c(1, "[LLVM-M55] DX/CX: 1"),
    },
    taken_branch_penalty=3,
    taken_branch_source="[LLVM-M55] CortexM55Model MispredictPenalty 3: every taken branch pays 3 "
                        "(no dynamic predictor assumed)",
    peak_int8_macs_per_cycle=8.0,
    peak_derivation="[HELIUM]/[LLVM-M55]: a 128-bit VMLADAV.S8 does 16 int8 MACs in 2 beats-cycles on the "
                    "float/mul pipe: 8 int8 MACs per cycle",
    issue="beats",
    result_use_stalls=True,
    mve_beats=2,
    assumptions=("Cortex-M55: vector instructions overlap each other on different pipes; scalar cycles are "
                 "added to them, not overlapped (conservative); only IT dual-issues",),
)

CORTEX_M85 = CoreModel(
    name="cortex-m85",
    costs={
        ALU: _c(1, "[LLVM-M85] WriteALU: 2 ALU pipes, latency 1"),
        IT: _c(1, "[LLVM-M85]: an issue slot, dual-issuable (no IT entry: as [LLVM-M7])"),
        MUL: _c(1, "[LLVM-M85] WriteMUL32: 1 MAC pipe, latency 2, pipelined"),
        MAC32: _c(1, "[LLVM-M85] WriteMAC64Lo: 1 MAC pipe, latency 2, pipelined"),
        DSP_MAC: _c(1, "[LLVM-M85] t2SML[AS]D -> WriteMAC32: 1 MAC pipe, latency 2"),
        SIMD_ALU: _c(1, "[LLVM-M85] M85WriteSIMD1/2: SIMD unit, slot 0 only"),
        DIV: _c(7, "[LLVM-M85] WriteDIV latency 7: divides 'stall for their latency'; single issue assumed"),
        LOAD: _c(1, "[LLVM-M85] WriteLd: 2 load pipes, latency 1 (byte/halfword 2)"),
        LOAD_LITERAL: _c(1, "[LLVM-M85] t2LDRpc/tLDRpci: WriteLd"),
        STORE: _c(1, "[LLVM-M85] WriteST: 2 store pipes"),
        LOAD_MULTIPLE: _c(1, "[LLVM-M85] LDM/POP/VLDM single issue (M85WriteLdWide); 1+N assumed "
                             "([M4-TRM] formula, no M85 table)", per_register=1),
        STORE_MULTIPLE: _c(1, "[LLVM-M85] STM/PUSH/VSTM single issue (M85WriteStWide); 1+N assumed "
                              "([M4-TRM] formula, no M85 table)", per_register=1),
        BRANCH: _c(1, "[LLVM-M85] WriteBr: 1 branch pipe; refill on misprediction only ([LLVM-M85-BP])"),
        LOOP: _c(1, "[LLVM-M85] DLS/WLS WriteALU; LE 'executed at ISS' (M85LE): 1 issue slot, no refill assumed"),
        FP: _c(1, "[LLVM-M85] WriteFPALU32/FPMUL32: VFP pipes A/B, slot 0, pipelined (latency 2-3)"),
        FP_MAC: _c(1, "[LLVM-M85] WriteFPMAC32: VFP pipe B, slot 0, pipelined (latency 5)"),
        FP_DIV_SQRT: _c(14, "[LLVM-M85] WriteFPDIV32/FPSQRT32 latency 14; assumed unpipelined"),
        FP_DOUBLE: _c(2, "[LLVM-M85] F64 ops take both halves of a VFP pipe: 2 issue cycles assumed, as [LLVM-M7]"),
        MVE_LOAD: _c(1, "[LLVM-M85] M85LoadMVE: both load pipes for 2 cycles, slot 0, ends its issue group"),
        MVE_STORE: _c(1, "[LLVM-M85] M85StoreMVE: both store pipes for 2 cycles, slot 0, ends its issue group"),
        MVE_MAC: _c(1, "[LLVM-M85] M85GrpB*Mve: VFPB (multiply/MAC) pipe for 2 cycles (VMLADAV, VQDMULH, VMUL...)"),
        MVE_ALU: _c(1, "[LLVM-M85] M85GrpA/C/D*Mve: VFPA (integer) pipe for 2 cycles; VCMP/VPT (VFPC) and "
                       "VPST/VCTP (VFPD) counted on the same pipe (conservative)"),
        OTHER: _c(3, "[LLVM-M85] M85NonGeneralPurpose: barriers/MRS/MSR latency 3, single issue"),
    },
    taken_branch_penalty=4,
    taken_branch_source="[LLVM-M85] MispredictPenalty 4 (comment: 7 for forward branches); paid per "
                        "misprediction ([LLVM-M85-BP]): min(taken, not taken) per conditional branch, every "
                        "indirect branch and return",
    peak_int8_macs_per_cycle=8.0,
    peak_derivation="[LLVM-M85]: a 128-bit VMLADAV.S8 (16 int8 MACs) holds the VFPB pipe for 2 cycles: 8 int8 "
                    "MACs per cycle, as the M55",
    issue="dual-beats",
    mispredict_only=True,
    mve_beats=2,
    assumptions=("Cortex-M85: dual issue and the MVE pipes as a throughput bound over LLVM's CortexM85Model "
                 "resources (a vector instruction issues alone and holds its pipe 2 cycles; scalar instructions "
                 "issue beside a busy vector pipe); operand dependencies and load-use latencies are not modelled "
                 "(an optimistic bound, as for the M7)",
                 "Cortex-M85: Arm publishes no predictor description in what was read; a conditional branch is "
                 "assumed to mispredict min(taken, not taken) times, returns and indirect branches always, as "
                 "for the M7"),
)

#: The cycle models, keyed by the firmware target names (``firmware_harness.builds.targets``) and
#: :attr:`tflite_export.mcu_targets.McuTarget.core`.
CORES: dict[str, CoreModel] = {c.name: c for c in (CORTEX_M4, CORTEX_M7, CORTEX_M33, CORTEX_M55,
                                                       CORTEX_M85)}


def get_core(core: str | CoreModel) -> CoreModel:
    if isinstance(core, CoreModel):
        return core
    if core not in CORES:
        raise CycleModelError(f"unknown core {core!r} for the cycle model; one of {', '.join(CORES)} "
                              "(a tflite_export.mcu_targets row's core, or a firmware target name)")
    return CORES[core]
