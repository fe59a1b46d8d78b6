"""``asc board build|flash|run``: the export on a microcontroller board (docs/board.md)."""
from __future__ import annotations

import argparse
import shlex
import shutil
import subprocess
from pathlib import Path

import firmware_harness
from asc_cli.options import add_workers_arg
from firmware_harness import (
    BOARDS,
    BUNDLE_DIR,
    DEFAULT_BAUD,
    DEFAULT_CLIPS,
    DEFAULT_PCM_CLIPS,
    DEFAULT_TIMEOUT,
    FirmwareError,
)

FLASH_SECONDS = 120  # bound on a flashing tool's run


def _clips(value: str, *, least: int = 1):
    if value == "all":
        return "all"
    n = int(value) if value.isdigit() else -1
    if n < least:
        raise argparse.ArgumentTypeError(f"a whole number from {least}, or 'all'; got {value!r}")
    return n


def _positive(kind):
    def parse(value: str):
        try:
            v = kind(value)
        except ValueError:
            v = 0
        if v <= 0:
            raise argparse.ArgumentTypeError(f"a positive number, got {value!r}")
        return v
    return parse


def add_parser(subparsers) -> None:
    """``asc board`` and its three subcommands."""
    p = subparsers.add_parser("board", help="build, flash and run the export on a microcontroller board over its UART")
    sub = p.add_subparsers(dest="board_command", required=True)
    names = ", ".join(BOARDS)

    s = sub.add_parser("build", help="the export + TFLM + the board folder: .elf, .bin, .hex, flash and RAM per "
                                     f"region, and the same as a CMake folder (asc bundle) in OUT/{BUNDLE_DIR}")
    s.add_argument("export_dir", metavar="EXPORT", help="RUN_DIR/export")
    s.add_argument("--board", required=True, choices=tuple(BOARDS), help=f"one of {names}")
    s.add_argument("--out", default=None, help=f"image folder (default EXPORT/board/BOARD/image; its bundle in "
                                             f"OUT/{BUNDLE_DIR})")
    s.add_argument("--third-party", default=None, help="folder of the pinned source archives")

    s = sub.add_parser("flash", help="write the built image to the board with pyOCD or OpenOCD")
    s.add_argument("export_dir", metavar="EXPORT", help="RUN_DIR/export (its image from asc board build)")
    s.add_argument("--board", required=True, choices=tuple(BOARDS), help=f"one of {names}")
    s.add_argument("--image", default=None, help="image folder (default EXPORT/board/BOARD/image)")
    s.add_argument("--tool", choices=("pyocd", "openocd"), default=None, help="default: whichever is installed")

    s = sub.add_parser("run", help="stream evaluate clips to the board; bit for bit against TFLM Python, from "
                                   "log-mel and from PCM; board_report.md/.json")
    s.add_argument("export_dir", metavar="EXPORT", help="RUN_DIR/export")
    s.add_argument("--board", required=True, choices=tuple(BOARDS), help=f"one of {names}")
    s.add_argument("--port", required=True,
                   help="the board's serial port (/dev/ttyACM0, COM3), socket://HOST:PORT (QEMU's TCP serial), or "
                        "qemu: start the image under QEMU (stm32f407 only: netduinoplus2)")
    s.add_argument("--data", required=True, help="the dataset the export was validated on")
    s.add_argument("--work", default="work")
    s.add_argument("--clips", type=_clips, default=DEFAULT_CLIPS,
                   help=f"evaluate clips, a stratified sample (default {DEFAULT_CLIPS}), or 'all'")
    s.add_argument("--baud", type=_positive(int), default=DEFAULT_BAUD, help=f"default {DEFAULT_BAUD} (the image's)")
    s.add_argument("--timeout", type=_positive(float), default=DEFAULT_TIMEOUT,
                   help=f"seconds of silence before the board is declared lost (default {DEFAULT_TIMEOUT:g})")
    s.add_argument("--pcm-clips", type=lambda v: _clips(v, least=0), default=DEFAULT_PCM_CLIPS,
                   help=f"of those, a stratified sample also sent as PCM through the board's front end (default "
                        f"{DEFAULT_PCM_CLIPS}: 1.3 MB per 10-s clip, about 2 minutes each at 115200 baud), 0 or 'all'")
    s.add_argument("--out", default=None, help="report folder (default EXPORT/board/BOARD/run)")
    add_workers_arg(s)
    p.set_defaults(func=cmd_board)


def _image_dir(a: argparse.Namespace) -> Path:
    given = getattr(a, "image", None) or (a.out if a.board_command == "build" else None)
    return Path(given) if given else Path(a.export_dir) / "board" / a.board / "image"


def cmd_flash(a: argparse.Namespace) -> None:
    image = _image_dir(a)
    if not (image / "asc_board.elf").is_file():
        raise FirmwareError(f"{image}: no asc_board.elf; build it first: asc board build {a.export_dir} --board {a.board}")
    commands = firmware_harness.flash_commands(a.board, image)
    tools = [a.tool] if a.tool else [t for t in commands if shutil.which(t)]
    if not tools or not shutil.which(tools[0]):
        raise FirmwareError(
            f"no flashing tool installed ({a.tool or 'pyocd or openocd'}), so no probe can be reached. Install pyOCD "
            "(`pip install pyocd`) or OpenOCD (Debian: `apt-get install openocd`), connect the board's ST-LINK, and "
            f"run: {shlex.join(commands['pyocd'])}  or  {shlex.join(commands['openocd'])}")
    cmd = commands[tools[0]]
    print(f"board flash: $ {shlex.join(cmd)}")
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=FLASH_SECONDS)
    except subprocess.TimeoutExpired:
        raise FirmwareError(f"{tools[0]} did not finish in {FLASH_SECONDS} s; is the probe connected? "
                            f"The command was: {shlex.join(cmd)}") from None
    if proc.returncode != 0:
        raise FirmwareError(f"{tools[0]} failed (no probe attached, or another program holds it): "
                            f"{(proc.stdout + proc.stderr).strip()[-800:]}. The command was: {shlex.join(cmd)}")
    print(proc.stdout[-800:])


def cmd_board(a: argparse.Namespace) -> None:
    if a.board_command == "build":
        firmware_harness.build_board_image(Path(a.export_dir), board=a.board, out_dir=_image_dir(a),
                                third_party_dir=Path(a.third_party) if a.third_party else None)
    elif a.board_command == "flash":
        cmd_flash(a)
    else:
        options = dict(board=a.board, clips=a.clips, out_dir=Path(a.out) if a.out else None, baud=a.baud,
                       timeout=a.timeout, pcm_clips=a.pcm_clips, workers=a.workers)
        if a.port == "qemu":
            elf = _image_dir(a) / "asc_board.elf"
            if not elf.is_file():
                raise FirmwareError(f"{elf}: missing; build it first: asc board build {a.export_dir} --board {a.board}")
            with firmware_harness.qemu_board(firmware_harness.get_board(a.board), elf) as url:
                report = firmware_harness.run_board(Path(a.export_dir), Path(a.data), Path(a.work), port=url, **options)
        else:
            report = firmware_harness.run_board(Path(a.export_dir), Path(a.data), Path(a.work), port=a.port, **options)
        print(firmware_harness.format_board_report(report))
        if not report.passed:
            raise FirmwareError("board run failed:\n" + "\n".join(f"  - {f}" for f in report.failures))
