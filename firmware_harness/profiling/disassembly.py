"""The linked ELF disassembled with binutils: :func:`disassemble` (address -> :class:`Instruction`)."""
from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

from firmware_harness.profiling.errors import CycleModelError
from firmware_harness.profiling.instructions import Instruction

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
