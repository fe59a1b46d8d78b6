"""Every registered model converts to a full-integer flatbuffer that TFLM runs at batch 1.

The models are untrained; their BatchNorm moving statistics are first set from a few
forward passes in training mode. Without that, random weights through identity BatchNorm
shrink activations block by block (MobileNetV2's reach scales of 1e-8), and TFLM aborts the
process on the resulting degenerate requantization multipliers instead of returning an error.
"""
import numpy as np
import pytest

from firmware_harness.validation.runners import make_runner
from keras_asc.model_registry import model_names
from keras_asc.models import build_model
from tflite_export.convert import convert_int8
from tflite_export.flatbuffer import check_int8_model, operator_names, read_model


@pytest.mark.parametrize("name", model_names())
def test_model_converts_and_runs_in_tflm(name):
    model = build_model(name, (32, 40, 1), 10, width=0.25)
    calib = np.random.default_rng(0).standard_normal((8, 32, 40, 1)).astype(np.float32)
    for _ in range(30):  # BN moving statistics -> batch statistics (momentum 0.9)
        model(calib, training=True)
    data = convert_int8(model, calib)
    fb = read_model(data)
    check_int8_model(fb)
    out = make_runner("tflm", data, arena_bytes=1 << 20).run(np.zeros((1, 32, 40, 1), np.int8))
    assert out.shape == (1, 10) and out.dtype == np.int8
    if name == "resnet11_cbam":
        assert {"REDUCE_MAX", "LOGISTIC", "MUL", "CONCATENATION"} <= set(operator_names(fb))


def test_a_model_that_kills_tflm_is_refused_before_tflm_runs(tmp_path):
    """The untrained MobileNetV2 without the BN warm-up: TFLM would abort on its SOFTMAX; the model
    check the arena measurement runs first refuses it, saying which operator and why."""
    from tflite_export.arena import measure_arena
    from tflite_export.model_check import ModelCheckError

    model = build_model("mobilenetv2", (32, 40, 1), 10, width=0.25)
    data = convert_int8(model, np.random.default_rng(0).standard_normal((8, 32, 40, 1)).astype(np.float32))
    (tmp_path / "m.tflite").write_bytes(data)
    with pytest.raises(ModelCheckError, match=r"m\.tflite: refused by the model check: operator \d+ \(SOFTMAX\): "
                                              r"beta 1 times its input scale .* is too small"):
        measure_arena(tmp_path / "m.tflite")
