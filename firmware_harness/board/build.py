"""``asc board build``: the export, TFLM and the board folder linked into a flashable image.

The image is ``firmware/boards/common/board_main.cc`` (the UART protocol program) with the
export's C sources, the TFLM and CMSIS-DSP libraries of the board's firmware target (the same
cached objects and flags ``asc firmware`` verifies bit for bit, :mod:`firmware_harness.builds.tflm_build`),
the board's ``board.c``, the common ``board_syscalls.c`` and ST's CMSIS start-up and clock system
file, linked with the board's ``memory.ld``: the chip's real regions. An image that does not fit
is refused by the linker; :class:`ImageTooLarge` names the region and the bytes over.

Writes ``OUT/asc_board.elf``, ``.bin``, ``.hex``, ``.map`` and ``board_build.json`` (regions used,
sources' hashes), through :func:`keras_asc.artifacts.staging_dir`; then, in ``OUT/bundle/``, the
export's ``asc bundle`` for the board (:func:`make_board_bundle`): the same sources with the board
folder and ST's files, as a CMake folder the user takes into their own firmware.
"""
from __future__ import annotations

import dataclasses
import re
import shlex
import subprocess
import tempfile
import time
from pathlib import Path

from firmware_harness.board.boards import COMMON_DIR, Board, device_files, get_board
from firmware_harness.builds import program as fw_program
from firmware_harness.builds import bundle as fw_bundle
from firmware_harness.builds import tflm_build, third_party
from firmware_harness.builds.targets import C_FLAGS, get_target
from firmware_harness.builds.third_party import FirmwareError
from firmware_harness.validation.export_validation import load_checked_export
from keras_asc import artifacts, records
from tflite_export.export import C_SOURCE_FILES

STAGE = "board-build"
IMAGE = "asc_board"
BOARD_OPT = "-O2"
LINK_FLAGS = ("--specs=nosys.specs", "-Wl,--gc-sections")
_OVERFLOW = re.compile(r"region `(\w+)' overflowed by (\d+) bytes")
_INCLUDE_LD = re.compile(r"^\s*INCLUDE\s+(\S+)", re.M)
BUNDLE_DIR = "bundle"  # the image folder's sub-folder that holds the board's asc bundle
TESTED_ON_QEMU = (
    "the same sources, linked by `asc board build` into the same regions, ran bit-exact against TFLM Python on an "
    "emulated STM32F405 (QEMU 7.2 `-M netduinoplus2`, its USART2 on a TCP port), and this bundle's CMake-built "
    "`asc_board.elf` answered `name%` there (tests/firmware_harness/test_bundle.py). QEMU runs no clock tree and "
    "no cycle counter: clock and cycles are not measured there. Not tested on silicon.")
TESTED_LINK_ONLY = "compiled and linked only: QEMU 7.2 has no machine for this chip; not run, not tested on silicon."


class ImageTooLarge(FirmwareError):
    """The linked image does not fit a region of the board's memory."""


@dataclasses.dataclass(frozen=True)
class RegionUse:
    region: str
    origin: int
    length: int
    used: int  # bytes of the image in this region (RAM: data + bss + the reserved heap and stack)


@dataclasses.dataclass(frozen=True)
class BoardImage:
    board: str
    export_dir: str
    tflite_sha256: str
    elf: str
    bin: str
    hex: str
    regions: tuple[RegionUse, ...]
    sections: dict[str, int]  # section -> bytes
    heap_bytes: int
    stack_bytes: int
    build_seconds: float
    packages: dict[str, str]
    git_commit: str
    stage: str = STAGE
    bundle: str = ""  # the board's asc bundle (OUT/bundle): the sources, built with CMake


def read_board_image(out_dir: Path) -> BoardImage:
    return records.read(BoardImage, Path(out_dir) / "board_build.json")


def _run(cmd: list[str], what: str) -> subprocess.CompletedProcess:
    proc = subprocess.run(cmd, capture_output=True, text=True)
    if proc.returncode != 0:
        raise FirmwareError(f"{what} failed:\n$ {' '.join(cmd)}\n{proc.stderr[-3000:]}")
    return proc


