"""The arena probe (tflite_export.arena): every trial forked, so TFLM's crashes on too-small arenas
never reach the measurement; a valid model is measured, never refused; a failure is one paragraph."""
from __future__ import annotations

import os
import signal
import time
from pathlib import Path

import numpy as np
import pytest

from tflite_export import arena
from tflite_export.model_check import ModelCheckError, check_model

KWS = Path("/work/shared/reference/mlperf_tiny/kws_dscnn_int8.tflite")


def small_conv_mean_fc_model() -> bytes:
    """A valid ~2.5 kB int8 model: CONV_2D (8 filters, 3x3) on a 10x10x1 input, MEAN (global
    average pooling), FULLY_CONNECTED (10 units), SOFTMAX; random weights, seed 0. The old probe,
    which ran its trials in one process, died of signal 11 on it (TFLM crashes, instead of
    failing, at some arena sizes below its need)."""
    import tf_keras as keras

    from tflite_export.convert import convert_int8

    keras.utils.set_random_seed(0)
    inp = keras.Input((10, 10, 1))
    x = keras.layers.Conv2D(8, 3, padding="same", activation="relu")(inp)
    x = keras.layers.GlobalAveragePooling2D()(x)
    x = keras.layers.Dense(10)(x)
    model = keras.Model(inp, keras.layers.Softmax()(x))
    return convert_int8(model, np.random.default_rng(0).normal(size=(20, 10, 10, 1)).astype(np.float32))


@pytest.fixture(scope="module")
def small_model(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("arena") / "small.tflite"
    path.write_bytes(small_conv_mean_fc_model())
    return path


def _runs(model: bytes, size: int) -> arena.Trial:
    return arena.isolated(lambda: arena._run_once(model, size), timeout=60)


def test_small_model_is_conv_mean_fc_softmax_and_passes_the_check(small_model):
    report = check_model(small_model.read_bytes(), source=str(small_model))
    assert report.operator_names == ("CONV_2D", "MEAN", "FULLY_CONNECTED", "SOFTMAX")


def test_small_model_arena_is_the_smallest_size_tflm_runs(small_model):
    need = arena.measure_arena(small_model).min_bytes
    model = small_model.read_bytes()
    assert _runs(model, need).status == "ok"
    assert _runs(model, need - arena.ALIGN).status != "ok"


def test_tflm_crashes_below_the_need_yet_the_probe_measures(small_model):
    """The hazard is real for this model (some smaller sizes, here under 1 kB, kill TFLM with a
    signal), and the measurement still succeeds."""
    model = small_model.read_bytes()
    need = arena.measure_arena(small_model).min_bytes
    outcomes = {size: _runs(model, size).status for size in range(arena.ALIGN, min(need, 1024), 2 * arena.ALIGN)}
    assert "signal" in outcomes.values()
    assert "ok" not in outcomes.values()


def test_reference_model_measured_as_tflm_records_it():
    m = arena.measure_arena(KWS)
    assert m.min_bytes >= m.recorded_total > 0 and "Arena allocation total" in m.report


def test_model_check_runs_before_the_probe(tmp_path):
    bad = tmp_path / "bad.tflite"
    bad.write_bytes(b"TFL3" * 8)
    with pytest.raises(ModelCheckError, match=f"^{bad}: refused by the model check"):
        arena.measure_arena(bad)


def test_model_tflm_cannot_run_is_one_paragraph_with_tflms_reason(tmp_path):
    """An operator TFLM does not have (a custom code) passes the model check; TFLM refuses it."""
    from tests.tflite_export.test_model_check import edited

    def custom(m):
        oc = m.operatorCodes[m.subgraphs[0].operators[0].opcodeIndex]
        oc.builtinCode = oc.deprecatedBuiltinCode = 32  # CUSTOM
        oc.customCode = "NOT_A_TFLM_OP"
    path = tmp_path / "custom.tflite"
    path.write_bytes(edited(KWS, custom))
    with pytest.raises(arena.ArenaError) as e:
        arena.measure_arena(path)
    msg = str(e.value)
    assert msg.startswith(f"{path}: TFLM cannot run this model") and "registration from op code CUSTOM" in msg
    assert "\n" not in msg and "Traceback" not in msg


def test_isolated_trial_reports_a_crash_as_its_signal():
    trial = arena.isolated(lambda: os.kill(os.getpid(), signal.SIGSEGV), timeout=30)
    assert (trial.status, trial.signal) == ("signal", signal.SIGSEGV)


def test_isolated_trial_is_bounded_in_time():
    trial = arena.isolated(lambda: time.sleep(60), timeout=0.5)
    assert trial.status == "timeout"


def test_isolated_trial_returns_the_value():
    assert arena.isolated(lambda: {"x": [1, 2]}, timeout=30).value == {"x": [1, 2]}


def test_isolated_trial_reports_an_exception():
    def fail():
        raise RuntimeError("arena too small")
    trial = arena.isolated(fail, timeout=30)
    assert (trial.status, trial.error) == ("error", "RuntimeError: arena too small")
