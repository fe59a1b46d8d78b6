"""Flash and RAM of a linked Cortex-M firmware image, from ``arm-none-eabi-size`` and the map file.

* ``text``/``data``/``bss``: ``arm-none-eabi-size`` (Berkeley format) of the ELF. Flash holds
  ``text + data`` (initialized data is copied from flash at boot on a chip), RAM ``data + bss``.
* Each input section of the map file is attributed to a part by the object it came from: the
  model (``model_data.cc``), the front end (``model_frontend.cc``, ``asc_frontend.cc`` and the
  program's ``FrontEnd`` state) and its FFT (the CMSIS-DSP objects), TFLM's kernels (TFLM and CMSIS-NN kernel sources), TFLM's runtime
  (everything else in the TFLM library), the program (``main.cc``: argument parsing, file I/O,
  the input quantization; its ``tensor_arena`` is counted apart; the start-up), and the C/C++
  runtime (newlib, libgcc, semihosting).
* RAM in use = ``data + bss`` (the arena is static, in ``bss``) + the stack the program measured.
  The heap newlib's stdio takes for the semihosted files is not counted: a firmware without file
  I/O has none.
"""
from __future__ import annotations

import dataclasses
import re
import subprocess
from pathlib import Path
from typing import ClassVar

from firmware_harness.builds.third_party import FirmwareError

FLASH_SECTIONS = (".text", ".ARM.exidx", ".preinit_array", ".init_array", ".fini_array", ".data")
RAM_SECTIONS = (".data", ".bss")
PARTS = ("model", "tflm_kernels", "tflm_runtime", "frontend", "frontend_fft", "program", "tensor_arena", "c_runtime")

_OUTPUT = re.compile(r"^(\.[\w.]+)(?:\s+0x[0-9a-f]+\s+0x[0-9a-f]+)?\s*$")
_INPUT_SAME_LINE = re.compile(r"^ (\S+)\s+0x[0-9a-f]+\s+0x([0-9a-f]+)\s+(\S.*)$")
_INPUT_NAME = re.compile(r"^ (\S+)$")
_INPUT_NEXT_LINE = re.compile(r"^\s+0x[0-9a-f]+\s+0x([0-9a-f]+)\s+(\S.*)$")


@dataclasses.dataclass(frozen=True)
class Footprint:
    text: int
    data: int
    bss: int
    stack_bytes: int | None  # measured by the program (None: not measured)
    flash_by_part: dict[str, int]
    ram_by_part: dict[str, int]
    JSON_PROPERTIES: ClassVar[tuple[str, ...]] = ("flash_bytes", "ram_static_bytes", "ram_bytes")

    @property
    def flash_bytes(self) -> int:
        return self.text + self.data

    @property
    def ram_static_bytes(self) -> int:
        return self.data + self.bss

    @property
    def ram_bytes(self) -> int:
        return self.ram_static_bytes + (self.stack_bytes or 0)


def part_of(section: str, obj: str) -> str:
    """Which part of the firmware an input section belongs to."""
    member = obj.rsplit("(", 1)[-1].rstrip(")")
    if "tensor_arena" in section:
        return "tensor_arena"
    if member.endswith("model_data.cc.o"):
        return "model"
    if "libcmsisdsp-" in obj:
        return "frontend_fft"  # CMSIS-DSP's real FFT: code, twiddles and bit-reversal table actually linked
    if member.endswith(("model_frontend.cc.o", "asc_frontend.cc.o")) or "frontend" in section:
        return "frontend"  # its code and tables (window, sparse mel), the program's FrontEnd state
    if "libtflm-" in obj:
        return "tflm_kernels" if ("__kernels__" in member or "cmsis_nn" in member) else "tflm_runtime"
    if member.endswith(("main.cc.o", "startup.S.o", "cstart.c.o")):
        return "program"
    return "c_runtime"


def parse_map(text: str) -> tuple[dict[str, int], dict[str, int]]:
    """(flash bytes per part, RAM bytes per part) from a GNU ld map file."""
    flash = dict.fromkeys(PARTS, 0)
    ram = dict.fromkeys(PARTS, 0)
    output, pending = None, None
    started = False
    for line in text.splitlines():
        if line.startswith("Linker script and memory map"):
            started = True
            continue
        if not started:
            continue
        m = _OUTPUT.match(line)
        if m and not line.startswith(" "):
            output, pending = m.group(1), None
            continue
        size = obj = None
        section = None
        if (m := _INPUT_SAME_LINE.match(line)) and not m.group(1).startswith("0x"):
            section, size, obj = m.group(1), int(m.group(2), 16), m.group(3)
        elif pending and (m := _INPUT_NEXT_LINE.match(line)):
            section, size, obj = pending, int(m.group(1), 16), m.group(2)
        elif (m := _INPUT_NAME.match(line)) and m.group(1).startswith("."):
            pending = m.group(1)
            continue
        pending = None
        if section is None or section.startswith("*") or not size:
            continue
        part = part_of(section, obj)
        if output in FLASH_SECTIONS:
            flash[part] += size
        if output in RAM_SECTIONS:
            ram[part] += size
    return flash, ram


def measure_footprint(elf: Path, map_file: Path, *, size_tool: str, stack_bytes: int | None) -> Footprint:
    proc = subprocess.run([size_tool, str(elf)], capture_output=True, text=True)
    lines = proc.stdout.strip().splitlines()
    if proc.returncode != 0 or len(lines) < 2:
        raise FirmwareError(f"{size_tool} {elf} failed: {proc.stderr}")
    text, data, bss = (int(v) for v in lines[1].split()[:3])
    flash, ram = parse_map(Path(map_file).read_text())
    return Footprint(text, data, bss, stack_bytes, flash, ram)