def _model_files(export_dir: Path) -> tuple[str, ...]:
    files = C_SOURCE_FILES if fw_program.has_frontend(export_dir) else fw_program.MODEL_ONLY_SOURCE_FILES
    missing = [f for f in files if not (export_dir / f).is_file()]
    if missing:
        raise FirmwareError(f"{export_dir}: {missing} missing; re-run `asc export` (or pass an export folder)")
    return files


def _symbol(nm_out: str, name: str) -> int:
    m = re.search(rf"^([0-9a-f]+) \w {re.escape(name)}$", nm_out, re.M)
    return int(m.group(1), 16) if m else 0


def _board_c_sources(board: Board, device: Path) -> tuple[Path, ...]:
    """The board's C: its board.c, the common system calls, ST's clock system file (last)."""
    return board.folder / "board.c", COMMON_DIR / "board_syscalls.c", device / "Source" / "Templates" / board.system


def _board_c_flags(board: Board) -> tuple[str, ...]:
    """The board C sources' flags besides C_FLAGS, the target's arch flags and the include folders."""
    return (BOARD_OPT, "-ffunction-sections", "-fdata-sections", f"-D{board.device_define}",
            *(f"-D{d}" for d in board.defines))


def flash_commands(board: str, image: Path) -> dict[str, list[str]]:
    """The exact command per tool that writes ``image`` (its .hex / .elf) to ``board``."""
    b = get_board(board)
    return {"pyocd": ["pyocd", "flash", "-t", b.pyocd_target, str(image / f"{IMAGE}.hex")],
            "openocd": ["openocd", *b.openocd_args, "-c", f"program {image / f'{IMAGE}.elf'} verify reset exit"]}


def board_sources(board: Board, *, tree: Path, third_party_dir: Path | None = None) -> fw_bundle.BoardSources:
    """What a bundle for ``board`` copies into its ``board/``: the board folder, the common files and
    ST's device files (from the pinned archive), with the flags :func:`link_image` uses."""
    device = device_files(board, third_party_dir=third_party_dir)
    scripts = [board.linker_script]
    for name in _INCLUDE_LD.findall(board.linker_script.read_text()):
        scripts.append(next(d / name for d in (board.folder, COMMON_DIR) if (d / name).is_file()))
    flash = flash_commands(board.name, Path("build"))
    return fw_bundle.BoardSources(
        name=board.name, description=board.description, target=board.firmware_target,
        linker_scripts=tuple(scripts), sources=_board_c_sources(board, device),
        headers=tuple(sorted([*COMMON_DIR.glob("*.h"), *board.folder.glob("*.h")])),
        program=COMMON_DIR / "board_main.cc", startup=device / "Source" / "Templates" / board.startup,
        device_dir=device, device_archive=board.device_archive,
        cmsis_core=tree / third_party.DOWNLOADS / "cmsis" / "CMSIS" / "Core" / "Include",
        c_flags=_board_c_flags(board), link_flags=LINK_FLAGS, uart=board.uart, connect=board.connect,
        flash=tuple(shlex.join(c) for c in flash.values()), tested=TESTED_ON_QEMU if board.qemu else TESTED_LINK_ONLY)


def make_board_bundle(export_dir: Path, out: Path, *, board: str, target: str | None = None,
                      third_party_dir: Path | None = None, write_beside: bool | None = None,
                      log=print) -> fw_bundle.Bundle:
    """``asc bundle --board``: the bundle of ``export_dir`` for ``board``'s firmware target, with the
    board's folder in ``board/`` (:func:`firmware_harness.builds.bundle.make_bundle`). ``target``
    (None: the board's) other than the board's is refused."""
    b = get_board(board)
    tp = third_party.locate_third_party(third_party_dir, log=log)
    tree = third_party.prepare_tflm_tree(tp, log=log).resolve()
    return fw_bundle.make_bundle(export_dir, out, target=target or b.firmware_target, third_party_dir=third_party_dir,
                                 write_beside=write_beside, board=board_sources(b, tree=tree,
                                                                                third_party_dir=third_party_dir),
                                 log=log)


