"""Microcontrollers users pick for audio: the memory that decides whether a model fits, and the
core, clock and flash timing that turn a cycle estimate into milliseconds.

``largest_sram_bytes`` is the largest block of RAM at contiguous addresses: the tensor arena is
one array, and the linker places it, the front end's state, the other static data and (usually)
the stack in one region. ``core`` is a key of ``firmware_harness.cycle_model.CORES``;
``clock_hz`` the core clock the row's timing is for; ``flash_wait_states`` the flash read latency
the vendor requires at that clock (in flash-interface cycles; ``flash_clock_divider`` core cycles
each); ``flash_read_bytes`` what one flash access returns (what a cache or accelerator fill
brings in); ``cache``/``cache_bytes`` what hides those wait states; ``sram_wait_states`` extra
cycles per SRAM read at that clock. None is "not found in the documents read": the cycle model
then says so instead of guessing. Figures are the vendors' documented ones:

* STM32H743 (Cortex-M7, rev V): 480 MHz (DS12110); 2 MiB flash; 1 MiB RAM in blocks: AXI SRAM
  512 KiB (D1), SRAM1-3 288 KiB (D2), SRAM4 64 KiB (D3), DTCM 128 KiB, ITCM 64 KiB (RM0433
  memory map). Flash: 4 wait states at VOS0 with the AXI clock at 240 MHz (RM0433 Table 17 "FLASH
  recommended number of wait states"; STM32CubeH7's 480 MHz clock setups use FLASH_LATENCY_4),
  counted in AXI cycles, i.e. 2 core cycles each; 256-bit flash words; hidden by the M7's 16 KiB
  instruction and 16 KiB data L1 caches (DS12110).
* nRF5340 application core (Cortex-M33 with DSP and FPU): 128 MHz; 1 MiB flash, 512 KiB RAM (one
  region at 0x20000000); the network core's 256 KiB flash and 64 KiB RAM are not the
  application's. Nordic nRF5340 Product Specification (memory and CPU chapters): flash execution
  has a wait-state penalty hidden by the application core's instruction/data CACHE; the wait
  states themselves were not found in the documents read (None).
* STM32F746 (Cortex-M7): 216 MHz (DS10916); 1 MiB flash; DTCM 64 KiB, SRAM1 240 KiB and SRAM2
  16 KiB at contiguous addresses from 0x20000000 (320 KiB) (RM0385 memory map). Flash: 7 wait
  states for 210 < HCLK <= 216 MHz at 2.7-3.6 V (RM0385 Table 5; STM32CubeF7
  stm32f7xx_ll_utils.c UTILS_SCALE1_LATENCY7_FREQ = 210 MHz); 256-bit flash reads; ART
  accelerator on the ITCM flash path and the M7's 4 KiB instruction / 4 KiB data L1 caches.
* STM32F407 (Cortex-M4F): 168 MHz (DS8626); 1 MiB flash; SRAM1 112 KiB + SRAM2 16 KiB contiguous
  (128 KiB) and CCM 64 KiB elsewhere (not reachable by DMA) (RM0090 memory map). Flash: 5 wait
  states for 150 < HCLK <= 168 MHz at 2.7-3.6 V (RM0090 Table 10; STM32CubeF4
  stm32f4xx_ll_utils.c UTILS_SCALE1_LATENCY5_FREQ = 150 MHz); 128-bit flash reads; ART
  accelerator: instruction cache 64 lines x 128 bits (1 KiB), data cache 8 lines x 128 bits, and
  a prefetch buffer (RM0090 3.5.2).
* Corstone-300 as QEMU's ``mps3-an547`` models it (the ``cortex-m55`` target here): 512 KiB
  ITCM for code (no flash) and 4 MiB of contiguous ISRAM at 0x21000000 (ISRAM0 + ISRAM1);
  QEMU ``hw/arm/mps2-tz.c`` and ``firmware/cortex_m/mps3_an547.ld``, which runs on it. Clock
  32 MHz: the AN547 machine's sysclk (``mps3tz_an547_class_init``: ``sysclk_frq = 32 MHz``).
  Code and constants in the ITCM: no wait states (tightly coupled memory).
* NUCLEO-L4R5ZI: STM32L4R5ZI (Cortex-M4F), 120 MHz in voltage range 1 boost mode (DS12023); 2 MiB
  flash; 640 KiB SRAM contiguous from 0x20000000: SRAM1 192 KiB, SRAM2 64 KiB (also mapped at
  0x20030000) and SRAM3 384 KiB from 0x20040000 (RM0432 memory map; CMSIS stm32l4r5xx.h
  SRAM1/SRAM3 base addresses). Flash: 5 wait states for 100 < HCLK <= 120 MHz in range 1 (RM0432
  "Number of wait states according to CPU clock (HCLK) frequency"; STM32CubeL4
  stm32l4xx_ll_utils.c, table "HCLK clock frequency for STM32L4Rx/STM32L4Sx devices"); 64-bit
  flash reads; ART accelerator: instruction cache 32 lines of 4 x 64 bits (1 KiB), data cache 8
  lines (256 bytes), prefetch (RM0432 "Read access latency" / "Adaptive real-time memory
  accelerator").
* EK-RA6M4: Renesas RA6M4 (R7FA6M4AF, Cortex-M33 with DSP and FPU), 200 MHz; 1 MiB code flash;
  256 KiB SRAM at 0x20000000 (RA6M4 Group User's Manual: Hardware, memory map). Flash: 3 wait
  cycles above 150 MHz (FLWT; Renesas FSP ``ra/fsp/src/bsp/mcu/ra6m4/bsp_feature.h``:
  BSP_FEATURE_BSP_SYS_CLOCK_FREQ_THREE_ROM_WAITS = 150 MHz); SRAM: one wait cycle above 100 MHz
  (SRAMWTSC; same file, BSP_FEATURE_BSP_SYS_CLOCK_FREQ_NO_RAM_WAITS = 100 MHz, and
  ``bsp_clocks.c`` BSP_PRV_SRAMWTSC_ONE_WAIT_CYCLES); a flash cache (FCACHE,
  BSP_FEATURE_BSP_FLASH_CACHE) and a code system cache hide the flash wait cycles. The flash
  read width and cache sizes were not found in the documents read (None).

Cache geometry (``icache``/``dcache``, :class:`CacheGeometry`), simulated access by access in the
profiling plugin (``firmware/qemu_plugin/cache_model.c``; ``docs/latency-memory-system.md``):

* STM32F407: ART instruction cache 64 lines x 128 bits, data cache 8 lines x 128 bits, prefetch
  buffer of one 128-bit line (RM0090 3.5.2 "Adaptive real-time memory accelerator"); the fill
  unit is the 128-bit flash read. RM0090 gives neither associativity nor replacement: simulated as
  fully associative, least recently used (the best a cache of that size can do).
* NUCLEO-L4R5ZI: ART instruction cache 32 lines of 4 x 64 bits, data cache 8 lines of 4 x 64 bits,
  64-bit prefetch buffer (RM0432 "Adaptive real-time memory accelerator (ART Accelerator)"; the
  same as the row's cache text; recalled, not re-read here), filled one 64-bit flash read at a time
  (the line is a sector of four). Associativity and replacement as for the F407 (not documented).
* STM32F746 / STM32H743: the Cortex-M7 L1 caches: instruction cache 2-way, data cache 4-way,
  32-byte lines, read-allocate, critical word first (Cortex-M7 TRM, DDI0489F 5.9 "L1 caches");
  sizes 4 + 4 KiB (F746, DS10916) and 16 + 16 KiB (H743, DS12110). A line is one 256-bit flash
  word. The code is taken to run from the AXIM flash address (0x08000000), where the F746's ART
  (on the ITCM path) is not used. The replacement policy was not found in the TRM sections read:
  simulated as LRU.
* nRF5340 application core: one CACHE for instructions and data, two-way set associative, LRU,
  128-bit lines (nRF5340 Product Specification, "CACHE - Instruction/data cache"), 256 sets
  (``nrf5340_application.h``: ``NRF_CACHEDATA_Type { CACHEDATA_SET_Type SET[256]; }``): 512
  lines, 8 KiB. No prefetch buffer is documented. Its flash wait states are not documented here,
  so its hit rates are reported but its misses are not priced.
* EK-RA6M4: the FCACHE's geometry (line width, lines, associativity) is in the RA6M4 Group User's
  Manual: Hardware, "Flash Cache", which was not among the documents this table could read; the
  register-level descriptions found (Renesas SVD / PAC: FCACHEE, FCACHEIV, FLWT) give no
  geometry. Not simulated: priced as before (every flash data read a miss).
* Corstone-300: code and constants in the ITCM, nothing to simulate.

Read from the sources for this table: the wait-state thresholds (ST's LL utilities for the L4+,
F4, F7 and H7 families, Renesas FSP for the RA6M4) and QEMU's AN547 clock. Recalled from the
reference manuals and not re-read: the flash read widths and the ART/L1 cache sizes (they only
set the flash line size of the wait-state model), and the H743's VOS0 row.
"""
from __future__ import annotations

