"""The plugin's raw counts labelled and checked: :func:`label_profile` turns a :class:`RawProfile`
into an :class:`ExecutionProfile`.

**Invariants** (checked on every run; a violation raises :class:`FirmwareError`): for every
segment, sum over its TBs of executions x TB length equals the inline counter's difference
between its start and the next segment's start; the operator rows plus the interpreter's own
rows of an Invoke add up exactly to the whole Invoke (the inline counter between its two marks);
every Invoke has exactly one row per operator of the model, in the model's order; no mark
address lies inside a TB; a segment's flash data reads are at most 32 per executed instrumented
load (VLDM of 32 S registers) and each is 1 to 8 bytes (reads <= bytes <= 8 x reads), all 0
when they were not counted. Tests also check that two runs give identical counts in every Invoke
and front-end segment (the program's own segments around them call ``clock()`` through
semihosting, whose host-time values can change how many instructions the C library's
arithmetic and printing take).

"""
from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Sequence

import numpy as np

from firmware_harness.builds.third_party import FirmwareError
from firmware_harness.profiling.elf_symbols import FunctionTable
from firmware_harness.profiling.execution_profile import (
    ClipFrontEnd,
    ExecutionProfile,
    InvokeCount,
    OperatorCount,
    Segment,
)
from firmware_harness.profiling.qemu_plugin import (
    CLIP_BEGIN,
    FLAG_LOAD,
    FRAME,
    INVOKE_BEGIN,
    INVOKE_END,
    MARK_SYMBOLS,
    MARKER_FUNCTIONS,
    MAX_READ_BYTES,
    MAX_READS_PER_LOAD,
    OP_BEGIN,
    OP_END,
    SEGMENT_KINDS,
    RawProfile,
    RawSegment,
)


def _loads_per_tb(raw: RawProfile) -> np.ndarray:
    """Per TB id: its load instructions that had a read callback (FLAG_LOAD without FLAG_LITERAL)."""
    out = np.zeros(max(raw.tb_flags, default=-1) + 1, np.int64)
    for i, f in raw.tb_flags.items():
        out[i] = np.count_nonzero(f == FLAG_LOAD)
    return out


def _segment_counts(raw: RawProfile, seg: RawSegment, path: Path) -> tuple[dict[int, int], dict[int, int], int]:
    if not len(seg.tb_ids):
        return {}, {}, 0
    missing = [int(i) for i in seg.tb_ids if int(i) not in raw.tb_addresses]
    if missing:
        raise FirmwareError(f"{path}: a segment counts TB {missing[0]} that the file never defined")
    addrs = [raw.tb_addresses[int(i)] for i in seg.tb_ids]
    lengths = np.array([len(a) for a in addrs])
    all_addrs = np.concatenate(addrs)
    reps = np.repeat(seg.executions, lengths)
    uniq, inv = np.unique(all_addrs, return_inverse=True)
    sums = np.bincount(inv, weights=reps.astype(np.float64), minlength=len(uniq))
    # float64 is exact below 2**53 executions; check against the integer total
    total = int((seg.executions.astype(object) * lengths).sum())
    counts = {int(a): int(c) for a, c in zip(uniq, sums)}
    if sum(counts.values()) != total:
        raise FirmwareError(f"{path}: a segment's per-address counts do not add up to its TB counts")
    ends = np.array([a[-1] for a in addrs], np.uint64)
    taken_ends, tinv = np.unique(ends, return_inverse=True)
    taken = np.zeros(len(taken_ends), np.uint64)
    np.add.at(taken, tinv, seg.not_fallthrough)
    return counts, {int(a): int(t) for a, t in zip(taken_ends, taken)}, total