def link_image(board: Board, export_dir: Path, out_dir: Path, *, tree: Path, third_party_dir: Path | None = None,
               log=print) -> tuple[Path, tuple[RegionUse, ...], dict[str, int], int, int]:
    """Compile and link ``export_dir`` for ``board`` into ``out_dir/asc_board.elf`` (+ ``.map``);
    returns (elf, regions used, section sizes, heap bytes, stack bytes). Raises
    :class:`ImageTooLarge` naming the region and the bytes over when it does not fit."""
    export_dir, out_dir = Path(export_dir).resolve(), Path(out_dir).resolve()
    files = _model_files(export_dir)
    target = get_target(board.firmware_target)
    target.check_tools()
    device = device_files(board, third_party_dir=third_party_dir)
    lib = tflm_build.build_library(tree, target, fw_program.resolver_methods(export_dir), log=log)
    dsp = tflm_build.build_dsp_library(tree, target, log=log)
    obj_dir = out_dir / "obj"
    obj_dir.mkdir(parents=True, exist_ok=True)
    cmsis_core = tree / third_party.DOWNLOADS / "cmsis" / "CMSIS" / "Core" / "Include"
    c_flags = [*C_FLAGS, *target.arch_flags, *_board_c_flags(board), f"-I{device / 'Include'}",
               f"-I{cmsis_core}", f"-I{COMMON_DIR}"]
    objects = []
    program = [COMMON_DIR / "board_main.cc", *(export_dir / f for f in files if f.endswith(".cc"))]
    for src in program:
        obj = obj_dir / f"{src.name}.o"
        cmd = tflm_build.compile_command(tree, target, str(src), opt=fw_program.PROGRAM_OPT, dsp=True)
        _run([*cmd, f"-I{export_dir}", f"-I{COMMON_DIR}", "-o", str(obj)], f"compiling {src.name} for {board.name}")
        objects.append(obj)
    for src in _board_c_sources(board, device):
        obj = obj_dir / f"{src.name}.o"
        _run([f"{target.prefix}gcc", *c_flags, "-c", str(src), "-o", str(obj)], f"compiling {src.name} for {board.name}")
        objects.append(obj)
    startup = device / "Source" / "Templates" / board.startup
    obj = obj_dir / f"{startup.name}.o"
    _run([f"{target.prefix}gcc", *target.arch_flags, "-c", str(startup), "-o", str(obj)], f"assembling {startup.name}")
    objects.append(obj)
    elf, map_file = out_dir / f"{IMAGE}.elf", out_dir / f"{IMAGE}.map"
    link = [f"{target.prefix}g++", *target.arch_flags, *LINK_FLAGS, f"-T{board.linker_script}", f"-L{COMMON_DIR}",
            f"-Wl,-Map={map_file}", "-o", str(elf), *map(str, objects), str(lib.path), str(dsp.path), "-lm"]
    proc = subprocess.run(link, capture_output=True, text=True)
    if proc.returncode != 0:
        over = _OVERFLOW.findall(proc.stderr)
        if over:
            regions = {r.name: r for r in board.regions()}
            parts = [f"region {name} ({regions[name].length:,d} bytes at {regions[name].origin:#010x}) overflowed by "
                     f"{int(n):,d} bytes" if name in regions else f"region {name} overflowed by {int(n):,d} bytes"
                     for name, n in over]
            raise ImageTooLarge(
                f"{export_dir}: the image does not fit the {board.name}'s memory ({board.linker_script}): "
                f"{'; '.join(parts)}. RAM holds the tensor arena (kTensorArenaSize in model_settings.h), the front end, "
                "the program's buffers and the board's heap and stack. Export a smaller model or a windowed one "
                "(`asc train --window-frames 14`), or choose a board with more RAM")
        raise FirmwareError(f"linking the {board.name} image failed:\n$ {' '.join(link)}\n{proc.stderr[-3000:]}")
    sections, regions = _usage(board, elf, target.prefix)
    nm = _run([f"{target.prefix}nm", str(elf)], "nm").stdout
    heap = _symbol(nm, "_heap_end") - _symbol(nm, "_heap_start")
    stack = _symbol(nm, "_Min_Stack_Size")
    return elf, regions, sections, heap, stack


