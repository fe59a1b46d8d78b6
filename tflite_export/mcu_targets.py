"""Microcontrollers users pick for audio, with the memory that decides whether a model fits.

``largest_sram_bytes`` is the largest block of RAM at contiguous addresses: the tensor arena is
one array, and the linker places it, the front end's state, the other static data and (usually)
the stack in one region. Figures are the vendors' documented ones:

* STM32H743: 2 MiB flash; 1 MiB RAM in blocks: AXI SRAM 512 KiB (D1), SRAM1-3 288 KiB (D2),
  SRAM4 64 KiB (D3), DTCM 128 KiB, ITCM 64 KiB. ST RM0433 (memory map), DS12110.
* nRF5340 application core: 1 MiB flash, 512 KiB RAM (one region at 0x20000000); the network
  core's 256 KiB flash and 64 KiB RAM are not the application's. Nordic nRF5340 Product
  Specification (memory chapter).
* STM32F746: 1 MiB flash; DTCM 64 KiB, SRAM1 240 KiB and SRAM2 16 KiB at contiguous
  addresses from 0x20000000 (320 KiB). ST RM0385 (memory map), DS10916.
* STM32F407: 1 MiB flash; SRAM1 112 KiB + SRAM2 16 KiB contiguous (128 KiB) and CCM 64 KiB
  elsewhere (not reachable by DMA). ST RM0090 (memory map), DS8626.
* Corstone-300 as QEMU's ``mps3-an547`` models it (the ``cortex-m55`` target here): 512 KiB
  ITCM for code (no flash) and 4 MiB of contiguous ISRAM at 0x21000000 (ISRAM0 + ISRAM1);
  QEMU ``hw/arm/mps2-tz.c`` and ``firmware/cortex_m/mps3_an547.ld``, which runs on it.
"""
from __future__ import annotations

import dataclasses

from keras_asc.errors import AscError

KIB = 1024


@dataclasses.dataclass(frozen=True)
class McuTarget:
    name: str
    core: str
    flash_bytes: int  # program memory for code and constants
    largest_sram_bytes: int  # largest contiguous RAM block
    total_sram_bytes: int


MCU_TARGETS: dict[str, McuTarget] = {t.name: t for t in (
    McuTarget("stm32h743", "Cortex-M7", 2048 * KIB, 512 * KIB, 1024 * KIB),
    McuTarget("nrf5340", "Cortex-M33 (application core)", 1024 * KIB, 512 * KIB, 512 * KIB),
    McuTarget("stm32f746", "Cortex-M7", 1024 * KIB, 320 * KIB, 320 * KIB),
    McuTarget("stm32f407", "Cortex-M4F", 1024 * KIB, 128 * KIB, 192 * KIB),
    McuTarget("corstone-300", "Cortex-M55 (QEMU mps3-an547)", 512 * KIB, 4096 * KIB, 4096 * KIB),
)}

#: What a firmware needs besides the flatbuffer and the arena, taken from the linked Cortex-M4
#: image of the demo model (README, "Footprint"), rounded up: flash for TFLM's kernels and
#: runtime, the front end and its FFT, the C runtime and a small program (166 KB measured);
#: RAM for TFLM's and the C runtime's static data and the stack (about 13 KB measured with a
#: 6 KiB microphone buffer). Used only when no firmware image has been linked.
FLASH_BESIDES_MODEL_ESTIMATE = 176 * KIB
RAM_BESIDES_ARENA_ESTIMATE = 16 * KIB


class UnknownTarget(AscError, ValueError):
    pass


def get_mcu_target(name: str) -> McuTarget:
    if name not in MCU_TARGETS:
        raise UnknownTarget(f"unknown microcontroller {name!r}; one of {', '.join(MCU_TARGETS)}")
    return MCU_TARGETS[name]


@dataclasses.dataclass(frozen=True)
class Fit:
    target: str
    flash_needed: int
    flash_available: int
    ram_needed: int
    ram_available: int  # the largest contiguous block

    @property
    def fits(self) -> bool:
        return self.flash_needed <= self.flash_available and self.ram_needed <= self.ram_available


def fit_table(*, flash_needed: int, ram_needed: int) -> list[Fit]:
    """Whether a firmware needing ``flash_needed`` and ``ram_needed`` bytes fits each target."""
    return [Fit(t.name, flash_needed, t.flash_bytes, ram_needed, t.largest_sram_bytes) for t in MCU_TARGETS.values()]


def format_fit_table(fits: list[Fit], *, basis: str) -> str:
    lines = [f"fits ({basis}):", "| target | flash needed / available | RAM needed / largest block | fits |",
             "|---|---|---|---|"]
    for f in fits:
        lines.append(f"| {f.target} | {f.flash_needed:,d} / {f.flash_available:,d} | {f.ram_needed:,d} / "
                     f"{f.ram_available:,d} | {'yes' if f.fits else 'no'} |")
    return "\n".join(lines)
