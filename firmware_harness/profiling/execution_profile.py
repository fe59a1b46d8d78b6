"""The typed, labelled instruction counts of a profiled run (:class:`ExecutionProfile`): segments,
Invokes and their operator rows, the front end's frames; merged counts for the cycle model and
the per-operator report of an Invoke (:func:`format_invoke`).

**Granularity.** Exact to one instruction: a count is QEMU's number of executed guest
instructions (an instruction in a Thumb-2 IT block counts whether or not its condition passed,
as QEMU executes it either way). Segments are cut at the first instruction of a mark function,
so each segment's count includes a few instructions of the marking itself, reported exactly
as ``marker_instructions`` (instructions at addresses inside the mark functions,
``AscOpProfiler::BeginEvent/EndEvent`` and ``AscProfiledInvoke``). On Thumb-2 an operator row
carries 3 of them (the 2 of ``AscMarkOpBegin``, ``movs r0, #2; bx lr``, and ``EndEvent``'s tail
call ``b.w AscMarkOpEnd``) and a between-operators row 3 (``AscMarkOpEnd``'s 2 and
``BeginEvent``'s tail call). An operator row also holds TFLM's own code between ``BeginEvent``
and ``EndEvent``: the kernel call, ``ResetTempAllocations`` and the profiler's null check and
virtual call in ``InvokeSubgraph``/``~ScopedMicroProfiler``; :meth:`ExecutionProfile.function_counts`
splits any segment by function. With ``mode="invoke"`` the interpreter runs without a profiler,
exactly as in a normal run, and only the whole Invoke is cut out (its ``net_instructions`` are
the normal firmware's Invoke, instruction for instruction).


**Interface for the cycle model** (:mod:`firmware_harness.profiling.cycle_estimate`): every
:class:`Segment` has

* ``address_counts: dict[int, int]``: instruction address (Thumb bit clear, as in
  ``arm-none-eabi-objdump -d``) -> times it executed in the segment;
* ``taken_counts: dict[int, int]``: address of every instruction that ended an executed TB ->
  times the next TB did NOT start at the fall-through address (the address after that
  instruction). For a conditional branch that is the number of times it was taken (not taken =
  ``address_counts[a] - taken_counts[a]``); an unconditional branch, call or return has
  ``taken == executions`` (unless it jumps to the next instruction); a TB QEMU ended for another
  reason (page boundary, 512 instructions) has 0. Instructions not in the dict never ended a TB.
* ``flash_data_reads`` / ``flash_data_bytes``: the segment's data reads from flash outside literal
  pools and their bytes (None when not counted), for ``estimate_cycles(flash_data_reads=,
  flash_data_bytes=)``.
* ``cache``: microcontroller name -> :class:`~firmware_harness.profiling.cache_counts.CacheCounts`,
  that MCU's simulated flash cache(s)
  during the segment (``firmware/qemu_plugin/cache_model.c``, run in the same pass for every MCU
  of the profiled core with a documented cache geometry; empty when none was simulated). The
  caches are warm across segments, as on the chip: a segment's misses depend on what ran before.

:meth:`ExecutionProfile.operator_segments` gives the segments of one operator,
:meth:`ExecutionProfile.invoke_segments` those of one whole Invoke,
:func:`merge_counts` adds several segments' dicts, :func:`merge_flash_reads` their flash reads and
:func:`merge_cache_counts` one MCU's simulated cache counts.

"""
from __future__ import annotations

import dataclasses
from collections import Counter
from typing import Iterable

import numpy as np

from firmware_harness.profiling.elf_symbols import FunctionTable
from firmware_harness.profiling.cache_counts import CacheCounts


@dataclasses.dataclass(frozen=True)
class Segment:
    """The instructions executed between two marks."""

    index: int  # position in the run
    kind: str  # startup | program | interpreter | operator | frontend
    mark: str  # the mark function that started it ("" for the program's start)
    invoke: int | None  # the Invoke (0-based, one per inference) it belongs to; None outside Invokes
    op_index: int | None  # operator segments: the operator's index in the model's subgraph
    op_type: str | None  # and its type (CONV_2D, ...)
    clip: int | None  # front-end segments (--wav-list runs): the clip
    frame: int | None  # and the frame (within the clip) whose computation it is part of; None after the last
    instructions: int
    marker_instructions: int  # of those, inside the mark functions (the marking's own cost)
    address_counts: dict[int, int]
    taken_counts: dict[int, int]
    # data reads from flash outside literal pools, and their bytes; None: not counted (count_flash_reads=False)
    flash_data_reads: int | None = None
    flash_data_bytes: int | None = None
    cache: dict[str, CacheCounts] = dataclasses.field(default_factory=dict)  # MCU -> simulated caches

    @property
    def net_instructions(self) -> int:
        return self.instructions - self.marker_instructions


@dataclasses.dataclass(frozen=True)
class OperatorCount:
    op_index: int
    op_type: str
    instructions: int  # the operator's segment, marker instructions included
    marker_instructions: int

    @property
    def net_instructions(self) -> int:
        return self.instructions - self.marker_instructions


