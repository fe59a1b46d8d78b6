"""Cortex-M instructions as the cycle model sees them: the timing classes (:data:`CLASSES`), printed
mnemonics taken apart (:func:`parse_mnemonic`), operands and the registers they name, and
:func:`classify`, which puts one instruction in its class. The sources in brackets are listed in
:mod:`firmware_harness.profiling.cores`."""
from __future__ import annotations

import dataclasses
import functools
import itertools
import re

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
DATA_PROCESSING = (ALU, MUL, MAC32, DSP_MAC, SIMD_ALU, DIV)

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


def core_registers(text: str) -> list[str]:
    return [_norm(r) for r in _REG_RE.findall(text)]


def register_list(ins: Instruction) -> list[str]:
    """The registers a multiple transfer moves, ranges expanded (``{r4-r7, lr}`` -> 5,
    ``{d8-d15}`` -> 8 D registers). LDRD/STRD move their two registers."""
    base = ins.base
    if base in ("ldrd", "strd"):
        return core_registers(",".join(split_operands(ins.operands)[:2]))
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
    if cls in (LOAD, ALU) and ops and core_registers(ops[0]) == ["r15"]:
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
    if base in ("bx", "bxns") and core_registers(ins.operands) == ["r14"]:
        return "return"
    if classify(ins) == LOAD_MULTIPLE or (classify(ins) == LOAD and "r13" in core_registers(ins.operands)):
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