def label_profile(raw: RawProfile, *, path: Path, functions: FunctionTable, op_types: Sequence[str], mode: str,
           target: str, outputs: np.ndarray, wall: float,
           cache_specs: dict[str, str] | None = None) -> ExecutionProfile:
    """Typed, labelled segments; raises :class:`FirmwareError` when an invariant does not hold.
    ``cache_specs``: microcontroller name -> the ``cache=`` argument the plugin was given for it,
    in the order given (they name each segment's simulated cache counts)."""
    cache_specs = dict(cache_specs or {})
    if tuple(cache_specs.values()) != raw.cache_specs:
        raise FirmwareError(f"{path}: the plugin simulated the memory systems {list(raw.cache_specs)}, the caller "
                            f"asked for {list(cache_specs.values())}: the file comes from another run")
    if raw.marks_inside_tbs:
        raise FirmwareError(f"{path}: {raw.marks_inside_tbs} translation block(s) contain a mark function's first "
                            "instruction after their start, so segment boundaries would be wrong. The mark "
                            "functions must only be reached by calls (see firmware/asc_profile.h)")
    marker_ranges = functions.ranges(MARKER_FUNCTIONS)
    starts = np.array([r[0] for r in marker_ranges], np.int64)
    ends = np.array([r[1] for r in marker_ranges], np.int64)

    def marker_count(counts: dict[int, int]) -> int:
        if not counts or not len(starts):
            return 0
        a = np.fromiter(counts.keys(), np.int64, len(counts))
        c = np.fromiter(counts.values(), np.int64, len(counts))
        i = np.searchsorted(starts, a, side="right") - 1
        inside = (i >= 0) & (a < ends[np.maximum(i, 0)])
        return int(c[inside].sum())

    n_ops = len(op_types)
    loads_per_tb = _loads_per_tb(raw)
    icounts = [s.start_icount for s in raw.segments] + [raw.end_icount]
    segments: list[Segment] = []
    invokes: list[InvokeCount] = []
    clips: list[ClipFrontEnd] = []
    invoke = op = None
    invoke_start = 0
    invoke_rows: list[Segment] = []
    clip = None
    frames: list[int] = []
    pending = clip_marker = 0
    pending_segments: list[int] = []  # indexes of the front-end segments since the last frame

    def close_clip() -> None:
        nonlocal frames, pending, clip_marker, pending_segments
        if clip is not None:
            for i in pending_segments:  # the clip's tail: after its last frame
                segments[i] = dataclasses.replace(segments[i], frame=None)
            clips.append(ClipFrontEnd(clip, tuple(frames), pending, clip_marker))
        frames, pending, clip_marker, pending_segments = [], 0, 0, []

    for k, seg in enumerate(raw.segments):
        where = f"{path}: segment {k} (after {MARK_SYMBOLS[seg.kind] if 0 <= seg.kind < len(MARK_SYMBOLS) else 'reset'})"
        kind = SEGMENT_KINDS.get(seg.kind)
        if kind is None:
            raise FirmwareError(f"{where}: unknown mark kind {seg.kind}")
        counts, taken, total = _segment_counts(raw, seg, path)
        if total != icounts[k + 1] - icounts[k]:
            raise FirmwareError(
                f"{where}: {total} instructions by its TB counts but {icounts[k + 1] - icounts[k]} by QEMU's "
                "per-instruction counter: a TB was left before its end (an exception inside it?), so TB counts "
                "are not exact here")
        if not raw.flash_ranges and (seg.flash_reads or seg.flash_bytes):
            raise FirmwareError(f"{where}: {seg.flash_reads} flash data reads although no flash range was given")
        if not seg.flash_reads <= seg.flash_bytes <= MAX_READ_BYTES * seg.flash_reads:
            raise FirmwareError(f"{where}: {seg.flash_reads} flash data reads of {seg.flash_bytes} bytes: every read "
                                f"is 1 to {MAX_READ_BYTES} bytes; the file is corrupt")
        if seg.flash_reads:  # (every TB id was checked by _segment_counts)
            loads = int((seg.executions.astype(np.int64) * loads_per_tb[seg.tb_ids.astype(np.int64)]).sum())
            if seg.flash_reads > MAX_READS_PER_LOAD * loads:
                raise FirmwareError(f"{where}: {seg.flash_reads} flash data reads but {loads} executions of "
                                    "instrumented load instructions: reads were counted in the wrong segment")
        if seg.kind == INVOKE_BEGIN:
            if invoke is not None:
                raise FirmwareError(f"{where}: an Invoke began inside Invoke {invoke}")
            invoke, op, invoke_start, invoke_rows = len(invokes), 0, icounts[k], []
        elif seg.kind in (OP_BEGIN, OP_END, INVOKE_END) and invoke is None:
            raise FirmwareError(f"{where}: an Invoke or operator event outside an Invoke")
        op_index = op_type = None
        if seg.kind == OP_BEGIN:
            if op >= n_ops:
                raise FirmwareError(f"{where}: Invoke {invoke} ran more operator events than the model's {n_ops} "
                                    "operators (a model with several subgraphs, i.e. control flow, is not supported)")
            op_index, op_type = op, op_types[op]
            op += 1
        if seg.kind == CLIP_BEGIN:
            close_clip()
            clip = 0 if clip is None else clip + 1
        frontend = kind == "frontend"
        if frontend and clip is None:
            raise FirmwareError(f"{where}: front-end work before any clip began")
        s = Segment(index=k, kind=kind, mark=MARK_SYMBOLS[seg.kind] if seg.kind >= 0 else "",
                    invoke=invoke if kind in ("interpreter", "operator") else None, op_index=op_index,
                    op_type=op_type, clip=clip if frontend else None, frame=len(frames) if frontend else None,
                    instructions=total, marker_instructions=marker_count(counts), address_counts=counts,
                    taken_counts=taken, flash_data_reads=seg.flash_reads if raw.flash_ranges else None,
                    flash_data_bytes=seg.flash_bytes if raw.flash_ranges else None,
                    cache=dict(zip(cache_specs, seg.caches)))
        segments.append(s)
        if frontend:
            pending += total
            clip_marker += s.marker_instructions
            pending_segments.append(k)
        elif seg.kind == FRAME:
            if clip is None:
                raise FirmwareError(f"{where}: a frame before any clip began")
            frames.append(pending)
            pending, pending_segments = 0, []
        if seg.kind in (INVOKE_BEGIN, OP_BEGIN, OP_END):
            invoke_rows.append(s)
        elif seg.kind == INVOKE_END:
            whole = icounts[k] - invoke_start
            ops = tuple(OperatorCount(r.op_index, r.op_type, r.instructions, r.marker_instructions)
                        for r in invoke_rows if r.kind == "operator")
            interpreter = sum(r.instructions for r in invoke_rows if r.kind == "interpreter")
            if mode == "ops" and len(ops) != n_ops:
                raise FirmwareError(f"{where}: Invoke {invoke} had {len(ops)} operator events, the model has {n_ops} "
                                    "operators")
            if mode == "invoke" and ops:
                raise FirmwareError(f"{where}: operator events in a --profile invoke run")
            if sum(o.instructions for o in ops) + interpreter != whole:
                raise FirmwareError(f"{where}: Invoke {invoke}: operators ({sum(o.instructions for o in ops)}) + "
                                    f"interpreter ({interpreter}) != the whole Invoke ({whole}) instructions")
            invokes.append(InvokeCount(invoke, whole, sum(r.marker_instructions for r in invoke_rows), ops,
                                       interpreter))
            invoke = None
    if invoke is not None:
        raise FirmwareError(f"{path}: the program ended inside Invoke {invoke}")
    close_clip()
    if sum(s.instructions for s in segments) != raw.end_icount:
        raise FirmwareError(f"{path}: the segments add up to {sum(s.instructions for s in segments)} instructions, "
                            f"QEMU counted {raw.end_icount}")
    return ExecutionProfile(target=target, mode=mode, segments=tuple(segments), invokes=tuple(invokes),
                            frontend=tuple(clips), total_instructions=raw.end_icount,
                            translation_blocks=raw.translation_blocks, functions=functions, outputs=outputs,
                            wall_seconds=wall, flash_ranges=raw.flash_ranges, cache_specs=dict(cache_specs),
                            instruction_flags={int(a): int(f) for i, addrs in raw.tb_addresses.items()
                                               for a, f in zip(addrs, raw.tb_flags.get(i, ()))})
