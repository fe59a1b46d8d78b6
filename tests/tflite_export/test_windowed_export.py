"""A windowed run exports (window input, clip accumulator in the header), validates per window and
per clip, and runs as firmware bit-exact, from log-mel and from PCM."""
from __future__ import annotations

import shutil

import numpy as np
import pytest

from firmware_harness.firmware.check import check_firmware
from firmware_harness.validation.runners import make_runner
from tests.firmware_harness.conftest import require_targets
from firmware_harness.validation.export_validation import validate_export
from keras_asc.training import train
from keras_asc.training_config import TrainConfig
from keras_asc.windows import split_windows
from tests.conftest import TINY_TRAIN
from tflite_export.export import C_SOURCE_FILES, ExportConfig, export_run
from tflite_export.export_result import read_export
from tflite_export.flatbuffer import io_tensors, read_model
from tflite_export.input_quant import quantize_input
from tflite_export.window_combine import accumulate_windows, clip_decisions

QUIET = dict(log=lambda *_: None)


@pytest.fixture(scope="module")
def windowed_export(tiny_features, tiny_dataset, tiny_work, tmp_path_factory):
    run = tmp_path_factory.mktemp("runs") / "tiny_w16"
    train(tiny_features, run, config=TrainConfig(**{**TINY_TRAIN, "epochs": 12}, window_frames=16), **QUIET)
    export_run(run, tiny_dataset, tiny_work, config=ExportConfig(calibration_size=40), **QUIET)
    return run / "export"


def test_windowed_export_takes_a_window_and_carries_the_accumulator(windowed_export, tiny_export):
    exp = read_export(windowed_export)
    (inp,), _ = io_tensors(read_model((windowed_export / "model.tflite").read_bytes()))
    assert inp.shape == (1, 128, 16, 1) and exp.windows.starts == (0, 16, 32, 42)
    settings = (windowed_export / "model_settings.h").read_text()
    assert "constexpr int kNumWindows = 4;" in settings and '#include "asc_clip_accumulator.h"' in settings
    assert "ClipAccumulatorAdd" in (windowed_export / "asc_clip_accumulator.h").read_text()  # copied, not generated
    assert all((windowed_export / f).is_file() for f in C_SOURCE_FILES) and "#define MODEL_WINDOWED 1" in settings
    assert exp.size.macs_per_clip == 4 * exp.size.macs_per_inference
    full = read_export(tiny_export)
    # 16 of 58 frames: every feature map shrinks, and so does the measured arena
    assert exp.size.arena_min_bytes < 0.5 * full.size.arena_min_bytes


def test_windowed_validation_scores_clips_from_the_accumulated_windows(windowed_export, tiny_dataset, tiny_work,
                                                                      tiny_features):
    report = validate_export(windowed_export / "model.tflite", tiny_dataset, tiny_work, workers=1, layer_clips=2,
                             **QUIET)
    assert report.passed, report.failures
    assert report.windows.per_clip == 4 and report.clips == 80
    assert report.agreement_with_tflm["litert_ref"].clips == 4 * 80  # every window compared
    exp = read_export(windowed_export)
    tflm = make_runner("tflm", (windowed_export / "model.tflite").read_bytes(), arena_bytes=report.arena.header_bytes)
    x = split_windows(quantize_input(tiny_features.features("evaluate"), quant=exp.input.quantization),
                      window=16, hop=16)
    outputs = np.concatenate([tflm.run(w[None]) for w in x])
    decisions = clip_decisions(accumulate_windows(outputs, windows_per_clip=4))
    labels = tiny_features.table("evaluate")["label"].to_numpy()
    assert report.overall.int8_accuracy == pytest.approx(np.mean(decisions == labels))
    assert "Windowed model: 4 windows of 16 frames" in (windowed_export / "validation_report.md").read_text()


def test_windowed_firmware_is_bit_exact_from_log_mel_and_from_pcm(windowed_export, tiny_dataset, tiny_work,
                                                                   tiny_features, tmp_path):
    require_targets("host", "cortex-m4")
    export = tmp_path / "export"
    shutil.copytree(windowed_export, export)
    report = check_firmware(export, tiny_dataset, tiny_work, targets=("host", "cortex-m4"), clips=2,
                            host_clips=10, from_audio=True, **QUIET)
    assert report.passed, report.failures
    host, m4 = report.targets
    assert (host.clips, m4.clips) == (10, 2)
    assert host.outputs_identical == 10 and m4.outputs_identical == 2  # every window of every clip
    outputs = np.load(export / "firmware" / "host" / "outputs.npy")
    assert outputs.shape == (10 * 4, 10)  # one row per window
    for t in (host, m4):
        a = t.from_audio
        assert a.model_bit_exact == a.clips and a.top1_agreement == a.clips
        assert a.input_identical_fraction >= 0.999
    assert m4.footprint.ram_by_part["tensor_arena"] == m4.header_arena_bytes == read_export(export).size.arena_recommended_bytes
