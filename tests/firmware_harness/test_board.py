"""asc board on an emulated STM32F405 (QEMU netduinoplus2) and the boards' real memory maps: a windowed
export's image runs bit-exact from log-mel and from PCM over the UART, the NUCLEO-L4R5ZI image links,
a whole-clip model is refused by the STM32F407's 128 KiB of RAM with the bytes over, and the board
itself reports a block that stops coming.

The dataset has 0.6-s clips: QEMU 7.2 delivers bytes to the emulated USART at a few kB/s (docs/board.md,
"Throughput"), and PCM is 132 kB per second of audio."""
from __future__ import annotations

import os
import shutil
import socket
import time
import zlib
from pathlib import Path

import numpy as np
import pytest

from firmware_harness.builds import third_party
from firmware_harness.board.boards import get_board
from firmware_harness.board.build import ImageTooLarge, build_board_image, link_image, read_board_image
from firmware_harness.board.qemu import qemu_board
from firmware_harness.board.run import run_board
from firmware_harness.builds.third_party import FirmwareError
from keras_asc.artifacts import read_json
from tests.conftest import TINY_TRAIN

pytestmark = pytest.mark.slow
QUIET = dict(log=lambda *_: None)
CLIP_SECONDS = 0.6  # 18 frames: two windows of 14 (0 and 4)
CLIPS = 10
TOOLS = ("arm-none-eabi-gcc", "arm-none-eabi-g++", "arm-none-eabi-objcopy", "arm-none-eabi-size", "qemu-system-arm")


def require_board_tools() -> None:
    """Skip when the Arm toolchain, QEMU or the pinned archives are missing; fail instead when CI=true."""
    missing = [t for t in TOOLS if shutil.which(t) is None]
    try:
        third_party.locate_third_party(log=lambda *_: None)
    except FirmwareError as e:
        missing.append(str(e))
    if missing:
        why = f"asc board needs {missing} (Debian: gcc-arm-none-eabi libnewlib-arm-none-eabi qemu-system-arm)"
        if os.environ.get("CI") == "true":
            pytest.fail(why)
        pytest.skip(why)


@pytest.fixture(scope="module")
def short_clips(tmp_path_factory):
    """A tiny generated dataset of 0.6-s clips, its features, and a ResNet11 (width 0.25) trained on
    14-frame windows and exported: (data, work, export)."""
    from keras_asc.feature_cache import build_feature_cache
    from keras_asc.features import FeatureConfig
    from keras_asc.synth import make_dataset
    from keras_asc.training import TrainConfig, train
    from tflite_export.export import ExportConfig, export_run

    require_board_tools()
    root = tmp_path_factory.mktemp("board")
    data = make_dataset(root / "data", size="tiny", seed=0, clip_seconds=CLIP_SECONDS, workers=1, **QUIET)
    fs = build_feature_cache(data, root / "work", config=FeatureConfig.seed(clip_seconds=CLIP_SECONDS), workers=1,
                             **QUIET)
    run = root / "run"
    train(fs, run, config=TrainConfig(**{**TINY_TRAIN, "epochs": 6}, window_frames=14), **QUIET)
    export_run(run, data, root / "work", config=ExportConfig(calibration_size=40, arena_probes={}), **QUIET)
    return data, root / "work", run / "export"


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


def test_stm32f407_image_runs_bit_exact_on_netduinoplus2_from_log_mel_and_from_pcm(short_clips, tmp_path):
    data, work, export = short_clips
    image = build_board_image(export, board="stm32f407", out_dir=tmp_path / "image", **QUIET)
    elf = Path(image.elf)
    assert elf.is_file() and elf.with_suffix(".bin").is_file() and elf.with_suffix(".hex").is_file()
    try:
        with qemu_board(get_board("stm32f407"), elf) as url:
            report = run_board(export, data, work, board="stm32f407", port=url, clips=CLIPS, pcm_clips=CLIPS,
                               out_dir=tmp_path / "run", timeout=60, workers=1, **QUIET)
    finally:
        assert _qemu_processes_running(elf) == []
    assert report.passed, report.failures
    logmel, pcm = report.paths
    assert (logmel.path, logmel.clips, logmel.identical) == ("log-mel", CLIPS, CLIPS)
    assert (pcm.path, pcm.clips, pcm.identical, pcm.decisions_identical) == ("pcm", CLIPS, CLIPS, CLIPS)
    assert logmel.inferences == pcm.inferences == CLIPS * report.profile.windows


