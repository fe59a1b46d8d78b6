"""The boards ``asc board`` builds for: one folder of C per board (``firmware/boards/<name>/``) and a
row of the MCU table (:data:`tflite_export.mcu_targets.MCU_TARGETS`, same name).

A board's memory regions are read from its ``memory.ld`` (the one place they are written, with
the reference-manual citations); its chip's CMSIS device files come from the pinned ST archive
(``../shared/third_party/SOURCES.md``: ``cmsis-device-f4.tar.gz``, ``cmsis-device-l4.tar.gz``),
checked against ``SHA256SUMS`` and extracted once into the build cache.
"""
from __future__ import annotations

import dataclasses
import re
import shutil
import tarfile
import tempfile
from pathlib import Path

from firmware_harness.builds import third_party
from firmware_harness.builds.third_party import FirmwareError
from keras_asc import artifacts

BOARDS_DIR = third_party.repo_root() / "firmware" / "boards"
COMMON_DIR = BOARDS_DIR / "common"


@dataclasses.dataclass(frozen=True)
class Region:
    name: str
    origin: int
    length: int

    def holds(self, address: int) -> bool:
        return self.origin <= address < self.origin + self.length


@dataclasses.dataclass(frozen=True)
class Board:
    name: str  # folder under firmware/boards/ and row of the MCU table
    description: str
    firmware_target: str  # firmware_harness.builds.targets name whose flags and cached TFLM library the image uses
    device_archive: str  # pinned ST CMSIS device archive (../shared/third_party/)
    device_top: str  # its top-level folder
    device_define: str  # the chip's CMSIS define
    startup: str  # ST's GCC start-up, relative to the archive's Source/Templates/
    system: str  # ST's clock system file, relative to Source/Templates/
    defines: tuple[str, ...] = ()
    uart: str = ""
    qemu: tuple[str, ...] = ()  # qemu-system-arm machine that runs this image; () if none
    pyocd_target: str = ""
    openocd_args: tuple[str, ...] = ()
    connect: str = ""  # how a user connects the UART to a PC

    @property
    def folder(self) -> Path:
        return BOARDS_DIR / self.name

    @property
    def linker_script(self) -> Path:
        return self.folder / "memory.ld"

    def regions(self) -> tuple[Region, ...]:
        """The MEMORY regions of the board's ``memory.ld``."""
        return parse_memory_regions(self.linker_script.read_text())


BOARDS: dict[str, Board] = {b.name: b for b in (
    Board("stm32f407", "STM32F405/F407 (STM32F4-Discovery; QEMU netduinoplus2 is an STM32F405)", "cortex-m4",
          "cmsis-device-f4.tar.gz", "cmsis-device-f4", "STM32F407xx", "gcc/startup_stm32f407xx.s",
          "system_stm32f4xx.c", defines=("HSE_VALUE=8000000",), uart="USART2, PA2 TX / PA3 RX, 115200 8N1",
          qemu=("-M", "netduinoplus2"), pyocd_target="stm32f407vg",
          openocd_args=("-f", "board/stm32f4discovery.cfg"),
          connect="a 3.3 V USB-serial adapter: its RX to PA2, its TX to PA3, GND to GND"),
    Board("nucleo-l4r5zi", "NUCLEO-L4R5ZI (STM32L4R5ZI, the MLPerf Tiny reference board)", "cortex-m4",
          "cmsis-device-l4.tar.gz", "cmsis-device-l4", "STM32L4R5xx", "gcc/startup_stm32l4r5xx.s",
          "system_stm32l4xx.c", uart="LPUART1, PG7 TX / PG8 RX: the ST-LINK virtual COM port, 115200 8N1",
          pyocd_target="stm32l4r5zitx", openocd_args=("-f", "interface/stlink.cfg", "-f", "target/stm32l4x.cfg"),
          connect="the board's ST-LINK USB connector (CN1): the virtual COM port appears as /dev/ttyACM0"),
)}

_REGION = re.compile(r"^\s*(\w+)\s*\([^)]*\)\s*:\s*ORIGIN\s*=\s*(0x[0-9A-Fa-f]+|\d+)\s*,\s*LENGTH\s*=\s*(\d+)([KM]?)",
                     re.M)


def parse_memory_regions(text: str) -> tuple[Region, ...]:
    """``MEMORY { NAME (attr) : ORIGIN = 0x..., LENGTH = 128K }`` lines of a linker script."""
    scale = {"": 1, "K": 1024, "M": 1024 * 1024}
    return tuple(Region(name, int(origin, 0), int(length) * scale[unit])
                 for name, origin, length, unit in _REGION.findall(text))


def get_board(name: str) -> Board:
    if name not in BOARDS:
        raise FirmwareError(f"--board {name!r}: no such board; one of {', '.join(BOARDS)} "
                            "(folders under firmware/boards/, rows of tflite_export/mcu_targets.py)")
    return BOARDS[name]


def device_files(board: Board, *, third_party_dir: Path | None = None) -> Path:
    """The extracted CMSIS device archive of ``board`` (``Include/``, ``Source/Templates/``): checked
    against the third-party folder's ``SHA256SUMS``, extracted once into the build cache by content."""
    folder = Path(third_party_dir) if third_party_dir else third_party.default_third_party_dir()
    archive = folder / board.device_archive
    if not archive.is_file():
        raise FirmwareError(f"{archive}: ST's CMSIS device archive for the {board.name} board is missing. It is "
                            "pinned in ../shared/third_party/SOURCES.md (github.com/STMicroelectronics/"
                            f"{board.device_top.replace('-', '_')}); point $ASC_THIRD_PARTY at the folder that holds it")
    got = artifacts.sha256_file(archive)
    sums = folder / "SHA256SUMS"
    listed = dict(reversed(line.split()) for line in sums.read_text().splitlines() if len(line.split()) == 2) \
        if sums.is_file() else {}
    if listed.get(board.device_archive) not in (None, got):
        raise FirmwareError(f"{archive}: does not match its sha256 in {sums}: corrupt or not the pinned release")
    final = third_party.cache_root() / "board" / got[:16]
    if (final / board.device_top / "Include").is_dir():
        return final / board.device_top
    final.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(dir=final, prefix=".x"))
    try:
        with tarfile.open(archive) as tar:
            tar.extractall(tmp, filter="data")
        if not (tmp / board.device_top / "Include").is_dir():
            raise FirmwareError(f"{archive}: has no {board.device_top}/Include; not the archive SOURCES.md describes")
        try:
            (tmp / board.device_top).rename(final / board.device_top)
        except OSError:  # another process extracted it first
            if not (final / board.device_top / "Include").is_dir():
                raise
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return final / board.device_top
