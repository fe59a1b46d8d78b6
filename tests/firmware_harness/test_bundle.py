"""``asc bundle``: the bundle of the tiny export builds with CMake alone and its harness program is
bit-identical to TFLM Python, on the host and on Cortex-M4 under QEMU; a bundle for the stm32f407
board links its programs into the chip's real regions with .bin and .hex, and its CMake-built
protocol image answers over the UART of an emulated STM32F405 (QEMU netduinoplus2).

Each build compiles TFLM from the bundle's sources, through ccache when it is installed. On the
2-core machine, otherwise idle (2026-11-30): the host bundle's CMake configure + build (64
sources) 77 s, the Cortex-M4 bundle's (177 sources, CMSIS-NN, the placeholder board then QEMU's)
76 s, the two tests 189 s; again with ccache's objects from that run, 1 s and 2 s, 33 s.
"""
from __future__ import annotations

import os
import shutil
import subprocess
import time
from pathlib import Path

import numpy as np
import pytest

from firmware_harness.board.boards import get_board
from firmware_harness.board.build import make_board_bundle
from firmware_harness.board.protocol import BoardLink
from firmware_harness.board.qemu import qemu_board
from firmware_harness.builds import program as fw_program
from firmware_harness.builds import third_party
from firmware_harness.builds.bundle import make_bundle
from firmware_harness.builds.targets import get_target
from firmware_harness.builds.third_party import FirmwareError, cache_root
from tests.firmware_harness.conftest import QUIET, require_targets

pytestmark = pytest.mark.slow
HOST_CLIPS = 4
QEMU_CLIPS = 1
BOARD = "stm32f407"
BOARD_TOOLS = ("cmake", "arm-none-eabi-gcc", "arm-none-eabi-g++", "arm-none-eabi-objcopy", "arm-none-eabi-size",
               "qemu-system-arm")
UART_TIMEOUT = 60.0  # seconds of silence before the emulated board is declared lost


def _cmake(folder: Path, *options: str) -> float:
    """Configure and build ``folder`` as a user would, without this project; the wall seconds.

    Every bundle test compiles the same TFLM sources: with ccache installed (Debian: ccache) the
    compilers run through it, its objects kept in the build cache (``cache_root()/ccache``) as the
    firmware builds keep their TFLM library, and paths taken relative to the bundle so that they
    are found again in the next test's folder. The build itself is the user's."""
    env = dict(os.environ)
    if shutil.which("ccache"):
        options = ("-DCMAKE_C_COMPILER_LAUNCHER=ccache", "-DCMAKE_CXX_COMPILER_LAUNCHER=ccache", *options)
        env.update(CCACHE_DIR=str(cache_root() / "ccache"), CCACHE_BASEDIR=str(folder), CCACHE_NOHASHDIR="1")
    t0 = time.perf_counter()
    for cmd in (["cmake", "-B", "build", *options], ["cmake", "--build", "build", "-j", "2"]):
        proc = subprocess.run(cmd, cwd=folder, capture_output=True, text=True, env=env)
        assert proc.returncode == 0, f"{' '.join(cmd)}:\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}"
    return time.perf_counter() - t0


def _truth(export: Path, logmel: np.ndarray):
    """The header's int8 inputs (the Python formula) and TFLM Python's outputs for ``logmel`` clips."""
    from firmware_harness.firmware.check import TflmTruth
    from firmware_harness.validation.export_validation import header_arena_bytes, load_checked_export
    from tflite_export.input_quant import quantize_input

    model, exp, quant = load_checked_export(export / "model.tflite", **QUIET)
    x = quantize_input(logmel, quant=quant)
    arena = max(header_arena_bytes(export), exp.size.arena_recommended_bytes)
    truth = TflmTruth(model, x, arena=arena)
    return x.reshape(len(x), -1), truth.outputs(np.arange(len(x)))


