"""The instruction-counting QEMU plugin (``firmware/qemu_plugin/icount_plugin.c``): the marks and
flags it shares with the C side, its build (:func:`build_plugin`) and its data file
(:func:`read_plugin_output`).

**The plugin build.** Debian 12's QEMU 7.2 loads plugins (``-plugin file.so,key=value,...``)
but ships neither plugins nor ``qemu-plugin.h``, so ``firmware/qemu_plugin/qemu_plugin_api.h``
declares the few API functions and types the plugin uses (QEMU 7.2, plugin API version 1).
:func:`build_plugin` compiles it with the host's ``gcc -shared -fPIC`` into
``<cache>/qemu_plugin/icount_plugin-<key>.so`` where ``<key>`` hashes the plugin's sources,
the flags and ``gcc --version``; it is built once and never committed. The flash cache simulator
``firmware/qemu_plugin/cache_model.c`` is compiled into it.

**Simulated memory systems.** :func:`cache_spec` turns a microcontroller row's documented cache
geometry (:class:`tflite_export.mcu_targets.CacheGeometry`) into the plugin's ``cache=`` argument,
and :func:`simulated_mcus` lists the MCUs of a core that have one: one QEMU run simulates all of
them in the same pass, each with its own state.


Data file format: see ``firmware/qemu_plugin/icount_plugin.c`` (:func:`read_plugin_output`).
"""
from __future__ import annotations

import dataclasses
import hashlib
import os
import shutil
import subprocess
from pathlib import Path

import numpy as np

from firmware_harness.builds import third_party
from firmware_harness.builds.third_party import FirmwareError
from firmware_harness.profiling.cache_counts import CacheCounts
from tflite_export.mcu_targets import MCU_TARGETS, McuTarget

PLUGIN_DIR = third_party.repo_root() / "firmware" / "qemu_plugin"
PLUGIN_SOURCES = ("icount_plugin.c", "cache_model.c", "cache_model.h", "qemu_plugin_api.h")
PLUGIN_C_FILES = ("icount_plugin.c", "cache_model.c")
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
FORMAT_VERSION = 3
#: Per-instruction flags in the plugin's TB records (``InstructionFlags`` in icount_plugin.c): a
#: load; a PC-relative literal load of a core register; a load based on SP (the stack, in RAM).
#: Only loads with FLAG_LOAD alone get a read callback.
FLAG_LOAD, FLAG_LITERAL, FLAG_STACK = 1, 2, 4
#: The most data reads one instruction makes (VLDM of 32 S registers) and the largest read (VLDR.64).
MAX_READS_PER_LOAD, MAX_READ_BYTES = 32, 8


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
    cmd = [gcc, *PLUGIN_FLAGS, "-o", str(tmp), *(str(PLUGIN_DIR / name) for name in PLUGIN_C_FILES)]
    proc = subprocess.run(cmd, capture_output=True, text=True)
    if proc.returncode != 0:
        tmp.unlink(missing_ok=True)
        raise FirmwareError(f"{PLUGIN_DIR / 'icount_plugin.c'} did not compile with the host gcc:\n$ {' '.join(cmd)}\n"
                            f"{proc.stderr[-3000:]}")
    os.replace(tmp, out)
    return out


def cache_spec(mcu: McuTarget) -> str | None:
    """The plugin's ``cache=`` argument for ``mcu``'s documented caches (format in
    ``firmware/qemu_plugin/icount_plugin.c``), or None when its row has no instruction-side cache
    geometry (code in ITCM, or the geometry not documented): then nothing is simulated for it."""
    i, d = mcu.icache, mcu.dcache
    if i is None or mcu.code_memory != "flash":
        return None

    def side(g, prefetch: bool) -> str:
        return f"{g.lines}x{g.line_bytes}x{g.ways}x{g.fill_bytes}" + ("p" if prefetch and g.prefetch else "")

    data = "i" if mcu.data_through_icache else ("0" if d is None else side(d, False))
    return f"{side(i, True)}/{data}/{mcu.flash_miss_cycles or 0}"