def _usage(board: Board, elf: Path, prefix: str) -> tuple[dict[str, int], tuple[RegionUse, ...]]:
    """Section sizes and bytes used per region: a section counts in the region of its address, and
    an initialized RAM section (.data) also in flash, where its initial values are stored."""
    out = _run([f"{prefix}size", "-A", str(elf)], "size").stdout
    sections, used = {}, {}
    regions = board.regions()
    flash = next(r for r in regions if r.name == "FLASH")
    for line in out.splitlines():
        parts = line.split()
        if len(parts) != 3 or not parts[1].isdigit() or not parts[0].startswith("."):
            continue
        name, size, addr = parts[0], int(parts[1]), int(parts[2])
        region = next((r for r in regions if r.holds(addr)), None)
        if region is None or size == 0:
            continue
        sections[name] = size
        used[region.name] = used.get(region.name, 0) + size
        if name == ".data":
            used[flash.name] = used.get(flash.name, 0) + size
    return sections, tuple(RegionUse(r.name, r.origin, r.length, used.get(r.name, 0)) for r in regions)


def build_board_image(export_dir: Path, *, board: str, out_dir: Path | None = None,
                      third_party_dir: Path | None = None, log=print) -> BoardImage:
    """``asc board build``: link the image of ``export_dir`` for ``board`` and write it to ``out_dir``
    (default ``EXPORT_DIR/board/<board>/image``) with its ``.bin``, ``.hex`` and ``board_build.json``."""
    t0 = time.perf_counter()
    b = get_board(board)
    export_dir = Path(export_dir)
    out_dir = Path(out_dir) if out_dir else export_dir / "board" / b.name / "image"
    artifacts.check_replaceable(out_dir, stage=STAGE, inputs=(export_dir,))
    artifacts.check_replaceable(out_dir / BUNDLE_DIR, stage=fw_bundle.STAGE, inputs=(export_dir,))
    _, exp, _ = load_checked_export(export_dir / "model.tflite", log=log)
    tp = third_party.locate_third_party(third_party_dir, log=log)
    tree = third_party.prepare_tflm_tree(tp, log=log)
    prefix = get_target(b.firmware_target).prefix
    with tempfile.TemporaryDirectory(prefix="asc-board-") as work:
        elf, regions, sections, heap, stack = link_image(b, export_dir, Path(work), tree=tree,
                                                         third_party_dir=third_party_dir, log=log)
        with artifacts.staging_dir(out_dir, stage=STAGE, inputs=(export_dir,)) as tmp:
            names = {ext: tmp / f"{IMAGE}.{ext}" for ext in ("elf", "bin", "hex", "map")}
            names["elf"].write_bytes(elf.read_bytes())
            names["map"].write_bytes(elf.with_suffix(".map").read_bytes())
            _run([f"{prefix}objcopy", "-O", "binary", str(elf), str(names["bin"])], "objcopy -O binary")
            _run([f"{prefix}objcopy", "-O", "ihex", str(elf), str(names["hex"])], "objcopy -O ihex")
            image = BoardImage(
                board=b.name, export_dir=str(export_dir.resolve()), tflite_sha256=exp.tflite_sha256,
                elf=str(out_dir.resolve() / names["elf"].name), bin=str(out_dir.resolve() / names["bin"].name),
                hex=str(out_dir.resolve() / names["hex"].name), regions=regions, sections=sections,
                heap_bytes=heap, stack_bytes=stack, build_seconds=round(time.perf_counter() - t0, 1),
                bundle=str(out_dir.resolve() / BUNDLE_DIR), **artifacts.provenance())
            records.write(tmp / "board_build.json", image)
    make_board_bundle(export_dir, out_dir / BUNDLE_DIR, board=b.name, third_party_dir=third_party_dir, log=log)
    log(format_image(image))
    return image


def format_image(image: BoardImage) -> str:
    lines = [f"board build: {image.board}: {image.elf} (+ .bin, .hex)"]
    for r in image.regions:
        lines.append(f"  {r.region:<7} {r.used:>9,d} of {r.length:>9,d} bytes ({100 * r.used / r.length:5.1f} %) "
                     f"at {r.origin:#010x}")
    lines.append(f"  RAM includes the board's heap ({image.heap_bytes:,d} B) and stack ({image.stack_bytes:,d} B) "
                 "reserved by the linker script")
    if image.bundle:
        lines.append(f"  bundle: {image.bundle}: the same sources, the board folder and ST's files as a CMake folder "
                     f"for your own firmware (cmake -S {image.bundle} -B {image.bundle}/build && cmake --build "
                     f"{image.bundle}/build; BUNDLE.md)")
    return "\n".join(lines)