import dataclasses

from keras_asc.errors import AscError

KIB = 1024
MHZ = 1_000_000


@dataclasses.dataclass(frozen=True)
class CacheGeometry:
    """A cache in front of the flash, as simulated by ``firmware/qemu_plugin/cache_model.c``."""

    lines: int  # cache lines in all
    line_bytes: int  # bytes per line (one address tag)
    ways: int  # lines per set: 1 direct-mapped, == lines fully associative
    fill_bytes: int  # what one flash access brings in (a line of several is filled unit by unit)
    prefetch: bool = False  # a sequential next-unit prefetch buffer on instruction fetch
    replacement: str = "lru"  # the only policy simulated; see each row's source for what is documented
    source: str = ""  # where the figures come from

    @property
    def bytes(self) -> int:
        return self.lines * self.line_bytes


@dataclasses.dataclass(frozen=True)
class McuTarget:
    name: str
    core: str  # a key of firmware_harness.cycle_model.CORES
    flash_bytes: int  # program memory for code and constants
    largest_sram_bytes: int  # largest contiguous RAM block
    total_sram_bytes: int
    description: str = ""
    clock_hz: int = 0  # the core clock the timing fields are for
    flash_wait_states: int | None = None  # at clock_hz, in flash-interface cycles; None: not documented here
    flash_clock_divider: int = 1  # core cycles per flash-interface cycle
    flash_read_bytes: int | None = None  # bytes one flash access (cache/accelerator fill) returns
    cache: str = ""  # what hides the flash wait states
    cache_bytes: int = 0  # its instruction-side capacity; 0: not documented here
    sram_wait_states: int = 0  # extra cycles per SRAM read at clock_hz
    code_memory: str = "flash"  # "flash", or "itcm": code and constants in zero-wait-state memory
    icache: CacheGeometry | None = None  # instruction fetch from flash; None: not simulated
    dcache: CacheGeometry | None = None  # data reads from flash; None with data_through_icache False: every read misses
    data_through_icache: bool = False  # one cache for instructions and data

    @property
    def flash_miss_cycles(self) -> int | None:
        """Core cycles one flash access costs: ``flash_wait_states x flash_clock_divider`` (None when
        the wait states are not documented)."""
        return None if self.flash_wait_states is None else self.flash_wait_states * self.flash_clock_divider


