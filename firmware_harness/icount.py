"""Exact instruction counts of the linked Cortex-M firmware, per operator, per Invoke and per
front-end frame, from the image run under ``qemu-system-arm`` with a TCG plugin of our own.

**Mechanism.** The program (``firmware/main.cc --profile ops``) calls tiny never-inlined mark
functions (``firmware/asc_profile.h``: ``AscMarkInvokeBegin``, ``AscMarkOpBegin``, ...) at every
boundary: around each ``Invoke``, at TFLM's per-operator profiler events (``BeginEvent`` /
``EndEvent`` of a ``tflite::MicroProfilerInterface`` handed to the ``MicroInterpreter``;
TFLM's ``MicroInterpreterGraph::InvokeSubgraph`` emits them for every operator because our
flags do not define ``TF_LITE_STRIP_ERROR_STRINGS``), around every front-end call and at every
frame the front end emits (``--wav-list``). Their addresses come from the ELF
(``arm-none-eabi-nm``) and go to the plugin (``firmware/qemu_plugin/icount_plugin.c``), which
starts a new *segment* every time the translation block (TB) at a mark address executes. Per
segment it records each executed TB's execution count and how often the next TB did not start
at the TB's fall-through address; the TBs' instruction addresses are recorded once, at
translation. QEMU also adds 1 to an inline counter before every executed instruction
(independently of the plugin's bookkeeping); its value at each segment start lets this module
check every segment's total (see *Invariants*).

**Flash data reads.** On a microcontroller the model's weights (``g_model_data``) and every other
constant (CMSIS-DSP tables, mel weights, vtables) stay in flash, and reading them pays flash wait
states. :func:`flash_ranges` takes the image's flash contents from the ELF (the loaded sections
that the linker put in the ``FLASH`` region of ``firmware/cortex_m/*.ld``, as the map file's
*Memory Configuration* gives it: ``.text`` with code and ``.rodata``, ``.ARM.exidx``,
``.init_array``...) and the plugin is given them (``flash=LO:HI``). It then registers a
memory callback on every load instruction except PC-relative literal loads and loads based on
SP (the stack is in RAM; POP and SP-relative loads are more than half of the executed loads),
both decoded from the encoding at translation, and counts, per segment, the data reads whose
address is in flash and their bytes (the access size): ``Segment.flash_data_reads`` /
``flash_data_bytes``. One count per access QEMU makes: ``LDM`` one per register, ``LDRD`` two
4-byte reads, ``VLDR.64`` one 8-byte read. Literal loads of a core register (``ldr rX, [pc,
#imm]``, also LDRB/LDRH/LDRSB/LDRSH) are NOT counted: the cycle model prices exactly those as its
``LOAD_LITERAL`` class, 2 cycles plus a compulsory miss per literal-pool flash line, so nothing
is priced twice; ``LDRD`` and ``VLDR`` with a PC base are counted, as the cycle model prices
them as data loads (tests check, over every translated instruction, that the plugin's loads and
literal loads are the cycle model's). Stores, instruction fetches and the core's own
vector/stack accesses on exceptions are not data reads of the program and are never counted.
``count_flash_reads=False`` registers no memory callback at all (and the counts are None).

**The plugin build.** Debian 12's QEMU 7.2 loads plugins (``-plugin file.so,key=value,...``)
but ships neither plugins nor ``qemu-plugin.h``, so ``firmware/qemu_plugin/qemu_plugin_api.h``
declares the few API functions and types the plugin uses (QEMU 7.2, plugin API version 1).
:func:`build_plugin` compiles it with the host's ``gcc -shared -fPIC`` into
``<cache>/qemu_plugin/icount_plugin-<key>.so`` where ``<key>`` hashes the plugin's sources,
the flags and ``gcc --version``; it is built once and never committed.

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

**Interface for the cycle model** (``firmware_harness/cycle_model.py``): every
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

:meth:`ExecutionProfile.operator_segments` gives the segments of one operator,
:meth:`ExecutionProfile.invoke_segments` those of one whole Invoke,
:func:`merge_counts` adds several segments' dicts and :func:`merge_flash_reads` their flash reads.

Data file format: see ``firmware/qemu_plugin/icount_plugin.c`` (:func:`read_plugin_output`).
"""
from __future__ import annotations

import bisect
import dataclasses
import hashlib
import os
import shutil
import subprocess
import time
from collections import Counter
from pathlib import Path
from typing import Iterable, Sequence