def _check_bit_exact(exe: Path, target: str, export: Path, logmel: np.ndarray, work: Path) -> None:
    prog = fw_program.Program(get_target(target), exe, None, None, None, 0.0)
    run = fw_program.run_program(prog, work, logmel=logmel)
    inputs, outputs = _truth(export, logmel)
    assert np.array_equal(run.inputs, inputs)
    assert np.array_equal(run.outputs, outputs)


def _example_class(cmd: list[str]) -> str:
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0 and "status=ok" in proc.stdout, proc.stdout + proc.stderr
    return dict(line.split("=", 1) for line in proc.stdout.splitlines() if "=" in line)["label"]


def test_host_bundle_builds_with_cmake_and_is_bit_exact(tiny_export, tiny_features, tmp_path):
    require_targets("host")
    if shutil.which("cmake") is None:
        pytest.skip("cmake not installed (Debian: cmake)")
    out = tmp_path / "bundle"
    b = make_bundle(tiny_export, out, target="host", **QUIET)
    assert (out / "model" / "model_data.cc").is_file() and (out / "tflm" / "LICENSE").is_file()
    assert (out / "tflm/tensorflow/lite/micro/tools/make/downloads/cmsis_dsp/LICENSE").is_file()
    assert not (out / "tflm/tensorflow/lite/micro/tools/make/downloads/cmsis_nn").exists()  # reference kernels
    assert "90b983c2b" in (out / "BUNDLE.md").read_text()
    seconds = _cmake(out)
    print(f"host bundle: {b.files} files, {b.sources} sources, cmake build {seconds:.0f} s")
    logmel = np.asarray(tiny_features.features("evaluate")[:HOST_CLIPS], np.float32)
    _check_bit_exact(out / "build" / "asc_harness", "host", tiny_export, logmel, tmp_path / "work")
    labels = list(tiny_features.table("evaluate")["scene_label"].unique())
    assert _example_class([str(out / "build" / "asc_example")]) in labels

    # the bundle stage replaces its own folder, nothing else, and refuses an edited export
    make_bundle(tiny_export, out, target="host", **QUIET)
    other = tmp_path / "mine"
    other.mkdir()
    (other / "notes.txt").write_text("x")
    with pytest.raises(Exception, match="notes|bundle|not"):
        make_bundle(tiny_export, other, target="host", **QUIET)
    assert (other / "notes.txt").read_text() == "x"
    edited = tmp_path / "edited" / "export"
    shutil.copytree(tiny_export, edited)
    with open(edited / "model_settings.h", "a") as f:
        f.write("// edited\n")
    with pytest.raises(Exception, match="model_settings.h"):
        make_bundle(edited, tmp_path / "b2", target="host", **QUIET)
    assert not (tmp_path / "b2").exists()


def test_cortex_m4_bundle_builds_with_the_toolchain_file_and_is_bit_exact_under_qemu(tiny_export, tiny_features,
                                                                                      tmp_path):
    require_targets("cortex-m4")
    if shutil.which("cmake") is None:
        pytest.skip("cmake not installed (Debian: cmake)")
    out = tmp_path / "bundle"
    b = make_bundle(tiny_export, out, target="cortex-m4", **QUIET)
    assert (out / "tflm/tensorflow/lite/micro/tools/make/downloads/cmsis_nn/LICENSE").is_file()
    # as a user builds it: the placeholder board (the toolchain file is picked up by itself) ...
    seconds = _cmake(out)
    assert (out / "build" / "asc_example.elf").is_file()
    # ... then QEMU's board in the same build folder: only the programs are compiled again
    seconds += _cmake(out, "-DASC_QEMU_BOARD=mps2_an386")
    print(f"cortex-m4 bundle: {b.files} files, {b.sources} sources, cmake builds {seconds:.0f} s")
    logmel = np.asarray(tiny_features.features("evaluate")[:QEMU_CLIPS], np.float32)
    _check_bit_exact(out / "build" / "asc_harness.elf", "cortex-m4", tiny_export, logmel, tmp_path / "work")
    labels = list(tiny_features.table("evaluate")["scene_label"].unique())
    qemu = ["qemu-system-arm", "-M", "mps2-an386", "-cpu", "cortex-m4", "-nographic", "-monitor", "none",
            "-serial", "none", "-semihosting-config", "enable=on,target=native", "-kernel",
            str(out / "build" / "asc_example.elf")]
    assert _example_class(qemu) in labels


