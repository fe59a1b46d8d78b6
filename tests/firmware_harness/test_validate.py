import re
import shutil

import numpy as np
import pytest

from firmware_harness.validation.export_validation import ValidationError, validate_export
from firmware_harness.validation.report import format_report, read_validation_report
from firmware_harness.validation.runners import make_runner
from keras_asc import artifacts
from keras_asc.evaluation import score_table
from tests.conftest import write_export_config
from tests.firmware_harness.test_layers import tflm_runs_in_child
from tflite_export.arena import measure_arena
from tflite_export.input_quant import InputQuantization, dequantize_output, quantize_input

QUIET = dict(log=lambda *_: None)


@pytest.fixture(scope="module")
def tiny_report(tiny_export, tiny_dataset, tiny_work):
    return validate_export(tiny_export / "model.tflite", tiny_dataset, tiny_work, workers=2, layer_clips=4, **QUIET)


def _copy_export(tiny_export, tmp_path):
    """A copy of the run with its export inside (the export finds its float model relative to itself)."""
    run = tmp_path / "run"
    shutil.copytree(tiny_export.parent, run)
    return run / tiny_export.name


def test_report_uses_tflm_outputs(tiny_report, tiny_export, tiny_features):
    r = tiny_report
    assert r.passed and r.clips == 80 and r.truth == "tflm"
    cfg = artifacts.read_json(tiny_export / "config.json")
    # recompute int8 accuracy by running TFLM directly with the header's formula
    quant = InputQuantization.from_dict(cfg["input"])
    tflm = make_runner("tflm", (tiny_export / "model.tflite").read_bytes(), arena_bytes=r.arena.header_bytes)
    raw = tiny_features.features("evaluate")
    q = np.concatenate([tflm.run(quantize_input(raw[i], quant=quant)[None]) for i in range(len(raw))])
    probs = dequantize_output(q, scale=cfg["output"]["scale"], zero_point=cfg["output"]["zero_point"])
    expected = score_table(probs, tiny_features.table("evaluate"))
    assert r.overall.int8_accuracy == pytest.approx(expected["accuracy"].iloc[0])
    assert r.overall.int8_log_loss == pytest.approx(expected["log_loss"].iloc[0])
    assert r.agreement_with_tflm["litert_ref"].clips == 80
    assert r.output_error.mean_cosine > 0.9 and r.worst_layers
    for name in ("validation_report.json", "validation_report.md", "validation_per_device.png",
                 "validation_output_diff.png"):
        assert (tiny_export / name).is_file()
    md = (tiny_export / "validation_report.md").read_text()
    assert "PASSED" in md and "| device | s4* |" in md
    assert read_validation_report(tiny_export) == r  # the JSON round-trips to the same record


def test_arena_measurement_and_header(tiny_report, tiny_export, tiny_dataset, tiny_work, tmp_path):
    a = tiny_report.arena
    assert a.header_bytes >= a.measured_min_bytes > 0
    m = measure_arena(tiny_export / "model.tflite")
    assert m.min_bytes == a.measured_min_bytes  # the measurement is repeatable
    assert tflm_runs_in_child(tiny_export / "model.tflite", m.min_bytes)  # runs at the minimum...
    assert not tflm_runs_in_child(tiny_export / "model.tflite", m.min_bytes - 16)  # ...not 16 bytes below
    # a header promising less than TFLM needs (as a broken export would write it, hash recorded) fails validation
    exp = _copy_export(tiny_export, tmp_path)
    h = exp / "model_settings.h"
    h.write_text(re.sub(r"kTensorArenaSize = \d+;", f"kTensorArenaSize = {m.min_bytes - 512};", h.read_text()))
    cfg = artifacts.read_json(exp / "config.json")
    write_export_config(exp, {**cfg, "files_sha256": {**cfg["files_sha256"], "model_settings.h": artifacts.sha256_file(h)}})
    r = validate_export(exp / "model.tflite", tiny_dataset, tiny_work, workers=1, layer_clips=1, **QUIET)
    assert not r.passed and any(f.startswith("arena:") for f in r.failures)
    assert "FAILED" in format_report(r)


def test_max_drop_threshold(tiny_report, tiny_export, tiny_dataset, tiny_work, tmp_path):
    drop = tiny_report.accuracy_drop_pp
    exp = _copy_export(tiny_export, tmp_path)
    r = validate_export(exp / "model.tflite", tiny_dataset, tiny_work, workers=1, layer_clips=1,
                        max_drop=drop - 0.5, **QUIET)
    assert any("--max-drop" in f for f in r.failures)
    r = validate_export(exp / "model.tflite", tiny_dataset, tiny_work, workers=1, layer_clips=1,
                        max_drop=drop + 0.5, **QUIET)
    assert r.passed


def test_tampered_model_is_refused(tiny_export, tiny_dataset, tiny_work, tmp_path):
    exp = _copy_export(tiny_export, tmp_path)
    data = bytearray((exp / "model.tflite").read_bytes())
    data[len(data) // 2] ^= 0x01  # one flipped bit in the weights
    (exp / "model.tflite").write_bytes(bytes(data))
    with pytest.raises(ValidationError, match="sha256 mismatch"):
        validate_export(exp / "model.tflite", tiny_dataset, tiny_work, **QUIET)


def test_wrong_input_quantization_is_refused(tiny_export, tiny_dataset, tiny_work, tmp_path):
    exp = _copy_export(tiny_export, tmp_path)
    cfg = artifacts.read_json(exp / "config.json")
    cfg["input"]["scale"] *= 2
    write_export_config(exp, cfg)  # as an export with a wrong record would write it
    with pytest.raises(ValidationError, match="disagrees with the model's input tensor"):
        validate_export(exp / "model.tflite", tiny_dataset, tiny_work, **QUIET)


def test_float_io_model_is_refused(float_io_tflite, tiny_export, tiny_dataset, tiny_work, tmp_path):
    exp = _copy_export(tiny_export, tmp_path)
    (exp / "model.tflite").write_bytes(float_io_tflite)
    with pytest.raises(ValidationError, match="refused: .*float32"):
        validate_export(exp / "model.tflite", tiny_dataset, tiny_work, **QUIET)
