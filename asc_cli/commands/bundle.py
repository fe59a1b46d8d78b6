"""``asc bundle``: a self-contained CMake folder of an export."""
from __future__ import annotations

import argparse
from pathlib import Path

import firmware_harness
from asc_cli.source_options import check_model_source


def add_parser(sub) -> None:
    s = sub.add_parser("bundle", help="a self-contained CMake folder: the export, TFLM and only the sources it needs, "
                                      "an example main, the verified flags")
    s.add_argument("export_dir", metavar="EXPORT", help="RUN_DIR/export or its model.tflite")
    s.add_argument("--out", required=True, help="the bundle folder (replaced only if an earlier asc bundle wrote it)")
    s.add_argument("--target", choices=firmware_harness.BUNDLE_TARGETS, default=None,
                   help="host (default: g++, TFLM reference kernels) or a Cortex-M (arm-none-eabi, CMSIS-NN); "
                        "with --board, the board's")
    s.add_argument("--board", choices=tuple(firmware_harness.BOARDS), default=None,
                   help=f"a board of asc board ({', '.join(firmware_harness.BOARDS)}): its real folder in board/ "
                        "(memory map, ST's start-up, clock, UART, the UART protocol program asc_board) instead of "
                        "the placeholders")
    s.add_argument("--third-party", default=None, help="folder of the pinned TFLM source archives")
    s.set_defaults(func=run)


def run(a: argparse.Namespace) -> None:
    source = check_model_source(Path(a.export_dir))
    b = firmware_harness.bundle(source=source, out_dir=Path(a.out), target=a.target, board=a.board,
                                third_party_dir=Path(a.third_party) if a.third_party else None)
    print(f"bundle: build it with `cmake -S {b.out} -B {b.out / 'build'} && cmake --build {b.out / 'build'} -j 2` "
          f"(no Python, no network); {b.out / 'BUNDLE.md'} says what it holds")