import numpy as np

from firmware_harness import program as fw_program
from firmware_harness import third_party
from firmware_harness.program import Program
from firmware_harness.third_party import FirmwareError

PLUGIN_DIR = third_party.repo_root() / "firmware" / "qemu_plugin"
PLUGIN_SOURCES = ("icount_plugin.c", "qemu_plugin_api.h")
PLUGIN_FLAGS = ("-std=gnu11", "-O2", "-Wall", "-Wextra", "-Werror", "-fPIC", "-shared", "-fvisibility=hidden")

#: The mark functions, in the order their addresses are passed to the plugin: a segment's kind is
#: the index of the mark that started it (-1: the program's start).
MARK_SYMBOLS = ("AscMarkInvokeBegin", "AscMarkInvokeEnd", "AscMarkOpBegin", "AscMarkOpEnd", "AscMarkFrontEndBegin",
                "AscMarkFrontEndEnd", "AscMarkFrame", "AscMarkClipBegin")
(INVOKE_BEGIN, INVOKE_END, OP_BEGIN, OP_END, FRONTEND_BEGIN, FRONTEND_END, FRAME, CLIP_BEGIN) = range(len(MARK_SYMBOLS))
START = -1
#: Functions (demangled names, prefixes) whose instructions are the marking's own.
MARKER_FUNCTIONS = ("AscMark", "AscProfiledInvoke(", "AscOpProfiler::BeginEvent(", "AscOpProfiler::EndEvent(")

#: What a segment is, by the mark that starts it.
SEGMENT_KINDS = {START: "startup", INVOKE_BEGIN: "interpreter", INVOKE_END: "program", OP_BEGIN: "operator",
                 OP_END: "interpreter", FRONTEND_BEGIN: "frontend", FRONTEND_END: "program", FRAME: "program",
                 CLIP_BEGIN: "frontend"}
MODES = ("ops", "invoke")
FORMAT_MAGIC = b"ASCICNT1"
FORMAT_VERSION = 2
#: Per-instruction flags in the plugin's TB records (``InstructionFlags`` in icount_plugin.c): a
#: load; a PC-relative literal load of a core register; a load based on SP (the stack, in RAM).
#: Only loads with FLAG_LOAD alone get a read callback.
FLAG_LOAD, FLAG_LITERAL, FLAG_STACK = 1, 2, 4
#: The most data reads one instruction makes (VLDM of 32 S registers) and the largest read (VLDR.64).
MAX_READS_PER_LOAD, MAX_READ_BYTES = 32, 8


# --- the plugin ---------------------------------------------------------------------------------

def build_plugin(*, log=print) -> Path:
    """The plugin's shared object, compiled with the host's ``gcc`` into the build cache once per
    source/flags/compiler version."""
    gcc = shutil.which("gcc")
    if gcc is None:
        raise FirmwareError("the instruction-count plugin (firmware/qemu_plugin/icount_plugin.c) needs the host's C "
                            "compiler: `gcc` is not on PATH. Install the Debian package `gcc` (`apt-get install gcc`)")
    version = subprocess.run([gcc, "--version"], capture_output=True, text=True).stdout.splitlines()[:1]
    h = hashlib.sha256(repr((PLUGIN_FLAGS, version)).encode())
    for name in PLUGIN_SOURCES:
        h.update(name.encode() + (PLUGIN_DIR / name).read_bytes())
    out = third_party.cache_root() / "qemu_plugin" / f"icount_plugin-{h.hexdigest()[:16]}.so"
    if out.is_file():
        return out
    log(f"icount: building the QEMU plugin into {out}")
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(f".{out.name}.{os.getpid()}.tmp")
    cmd = [gcc, *PLUGIN_FLAGS, "-o", str(tmp), str(PLUGIN_DIR / "icount_plugin.c")]
    proc = subprocess.run(cmd, capture_output=True, text=True)
    if proc.returncode != 0:
        tmp.unlink(missing_ok=True)
        raise FirmwareError(f"{PLUGIN_DIR / 'icount_plugin.c'} did not compile with the host gcc:\n$ {' '.join(cmd)}\n"
                            f"{proc.stderr[-3000:]}")
    os.replace(tmp, out)
    return out


# --- symbols ------------------------------------------------------------------------------------

