import shutil
import subprocess

import numpy as np
import pandas as pd
import pytest

from keras_asc import artifacts
from tflite_export.export import BudgetError, export_run
from tflite_export.export_result import read_export
from tflite_export.flatbuffer import (ModelCheckError, check_int8_model, describe_tensors, io_tensors,
                                      operator_names, read_model)

QUIET = dict(log=lambda *_: None)


def test_tiny_export_is_full_integer(tiny_export, tiny_run):
    data = (tiny_export / "model.tflite").read_bytes()
    model = read_model(data)
    check_int8_model(model)
    (inp,), (out,) = io_tensors(model)
    assert inp.dtype == out.dtype == "INT8" and inp.shape == (1, 128, 58, 1)
    dtypes = {t.dtype for t in describe_tensors(model)}
    assert dtypes <= {"INT8", "INT32"}  # int32 only for biases / shapes
    weights = [t for t in describe_tensors(model) if t.constant and t.dtype == "INT8" and len(t.shape) == 4]
    assert any(len(t.scales) > 1 for t in weights)  # per-channel weight scales
    assert {"CONV_2D", "MEAN", "SOFTMAX"} <= set(operator_names(model))
    exp = read_export(tiny_export)
    assert exp.quantization_path == "ptq" and exp.tflite_sha256 == artifacts.sha256_bytes(data)
    assert exp.source_model_sha256 == artifacts.sha256_file(tiny_run / "model.keras")
    assert exp.input.scale == pytest.approx(inp.scales[0]) and exp.size.flatbuffer_bytes == len(data)
    assert exp.size.arena_recommended_bytes > exp.size.arena_min_bytes > 0
    assert exp.input.shape == inp.shape and exp.output.zero_point == out.zero_points[0]
    calib = pd.read_csv(tiny_export / "calibration.csv")
    assert len(calib) == 40 and calib["scene_label"].nunique() == 10
    assert set(calib["device"]) == {"a", "b", "c", "s1", "s2", "s3"}
    header = (tiny_export / "model_settings.h").read_text() + (tiny_export / "model_input.h").read_text()
    assert f"constexpr int kInputZeroPoint = {inp.zero_points[0]};" in header
    assert "lroundf" in header and "kTensorArenaSize" in header and '"street_traffic"' in header


def test_over_budget_writes_nothing(tiny_run, tiny_dataset, tiny_work, tiny_export, tmp_path):
    run = tmp_path / "run"
    shutil.copytree(tiny_run, run)
    before = (run / "export" / "model.tflite").read_bytes()
    with pytest.raises(BudgetError, match=r"over the budget of 10,000 bytes[\s\S]*Largest tensors[\s\S]*INT8    \(32, 1, 1, 32\)"):
        export_run(run, tiny_dataset, tiny_work, budget=10_000, calibration_size=20, **QUIET)
    assert (run / "export" / "model.tflite").read_bytes() == before  # previous export untouched
    assert sorted(p.name for p in run.iterdir() if p.name.startswith(".")) == []


def test_unsupported_op_is_refused():
    import tensorflow as tf
    import tf_keras as keras

    from tflite_export.convert import convert_int8

    inp = keras.Input((8, 8, 1))
    x = keras.layers.Conv2D(4, 3, padding="same")(inp)
    x = keras.layers.Lambda(lambda t: tf.math.sin(t))(x)  # no int8 SIN kernel
    x = keras.layers.GlobalAveragePooling2D()(x)
    model = keras.Model(inp, keras.layers.Softmax()(x))
    calib = np.random.default_rng(0).normal(size=(8, 8, 8, 1)).astype(np.float32)
    # the converter keeps SIN in float (DEQUANTIZE -> SIN -> QUANTIZE) without complaint;
    # the flatbuffer check is what refuses it
    data = convert_int8(model, calib)
    with pytest.raises(ModelCheckError, match=r"\['DEQUANTIZE', 'QUANTIZE', 'SIN'\] would run in float32"):
        check_int8_model(read_model(data))


def test_float_io_model_is_refused(float_io_tflite):
    with pytest.raises(ModelCheckError, match="would run in float32|FLOAT32, not INT8"):
        check_int8_model(read_model(float_io_tflite))


