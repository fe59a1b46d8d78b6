import numpy as np
import pandas as pd
import pytest

from keras_asc.dataset import stratified_sample
from tflite_export.input_quant import InputQuantization, dequantize_output, quantize_input


def _table(n=600, seed=0):
    rng = np.random.default_rng(seed)
    scenes = [f"s{i}" for i in range(10)]
    dev = rng.choice(["a"] * 8 + ["b", "c", "s1"], size=n)
    return pd.DataFrame({"filename": [f"f{i}.wav" for i in range(n)],
                         "scene_label": rng.choice(scenes, size=n), "device": dev})


def test_calibration_is_stratified_and_deterministic():
    t = _table()
    a = stratified_sample(t, size=60, seed=1)
    assert a.equals(stratified_sample(t, size=60, seed=1))
    assert not a.index.equals(stratified_sample(t, size=60, seed=2).index)
    assert len(a) == 60 and a.index.is_monotonic_increasing
    strata = t.groupby(["scene_label", "device"]).ngroups
    assert a.groupby(["scene_label", "device"]).ngroups == strata  # every (scene, device) present
    # roughly proportional: device a is ~73 % of the table
    assert 0.45 < (a["device"] == "a").mean() < 0.9
    assert not a.index.equals(t.index[:60])  # not the first N rows
    assert len(stratified_sample(t, size=10_000, seed=0)) == len(t)


def _quant(scale=0.5, zp=-3, n_mels=2):
    return InputQuantization(mean=(10.0,) * n_mels, std=(2.0,) * n_mels, scale=scale, zero_point=zp)


def test_input_formula_rounds_half_away_and_clips():
    q = _quant()
    # (x - 10) / 2 / 0.5 = x - 10  ->  ties at .5 round away from zero, then + zp, then clip
    x = np.array([[10.5, 9.5, 11.5, 8.5, 10.49, 1000.0, -1000.0],
                  [10.0, 12.0, 7.0, 10.0, 10.0, 10.0, 10.0]], np.float32)
    out = quantize_input(x, quant=q)
    assert out.dtype == np.int8 and out.shape == (2, 7, 1)
    np.testing.assert_array_equal(out[0, :, 0], [1 - 3, -1 - 3, 2 - 3, -2 - 3, 0 - 3, 127, -128])
    np.testing.assert_array_equal(out[1, :3, 0], [-3, -1, -6])


def test_input_formula_refuses_bad_input():
    q = _quant()
    with pytest.raises(ValueError, match="NaN"):
        quantize_input(np.full((2, 3), np.nan), quant=q)
    with pytest.raises(ValueError, match="bands"):
        quantize_input(np.zeros((3, 3)), quant=q)
    with pytest.raises(ValueError, match="zero point"):
        _quant(zp=300)


def test_dequantize_output():
    np.testing.assert_allclose(dequantize_output(np.array([-128, 127], np.int8), scale=1 / 256, zero_point=-128),
                               [0.0, 255 / 256])


@pytest.mark.parametrize("kind", ["float", pytest.param("quantize-aware", marks=pytest.mark.slow),
                                  "one scale per tensor"])
def test_conversion_bytes_do_not_depend_on_the_holder(kind, monkeypatch):
    """convert_int8 hands the converter a tf.Module holding the model's variables (fast); the
    flatbuffer is byte for byte the one converted with the Keras model itself as the holder, for a
    float model, a QAT-wrapped one (its fake-quant variables) and the compression's per-tensor path."""
    import tf_keras as keras

    from tflite_export import convert

    keras.utils.set_random_seed(0)
    inp = keras.Input((12, 10, 1))
    x = keras.layers.Conv2D(4, 3, padding="same", use_bias=False)(inp)
    x = keras.layers.BatchNormalization()(x)
    x = keras.layers.ReLU()(x)
    x = keras.layers.GlobalAveragePooling2D()(x)
    model = keras.Model(inp, keras.layers.Softmax()(keras.layers.Dense(3)(x)))
    if kind == "quantize-aware":
        import tensorflow_model_optimization as tfmot

        model = tfmot.quantization.keras.quantize_model(model)
    per_channel = kind != "one scale per tensor"
    calib = np.random.default_rng(0).normal(size=(10, 12, 10, 1)).astype(np.float32)
    fast = convert.convert_int8(model, calib, per_channel_weights=per_channel)
    monkeypatch.setattr(convert, "variables_holder", lambda m: m)
    assert convert.convert_int8(model, calib, per_channel_weights=per_channel) == fast