@dataclasses.dataclass(frozen=True)
class InvokeCount:
    """One Invoke (one inference): the whole, and its rows that add up to it exactly."""

    index: int
    instructions: int  # between its two marks, by QEMU's per-instruction counter
    marker_instructions: int
    operators: tuple[OperatorCount, ...]  # empty with mode="invoke"
    interpreter_instructions: int  # the interpreter's own: before the first operator, between, after the last

    @property
    def net_instructions(self) -> int:
        """The Invoke without the marking's instructions (mode="invoke": the normal firmware's Invoke)."""
        return self.instructions - self.marker_instructions


@dataclasses.dataclass(frozen=True)
class ClipFrontEnd:
    """The front end's instructions on one clip (--wav-list runs), frame by frame."""

    clip: int
    frame_instructions: tuple[int, ...]  # per frame: the front end's work since the previous frame (or clip start)
    tail_instructions: int  # after the clip's last frame (FrontEndFinish's remainder)
    marker_instructions: int

    @property
    def instructions(self) -> int:
        return sum(self.frame_instructions) + self.tail_instructions


@dataclasses.dataclass(frozen=True)
class ExecutionProfile:
    target: str
    mode: str  # "ops": per-operator segments; "invoke": whole Invokes only
    segments: tuple[Segment, ...]
    invokes: tuple[InvokeCount, ...]
    frontend: tuple[ClipFrontEnd, ...]  # --wav-list runs only
    total_instructions: int  # the whole program run, reset to exit
    translation_blocks: int
    functions: FunctionTable = dataclasses.field(repr=False, compare=False)
    outputs: np.ndarray = dataclasses.field(repr=False, compare=False)  # (inferences, classes) int8
    wall_seconds: float = dataclasses.field(compare=False, default=0.0)  # QEMU with the plugin, host time
    granularity_instructions: int = 1
    flash_ranges: tuple[tuple[int, int], ...] = ()  # [first, end) whose data reads were counted; () = none
    #: every instruction QEMU translated: address -> FLAG_LOAD | FLAG_LITERAL | FLAG_STACK as the plugin
    #: decoded it (0: not a load); FLAG_LOAD alone: a read callback when flash reads are counted
    instruction_flags: dict[int, int] = dataclasses.field(default_factory=dict, repr=False, compare=False)
    #: the microcontrollers whose caches were simulated (keys of every Segment.cache), and each one's
    #: plugin geometry (``qemu_plugin.cache_spec``)
    cache_specs: dict[str, str] = dataclasses.field(default_factory=dict)

    def operator_segments(self, op_index: int, invoke: int | None = None) -> list[Segment]:
        return [s for s in self.segments if s.op_index == op_index and (invoke is None or s.invoke == invoke)]

    def invoke_segments(self, invoke: int) -> list[Segment]:
        return [s for s in self.segments if s.invoke == invoke]

    def deterministic_segments(self) -> list[Segment]:
        """The segments inside Invokes and the front end (the program's own ones read the host clock)."""
        return [s for s in self.segments if s.kind in ("interpreter", "operator", "frontend")]

    def function_counts(self, segments: Iterable[Segment]) -> Counter:
        """Instructions per function (demangled name) in ``segments``."""
        out = Counter()
        for s in segments:
            for a, c in s.address_counts.items():
                out[self.functions.name_at(a) or f"0x{a:x}"] += c
        return out


def merge_counts(segments: Iterable[Segment]) -> tuple[dict[int, int], dict[int, int]]:
    """(address_counts, taken_counts) of several segments added up."""
    counts, taken = Counter(), Counter()
    for s in segments:
        counts.update(s.address_counts)
        taken.update(s.taken_counts)
    return dict(counts), dict(taken)


def merge_flash_reads(segments: Iterable[Segment]) -> tuple[int | None, int | None]:
    """(flash_data_reads, flash_data_bytes) of several segments added up; (None, None) when any of
    them was profiled without counting them (``estimate_cycles`` then says they are not priced)."""
    reads = nbytes = 0
    for s in segments:
        if s.flash_data_reads is None or s.flash_data_bytes is None:
            return None, None
        reads += s.flash_data_reads
        nbytes += s.flash_data_bytes
    return reads, nbytes


def merge_cache_counts(segments: Iterable[Segment], mcu: str) -> CacheCounts | None:
    """Microcontroller ``mcu``'s simulated cache counts over ``segments`` added up; None when its
    caches were not simulated in all of them."""
    total = CacheCounts()
    for s in segments:
        if mcu not in s.cache:
            return None
        total = total + s.cache[mcu]
    return total


def format_invoke(profile: ExecutionProfile, invoke: int = 0) -> str:
    """A markdown table of one Invoke: a row per operator, the interpreter's own row, the total."""
    inv = profile.invokes[invoke]
    lines = [f"Instructions of Invoke {invoke} on {profile.target} (exact, QEMU; marks included as stated)", "",
             "| # | operator | instructions | share | of which marking |", "|---|---|---|---|---|"]
    for o in inv.operators:
        lines.append(f"| {o.op_index} | {o.op_type} | {o.instructions:,d} | {o.instructions / inv.instructions:.1%} | "
                     f"{o.marker_instructions} |")
    interp_marker = inv.marker_instructions - sum(o.marker_instructions for o in inv.operators)
    lines.append(f"| | interpreter (before, between and after operators) | {inv.interpreter_instructions:,d} | "
                 f"{inv.interpreter_instructions / inv.instructions:.1%} | {interp_marker} |")
    lines.append(f"| | **whole Invoke** | **{inv.instructions:,d}** | 100% | {inv.marker_instructions} |")
    return "\n".join(lines)