def test_garbage_is_refused():
    with pytest.raises(ModelCheckError, match="not a readable TFLite flatbuffer"):
        read_model(b"\x00" * 64)


STUB_RESOLVER = """
#pragma once
#include <cstdio>
typedef int TfLiteStatus;
constexpr TfLiteStatus kTfLiteOk = 0, kTfLiteError = 1;
namespace tflite {
template <unsigned N> struct MicroMutableOpResolver {
  int n = 0;
  TfLiteStatus Add(const char* op) { if (n >= (int)N) return kTfLiteError; ++n; std::printf("%s\\n", op); return kTfLiteOk; }
#define OP(M) TfLiteStatus M() { return Add(#M); }
  OP(AddAdd) OP(AddAveragePool2D) OP(AddConcatenation) OP(AddConv2D) OP(AddDepthwiseConv2D)
  OP(AddDequantize) OP(AddFullyConnected) OP(AddLogistic) OP(AddMaxPool2D) OP(AddMean) OP(AddMul)
  OP(AddPad) OP(AddQuantize) OP(AddReduceMax) OP(AddRelu) OP(AddRelu6) OP(AddReshape) OP(AddSoftmax)
  OP(AddSqueeze)
};
}
"""

MAIN = """
#include <cstdio>
#include "model_data.h"
#include "model_settings.h"
int main(int argc, char** argv) {
  static_assert(kInputDims[1] == kNumMels && kInputDims[2] == kNumFrames, "shape");
  if (reinterpret_cast<unsigned long>(g_model_data) % 16 != 0) return 3;
  ModelOpResolver resolver;
  if (RegisterModelOps(resolver) != kTfLiteOk) return 2;
  std::FILE* f = std::fopen(argv[1], "wb");
  std::fwrite(g_model_data, 1, g_model_data_len, f);
  std::fclose(f);
  std::printf("labels %d arena %d\\n", kNumClasses, kTensorArenaSize);
  return 0;
}
"""


def test_c_array_round_trips_through_the_compiler(tiny_export, tmp_path):
    cxx = shutil.which("g++") or shutil.which("c++")
    if cxx is None:
        pytest.skip("no C++ compiler on this machine")
    stub = tmp_path / "include" / "tensorflow" / "lite" / "micro"
    stub.mkdir(parents=True)
    (stub / "micro_mutable_op_resolver.h").write_text(STUB_RESOLVER)
    (tmp_path / "main.cc").write_text(MAIN)
    exe = tmp_path / "roundtrip"
    subprocess.run([cxx, "-std=c++17", "-Wall", "-Werror", "-I", str(tiny_export), "-I", str(tmp_path / "include"),
                    str(tmp_path / "main.cc"), str(tiny_export / "model_data.cc"), "-o", str(exe)],
                   check=True, capture_output=True, text=True)
    out = subprocess.run([str(exe), str(tmp_path / "back.tflite")], check=True, capture_output=True, text=True).stdout
    assert (tmp_path / "back.tflite").read_bytes() == (tiny_export / "model.tflite").read_bytes()
    ops = [line for line in out.splitlines() if line.startswith("Add")]
    model = read_model((tiny_export / "model.tflite").read_bytes())
    from tflite_export.flatbuffer import TFLM_RESOLVER_METHODS
    assert ops == [TFLM_RESOLVER_METHODS[o] for o in dict.fromkeys(operator_names(model))]
    assert f"arena {read_export(tiny_export).size.arena_recommended_bytes}" in out


def test_qat_export_records_its_path(tiny_run, tiny_dataset, tiny_work, tmp_path):
    run = tmp_path / "run"
    shutil.copytree(tiny_run, run, ignore=shutil.ignore_patterns("export"))
    exp = export_run(run, tiny_dataset, tiny_work, qat=True, qat_epochs=1, calibration_size=20, **QUIET)
    assert exp.quantization_path == "qat" and exp.qat_epochs == 1 and read_export(run / "export") == exp
    check_int8_model(read_model((run / "export" / "model.tflite").read_bytes()))
