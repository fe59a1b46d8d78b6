"""Cycles and milliseconds of a Cortex-M run, from exact instruction counts and a documented
per-core timing model.

QEMU has no cycle model, but its TCG plugin (``firmware_harness/profiling/instruction_counts.py``)
counts exactly how often each instruction address of the linked ELF executed in a profiled segment
(``address_counts``) and how often each translation-block-ending instruction was taken
(``taken_counts``: control did not continue at the fall-through address). This module turns those
counts into cycles: :func:`disassemble` reads the ELF with binutils, :func:`classify` puts each
instruction in a timing class, and :func:`estimate_cycles` prices the counts with a
:class:`CoreModel` from :data:`CORES` and the memory system of a
:class:`~tflite_export.mcu_targets.McuTarget`. Nothing here is fitted to a measurement: every cost
is a document's number, cited beside it, or a stated assumption with its reason.

The cores' costs and their sources are in :mod:`firmware_harness.profiling.cores`, the
memory system in :mod:`firmware_harness.profiling.memory_system`.

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
* Cortex-M85: both rules at once, over [LLVM-M85]'s resources: scalar instructions dual-issue as
  on the M7 (two ALUs, two load and two store pipes, one MAC, SIMD/FP in slot 0), a vector
  instruction issues alone and holds its pipe for 2 cycles (2 beats per tick), and scalar
  instructions issue beside a busy vector pipe; branch mispredictions cost 4 as on the M7.
* Cortex-M55 MVE: each vector instruction holds its pipe for 2 cycles; vector instructions take
  ``max(vector instructions, 2 x the busiest vector pipe's)`` cycles ([LLVM-M55]), and scalar
  cycles are added to that (not overlapped: conservative).
* Memory (the MCU's): see :func:`wait_state_cycles`. With the segment's simulated flash cache
  counts (``cache=``, the QEMU plugin's simulation of the MCU's documented caches): its fetch and
  data misses and prefetch stalls, each priced as one flash access. Without (bounds): code and
  literal pools in flash behind a cache: misses are the distinct flash lines the segment touched (compulsory misses; the loops of
  a segment are assumed to fit the cache -- reported when the executed code is larger); weight
  and constant reads from flash (literal pools excluded): only when the caller knows how many
  there were (``flash_data_reads`` and ``flash_data_bytes``, counted by the QEMU plugin of
  ``firmware_harness/profiling/qemu_plugin.py``), priced as streamed reads: one miss per flash line's worth of
  bytes read; SRAM wait states on every data read from SRAM.
* Conditional instructions in IT blocks are counted as executed (QEMU counts them whether or not
  their condition passed): an upper bound by at most a cycle per failed load.

Unknown mnemonics, instructions of a class the core lacks (MVE on an M4) and executed addresses
with no instruction in the disassembly are never dropped: they are counted in
``CycleEstimate.unclassified`` and shown by :func:`format_estimate`.
"""
from __future__ import annotations

import dataclasses
import math
import re
from collections.abc import Mapping

from firmware_harness.profiling.cores import CORES, CoreModel, get_core
from firmware_harness.profiling.errors import CycleModelError
from firmware_harness.profiling.instructions import (ALU, BRANCH, DATA_PROCESSING, DIV, DSP_MAC, FP, FP_DIV_SQRT,
                                                     FP_DOUBLE, FP_MAC, IT, LOAD, LOAD_LITERAL, LOAD_MULTIPLE, LOOP,
                                                     MAC32, MUL, MVE_ALU, MVE_CLASSES, MVE_LOAD, MVE_MAC, MVE_STORE,
                                                     OTHER, SIMD_ALU, STORE, STORE_MULTIPLE, UNCLASSIFIED, Instruction,
                                                     branch_kind, classify, core_registers, register_list,
                                                     split_operands, transfer_words, writes_pc)
from firmware_harness.profiling.memory_system import WaitStates, resolve_mcu, wait_state_cycles
from firmware_harness.profiling.cache_counts import CacheCounts
from tflite_export.mcu_targets import McuTarget


@dataclasses.dataclass(frozen=True)
class ClassCycles:
    instructions: int  # executions of instructions of the class
    cycles: float


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
        return set(core_registers(",".join(ops[:2])))
    if cls == DSP_MAC and ins.base.startswith(("smlal", "smlsl")):
        return set(core_registers(",".join(ops[:2])))
    if cls == LOAD_MULTIPLE:
        return set(register_list(ins))
    return set(core_registers(ops[0]))


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
        regs.update(core_registers(op))
    if ins.base.startswith(("smlal", "umlal", "umaal", "smlsl")):
        regs.update(core_registers(",".join(ops[:2])))  # the 64-bit accumulator is read
    if ins.base in _READS_DEST or (len(ops) == 2 and ins.base in _TWO_OPERAND_READS_DEST):
        regs.update(core_registers(ops[0]))  # "adds r0, #1" is "adds r0, r0, #1"; BFI/MOVT keep bits
    return regs


_TWO_OPERAND_READS_DEST = frozenset("add adc sub sbc and orr eor bic orn lsl lsr asr ror mul".split())
_READS_DEST = frozenset("bfi bfc movt".split())


def _address_regs(ins: Instruction) -> set[str]:
    m = re.search(r"\[([^\]]*)\]", ins.operands)
    if m:
        return set(core_registers(m.group(1)))
    ops = split_operands(ins.operands)
    if ins.base.startswith(("ldm", "stm")) and ops:
        return set(core_registers(ops[0]))
    if ins.base in ("push", "pop", "vpush", "vpop"):
        return {"r13"}
    return set()