def test_the_emulator_report_says_cycles_are_not_measured(short_clips, tmp_path):
    data, work, export = short_clips
    image = build_board_image(export, board="stm32f407", out_dir=tmp_path / "image", **QUIET)
    with qemu_board(get_board("stm32f407"), Path(image.elf)) as url:
        report = run_board(export, data, work, board="stm32f407", port=url, clips=1, out_dir=tmp_path / "run",
                           pcm_clips=0, timeout=60, workers=1, **QUIET)
    assert not report.profile.cycles_measured
    assert report.cycles_per_inference is None and report.ms_per_inference is None and report.operators == ()
    md = (tmp_path / "run" / "board_report.md").read_text()
    assert "per inference on the board: not measured" in md and "per operator: not measured" in md
    # QEMU models no clock tree: the board falls back to its reset clock and says which
    assert report.profile.clock_hz == 16_000_000 and "reset clock" in report.profile.clock_note


def test_the_board_reports_a_block_that_stops_coming(short_clips, tmp_path):
    _, _, export = short_clips
    image = build_board_image(export, board="stm32f407", out_dir=tmp_path / "image", **QUIET)
    with qemu_board(get_board("stm32f407"), Path(image.elf)) as url:
        host, port = url.removeprefix("socket://").split(":")
        with socket.create_connection((host, int(port)), timeout=120) as s:
            answer = b""
            deadline = time.monotonic() + 120
            while b"m-name-dut" not in answer and time.monotonic() < deadline:  # the board may still be starting
                s.sendall(b"name%")
                time.sleep(1)
                s.settimeout(1)
                try:
                    answer += s.recv(4096)
                except socket.timeout:
                    pass
            s.settimeout(120)
            n = 128 * 14
            s.sendall(f"bin {n} {zlib.crc32(bytes(n)):08x}%".encode() + bytes(600))  # 600 of the 1,792 bytes
            answer = b""
            while b"m-ready" not in answer:
                answer += s.recv(4096)
    assert b"m-error-[input: timeout after byte 600 of 1792]" in answer


def test_nucleo_l4r5zi_image_links_into_its_chip_map(short_clips, tmp_path):
    _, _, export = short_clips
    image = build_board_image(export, board="nucleo-l4r5zi", out_dir=tmp_path / "image", **QUIET)
    regions = {r.region: r for r in image.regions}
    assert (regions["FLASH"].origin, regions["FLASH"].length) == (0x08000000, 2048 * 1024)
    assert (regions["RAM"].origin, regions["RAM"].length) == (0x20000000, 640 * 1024)
    assert 0 < regions["RAM"].used <= regions["RAM"].length and Path(image.hex).is_file()


def test_board_build_writes_the_boards_bundle_beside_the_image_and_names_it(tiny_export, tmp_path, capsys):
    """``asc board build``: OUT/bundle is the export's asc bundle with the board's own folder (its memory
    map, not the placeholders), and the command's report names it."""
    from asc_cli.main import main

    require_board_tools()
    out = tmp_path / "image"
    assert main(["board", "build", str(tiny_export), "--board", "stm32f407", "--out", str(out)]) == 0
    bundle = out / "bundle"
    assert str(bundle.resolve()) in capsys.readouterr().out
    assert read_board_image(out).bundle == str(bundle.resolve())
    assert (bundle / "board" / "memory.ld").read_text() == get_board("stm32f407").linker_script.read_text()
    assert not (bundle / "board" / "board.ld").exists()
    assert (bundle / "board" / "cmsis-device-f4" / "LICENSE.md").is_file()
    assert read_json(bundle / "bundle.json")["board"] == "stm32f407"


def test_a_whole_clip_model_is_refused_by_the_stm32f407_link_with_the_bytes_over(tmp_path):
    """Full-width ResNet11 on a whole 10-s clip (128 x 288): its arena alone is far above 128 KiB."""
    from firmware_harness.builds.model_sources import prepare_model_sources
    from keras_asc.models import build_model
    from tflite_export.convert import convert_int8

    require_board_tools()
    model = build_model("resnet11", (128, 288, 1))
    calibration = np.random.default_rng(0).normal(size=(4, 128, 288, 1)).astype(np.float32)
    (tmp_path / "whole.tflite").write_bytes(convert_int8(model, calibration))
    prepared = prepare_model_sources(tmp_path / "whole.tflite", tmp_path / "sources", **QUIET)
    arena = int(next(line.split("=")[1].strip(" ;") for line in (tmp_path / "sources" / "model_settings.h")
                     .read_text().splitlines() if "constexpr int kTensorArenaSize" in line))
    tree = third_party.prepare_tflm_tree(third_party.locate_third_party(log=lambda *_: None), **QUIET)
    with pytest.raises(ImageTooLarge) as e:
        link_image(get_board("stm32f407"), prepared.folder, tmp_path / "link", tree=tree, **QUIET)
    msg = str(e.value)
    assert "region RAM (131,072 bytes at 0x20000000) overflowed by" in msg
    over = int(msg.split("overflowed by ")[1].split(" bytes")[0].replace(",", ""))
    assert over >= arena - 128 * 1024  # the arena alone is this much over; the rest of RAM adds to it