@dataclasses.dataclass(frozen=True)
class FunctionTable:
    """The ELF's sized function symbols (demangled), sorted by address."""

    starts: tuple[int, ...]
    ends: tuple[int, ...]
    names: tuple[str, ...]

    def name_at(self, address: int) -> str | None:
        i = bisect.bisect_right(self.starts, address) - 1
        return self.names[i] if i >= 0 and address < self.ends[i] else None

    def address_of(self, name: str) -> int:
        """Start of the function named exactly ``name`` (demangled)."""
        for s, n in zip(self.starts, self.names):
            if n == name:
                return s
        raise KeyError(name)

    def ranges(self, prefixes: Sequence[str]) -> tuple[tuple[int, int], ...]:
        return tuple((s, e) for s, e, n in zip(self.starts, self.ends, self.names) if n.startswith(tuple(prefixes)))


def read_functions(elf: Path, *, nm: str = "arm-none-eabi-nm") -> FunctionTable:
    proc = subprocess.run([nm, "-S", "-C", "--defined-only", str(elf)], capture_output=True, text=True)
    if proc.returncode != 0:
        raise FirmwareError(f"`{nm} -S -C {elf}` failed: {proc.stderr[-1000:]}")
    rows = {}
    for line in proc.stdout.splitlines():
        parts = line.split(maxsplit=3)
        if len(parts) == 4 and parts[2] in "TtWw":
            start, size = int(parts[0], 16) & ~1, int(parts[1], 16)
            if size:
                rows.setdefault(start, (start + size, parts[3]))
    order = sorted(rows)
    return FunctionTable(tuple(order), tuple(rows[s][0] for s in order), tuple(rows[s][1] for s in order))


#: Marks only a program with the exported audio front end has (a model of your own has none).
FRONTEND_MARKS = ("AscMarkFrontEndBegin", "AscMarkFrontEndEnd", "AscMarkFrame", "AscMarkClipBegin")
#: The address given to the plugin for a mark the image does not contain: never executed.
NO_MARK_ADDRESS = 0xFFFFFFFF


def mark_addresses(functions: FunctionTable, elf: Path) -> tuple[int, ...]:
    """The mark functions' addresses, in :data:`MARK_SYMBOLS` order; a front-end mark the image
    lacks (no front end linked) gets :data:`NO_MARK_ADDRESS`."""
    out = []
    for name in MARK_SYMBOLS:
        try:
            out.append(functions.address_of(name))
        except KeyError:
            if name not in FRONTEND_MARKS:
                raise FirmwareError(f"{elf} has no mark function {name}: it was built from a firmware/main.cc without "
                                    "--profile (firmware/asc_profile.h). Rebuild it with firmware_harness.program."
                                    "build_program") from None
            out.append(NO_MARK_ADDRESS)
    return tuple(out)


# --- the image's flash ---------------------------------------------------------------------------

def _sections(elf: Path, objdump: str) -> list[tuple[str, int, int, int, set[str]]]:
    """(name, size, VMA, LMA, flags) of every section, from ``objdump -h``."""
    proc = subprocess.run([objdump, "-h", str(elf)], capture_output=True, text=True)
    if proc.returncode != 0:
        raise FirmwareError(f"`{objdump} -h {elf}` failed: {proc.stderr[-1000:]}")
    rows, lines = [], proc.stdout.splitlines()
    for line, nxt in zip(lines, lines[1:] + [""]):
        parts = line.split()
        if len(parts) >= 7 and parts[0].isdigit():
            rows.append((parts[1], int(parts[2], 16), int(parts[3], 16), int(parts[4], 16),
                         {f.strip() for f in nxt.split(",")}))
    return rows


def _map_region(map_file: Path | None, name: str) -> tuple[int, int] | None:
    """(origin, end) of the linker's memory region ``name`` (the map file's *Memory Configuration*)."""
    if map_file is None or not Path(map_file).is_file():
        return None
    text = Path(map_file).read_text(errors="replace")
    head, _, rest = text.partition("Memory Configuration")
    for line in rest.splitlines()[:40]:
        parts = line.split()
        if len(parts) >= 3 and parts[0] == name:
            origin, length = int(parts[1], 16), int(parts[2], 16)
            return origin, origin + length
    return None


