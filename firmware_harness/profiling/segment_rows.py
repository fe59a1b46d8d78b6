"""Cycle rows of a profiled Invoke that add up exactly to its total, on every core.

The M7's dual-issue bound, the M55's MVE beat overlap and the M85's both are throughput bounds
over a segment's whole instruction mix (:mod:`firmware_harness.profiling.cycle_estimate`): they
are not additive, so pricing the merged counts of an Invoke gives a total that the operator rows,
priced one by one, do not sum to (99.3-102 % on the M7 and M55 before this module). Here every
row is priced on its own counts -- one row per operator (its segments merged) and one for TFLM's
interpreter (every segment of the Invoke between, before and after the operators) -- and the
Invoke's core cycles are *defined* as the sum of its rows. A bound per operator is also the
truer one: the hardware cannot overlap one operator's loads with another operator's MACs.

Memory wait states (:mod:`firmware_harness.profiling.memory_system`): when the QEMU plugin simulated
the microcontroller's flash caches in every segment (``Segment.cache``), each row is priced from
its own simulated counts -- misses and prefetch stalls are counts, so they add up, and every row
shows its own memory cycles: ``cycles = sum(row core cycles + row wait states)`` exactly, the
operators' sum included. Without a simulation the bounded memory model (compulsory misses of the
distinct code lines a segment touched) is not additive -- two rows touching one line would both
pay its miss -- so it is priced once on the merged counts of the rows asked for and shown as one
memory row: ``cycles = sum(row core cycles) + wait_state_cycles`` then.
"""
from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence

from firmware_harness.profiling.cores import CoreModel, get_core
from firmware_harness.profiling.cycle_estimate import estimate_cycles
from firmware_harness.profiling.execution_profile import (
    ExecutionProfile,
    merge_cache_counts,
    merge_counts,
    merge_flash_reads,
)
from firmware_harness.profiling.instructions import Instruction
from firmware_harness.profiling.memory_system import NO_MCU_ASSUMPTION, WaitStates, resolve_mcu
from firmware_harness.profiling.cache_counts import CacheCounts
from tflite_export.mcu_targets import McuTarget

OPERATOR = "operator"
INTERPRETER = "interpreter"


@dataclasses.dataclass(frozen=True)
class RowCounts:
    """The merged counts of one row's segments (see :func:`invoke_rows`)."""

    label: str  # "3 CONV_2D", "interpreter"
    kind: str  # OPERATOR or INTERPRETER
    op_index: int | None
    address_counts: dict[int, int]
    taken_counts: dict[int, int]
    flash_data_reads: int | None = None  # None: not counted
    flash_data_bytes: int | None = None
    cache: dict[str, CacheCounts] = dataclasses.field(default_factory=dict)  # MCU -> simulated, all segments merged


@dataclasses.dataclass(frozen=True)
class CycleRow:
    label: str
    kind: str
    op_index: int | None
    instructions: int  # executions in the row's segments (the marking's few included)
    core_cycles: float  # zero wait states, priced on this row's counts alone
    wait_state_cycles: float | None = None  # its own memory cycles (simulated caches); None: priced on the merged rows
    unclassified_instructions: int = 0  # executions the cycle model could not price

    @property
    def cycles(self) -> float:
        """Core cycles plus the row's own wait states (when priced per row)."""
        return self.core_cycles + (self.wait_state_cycles or 0.0)


@dataclasses.dataclass(frozen=True)
class RowsEstimate:
    """Rows whose core cycles add up to ``core_cycles``; ``cycles`` adds the memory row."""

    core: str
    mcu: str  # "" without a microcontroller (no memory row)
    rows: tuple[CycleRow, ...]
    wait_state_cycles: float  # the rows' own memory cycles added up (simulated), or priced once on their merged counts
    assumptions: tuple[str, ...]
    memory_per_row: bool = False  # True: every row carries its own wait states (simulated caches)
    wait_states: WaitStates = WaitStates()  # wait_state_cycles by kind (fetch, literal pools, flash data, SRAM)

    @property
    def core_cycles(self) -> float:
        return float(sum(r.core_cycles for r in self.rows))

    @property
    def cycles(self) -> float:
        return self.core_cycles + self.wait_state_cycles

    @property
    def unclassified_instructions(self) -> int:
        return sum(r.unclassified_instructions for r in self.rows)

    def kind_cycles(self, kind: str) -> float:
        """Core cycles of the rows of ``kind`` (OPERATOR or INTERPRETER)."""
        return float(sum(r.core_cycles for r in self.rows if r.kind == kind))

    def row(self, op_index: int) -> CycleRow:
        """The row of operator ``op_index``."""
        return next(r for r in self.rows if r.kind == OPERATOR and r.op_index == op_index)