def test_the_demo_windowed_model_fits_the_stm32f407_and_runs_bit_exact_from_pcm(short_clips, tmp_path, capsys):
    """The README's 128 KiB configuration: full-width ResNet11 on 14-frame windows (its arena and front end
    depend on the window and the mel bands, not on the clip's length), through the asc command."""
    from asc_cli.main import main
    from keras_asc.feature_cache import build_feature_cache
    from keras_asc.features import FeatureConfig
    from keras_asc.training import TrainConfig, train
    from tflite_export.export import ExportConfig, export_run

    data, work, _ = short_clips
    fs = build_feature_cache(data, work, config=FeatureConfig.seed(clip_seconds=CLIP_SECONDS), workers=1, **QUIET)
    run = tmp_path / "run"
    train(fs, run, config=TrainConfig(epochs=1, batch_size=16, seed=0, window_frames=14), **QUIET)
    export_run(run, data, work, config=ExportConfig(calibration_size=20, arena_probes={}, dcase_refuse=False),
               **QUIET)
    export = run / "export"
    assert main(["board", "build", str(export), "--board", "stm32f407"]) == 0
    built = capsys.readouterr().out
    assert "RAM" in built and "of   131,072 bytes" in built
    status = main(["board", "run", str(export), "--board", "stm32f407", "--port", "qemu", "--data", str(data),
                   "--work", str(work), "--clips", "1", "--timeout", "60", "--workers", "1"])
    out = capsys.readouterr().out
    assert status == 0 and "Result: **PASSED**" in out
    assert "| pcm | 1 | 2 | 1 |" in out  # one clip, two windows, identical from PCM
    assert _qemu_processes_running(export / "board" / "stm32f407" / "image" / "asc_board.elf") == []


def test_wrong_outputs_from_a_board_are_never_identical_and_are_localized(tiny_export, tiny_dataset, tiny_work,
                                                                         tmp_path):
    """A fake board (a socket server on 127.0.0.1) that runs nothing and answers zeros: every clip
    differs, and the same input on the emulated Cortex-M4 build agrees with TFLM Python at every operator,
    so the report puts the difference on the board."""
    from tests.firmware_harness.test_board_protocol import NAME, FakeBoard, ack_block, send
    from tflite_export.flatbuffer import io_tensors, read_model

    require_board_tools()
    model = (tiny_export / "model.tflite").read_bytes()
    (inp,), _ = io_tensors(read_model(model))
    elements = int(np.prod(inp.shape))
    profile = send("m-profile-[asc-board/1]", "m-info-board-[stm32f407]", "m-info-chip-[fake]",
                   "m-info-clock-hz-[16000000]", "m-info-target-clock-hz-[168000000]", "m-info-clock-note-[fake]",
                   "m-info-uart-[fake]", "m-info-baud-[115200]", "m-info-cycles-[not measured]",
                   f"m-info-input-bytes-[{elements}]", "m-info-output-bytes-[10]", "m-info-windows-[1]",
                   "m-info-pcm-max-bytes-[8160]", "m-info-arena-bytes-[1]", "m-info-arena-used-[1]",
                   f"m-info-model-crc32-[{zlib.crc32(model):08x}]", "m-ready")
    fake = FakeBoard({"name": NAME, "profile": profile, "bin": ack_block,
                      "infer": send("m-infer-done-[1]-[not measured]", f"m-results-[{'00' * 10}]", "m-ready")})
    try:
        report = run_board(tiny_export, tiny_dataset, tiny_work, board="stm32f407", port=fake.url, clips=3,
                           out_dir=tmp_path / "run", pcm_clips=0, timeout=10, workers=1, **QUIET)
    finally:
        fake.close()
    (logmel,) = report.paths
    assert not report.passed and logmel.identical == 0 and logmel.clips == 3
    d = logmel.first_difference
    assert d["board"] == [0] * 10 and d["board"] != d["tflm_python"]
    assert d["localized_on"].startswith("cortex-m4") and "the difference is the board's" in d["explanation"]
    assert "FAILED" in (tmp_path / "run" / "board_report.md").read_text()