_ART_F4 = "RM0090 3.5.2 (ART accelerator); associativity and replacement not documented: fully associative LRU assumed"
_ART_L4 = ("RM0432 ART accelerator (32/8 lines of 4 x 64 bits, 64-bit flash reads); associativity and replacement "
           "not documented: fully associative LRU assumed")
_M7_L1 = ("Cortex-M7 TRM DDI0489F 5.9 (I 2-way, D 4-way, 32-byte lines; one 256-bit flash word per line); "
          "replacement not found: LRU assumed")
_M85_L1 = ("RA8D1: Cortex-M85 L1 caches of 32 KiB each with 32-byte lines; the associativity as the Cortex-M7's "
           "and M55's (I 2-way, D 4-way): recalled from the RA8D1 datasheet and the Cortex-M85 TRM, not re-read; "
           "replacement LRU assumed; D-cache assumed on (FSP leaves it off by default)")
_NRF53 = ("nRF5340 PS, CACHE (2-way, LRU, 128-bit lines, instructions and data); nrf5340_application.h "
          "NRF_CACHEDATA SET[256]")


MCU_TARGETS: dict[str, McuTarget] = {t.name: t for t in (
    McuTarget("stm32h743", "cortex-m7", 2048 * KIB, 512 * KIB, 1024 * KIB, "Cortex-M7 (STM32H743, rev V)",
              clock_hz=480 * MHZ, flash_wait_states=4, flash_clock_divider=2, flash_read_bytes=32,
              cache="Cortex-M7 L1 caches (16 KiB I, 16 KiB D)", cache_bytes=16 * KIB,
              icache=CacheGeometry(512, 32, 2, 32, source=_M7_L1 + "; 16 KiB (DS12110)"),
              dcache=CacheGeometry(512, 32, 4, 32, source=_M7_L1 + "; 16 KiB (DS12110)")),
    McuTarget("nrf5340", "cortex-m33", 1024 * KIB, 512 * KIB, 512 * KIB, "Cortex-M33 (nRF5340 application core)",
              clock_hz=128 * MHZ, flash_wait_states=None, cache="nRF5340 application core CACHE (I+D)",
              cache_bytes=8 * KIB, icache=CacheGeometry(512, 16, 2, 16, source=_NRF53), data_through_icache=True),
    McuTarget("stm32f746", "cortex-m7", 1024 * KIB, 320 * KIB, 320 * KIB, "Cortex-M7 (STM32F746)",
              clock_hz=216 * MHZ, flash_wait_states=7, flash_read_bytes=32,
              cache="ART accelerator + Cortex-M7 L1 caches (4 KiB I, 4 KiB D)", cache_bytes=4 * KIB,
              icache=CacheGeometry(128, 32, 2, 32, source=_M7_L1 + "; 4 KiB (DS10916)"),
              dcache=CacheGeometry(128, 32, 4, 32, source=_M7_L1 + "; 4 KiB (DS10916)")),
    McuTarget("stm32f407", "cortex-m4", 1024 * KIB, 128 * KIB, 192 * KIB, "Cortex-M4F (STM32F407)",
              clock_hz=168 * MHZ, flash_wait_states=5, flash_read_bytes=16,
              cache="ART accelerator (1 KiB I-cache, 128-byte D-cache, prefetch)", cache_bytes=1 * KIB,
              icache=CacheGeometry(64, 16, 64, 16, prefetch=True, source=_ART_F4),
              dcache=CacheGeometry(8, 16, 8, 16, source=_ART_F4)),
    McuTarget("corstone-300", "cortex-m55", 512 * KIB, 4096 * KIB, 4096 * KIB, "Cortex-M55 (QEMU mps3-an547)",
              clock_hz=32 * MHZ, flash_wait_states=0, code_memory="itcm", cache="ITCM (no wait states)"),
    McuTarget("nucleo-l4r5zi", "cortex-m4", 2048 * KIB, 640 * KIB, 640 * KIB, "Cortex-M4F (STM32L4R5ZI)",
              clock_hz=120 * MHZ, flash_wait_states=5, flash_read_bytes=8,
              cache="ART accelerator (1 KiB I-cache, 256-byte D-cache, prefetch)", cache_bytes=1 * KIB,
              icache=CacheGeometry(32, 32, 32, 8, prefetch=True, source=_ART_L4),
              dcache=CacheGeometry(8, 32, 8, 8, source=_ART_L4)),
    McuTarget("ek-ra6m4", "cortex-m33", 1024 * KIB, 256 * KIB, 256 * KIB, "Cortex-M33 (Renesas RA6M4)",
              clock_hz=200 * MHZ, flash_wait_states=3, sram_wait_states=1,
              cache="RA6M4 flash cache (FCACHE) + code system cache"),
    # EK-RA8D1 (R7FA8D1BH, Cortex-M85 with Helium): 480 MHz CPUCLK with ICLK = CPUCLK / 2 (Renesas EK-RA8D1
    # bsp_clock_cfg.h); 2 MiB code flash; 1 MiB SRAM incl. 128 KiB TCM, user SRAM 0x22000000-0x220DFFFF
    # (896 KiB); FLWT 4 ICLK wait cycles at ICLK 240 MHz (FSP ra8d1/bsp_feature.h FOUR/FIVE_ROM_WAITS =
    # 192/240 MHz, selected by ICLK in bsp_clocks.c), 2 core cycles each; the 32-byte Cortex-M85 L1
    # cache line is the fill unit, 32 KiB I-cache (sizes recalled from the RA8D1 datasheet, not
    # re-read); SRAM wait states assumed hidden by the D-cache (docs/latency-boards.md). Simulated:
    # _M85_L1 (an L1 miss priced as one flash access: the FCACHE behind it is not simulated).
    McuTarget("ek-ra8d1", "cortex-m85", 2048 * KIB, 896 * KIB, 1024 * KIB, "Cortex-M85 (Renesas RA8D1)",
              clock_hz=480 * MHZ, flash_wait_states=4, flash_clock_divider=2, flash_read_bytes=32,
              cache="Cortex-M85 L1 caches (32 KiB I, 32 KiB D) + RA8D1 flash cache (FCACHE)", cache_bytes=32 * KIB,
              icache=CacheGeometry(1024, 32, 2, 32, source=_M85_L1 + "; I 2-way"),
              dcache=CacheGeometry(1024, 32, 4, 32, source=_M85_L1 + "; D 4-way")),
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


def estimated_ms(cycles: float, mcu: str | McuTarget) -> float:
    """Milliseconds of ``cycles`` core clock cycles (a cycle estimate for ``mcu``'s core, wait
    states included, e.g. ``firmware_harness.cycle_model.estimate_cycles(..., mcu=name).cycles``)
    at the microcontroller's ``clock_hz``."""
    t = mcu if isinstance(mcu, McuTarget) else get_mcu_target(mcu)
    if t.clock_hz <= 0:
        raise UnknownTarget(f"microcontroller {t.name} has no clock in tflite_export/mcu_targets.py; add its "
                            "documented core clock (clock_hz) to its row")
    return 1000.0 * cycles / t.clock_hz


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


def format_fit_table(fits: list[Fit], *, basis: str, latency_ms: dict[str, float] | None = None) -> str:
    """The fit table in Markdown; ``latency_ms`` (microcontroller -> estimated ms per inference,
    from ``firmware_harness.profiling.profile``) adds a latency column ("-": its core was not profiled)."""
    latency = latency_ms is not None
    lines = [f"fits ({basis}):", "| target | flash needed / available | RAM needed / largest block | fits |"
             + (" est. ms per inference |" if latency else ""), "|---|---|---|---|" + ("---|" if latency else "")]
    for f in fits:
        ms = "" if not latency else (f" {latency_ms[f.target]:,.1f} |" if f.target in latency_ms else " - |")
        lines.append(f"| {f.target} | {f.flash_needed:,d} / {f.flash_available:,d} | {f.ram_needed:,d} / "
                     f"{f.ram_available:,d} | {'yes' if f.fits else 'no'} |{ms}")
    if latency:
        lines.append("(est. ms: exact instruction counts of the linked image under QEMU priced by the cycle model of the "
                     "MCU's core with its flash wait states, at its clock; `asc profile` has the details; '-': that "
                     "core was not profiled)")
    return "\n".join(lines)