def flash_ranges(elf: Path, *, map_file: Path | None = None, objdump: str = "arm-none-eabi-objdump",
                 gap: int = 64) -> tuple[tuple[int, int], ...]:
    """Address ranges [first, end) of the image's contents in flash: the loaded sections (ALLOC,
    LOAD) whose load address the linker put in the ``FLASH`` region (``firmware/cortex_m/*.ld``:
    ``.text`` with code and ``.rodata``, ``.ARM.exidx``, ``.init_array``...), read from the map
    file's *Memory Configuration*; without a map file, the READONLY loaded sections. Ranges less
    than ``gap`` bytes apart (alignment padding) are merged."""
    region = _map_region(map_file, "FLASH")
    spans = []
    for name, size, vma, lma, flags in _sections(elf, objdump):
        if not size or not {"ALLOC", "LOAD"} <= flags:
            continue
        if region is not None:
            lo, hi = max(lma, region[0]), min(lma + size, region[1])
            if lo < hi:
                spans.append((lo, hi))
        elif "READONLY" in flags:
            spans.append((vma, vma + size))
    merged: list[list[int]] = []
    for lo, hi in sorted(spans):
        if merged and lo <= merged[-1][1] + gap:
            merged[-1][1] = max(merged[-1][1], hi)
        else:
            merged.append([lo, hi])
    if not merged:
        raise FirmwareError(f"{elf}: no loaded section in flash (objdump -h found none"
                            f"{' in the FLASH region of ' + str(map_file) if region else ''}): is it a Cortex-M image "
                            "linked with firmware/cortex_m/*.ld?")
    return tuple((lo, hi) for lo, hi in merged)


# --- the plugin's output ------------------------------------------------------------------------

@dataclasses.dataclass(frozen=True)
class RawSegment:
    kind: int  # index into MARK_SYMBOLS, -1 for the program's start
    start_icount: int  # QEMU's inline instruction counter when the segment started
    tb_ids: np.ndarray  # uint32
    executions: np.ndarray  # uint64
    not_fallthrough: np.ndarray  # uint64
    flash_reads: int = 0  # data reads from the flash ranges (0 when none were given)
    flash_bytes: int = 0


@dataclasses.dataclass(frozen=True)
class RawProfile:
    tb_addresses: dict[int, np.ndarray]  # TB id -> its instructions' addresses (uint64)
    segments: tuple[RawSegment, ...]
    end_icount: int
    marks_inside_tbs: int
    translation_blocks: int
    flash_ranges: tuple[tuple[int, int], ...] = ()  # [first, end) given to the plugin; () = not counted
    tb_flags: dict[int, np.ndarray] = dataclasses.field(default_factory=dict)  # TB id -> FLAG_* per insn (uint8)


_ENTRY = np.dtype([("id", "<u4"), ("pad", "<u4"), ("count", "<u8"), ("taken", "<u8")])


