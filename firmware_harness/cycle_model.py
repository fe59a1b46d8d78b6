"""Cycles and milliseconds of a Cortex-M run, from exact instruction counts and a documented
per-core timing model.

QEMU has no cycle model, but its TCG plugin (``firmware_harness/icount.py``) counts exactly how
often each instruction address of the linked ELF executed in a profiled segment
(``address_counts``) and how often each translation-block-ending instruction was taken
(``taken_counts``: control did not continue at the fall-through address). This module turns those
counts into cycles: :func:`disassemble` reads the ELF with binutils, :func:`classify` puts each
instruction in a timing class, and :func:`estimate_cycles` prices the counts with a
:class:`CoreModel` from :data:`CORES` and the memory system of a
:class:`~tflite_export.mcu_targets.McuTarget`. Nothing here is fitted to a measurement: every cost
is a document's number, cited beside it, or a stated assumption with its reason.

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

Modelling rules (what the counts can and cannot tell):

* Cycles of a class = executions x the class cost; load/store multiples add a cost per
  transferred register (N of [M4-TRM]); a taken branch, or any instruction writing the PC, adds the
  core's refill penalty P each time ``taken_counts`` says control left the fall-through path.
* Adjacent pairs are exact: instruction ``i`` is immediately followed by the next address
  ``count(i) - taken(i)`` times (it either falls through or is taken). From the operands this
  gives, per [M4-TRM] 3.3.2, the LDR pipelining credit (a load or register-offset store right after
  a load whose destination is not in its address: one cycle less), the address dependency stall (a
  load/store whose address register was written by the data-processing instruction right before
  it: one cycle more) and IT folding after a 16-bit instruction; on the M55, the result-use stall
  of 2-cycle-latency loads and multiplies ([LLVM-M55]).
* Cortex-M7: a throughput bound over [LLVM-M7]'s resources for dual-issuable instructions (at
  most 2 per cycle, one MAC, one store, one VFP, one branch, two loads, SIMD in slot 0) plus the
  single-issue instructions; branch mispredictions (a BTAC is assumed to predict a conditional
  branch's majority direction, so ``min(taken, not taken)`` mispredictions per branch address;
  indirect branches and returns always pay) cost 4 ([LLVM-M7]). Operand dependencies are not
  modelled on the M7: the bound is optimistic there.
* Cortex-M55 MVE: each vector instruction holds its pipe for 2 cycles; vector instructions take
  ``max(vector instructions, 2 x the busiest vector pipe's)`` cycles ([LLVM-M55]), and scalar
  cycles are added to that (not overlapped: conservative).
* Memory (the MCU's): see :func:`wait_state_cycles`. Code and literal pools in flash behind a
  cache: misses are the distinct flash lines the segment touched (compulsory misses; the loops of
  a segment are assumed to fit the cache -- reported when the executed code is larger); weight
  and constant reads from flash (literal pools excluded): only when the caller knows how many
  there were (``flash_data_reads`` and ``flash_data_bytes``, counted by the QEMU plugin of
  ``firmware_harness/icount.py``), priced as streamed reads: one miss per flash line's worth of
  bytes read; SRAM wait states on every data read from SRAM.
* Conditional instructions in IT blocks are counted as executed (QEMU counts them whether or not
  their condition passed): an upper bound by at most a cycle per failed load.

Unknown mnemonics, instructions of a class the core lacks (MVE on an M4) and executed addresses
with no instruction in the disassembly are never dropped: they are counted in
``CycleEstimate.unclassified`` and shown by :func:`format_estimate`.
"""
from __future__ import annotations

import dataclasses
import functools
import itertools
import math
import re
import shutil
import subprocess
from collections.abc import Mapping
from pathlib import Path

from keras_asc.errors import AscError
from tflite_export.mcu_targets import McuTarget, get_mcu_target


class CycleModelError(AscError, ValueError):
    """A cycle estimate cannot be made as asked (missing tool, unknown core, bad counts)."""


class PeakExceeded(CycleModelError):
    """An estimate does more int8 MACs per cycle than its core can."""


# ---------------------------------------------------------------------------------------------
# Instruction classes
# ---------------------------------------------------------------------------------------------

ALU = "alu"
IT = "it"
MUL = "mul"  # MUL/MLA/MLS: 32x32 -> 32
MAC32 = "mac32"  # long and most-significant-word multiplies: SMULL/UMLAL/SMMUL...
DSP_MAC = "dsp_mac"  # 16-bit and dual 16-bit MACs: SMLAD/SMUAD/SMLABB/SMLAWB/SMLALD...
SIMD_ALU = "simd_alu"  # SADD16/QADD/SSAT/SXTB16/PKHBT/SEL/USAD8...
DIV = "div"
LOAD = "load"  # single load (LDR*, LDREX, VLDR of one S register)
LOAD_LITERAL = "load_literal"  # PC-relative load: a literal pool in the code memory
STORE = "store"
LOAD_MULTIPLE = "load_multiple"  # LDM/POP/LDRD/VLDM/VPOP/VLDR.64: cost depends on registers
STORE_MULTIPLE = "store_multiple"  # STM/PUSH/STRD/VSTM/VPUSH/VSTR.64
BRANCH = "branch"
LOOP = "loop"  # Armv8.1-M low-overhead loops: DLS/WLS/LE (and the tail-predicated forms)
FP = "fp"  # single-precision VFP: add/sub/mul/neg/abs/cmp/cvt/mov
FP_MAC = "fp_mac"  # VMLA/VMLS/VNMLA/VFMA... (single precision)
FP_DIV_SQRT = "fp_div_sqrt"
FP_DOUBLE = "fp_double"  # any .F64 data processing
MVE_LOAD = "mve_load"
MVE_STORE = "mve_store"
MVE_MAC = "mve_mac"  # vector multiplies, MACs and reductions (the M55's float/mul pipe)
MVE_ALU = "mve_alu"  # other vector integer work and predication (the integer pipe)
OTHER = "other"  # barriers, hints, system and status moves: one cycle each
UNCLASSIFIED = "unclassified"