def _require_board_bundle_tools() -> None:
    """Skip when CMake, the Arm toolchain, QEMU or the pinned archives are missing; fail when CI=true."""
    missing = [t for t in BOARD_TOOLS if shutil.which(t) is None]
    try:
        third_party.locate_third_party(**QUIET)
    except FirmwareError as e:
        missing.append(str(e))
    if missing:
        why = (f"a board bundle needs {missing} (Debian: cmake gcc-arm-none-eabi libnewlib-arm-none-eabi "
               "qemu-system-arm)")
        if os.environ.get("CI") == "true":
            pytest.fail(why)
        pytest.skip(why)


@pytest.fixture(scope="module")
def board_bundle(tiny_export, tmp_path_factory) -> Path:
    """The tiny export's bundle for the stm32f407 board, configured and built by CMake as a user would:
    its build folder."""
    _require_board_bundle_tools()
    out = tmp_path_factory.mktemp("board-bundle") / "bundle"
    make_board_bundle(tiny_export, out, board=BOARD, **QUIET)
    _cmake(out)
    return out / "build"


def _sections(elf: Path) -> list[tuple[str, int, int]]:
    """(name, bytes, address) of every allocated, non-empty section, from ``arm-none-eabi-size -A``."""
    out = subprocess.run(["arm-none-eabi-size", "-A", str(elf)], capture_output=True, text=True, check=True).stdout
    rows = [line.split() for line in out.splitlines()]
    return [(r[0], int(r[1]), int(r[2])) for r in rows
            if len(r) == 3 and r[0].startswith(".") and r[1].isdigit() and r[2].isdigit() and int(r[1]) and int(r[2])]


@pytest.mark.parametrize("program", ["asc_board", "asc_example"])
def test_stm32f407_bundle_links_its_programs_into_the_chips_regions_with_bin_and_hex(board_bundle, program):
    elf = board_bundle / f"{program}.elf"
    assert elf.with_suffix(".bin").stat().st_size > 0 and elf.with_suffix(".hex").stat().st_size > 0
    regions = get_board(BOARD).regions()
    used = {r.name: 0 for r in regions}
    for name, size, addr in _sections(elf):
        region = next((r for r in regions if r.holds(addr) and r.holds(addr + size - 1)), None)
        assert region is not None, f"{program}: section {name} ({size} B at {addr:#010x}) is in no region of the chip"
        used[region.name] += size
    assert used["FLASH"] > 0 and used["RAM"] > 0
    assert all(used[r.name] <= r.length for r in regions), used


def test_stm32f407_bundles_asc_board_answers_over_the_uart_of_netduinoplus2_bit_exact(board_bundle, tiny_export,
                                                                                        tiny_features):
    elf = board_bundle / "asc_board.elf"
    logmel = np.asarray(tiny_features.features("evaluate")[:1], np.float32)
    inputs, outputs = _truth(tiny_export, logmel)
    try:
        with qemu_board(get_board(BOARD), elf) as url, BoardLink(url, timeout=UART_TIMEOUT) as link:
            name = link.sync()
            profile = link.profile()
            inference = link.infer(inputs[0].astype(np.int8).tobytes(), output_bytes=profile.output_bytes)
    finally:
        assert _qemu_processes_running(elf) == []
    assert BOARD in name and profile.board == BOARD
    assert np.array_equal(np.frombuffer(inference.output, np.int8), outputs[0].reshape(-1))


def _qemu_processes_running(elf: Path) -> list[int]:
    """Processes whose command line names ``elf`` (this test's own image: no other helper's QEMU)."""
    found = []
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            cmd = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        if str(elf).encode() in cmd:
            found.append(int(pid))
    return found