def read_plugin_output(path: Path) -> RawProfile:
    """Parse the plugin's file (format in ``firmware/qemu_plugin/icount_plugin.c``)."""
    raw = Path(path).read_bytes()
    if raw[:8] != FORMAT_MAGIC or len(raw) < 16:
        raise FirmwareError(f"{path}: not an instruction-count file of firmware/qemu_plugin/icount_plugin.c "
                            "(QEMU probably stopped before the plugin wrote it)")
    version, n_marks = (int(v) for v in np.frombuffer(raw, "<u4", 2, 8))
    if version != FORMAT_VERSION:
        raise FirmwareError(f"{path}: instruction-count file format version {version}; this reader "
                            f"(firmware_harness/icount.py) reads only version {FORMAT_VERSION}, the format of "
                            "firmware/qemu_plugin/icount_plugin.c (kFormatVersion). The file comes from another "
                            f"build of the plugin: delete {third_party.cache_root() / 'qemu_plugin'} and profile again")
    if n_marks != len(MARK_SYMBOLS):
        raise FirmwareError(f"{path}: {n_marks} mark kinds; this reader expects {len(MARK_SYMBOLS)} "
                            f"({', '.join(MARK_SYMBOLS)}): the cached plugin is stale, delete "
                            f"{third_party.cache_root() / 'qemu_plugin'}")
    if len(raw) < 24:
        raise FirmwareError(f"{path}: the header is cut short (QEMU probably stopped before the plugin wrote it)")
    n_flash = int(np.frombuffer(raw, "<u4", 1, 16)[0])
    bounds = np.frombuffer(raw, "<u8", 2 * n_flash, 24).reshape(n_flash, 2)
    flash = tuple((int(lo), int(hi)) for lo, hi in bounds)
    pos, tbs, flags, segments, end = 24 + 16 * n_flash, {}, {}, [], None
    while pos < len(raw):
        tag = int(np.frombuffer(raw, "<u4", 1, pos)[0])
        if tag == 1:
            tb_id, _, _, n = (int(v) for v in np.frombuffer(raw, "<u4", 4, pos + 4))
            pos += 24
            tbs[tb_id] = np.frombuffer(raw, "<u8", n, pos).copy()
            flags[tb_id] = np.frombuffer(raw, "u1", n, pos + 9 * n).copy()
            pos += 10 * n + (-2 * n % 4)
        elif tag == 2:
            kind = int(np.frombuffer(raw, "<i4", 1, pos + 4)[0])
            start, reads, nbytes = (int(v) for v in np.frombuffer(raw, "<u8", 3, pos + 8))
            n = int(np.frombuffer(raw, "<u4", 1, pos + 32)[0])
            e = np.frombuffer(raw, _ENTRY, n, pos + 40)
            segments.append(RawSegment(kind, start, e["id"].copy(), e["count"].copy(), e["taken"].copy(), reads,
                                       nbytes))
            pos += 40 + _ENTRY.itemsize * n
        elif tag == 3:
            inside = int(np.frombuffer(raw, "<u4", 1, pos + 4)[0])
            icount, n_tbs = (int(v) for v in np.frombuffer(raw, "<u8", 2, pos + 8))
            end = (icount, inside, n_tbs)
            pos += 24
        else:
            raise FirmwareError(f"{path}: unknown record tag {tag} at byte {pos}")
    if end is None:
        raise FirmwareError(f"{path}: no end record: QEMU did not exit normally, so the plugin's last segment "
                            "was never written")
    return RawProfile(tbs, tuple(segments), end[0], end[1], end[2], flash, flags)


# --- typed results ------------------------------------------------------------------------------

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


# --- labelling and checking ---------------------------------------------------------------------

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


def _label(raw: RawProfile, *, path: Path, functions: FunctionTable, op_types: Sequence[str], mode: str,
           target: str, outputs: np.ndarray, wall: float) -> ExecutionProfile:
    """Typed, labelled segments; raises :class:`FirmwareError` when an invariant does not hold."""
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
                    flash_data_bytes=seg.flash_bytes if raw.flash_ranges else None)
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
                            wall_seconds=wall, flash_ranges=raw.flash_ranges,
                            instruction_flags={int(a): int(f) for i, addrs in raw.tb_addresses.items()
                                               for a, f in zip(addrs, raw.tb_flags.get(i, ()))})


# --- running ------------------------------------------------------------------------------------

def _prepare(program: Program, mode: str, *, count_flash_reads: bool,
             log) -> tuple[Path, FunctionTable, tuple[int, ...], tuple[tuple[int, int], ...]]:
    if mode not in MODES:
        raise ValueError(f"mode must be one of {MODES}, not {mode!r}")
    if not program.target.emulated:
        raise FirmwareError(f"target {program.target.name} runs natively: instruction counts need a Cortex-M target, "
                            "run under qemu-system-arm (cortex-m4, cortex-m7, cortex-m33, cortex-m55)")
    plugin = build_plugin(log=log)
    functions = read_functions(program.path, nm=f"{program.target.prefix}nm")
    flash = (flash_ranges(program.path, map_file=program.map_file, objdump=f"{program.target.prefix}objdump")
             if count_flash_reads else ())
    return plugin, functions, mark_addresses(functions, program.path), flash


def _qemu_args(plugin: Path, marks: Sequence[int], out_name: str,
               flash: Sequence[tuple[int, int]] = ()) -> list[str]:
    # QEMU's option syntax: a comma inside a value is written twice
    spec = ",".join([str(plugin).replace(",", ",,"), f"out={out_name}", *(f"mark=0x{a:x}" for a in marks),
                     *(f"flash=0x{lo:x}:0x{hi:x}" for lo, hi in flash)])
    return ["-plugin", spec]