def simulated_mcus(core: str) -> dict[str, str]:
    """Microcontroller name -> :func:`cache_spec` for every MCU of ``core`` whose caches can be simulated."""
    specs = {m.name: cache_spec(m) for m in MCU_TARGETS.values() if m.core == core}
    return {name: spec for name, spec in specs.items() if spec is not None}


@dataclasses.dataclass(frozen=True)
class RawSegment:
    kind: int  # index into MARK_SYMBOLS, -1 for the program's start
    start_icount: int  # QEMU's inline instruction counter when the segment started
    tb_ids: np.ndarray  # uint32
    executions: np.ndarray  # uint64
    not_fallthrough: np.ndarray  # uint64
    flash_reads: int = 0  # data reads from the flash ranges (0 when none were given)
    flash_bytes: int = 0
    caches: tuple[CacheCounts, ...] = ()  # per simulated memory system, in RawProfile.cache_specs' order


@dataclasses.dataclass(frozen=True)
class RawProfile:
    tb_addresses: dict[int, np.ndarray]  # TB id -> its instructions' addresses (uint64)
    segments: tuple[RawSegment, ...]
    end_icount: int
    marks_inside_tbs: int
    translation_blocks: int
    flash_ranges: tuple[tuple[int, int], ...] = ()  # [first, end) given to the plugin; () = not counted
    tb_flags: dict[int, np.ndarray] = dataclasses.field(default_factory=dict)  # TB id -> FLAG_* per insn (uint8)
    cache_specs: tuple[str, ...] = ()  # the cache= arguments given to the plugin, in order


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
                            f"(firmware_harness/profiling/qemu_plugin.py) reads only version {FORMAT_VERSION}, the format of "
                            "firmware/qemu_plugin/icount_plugin.c (kFormatVersion). The file comes from another "
                            f"build of the plugin: delete {third_party.cache_root() / 'qemu_plugin'} and profile again")
    if n_marks != len(MARK_SYMBOLS):
        raise FirmwareError(f"{path}: {n_marks} mark kinds; this reader expects {len(MARK_SYMBOLS)} "
                            f"({', '.join(MARK_SYMBOLS)}): the cached plugin is stale, delete "
                            f"{third_party.cache_root() / 'qemu_plugin'}")
    if len(raw) < 24:
        raise FirmwareError(f"{path}: the header is cut short (QEMU probably stopped before the plugin wrote it)")
    n_flash, n_caches = (int(v) for v in np.frombuffer(raw, "<u4", 2, 16))
    bounds = np.frombuffer(raw, "<u8", 2 * n_flash, 24).reshape(n_flash, 2)
    flash = tuple((int(lo), int(hi)) for lo, hi in bounds)
    pos, specs = 24 + 16 * n_flash, []
    for _ in range(n_caches):
        length = int(np.frombuffer(raw, "<u4", 1, pos)[0])
        specs.append(raw[pos + 4:pos + 4 + length].decode("ascii"))
        pos += 4 + length + (-length % 4)
    tbs, flags, segments, end = {}, {}, [], None
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
            pos += 40 + _ENTRY.itemsize * n
            n_seg_caches = int(np.frombuffer(raw, "<u4", 1, pos)[0])
            if n_seg_caches != n_caches:
                raise FirmwareError(f"{path}: a segment with {n_seg_caches} memory systems, the header has {n_caches}: "
                                    "the file is corrupt")
            counters = np.frombuffer(raw, "<u8", 6 * n_caches, pos + 8).reshape(n_caches, 6)
            pos += 8 + 48 * n_caches
            segments.append(RawSegment(kind, start, e["id"].copy(), e["count"].copy(), e["taken"].copy(), reads,
                                       nbytes, tuple(CacheCounts(*(int(v) for v in row)) for row in counters)))
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
    return RawProfile(tbs, tuple(segments), end[0], end[1], end[2], flash, flags, tuple(specs))