CLASSES = (ALU, IT, MUL, MAC32, DSP_MAC, SIMD_ALU, DIV, LOAD, LOAD_LITERAL, STORE, LOAD_MULTIPLE,
           STORE_MULTIPLE, BRANCH, LOOP, FP, FP_MAC, FP_DIV_SQRT, FP_DOUBLE, MVE_LOAD, MVE_STORE,
           MVE_MAC, MVE_ALU, OTHER)
MVE_CLASSES = (MVE_LOAD, MVE_STORE, MVE_MAC, MVE_ALU)
_DATA_PROCESSING = (ALU, MUL, MAC32, DSP_MAC, SIMD_ALU, DIV)

_CONDITIONS = ("eq", "ne", "cs", "hs", "cc", "lo", "mi", "pl", "vs", "vc", "hi", "ls", "ge", "lt",
               "gt", "le", "al")

# Base mnemonics (lower case, no condition, no S, no .W/.N, no datatype) -> class.
_BASES: dict[str, str] = {}


def _add(cls: str, names: str) -> None:
    for n in names.split():
        _BASES[n] = cls


_add(ALU, "adc add addw adr and asr bfc bfi bic clz cmn cmp cpy eor lsl lsr mov movt movw mvn neg "
          "orn orr rbit rev rev16 revsh ror rrx rsb sbc sbfx sub subw teq tst ubfx sxtb sxth uxtb "
          "uxth nop csel csinc csinv csneg cset csetm cinc cinv cneg")
_add(IT, " ".join("it" + "".join(x) for k in range(4) for x in itertools.product("te", repeat=k)))
_add(MUL, "mul mla mls")
_add(MAC32, "smull umull smlal umlal umaal smmul smmulr smmla smmlar smmls smmlsr")
_add(DSP_MAC, "smlad smladx smlsd smlsdx smuad smuadx smusd smusdx smlald smlaldx smlsld smlsldx "
              "smlabb smlabt smlatb smlatt smulbb smulbt smultb smultt smlawb smlawt smulwb smulwt "
              "smlalbb smlalbt smlaltb smlaltt")
_add(SIMD_ALU, "sadd16 sadd8 sasx ssax ssub16 ssub8 qadd qsub qdadd qdsub qadd16 qadd8 qasx qsax "
               "qsub16 qsub8 shadd16 shadd8 shasx shsax shsub16 shsub8 uadd16 uadd8 uasx usax "
               "usub16 usub8 uqadd16 uqadd8 uqasx uqsax uqsub16 uqsub8 uhadd16 uhadd8 uhasx uhsax "
               "uhsub16 uhsub8 ssat usat ssat16 usat16 sxtb16 sxtab16 uxtb16 uxtab16 sxtab sxtah "
               "uxtab uxtah pkhbt pkhtb sel usad8 usada8 "
               # Armv8.1-M scalar shifts of the MVE extension (integer pipe, [LLVM-M55])
               "asrl lsll lsrl sqrshr sqrshrl sqshl sqshll srshr srshrl uqrshl uqrshll uqshl "
               "uqshll urshr urshrl")
_add(DIV, "sdiv udiv")
_add(LOAD, "vldr ldr ldrb ldrh ldrsb ldrsh ldrt ldrbt ldrht ldrsbt ldrsht ldrex ldrexb ldrexh lda ldab "
           "ldah ldaex ldaexb ldaexh")
_add(STORE, "vstr str strb strh strt strbt strht strex strexb strexh stl stlb stlh stlex stlexb stlexh")
_add(LOAD_MULTIPLE, "ldm ldmia ldmfd ldmdb ldmea pop ldrd vldm vldmia vldmdb vpop")
_add(STORE_MULTIPLE, "stm stmia stmea stmdb stmfd push strd vstm vstmia vstmdb vpush")
_add(BRANCH, "b bl blx bx bxns blxns cbz cbnz tbb tbh")
_add(LOOP, "dls dlstp wls wlstp le letp lctp")
_add(FP, "vadd vsub vmul vnmul vneg vabs vcmp vcmpe vcvt vcvta vcvtn vcvtp vcvtm vcvtr vcvtb vcvtt "
         "vmov vmrs vmsr vmaxnm vminnm vrinta vrintn vrintp vrintm vrintr vrintx vrintz vseleq "
         "vselge vselgt vselvs vins vmovx")
_add(FP_MAC, "vmla vmls vnmla vnmls vfma vfms vfnma vfnms")
_add(FP_DIV_SQRT, "vdiv vsqrt")
_add(OTHER, "dmb dsb isb yield wfe wfi sev sevl mrs msr cpsie cpsid svc bkpt udf clrex pld pldw pli "
            "sg tt ttt tta ttat hint esb csdb pssbb ssbb dbg vscclrm clrm bf bfx bfl bflx bfcsel")
# MVE (Armv8.1-M) vector instructions; V-names that also exist in VFP (VADD, VMUL, VFMA, VMOV...)
# are vector when an operand is a Q register.
_MVE_LOAD_NAMES = ("vldrb vldrh vldrw vldrd vld20 vld21 vld40 vld41 vld42 vld43")
_MVE_STORE_NAMES = ("vstrb vstrh vstrw vstrd vst20 vst21 vst40 vst41 vst42 vst43")
_MVE_MAC_NAMES = ("vmladav vmladava vmladavx vmladavax vmlsdav vmlsdava vmlsdavx vmlsdavax vmlav "
                  "vmlava vmlaldav vmlaldava vmlaldavx vmlaldavax vmlsldav vmlsldava vmlsldavx "
                  "vmlsldavax vmlalv vmlalva vrmlaldavh vrmlaldavha vrmlaldavhx vrmlaldavhax "
                  "vrmlsldavh vrmlsldavha vrmlsldavhx vrmlsldavhax vrmlalvh vrmlalvha vmlas "
                  "vqdmladh vqdmladhx vqrdmladh vqrdmladhx vqdmlsdh vqdmlsdhx vqrdmlsdh vqrdmlsdhx "
                  "vqdmlah vqrdmlah vqdmlash vqrdmlash vqdmulh vqrdmulh vqdmullb vqdmullt vmullb "
                  "vmullt vmulh vrmulh vcmla vcmul vabav vaddv vaddva vaddlv vaddlva")
