"""What the profiler reads from the linked ELF: its function symbols (:class:`FunctionTable`), the
mark functions' addresses (:func:`mark_addresses`) and the image's contents in flash
(:func:`flash_ranges`).

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

"""
from __future__ import annotations

import bisect
import dataclasses
import subprocess
from pathlib import Path
from typing import Sequence

from firmware_harness.builds.third_party import FirmwareError
from firmware_harness.profiling.qemu_plugin import MARK_SYMBOLS


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
                                    "--profile (firmware/asc_profile.h). Rebuild it with firmware_harness.builds.program."
                                    "build_program") from None
            out.append(NO_MARK_ADDRESS)
    return tuple(out)


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