def _store_has_register_offset(ins: Instruction) -> bool:
    m = re.search(r"\[([^\]]*)\]", ins.operands)
    return bool(m) and len(core_registers(m.group(1))) > 1


def estimate_cycles(address_counts: Mapping[int, int], taken_counts: Mapping[int, int],
                    instructions: Mapping[int, Instruction], *, core: str | CoreModel | None = None,
                    mcu: str | McuTarget | None = None, flash_data_reads: int | None = None,
                    flash_data_bytes: int | None = None, cache: CacheCounts | None = None) -> CycleEstimate:
    """Cycles of one profiled segment on ``core`` (a :data:`CORES` key) behind ``mcu``'s memory.

    ``address_counts``: executions per instruction address (bytes); ``taken_counts``: per
    block-ending instruction, the executions after which control did not continue at the next
    address; ``instructions``: :func:`disassemble` of the ELF that ran. ``core`` defaults to the
    MCU's. ``flash_data_reads``: data reads the segment made from flash outside literal pools
    (weights, constants), e.g. ``firmware_harness.profiling.execution_profile.merge_flash_reads`` of its segments;
    ``flash_data_bytes``: their bytes (None: 32-bit reads assumed); None leaves them unpriced
    (said in ``assumptions``). ``cache``: the segment's simulated flash cache counts on ``mcu``
    (``execution_profile.merge_cache_counts``; None: not simulated, the memory priced by the
    bounds of :func:`wait_state_cycles`). Returns cycles of the core clock."""
    target = resolve_mcu(mcu)
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
        if model.address_dependency_stall and cls in DATA_PROCESSING and ncls in (
                LOAD, STORE, LOAD_MULTIPLE, STORE_MULTIPLE):
            if _dests(ins, cls) & _address_regs(nxt):
                adjust("address_dependency", model.address_dependency_stall * pairs)
        if model.result_use_stalls:
            cost = model.costs[cls]
            if cost and cost.latency > cost.cycles and _dests(ins, cls) & (_sources(nxt, ncls) | _address_regs(nxt)):
                adjust("result_use", (cost.latency - cost.cycles) * pairs)

    if model.issue in ("dual", "dual-beats"):
        core_cycles = _m7_bound(by_cls) if model.issue == "dual" else _dual_issue_and_beats_bound(by_cls, model)
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
                              assumptions=assumptions, simulated=cache)
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


def _single_issue_plus_bound(by_cls: dict[str, list[float]], bound_of) -> float:
    """The single-issue instructions' cycles + ``bound_of(g, rest)``, the cycles of the others (``rest``,
    their classes; ``g(*classes)``: their instruction count), whose ``by_cls`` cycles are rewritten in
    proportion to that bound."""
    n = {c: v[0] for c, v in by_cls.items()}
    single = sum(v[1] for c, v in by_cls.items() if c in _M7_SINGLE_ISSUE)
    rest = [c for c in by_cls if c not in _M7_SINGLE_ISSUE]
    if not rest:
        return single
    bound = bound_of(lambda *cs: sum(n.get(c, 0) for c in cs), rest)
    issue_sum = sum(by_cls[c][1] for c in rest)
    for c in rest:
        by_cls[c][1] = bound * by_cls[c][1] / issue_sum if issue_sum else 0.0
    return single + bound


def _m7_bound(by_cls: dict[str, list[float]]) -> float:
    """[LLVM-M7] resources: cycles >= the single-issue instructions' cycles + the largest of
    (pairable instructions / 2, MAC-pipe users, SIMD slot-0 users, ALU users / 2, loads / 2,
    stores, branches, VFP users). Rewrites ``by_cls`` cycles in proportion to that bound."""
    return _single_issue_plus_bound(by_cls, lambda g, pairable: max(
        math.ceil(g(*pairable) / 2), g(MUL, MAC32, DSP_MAC), g(SIMD_ALU), math.ceil(g(ALU, IT, SIMD_ALU) / 2),
        math.ceil(g(LOAD, LOAD_LITERAL) / 2), g(STORE), g(BRANCH), g(FP, FP_MAC)))


def _dual_issue_and_beats_bound(by_cls: dict[str, list[float]], model: CoreModel) -> float:
    """[LLVM-M85] resources (Cortex-M85): the single-issue instructions' cycles + the largest of
    (issue slots: pairable scalar instructions / 2 + vector instructions, which issue alone; the
    MAC pipe; slot 0 (SIMD, FP and every vector instruction); ALU users / 2; the two load pipes
    (scalar loads / 2 + ``mve_beats`` x vector loads, which hold both); the two store pipes likewise;
    ``mve_beats`` x the vector integer and the vector multiply pipes' instructions; branches).
    Scalar instructions issue while a vector instruction's later beats hold its pipe. Rewrites
    ``by_cls`` cycles in proportion to that bound."""
    beats = model.mve_beats

    def bound(g, rest):
        vector = g(*MVE_CLASSES)
        scalar = [c for c in rest if c not in MVE_CLASSES]
        return max(math.ceil(g(*scalar) / 2) + vector, g(MUL, MAC32, DSP_MAC), g(SIMD_ALU, FP, FP_MAC) + vector,
                   math.ceil(g(ALU, IT, SIMD_ALU) / 2), math.ceil(g(LOAD, LOAD_LITERAL) / 2) + beats * g(MVE_LOAD),
                   math.ceil(g(STORE) / 2) + beats * g(MVE_STORE), beats * g(MVE_ALU), beats * g(MVE_MAC), g(BRANCH))
    return _single_issue_plus_bound(by_cls, bound)


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