_MVE_ALU_NAMES = ("vabd vand vbic vbrsr vcadd vcls vclz vdup vddup vdwdup vidup viwdup veor vhadd "
                  "vhcadd vhsub vmax vmaxa vmin vmina vmaxv vmaxav vminv vminav vmaxnma vminnma "
                  "vmaxnmv vminnmv vmaxnmav vminnmav vmovl vmovlb vmovlt vmovn vmovnb vmovnt vmvn "
                  "vorn vorr vpsel vqabs vqadd vqmovn vqmovnb vqmovnt vqmovun vqmovunb vqmovunt "
                  "vqneg vqrshl vqrshrn vqrshrnb vqrshrnt vqrshrun vqrshrunb vqrshrunt vqshl vqshlu "
                  "vqshrn vqshrnb vqshrnt vqshrun vqshrunb vqshrunt vqsub vrev16 vrev32 vrev64 "
                  "vrhadd vrshl vrshr vrshrn vrshrnb vrshrnt vsbc vsbci vadc vadci vshl vshlc vshll "
                  "vshllb vshllt vshr vshrn vshrnb vshrnt vsli vsri vctp vpst vpnot "
                  + " ".join("vpt" + "".join(x) for k in range(4) for x in itertools.product("te", repeat=k)))
for _n in _MVE_LOAD_NAMES.split():
    _BASES[_n] = MVE_LOAD
for _n in _MVE_STORE_NAMES.split():
    _BASES[_n] = MVE_STORE
for _n in _MVE_MAC_NAMES.split():
    _BASES[_n] = MVE_MAC
for _n in _MVE_ALU_NAMES.split():
    _BASES[_n] = MVE_ALU
# VFP names that are also MVE with Q operands: the vector pipe they take on the M55 ([LLVM-M55]).
_VECTOR_FORM = {"vadd": MVE_ALU, "vsub": MVE_ALU, "vmul": MVE_MAC, "vfma": MVE_MAC, "vfms": MVE_MAC,
                "vmla": MVE_MAC, "vneg": MVE_ALU, "vabs": MVE_ALU, "vcmp": MVE_ALU, "vcvt": MVE_MAC,
                "vcvta": MVE_MAC, "vcvtn": MVE_MAC, "vcvtp": MVE_MAC, "vcvtm": MVE_MAC,
                "vcvtb": MVE_MAC, "vcvtt": MVE_MAC, "vmov": MVE_ALU, "vmaxnm": MVE_ALU,
                "vminnm": MVE_ALU, "vrinta": MVE_MAC, "vrintn": MVE_MAC, "vrintp": MVE_MAC,
                "vrintm": MVE_MAC, "vrintx": MVE_MAC, "vrintz": MVE_MAC}


@dataclasses.dataclass(frozen=True)
class Mnemonic:
    """A printed mnemonic taken apart: ``"ldrbeq.w"`` -> base ``ldrb``, condition ``eq``, width
    ``w``; ``"vmladava.s8"`` -> base ``vmladava``, datatype ``s8``; ``"vldrbt.u8"`` (in a VPT
    block) -> base ``vldrb``, vpt ``t``."""

    base: str
    condition: str = ""
    sets_flags: bool = False
    width: str = ""  # "w" or "n"
    datatype: str = ""  # "s8", "f32", "f32.s32", "8", ...
    vpt: str = ""  # "t" or "e" inside a VPT block
    known: bool = True


@functools.lru_cache(maxsize=None)
def parse_mnemonic(mnemonic: str) -> Mnemonic:
    """Split an objdump mnemonic into base, condition, S, .W/.N, datatype and VPT suffix."""
    m = mnemonic.strip().lower()
    width = ""
    parts = m.split(".")
    head, rest = parts[0], [p for p in parts[1:] if p]
    if rest and rest[-1] in ("w", "n"):
        width = rest.pop()
    datatype = ".".join(rest)
    candidates: list[tuple[str, str, bool, str]] = [(head, "", False, "")]
    for cond in _CONDITIONS:
        if head.endswith(cond) and len(head) > len(cond):
            candidates.append((head[: -len(cond)], cond, False, ""))
    for base, cond, _, _ in list(candidates):
        if base.endswith("s") and len(base) > 1:
            candidates.append((base[:-1], cond, True, ""))
    for base, cond, flags, _ in list(candidates):
        if base.startswith("v") and base[-1:] in ("t", "e") and not cond:
            candidates.append((base[:-1], cond, flags, base[-1]))
    for base, cond, flags, vpt in candidates:
        if base in _BASES:
            return Mnemonic(base, cond, flags, width, datatype, vpt)
    return Mnemonic(head, "", False, width, datatype, "", known=False)


@dataclasses.dataclass(frozen=True)
class Instruction:
    """One disassembled instruction of the linked ELF: address, size in bytes (2 or 4), the
    mnemonic and operands as objdump prints them (comments dropped)."""

    address: int
    size: int
    mnemonic: str
    operands: str = ""

    @property
    def parsed(self) -> Mnemonic:
        return parse_mnemonic(self.mnemonic)

    @property
    def base(self) -> str:
        return self.parsed.base

    @property
    def next_address(self) -> int:
        return self.address + self.size


# ---------------------------------------------------------------------------------------------
# Operands
# ---------------------------------------------------------------------------------------------

_REG_ALIASES = {"sp": "r13", "lr": "r14", "pc": "r15", "ip": "r12", "fp": "r11", "sl": "r10",
                "sb": "r9"}
_REG_RE = re.compile(r"\b(r1[0-5]|r[0-9]|sp|lr|pc|ip|fp|sl|sb)\b")


def _norm(reg: str) -> str:
    return _REG_ALIASES.get(reg, reg)


def split_operands(operands: str) -> list[str]:
    """Top-level comma split: brackets and braces stay whole (``[r0, #4]``, ``{r4, r5}``)."""
    out, depth, cur = [], 0, []
    for ch in operands:
        if ch in "[{":
            depth += 1
        elif ch in "]}":
            depth -= 1
        if ch == "," and depth == 0:
            out.append("".join(cur).strip())
            cur = []
        else:
            cur.append(ch)
    if "".join(cur).strip():
        out.append("".join(cur).strip())
    return out