def invoke_rows(run: ExecutionProfile, invoke: int = 0) -> list[RowCounts]:
    """The rows of Invoke ``invoke`` of a ``mode="ops"`` run: one per operator in execution order,
    then the interpreter's own (every other segment of the Invoke). Every segment of the Invoke is
    in exactly one row."""
    segments = run.invoke_segments(invoke)
    order: list[int] = []
    for s in segments:
        if s.kind == OPERATOR and s.op_index not in order:
            order.append(s.op_index)
    rows = []
    for op in order:
        mine = [s for s in segments if s.kind == OPERATOR and s.op_index == op]
        rows.append(_row(f"{op} {mine[0].op_type}", OPERATOR, op, mine))
    rest = [s for s in segments if s.kind != OPERATOR]
    if rest:
        rows.append(_row("interpreter", INTERPRETER, None, rest))
    return rows


def _row(label: str, kind: str, op_index: int | None, segments) -> RowCounts:
    counts, taken = merge_counts(segments)
    reads, nbytes = merge_flash_reads(segments)
    mcus = set.intersection(*(set(s.cache) for s in segments)) if segments else set()
    cache = {m: merge_cache_counts(segments, m) for m in sorted(mcus)}
    return RowCounts(label, kind, op_index, counts, taken, reads, nbytes, cache)


def estimate_rows(rows: Sequence[RowCounts], instructions: Mapping[int, Instruction], *,
                  core: str | CoreModel, mcu: str | McuTarget | None = None) -> RowsEstimate:
    """Price each of ``rows`` on its own counts on ``core`` and, with ``mcu``, its memory: per row
    from its simulated cache counts when every row has them for ``mcu`` (``memory_per_row``), else
    once on the rows' merged counts (the bounded model). ``instructions``: the image's
    :func:`~firmware_harness.profiling.disassembly.disassemble`. Pass a subset of
    :func:`invoke_rows` (e.g. the operators only) to price that subset: its total is its rows' sum."""
    model = get_core(core)
    target = resolve_mcu(mcu)
    per_row = target is not None and bool(rows) and all(target.name in r.cache for r in rows)
    out, assumptions, parts = [], list(model.assumptions), WaitStates()
    for r in rows:
        if per_row:
            est = estimate_cycles(r.address_counts, r.taken_counts, instructions, core=model, mcu=target,
                                  flash_data_reads=r.flash_data_reads, flash_data_bytes=r.flash_data_bytes,
                                  cache=r.cache[target.name])
            waits = float(est.wait_state_cycles)
            parts = parts + est.wait_states
        else:
            est = estimate_cycles(r.address_counts, r.taken_counts, instructions, core=model)
            waits = None
        out.append(CycleRow(r.label, r.kind, r.op_index, est.instructions, float(est.core_cycles), waits,
                            est.unclassified_instructions))
        assumptions += [a for a in est.assumptions if a not in assumptions and (target is None or a != NO_MCU_ASSUMPTION)]
    total_waits = float(sum(r.wait_state_cycles for r in out)) if per_row else 0.0
    if target is not None and not per_row:
        counts, taken = merge_counts(rows)  # a row has a segment's counts: the segments' sums serve
        reads, nbytes = merge_flash_reads(rows)
        whole = estimate_cycles(counts, taken, instructions, core=model, mcu=target, flash_data_reads=reads,
                                flash_data_bytes=nbytes)
        total_waits, parts = float(whole.wait_state_cycles), whole.wait_states
        assumptions += [a for a in whole.assumptions if a not in assumptions]
    return RowsEstimate(core=model.name, mcu=target.name if target else "", rows=tuple(out),
                        wait_state_cycles=total_waits, assumptions=tuple(assumptions), memory_per_row=per_row,
                        wait_states=parts)