def _run(plugin: Path, call):
    """``call()`` (a program run with the plugin); a plugin QEMU refuses is named with the fix."""
    try:
        return call()
    except FirmwareError as e:
        if "Could not load plugin" not in str(e):
            raise
        raise FirmwareError(
            f"qemu-system-arm could not load {plugin} (firmware/qemu_plugin/icount_plugin.c, built for QEMU 7.2's "
            f"plugin API version 1): {' '.join(str(e).split())[-600:]} If this QEMU supports other API versions, declare one it "
            "accepts in firmware/qemu_plugin/qemu_plugin_api.h (ASC_QEMU_PLUGIN_API_VERSION) after checking that "
            "the declarations there still match its qemu-plugin.h; icount.build_plugin rebuilds it") from None


def _op_types(model: bytes) -> list[str]:
    from tflite_export.flatbuffer import operator_names, read_model_shared

    return operator_names(read_model_shared(model))


def profile_inferences(program: Program, work: Path, *, int8: np.ndarray, model: bytes, mode: str = "ops",
                       count_flash_reads: bool = True, timeout: float | None = None, log=print) -> ExecutionProfile:
    """Run ``program`` (a Cortex-M build of ``model``, the export's ``.tflite`` bytes) under QEMU
    with the plugin on ``int8`` (inferences, input elements), one Invoke per row, and return the
    labelled, checked counts. ``mode="ops"``: a segment per operator; ``"invoke"``: whole Invokes
    with the interpreter exactly as in a normal run. ``count_flash_reads``: also count each
    segment's data reads from the image's flash (:func:`flash_ranges`; False: no memory callbacks,
    the segments' flash counts are None)."""
    plugin, functions, marks, flash = _prepare(program, mode, count_flash_reads=count_flash_reads, log=log)
    work = Path(work).resolve()
    work.mkdir(parents=True, exist_ok=True)
    out = work / "icount.bin"
    out.unlink(missing_ok=True)
    int8 = np.asarray(int8, np.int8).reshape(len(int8), -1)
    t0 = time.perf_counter()
    run = _run(plugin, lambda: fw_program.run_program(
        program, work, int8=int8, extra_args=["--profile", mode],
        qemu_args=_qemu_args(plugin, marks, out.name, flash), timeout=timeout or 300 + 60 * len(int8)))
    wall = time.perf_counter() - t0
    raw = read_plugin_output(out)
    out.unlink()
    profile = _label(raw, path=out, functions=functions, op_types=_op_types(model), mode=mode,
                     target=program.target.name, outputs=run.outputs, wall=wall)
    if len(profile.invokes) != len(int8):
        raise FirmwareError(f"{program.path}: {len(profile.invokes)} Invokes counted for {len(int8)} inputs")
    return profile


def profile_audio(program: Program, work: Path, *, wav_paths: Sequence[Path], n_mels: int, model: bytes,
                  mode: str = "ops", chunk: int | None = None, count_flash_reads: bool = True,
                  timeout: float | None = None, log=print) -> ExecutionProfile:
    """Like :func:`profile_inferences` on WAV files streamed through the exported front end
    (``--wav-list``, chunks of ``chunk`` samples, default the hop): the profile's ``frontend``
    holds each clip's per-frame counts, and every Invoke (one per clip, or per window) its rows."""
    plugin, functions, marks, flash = _prepare(program, mode, count_flash_reads=count_flash_reads, log=log)
    work = Path(work).resolve()
    work.mkdir(parents=True, exist_ok=True)
    out = work / "icount.bin"
    out.unlink(missing_ok=True)
    t0 = time.perf_counter()
    run = _run(plugin, lambda: fw_program.run_program_audio(
        program, work, wav_paths=list(wav_paths), n_mels=n_mels, chunk=chunk, extra_args=["--profile", mode],
        qemu_args=_qemu_args(plugin, marks, out.name, flash), timeout=timeout or 300 + 120 * len(wav_paths)))
    wall = time.perf_counter() - t0
    raw = read_plugin_output(out)
    out.unlink()
    profile = _label(raw, path=out, functions=functions, op_types=_op_types(model), mode=mode,
                     target=program.target.name, outputs=run.outputs, wall=wall)
    frames = [len(c.frame_instructions) for c in profile.frontend]
    if len(frames) != len(wav_paths) or sum(frames) != run.frontend_frames:
        raise FirmwareError(f"{program.path}: the marks show {sum(frames)} front-end frames in {len(frames)} clip(s); "
                            f"the program reported {run.frontend_frames} in {len(wav_paths)}")
    return profile


# --- reporting ----------------------------------------------------------------------------------

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