def _core_regs(text: str) -> list[str]:
    return [_norm(r) for r in _REG_RE.findall(text)]


def register_list(ins: Instruction) -> list[str]:
    """The registers a multiple transfer moves, ranges expanded (``{r4-r7, lr}`` -> 5,
    ``{d8-d15}`` -> 8 D registers). LDRD/STRD move their two registers."""
    base = ins.base
    if base in ("ldrd", "strd"):
        return _core_regs(",".join(split_operands(ins.operands)[:2]))
    if ins.base.startswith("vldr") or ins.base.startswith("vstr"):
        return [ins.operands.split(",")[0].strip()]
    m = re.search(r"\{([^}]*)\}", ins.operands)
    if not m:
        return []
    regs: list[str] = []
    for item in m.group(1).split(","):
        item = item.strip()
        if "-" in item:
            lo, hi = (s.strip() for s in item.split("-", 1))
            ml, mh = re.fullmatch(r"([a-z]+)(\d+)", lo), re.fullmatch(r"([a-z]+)(\d+)", hi)
            if ml and mh and ml.group(1) == mh.group(1):
                regs += [f"{ml.group(1)}{i}" for i in range(int(ml.group(2)), int(mh.group(2)) + 1)]
                continue
        if item:
            regs.append(_norm(item))
    return regs


def transfer_words(ins: Instruction) -> int:
    """32-bit data transfers of a load/store: 1 for LDR/STR, 2 for LDRD and VLDR.64, N for
    LDM/PUSH/POP, 2N for D-register lists, 4 for a 128-bit MVE load/store."""
    cls = classify(ins)
    if cls in (LOAD, LOAD_LITERAL, STORE):
        return 1
    if cls in (MVE_LOAD, MVE_STORE):
        return 4
    if cls in (LOAD_MULTIPLE, STORE_MULTIPLE):
        regs = register_list(ins)
        return sum(2 if r.startswith("d") else 1 for r in regs) or 1
    return 0


def writes_pc(ins: Instruction) -> bool:
    """Whether the instruction writes the PC (a branch, POP/LDM with PC, LDR PC, MOV/ADD PC)."""
    cls = classify(ins)
    if cls in (BRANCH,):
        return True
    if cls == LOAD_MULTIPLE:
        return "r15" in register_list(ins)
    ops = split_operands(ins.operands)
    if cls in (LOAD, ALU) and ops and _core_regs(ops[0]) == ["r15"]:
        return ins.base not in ("cmp", "cmn", "tst", "teq")
    return False


def branch_kind(ins: Instruction) -> str:
    """``call``, ``return``, ``indirect``, ``conditional``, ``unconditional`` or ``""`` (not a
    control transfer). Returns: BX LR, POP/LDM with PC, LDR PC from the stack."""
    if not writes_pc(ins) and classify(ins) != LOOP:
        return ""
    base, cond = ins.base, ins.parsed.condition
    if base in ("bl", "blx", "blxns"):
        return "call"
    if base in ("bx", "bxns") and _core_regs(ins.operands) == ["r14"]:
        return "return"
    if classify(ins) == LOAD_MULTIPLE or (classify(ins) == LOAD and "r13" in _core_regs(ins.operands)):
        return "return"
    if base in ("cbz", "cbnz") or cond or classify(ins) == LOOP:
        return "conditional"
    if base in ("b",):
        return "unconditional"
    return "indirect"


@functools.lru_cache(maxsize=1 << 16)
def classify(ins: Instruction) -> str:
    """The timing class of one instruction (one of :data:`CLASSES`, or ``unclassified``)."""
    p = ins.parsed
    if not p.known:
        return UNCLASSIFIED
    base = p.base
    cls = _BASES[base]
    ops = ins.operands
    has_q = bool(re.search(r"\bq\d+\b", ops))
    if base in _VECTOR_FORM and has_q:
        return _VECTOR_FORM[base]
    if base in ("vldr", "vstr"):
        if has_q:
            return MVE_LOAD if base == "vldr" else MVE_STORE
        if re.match(r"\s*d\d+", ops):  # VLDR.64/VSTR.64: two words, [M4-TRM] Table 7-1: 3 cycles
            return LOAD_MULTIPLE if base == "vldr" else STORE_MULTIPLE
        return LOAD if base == "vldr" else STORE
    if cls in (FP, FP_MAC, FP_DIV_SQRT) and "f64" in p.datatype.split("."):
        return FP_DOUBLE
    if cls == LOAD and re.search(r"\[\s*pc\b", ops):
        return LOAD_LITERAL
    if cls == LOAD and not re.search(r"\[", ops):  # "ldr r0, 8004 <x>": literal by label
        return LOAD_LITERAL
    return cls


# ---------------------------------------------------------------------------------------------
# Disassembly
# ---------------------------------------------------------------------------------------------

_LINE_RE = re.compile(r"^\s*([0-9a-f]+):\t((?:[0-9a-f]{2,8} )+)?\s*\t?([^\t]*)\t?(.*)$")
_MACHINE = {"v7E-M": "armv7e-m", "v7-M": "armv7-m", "v8-M.mainline": "armv8-m.main",
            "v8.1-M.mainline": "armv8.1-m.main", "v8-M.baseline": "armv8-m.base",
            "v6S-M": "armv6s-m", "v6-M": "armv6-m"}


def _tool(objdump: str, name: str) -> str | None:
    if objdump.endswith("objdump"):
        cand = objdump[: -len("objdump")] + name
        return shutil.which(cand)
    return None


def _machine_of(elf: Path, objdump: str) -> str | None:
    readelf = _tool(objdump, "readelf")
    if readelf is None:
        return None
    out = subprocess.run([readelf, "-A", str(elf)], capture_output=True, text=True).stdout
    m = re.search(r"Tag_CPU_arch:\s*(\S+)", out)
    return _MACHINE.get(m.group(1)) if m else None


def parse_objdump(text: str) -> dict[int, Instruction]:
    """Instructions from ``objdump -d`` output, with or without raw bytes. Data in code
    (``.word``, ``.short``, literal pools, read-only data dumped as 32-bit words) is left out; sizes come from the raw halfwords, or
    else from the next address (the ``.w`` suffix forcing 4)."""
    rows: list[tuple[int, int | None, str, str]] = []
    for line in text.splitlines():
        m = _LINE_RE.match(line)
        if not m:
            continue
        addr = int(m.group(1), 16)
        raw = (m.group(2) or "").split()
        mnemonic = m.group(3).strip()
        operands = m.group(4)
        if not mnemonic or any(len(h) == 8 for h in raw) or re.fullmatch(r"[0-9a-f]{8}", mnemonic):
            continue  # data dumped as 32-bit words (Thumb code prints 16-bit halfwords)
        operands = re.split(r"\s+[@;]", " " + operands, maxsplit=1)[0].strip()
        size = sum(len(h) // 2 for h in raw) if raw else None
        rows.append((addr, size, mnemonic, operands))
    out: dict[int, Instruction] = {}
    for i, (addr, size, mnemonic, operands) in enumerate(rows):
        if mnemonic.startswith("."):
            continue
        if size is None:
            nxt = rows[i + 1][0] if i + 1 < len(rows) else addr + 2
            size = 4 if mnemonic.lower().endswith(".w") else (nxt - addr if nxt - addr in (2, 4) else 2)
        out[addr] = Instruction(addr, size, mnemonic.lower(), operands)
    return out


def disassemble(elf: Path, *, objdump: str = "arm-none-eabi-objdump") -> dict[int, Instruction]:
    """Every instruction of the executable sections of ``elf``: address (bytes) -> Instruction.

    Runs ``objdump -d`` with the architecture the ELF's build attributes name (so Armv8.1-M MVE
    disassembles as Helium, not as coprocessor instructions)."""
    elf = Path(elf)
    if not elf.is_file():
        raise CycleModelError(f"{elf}: no such ELF file; give the path of the linked firmware image "
                              "(the .elf that the profiled run executed)")
    exe = shutil.which(objdump)
    if exe is None:
        raise CycleModelError(f"{objdump} not found on PATH, needed to disassemble {elf}. Install the "
                              "Debian package binutils-arm-none-eabi (apt-get install binutils-arm-none-eabi) "
                              "or pass objdump= the path of an Arm objdump")
    cmd = [exe, "-d", str(elf)]
    machine = _machine_of(elf, exe)
    if machine:
        cmd[1:1] = ["-m", machine]
    res = subprocess.run(cmd, capture_output=True, text=True)
    if res.returncode != 0:
        raise CycleModelError(f"{elf}: {objdump} failed ({res.stderr.strip()[:300]}); check that the file is an "
                              "Arm ELF executable built by arm-none-eabi-gcc")
    return parse_objdump(res.stdout)


# ---------------------------------------------------------------------------------------------
# Core models
# ---------------------------------------------------------------------------------------------


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
    issue: str = "single"  # "single", "dual" (M7 resource bound) or "beats" (M55 MVE)
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

#: The cycle models, keyed by the firmware target names (``firmware_harness.targets``) and
#: :attr:`tflite_export.mcu_targets.McuTarget.core`.
CORES: dict[str, CoreModel] = {c.name: c for c in (CORTEX_M4, CORTEX_M7, CORTEX_M33, CORTEX_M55)}


def get_core(core: str | CoreModel) -> CoreModel:
    if isinstance(core, CoreModel):
        return core
    if core not in CORES:
        raise CycleModelError(f"unknown core {core!r} for the cycle model; one of {', '.join(CORES)} "
                              "(a tflite_export.mcu_targets row's core, or a firmware target name)")
    return CORES[core]


# ---------------------------------------------------------------------------------------------
# Estimate
# ---------------------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class ClassCycles:
    instructions: int  # executions of instructions of the class
    cycles: float


@dataclasses.dataclass(frozen=True)
class WaitStates:
    """Memory cycles on top of the zero-wait-state core cycles."""

    instruction_fetch: float = 0.0  # compulsory misses of the code lines the segment executed
    literal_loads: float = 0.0  # compulsory misses of the literal-pool lines it read
    flash_data: float = 0.0  # weight reads from flash (only when flash_data_reads was given)
    sram: float = 0.0  # SRAM wait states on data reads

    @property
    def total(self) -> float:
        return self.instruction_fetch + self.literal_loads + self.flash_data + self.sram


@dataclasses.dataclass(frozen=True)
class CycleEstimate:
    core: str
    mcu: str  # "" when no MCU was given (zero wait states)
    cycles: int  # total, wait states included
    core_cycles: float  # zero wait states
    by_class: dict[str, ClassCycles]
    wait_state_cycles: float
    wait_states: WaitStates
    adjustments: dict[str, float]  # pipelining credits (-) and stalls/penalties (+), cycles
    instructions: int  # executions counted
    taken_branches: int
    not_taken_branches: int
    unclassified_instructions: int
    unclassified: dict[str, int]  # mnemonic (or "<no instruction at 0x...>") -> executions
    assumptions: tuple[str, ...]

    def ms(self, clock_hz: float) -> float:
        return ms(self.cycles, clock_hz)


def ms(cycles: float, clock_hz: float) -> float:
    """Milliseconds of ``cycles`` core clock cycles at ``clock_hz`` (Hz)."""
    if clock_hz <= 0:
        raise CycleModelError(f"clock {clock_hz!r} Hz: give the core clock in Hz (e.g. 120_000_000), a positive number")
    return 1000.0 * cycles / clock_hz


def _dests(ins: Instruction, cls: str) -> set[str]:
    ops = split_operands(ins.operands)
    if not ops or cls in (STORE, STORE_MULTIPLE, BRANCH, IT, OTHER) or ins.base in ("cmp", "cmn", "tst", "teq"):
        return set()
    if cls in (MAC32,) and ins.base not in ("smmul", "smmulr", "smmla", "smmlar", "smmls", "smmlsr"):
        return set(_core_regs(",".join(ops[:2])))
    if cls == DSP_MAC and ins.base.startswith(("smlal", "smlsl")):
        return set(_core_regs(",".join(ops[:2])))
    if cls == LOAD_MULTIPLE:
        return set(register_list(ins))
    return set(_core_regs(ops[0]))


def _sources(ins: Instruction, cls: str) -> set[str]:
    """Core registers the instruction reads (destinations left out unless also accumulated)."""
    ops = split_operands(ins.operands)
    if not ops:
        return set()
    ndest = 0
    if _dests(ins, cls) and cls != LOAD_MULTIPLE:
        ndest = 2 if len(_dests(ins, cls)) == 2 and cls in (MAC32, DSP_MAC, LOAD_MULTIPLE) else 1
        if ins.base == "ldrd":
            ndest = 2
    regs: set[str] = set()
    for i, op in enumerate(ops):
        if i < ndest and "[" not in op:
            continue
        regs.update(_core_regs(op))
    if ins.base.startswith(("smlal", "umlal", "umaal", "smlsl")):
        regs.update(_core_regs(",".join(ops[:2])))  # the 64-bit accumulator is read
    if ins.base in _READS_DEST or (len(ops) == 2 and ins.base in _TWO_OPERAND_READS_DEST):
        regs.update(_core_regs(ops[0]))  # "adds r0, #1" is "adds r0, r0, #1"; BFI/MOVT keep bits
    return regs


_TWO_OPERAND_READS_DEST = frozenset("add adc sub sbc and orr eor bic orn lsl lsr asr ror mul".split())
_READS_DEST = frozenset("bfi bfc movt".split())


def _address_regs(ins: Instruction) -> set[str]:
    m = re.search(r"\[([^\]]*)\]", ins.operands)
    if m:
        return set(_core_regs(m.group(1)))
    ops = split_operands(ins.operands)
    if ins.base.startswith(("ldm", "stm")) and ops:
        return set(_core_regs(ops[0]))
    if ins.base in ("push", "pop", "vpush", "vpop"):
        return {"r13"}
    return set()


def _store_has_register_offset(ins: Instruction) -> bool:
    m = re.search(r"\[([^\]]*)\]", ins.operands)
    return bool(m) and len(_core_regs(m.group(1))) > 1


def _literal_address(ins: Instruction) -> int | None:
    m = re.search(r"\[\s*pc\s*(?:,\s*#(-?(?:0x)?[0-9a-f]+))?\s*\]", ins.operands)
    if m:
        imm = int(m.group(1), 0) if m.group(1) else 0
        return ((ins.address + 4) & ~3) + imm
    m = re.match(r"\s*r\d+,\s*([0-9a-f]+)\b", ins.operands)
    return int(m.group(1), 16) if m else None


def _mcu(mcu: str | McuTarget | None) -> McuTarget | None:
    if mcu is None or isinstance(mcu, McuTarget):
        return mcu
    try:
        return get_mcu_target(mcu)
    except AscError as e:
        raise CycleModelError(str(e)) from None


def estimate_cycles(address_counts: Mapping[int, int], taken_counts: Mapping[int, int],
                    instructions: Mapping[int, Instruction], *, core: str | CoreModel | None = None,
                    mcu: str | McuTarget | None = None, flash_data_reads: int | None = None,
                    flash_data_bytes: int | None = None) -> CycleEstimate:
    """Cycles of one profiled segment on ``core`` (a :data:`CORES` key) behind ``mcu``'s memory.

    ``address_counts``: executions per instruction address (bytes); ``taken_counts``: per
    block-ending instruction, the executions after which control did not continue at the next
    address; ``instructions``: :func:`disassemble` of the ELF that ran. ``core`` defaults to the
    MCU's. ``flash_data_reads``: data reads the segment made from flash outside literal pools
    (weights, constants), e.g. ``firmware_harness.icount.merge_flash_reads`` of its segments;
    ``flash_data_bytes``: their bytes (None: 32-bit reads assumed); None leaves them unpriced
    (said in ``assumptions``). Returns cycles of the core clock."""
    target = _mcu(mcu)
    if core is None:
        if target is None:
            raise CycleModelError("estimate_cycles needs core= (one of " + ", ".join(CORES) + ") or mcu= (a "
                                  "tflite_export.mcu_targets name); give at least one")
        core = target.core
    model = get_core(core)
    if target is not None and target.core != model.name:
        raise CycleModelError(f"core {model.name} does not match microcontroller {target.name}, whose core is "
                              f"{target.core}; leave core= out to use the microcontroller's")

    by_cls: dict[str, list[float]] = {}
    adjustments: dict[str, float] = {}
    unclassified: dict[str, int] = {}
    assumptions: list[str] = list(model.assumptions)
    taken_total = not_taken_total = 0
    executed = 0
    mispredicts = 0.0
    refills = 0.0
    classes: dict[int, str] = {}

    def adjust(key: str, cycles: float) -> None:
        if cycles:
            adjustments[key] = adjustments.get(key, 0.0) + cycles

    for addr, n in address_counts.items():
        if n < 0:
            raise CycleModelError(f"address_counts[{addr:#x}] = {n}: execution counts cannot be negative; the "
                                  "profile is corrupt, run the segment again")
        if n == 0:
            continue
        executed += n
        ins = instructions.get(addr)
        if ins is None:
            key = f"<no instruction at {addr:#x}>"
            unclassified[key] = unclassified.get(key, 0) + n
            continue
        cls = classify(ins)
        cost = model.costs.get(cls) if cls != UNCLASSIFIED else None
        if cost is None:
            key = ins.mnemonic if cls == UNCLASSIFIED else f"{ins.mnemonic} ({cls}: not on {model.name})"
            unclassified[key] = unclassified.get(key, 0) + n
            continue
        classes[addr] = cls
        taken = taken_counts.get(addr, 0)
        kind = branch_kind(ins)
        if kind in ("call", "return", "unconditional", "indirect"):
            taken = n  # cannot fall through
        if taken > n:
            raise CycleModelError(f"taken_counts[{addr:#x}] = {taken} exceeds its {n} executions: the counts come "
                                  "from different runs or a different ELF; profile the segment again")
        cycles = cost.cycles * n
        if cost.per_register:
            cycles += cost.per_register * transfer_words(ins) * n
        if (cls == STORE and model.store_immediate_one_cycle and ins.base.startswith("str")
                and not _store_has_register_offset(ins)):
            cycles = 1.0 * n  # [M4-TRM] 3.3.2
        if cls == BRANCH and ins.base in ("tbb", "tbh"):
            cycles += 1.0 * n  # [M4-TRM] Table 3-1: TBB/TBH 2+P
        if kind:
            if kind == "conditional" or cls == LOOP:
                taken_total += taken
                not_taken_total += n - taken
            if cls == LOOP and ins.base in ("le", "letp"):
                pass  # low-overhead loop end: no refill (see LOOP cost)
            elif model.mispredict_only:
                if kind == "conditional":
                    mispredicts += min(taken, n - taken)
                elif kind in ("return", "indirect"):
                    mispredicts += n
            else:
                refills += taken
        acc = by_cls.setdefault(cls, [0, 0.0])
        acc[0] += n
        acc[1] += cycles

    # Adjacent pairs: i is followed by the next address count(i) - taken(i) times.
    for addr, cls in classes.items():
        ins = instructions[addr]
        nxt = instructions.get(ins.next_address)
        if nxt is None or ins.next_address not in classes:
            continue
        kind = branch_kind(ins)
        taken = address_counts[addr] if kind in ("call", "return", "unconditional", "indirect") else taken_counts.get(addr, 0)
        pairs = min(address_counts[addr] - taken, address_counts[ins.next_address])
        if pairs <= 0:
            continue
        ncls = classes[ins.next_address]
        if model.it_folding and ncls == IT and ins.size == 2:
            adjust("it_folding", -pairs)
        if (model.ldr_pipelining and cls in (LOAD, LOAD_LITERAL) and ins.base.startswith("ldr")
                and not writes_pc(ins) and nxt.base.startswith(("ldr", "str"))):
            follows = ncls in (LOAD, LOAD_LITERAL) or (ncls == STORE and _store_has_register_offset(nxt))
            if follows and not (_dests(ins, cls) & _address_regs(nxt)):
                adjust("ldr_pipelining", -pairs)
        if model.address_dependency_stall and cls in _DATA_PROCESSING and ncls in (
                LOAD, STORE, LOAD_MULTIPLE, STORE_MULTIPLE):
            if _dests(ins, cls) & _address_regs(nxt):
                adjust("address_dependency", model.address_dependency_stall * pairs)
        if model.result_use_stalls:
            cost = model.costs[cls]
            if cost and cost.latency > cost.cycles and _dests(ins, cls) & (_sources(nxt, ncls) | _address_regs(nxt)):
                adjust("result_use", (cost.latency - cost.cycles) * pairs)

    if model.issue == "dual":
        core_cycles = _m7_bound(by_cls)
        adjust("branch_mispredict", mispredicts * model.taken_branch_penalty)
    elif model.issue == "beats":
        core_cycles = _mve_bound(by_cls, model)
        adjust("taken_branch_refill", refills * model.taken_branch_penalty)
    else:
        core_cycles = sum(v[1] for v in by_cls.values())
        adjust("taken_branch_refill", refills * model.taken_branch_penalty)
    total_core = core_cycles + sum(adjustments.values())

    waits = wait_state_cycles(address_counts, instructions, classes, mcu=target,
                              flash_data_reads=flash_data_reads, flash_data_bytes=flash_data_bytes,
                              assumptions=assumptions)
    unclassified_n = sum(unclassified.values())
    if unclassified_n:
        assumptions.append(f"{unclassified_n} executions of unclassified instructions are not priced")
    result = {c: ClassCycles(int(v[0]), float(v[1])) for c, v in sorted(by_cls.items())}
    return CycleEstimate(core=model.name, mcu=target.name if target else "", cycles=int(round(total_core + waits.total)),
                         core_cycles=float(total_core), by_class=result, wait_state_cycles=float(waits.total),
                         wait_states=waits, adjustments=adjustments, instructions=executed,
                         taken_branches=taken_total, not_taken_branches=not_taken_total,
                         unclassified_instructions=unclassified_n, unclassified=unclassified,
                         assumptions=tuple(assumptions))


_M7_SINGLE_ISSUE = (DIV, LOAD_MULTIPLE, STORE_MULTIPLE, FP_DIV_SQRT, FP_DOUBLE, OTHER)


def _m7_bound(by_cls: dict[str, list[float]]) -> float:
    """[LLVM-M7] resources: cycles >= the single-issue instructions' cycles + the largest of
    (pairable instructions / 2, MAC-pipe users, SIMD slot-0 users, ALU users / 2, loads / 2,
    stores, branches, VFP users). Rewrites ``by_cls`` cycles in proportion to that bound."""
    n = {c: v[0] for c, v in by_cls.items()}
    single = sum(v[1] for c, v in by_cls.items() if c in _M7_SINGLE_ISSUE)
    pairable = [c for c in by_cls if c not in _M7_SINGLE_ISSUE]
    if not pairable:
        return single
    g = lambda *cs: sum(n.get(c, 0) for c in cs)  # noqa: E731
    bound = max(math.ceil(g(*pairable) / 2), g(MUL, MAC32, DSP_MAC), g(SIMD_ALU),
                math.ceil(g(ALU, IT, SIMD_ALU) / 2), math.ceil(g(LOAD, LOAD_LITERAL) / 2), g(STORE),
                g(BRANCH), g(FP, FP_MAC))
    issue_sum = sum(by_cls[c][1] for c in pairable)
    for c in pairable:
        by_cls[c][1] = bound * by_cls[c][1] / issue_sum if issue_sum else 0.0
    return single + bound


def _mve_bound(by_cls: dict[str, list[float]], model: CoreModel) -> float:
    """[LLVM-M55]: a vector instruction issues in a cycle and holds its pipe (load/store, integer,
    float/mul) for ``mve_beats`` cycles; consecutive vector instructions on different pipes
    overlap. Vector cycles = max(vector instructions, beats x the busiest pipe's instructions);
    scalar instructions are added, not overlapped with vector beats (a conservative choice)."""
    scalar = sum(v[1] for c, v in by_cls.items() if c not in MVE_CLASSES)
    vec = [c for c in MVE_CLASSES if c in by_cls]
    if not vec:
        return float(scalar)
    n = {c: by_cls[c][0] for c in vec}
    pipes = (n.get(MVE_LOAD, 0) + n.get(MVE_STORE, 0), n.get(MVE_ALU, 0), n.get(MVE_MAC, 0))
    vec_cycles = max(sum(n.values()), model.mve_beats * max(pipes))
    total = sum(n.values())
    for c in vec:
        by_cls[c][1] = vec_cycles * n[c] / total
    return float(scalar + vec_cycles)


def flash_read_penalty(mcu: str | McuTarget) -> float | None:
    """Expected wait cycles (core clock) of one 32-bit data read from flash while streaming a
    weight tensor: a miss once per flash line of ``flash_read_bytes`` (4 when not documented: every
    read misses), each ``flash_wait_states x flash_clock_divider`` cycles. 0 when the constants
    are in zero-wait-state memory (ITCM); None when the flash wait states are not documented.
    (:func:`flash_data_cycles` prices counted reads by their bytes.)"""
    t = _mcu(mcu)
    if t is None:
        raise CycleModelError("flash_read_penalty needs a microcontroller (a tflite_export.mcu_targets name)")
    if t.code_memory != "flash":
        return 0.0
    if t.flash_wait_states is None:
        return None
    line = t.flash_read_bytes or 4
    return min(1.0, 4 / line) * t.flash_wait_states * t.flash_clock_divider


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
    t = _mcu(mcu)
    if t is None:
        raise CycleModelError("flash_data_cycles needs a microcontroller (a tflite_export.mcu_targets name)")
    if t.code_memory != "flash":
        return 0.0
    if t.flash_wait_states is None:
        return None
    per_miss = t.flash_wait_states * t.flash_clock_divider
    if t.flash_read_bytes is None:
        return float(reads * per_miss)
    if nbytes is None:
        return reads * flash_read_penalty(t)
    return min(float(reads), nbytes / t.flash_read_bytes) * per_miss


def wait_state_cycles(address_counts: Mapping[int, int], instructions: Mapping[int, Instruction],
                      classes: Mapping[int, str], *, mcu: McuTarget | None, flash_data_reads: int | None,
                      assumptions: list[str], flash_data_bytes: int | None = None) -> WaitStates:
    """Memory wait cycles of a segment (core clock cycles); appends its assumptions.

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
        assumptions.append("no microcontroller given: zero wait states")
        return WaitStates()
    fetch = literal = flash = sram = 0.0
    data_reads = 0
    literal_reads = 0
    for addr, cls in classes.items():
        if cls in (LOAD, LOAD_MULTIPLE, MVE_LOAD):
            data_reads += transfer_words(instructions[addr]) * address_counts[addr]
        elif cls == LOAD_LITERAL:
            literal_reads += address_counts[addr]
    if mcu.code_memory == "flash":
        if mcu.flash_wait_states is None:
            assumptions.append(f"{mcu.name}: flash wait states at {mcu.clock_hz / 1e6:g} MHz not documented here; "
                               "instruction-fetch and flash-data wait cycles not counted")
        else:
            line = mcu.flash_read_bytes or 4
            per_miss = mcu.flash_wait_states * mcu.flash_clock_divider
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


# ---------------------------------------------------------------------------------------------
# Checks and report
# ---------------------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class PeakCheck:
    macs: int
    cycles: float
    macs_per_cycle: float
    peak: float
    core: str

    @property
    def ok(self) -> bool:
        return self.macs_per_cycle <= self.peak

    @property
    def message(self) -> str:
        verdict = "within" if self.ok else "ABOVE"
        text = (f"{self.macs:,d} int8 MACs in {self.cycles:,.0f} cycles = {self.macs_per_cycle:.2f} MACs/cycle, "
                f"{verdict} the {self.core} peak of {self.peak:g}")
        if not self.ok:
            text += (": the estimate has too few cycles for the arithmetic (unpriced instructions, a segment "
                     "boundary that misses work, or a cost too low)")
        return text


def check_against_peak(macs: int, cycles: float, core: str | CoreModel, *, raise_on_exceed: bool = False) -> PeakCheck:
    """Whether ``macs`` int8 multiply-accumulates in ``cycles`` cycles stay within the core's
    :attr:`CoreModel.peak_int8_macs_per_cycle`. Returns the check (``.ok``, ``.message``);
    raises :class:`PeakExceeded` instead when ``raise_on_exceed`` and it is above."""
    model = get_core(core)
    if cycles <= 0:
        raise CycleModelError(f"{cycles} cycles: a peak check needs a positive cycle count; estimate the "
                              "segment first (estimate_cycles)")
    check = PeakCheck(int(macs), float(cycles), macs / cycles, model.peak_int8_macs_per_cycle, model.name)
    if raise_on_exceed and not check.ok:
        raise PeakExceeded(check.message)
    return check


def format_estimate(est: CycleEstimate, *, clock_hz: float | None = None) -> str:
    """A Markdown report: cycles per class, wait states, adjustments, unclassified instructions
    and the assumptions."""
    lines = [f"cycle estimate ({est.core}{', ' + est.mcu if est.mcu else ''}): {est.cycles:,d} cycles"
             + (f" = {ms(est.cycles, clock_hz):.3f} ms at {clock_hz / 1e6:g} MHz" if clock_hz else ""),
             "| class | executions | cycles |", "|---|---|---|"]
    for cls, cc in est.by_class.items():
        lines.append(f"| {cls} | {cc.instructions:,d} | {cc.cycles:,.0f} |")
    for key, val in est.adjustments.items():
        lines.append(f"| ({key}) | | {val:+,.0f} |")
    w = est.wait_states
    lines.append(f"| (wait states: fetch {w.instruction_fetch:,.0f}, literal {w.literal_loads:,.0f}, flash data "
                 f"{w.flash_data:,.0f}, SRAM {w.sram:,.0f}) | | {est.wait_state_cycles:+,.0f} |")
    lines.append(f"| unclassified | {est.unclassified_instructions:,d} | not priced |")
    for name, n in sorted(est.unclassified.items(), key=lambda kv: -kv[1]):
        lines.append(f"|   {name} | {n:,d} | |")
    lines.append(f"branches: {est.taken_branches:,d} taken, {est.not_taken_branches:,d} not taken (conditional)")
    lines += [f"- {a}" for a in est.assumptions]
    return "\n".join(lines)
