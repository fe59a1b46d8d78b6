import shutil
import subprocess

import numpy as np
import pandas as pd
import pytest

from keras_asc import artifacts
from tflite_export.c_sources import CC_DIR, STATIC_SOURCE_FILES
from tflite_export.export import BudgetError, ExportConfig, RamBudgetError, export_run
from tflite_export.export_result import read_export
from tflite_export.mcu_targets import MCU_TARGETS, RAM_BESIDES_ARENA_ESTIMATE, UnknownTarget, get_mcu_target
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
    assert '#include "asc_input_quant.h"' in header and "kTensorArenaSize" in header and '"street_traffic"' in header
    # only data is generated: the fixed C++ is copied unchanged from tflite_export/cc/, its sha256 recorded
    for name in STATIC_SOURCE_FILES:
        assert (tiny_export / name).read_bytes() == (CC_DIR / name).read_bytes()
        assert exp.files_sha256[name] == artifacts.sha256_file(tiny_export / name)
    assert "lroundf" in (tiny_export / "asc_input_quant.h").read_text() and "lroundf" not in header


def test_over_budget_writes_nothing(tiny_run, tiny_dataset, tiny_work, tiny_export, tmp_path):
    run = tmp_path / "run"
    shutil.copytree(tiny_run, run)
    before = (run / "export" / "model.tflite").read_bytes()
    with pytest.raises(BudgetError, match=r"over the budget of 10,000 bytes[\s\S]*Largest tensors[\s\S]*INT8    \(32, 1, 1, 32\)"):
        export_run(run, tiny_dataset, tiny_work, config=ExportConfig(budget=10_000, calibration_size=20), **QUIET)
    assert (run / "export" / "model.tflite").read_bytes() == before  # previous export untouched
    assert sorted(p.name for p in run.iterdir() if p.name.startswith(".")) == []


def test_ram_gate_refuses_with_the_peak_and_keeps_the_previous_export(tiny_run, tiny_dataset, tiny_work,
                                                                     tiny_export, tmp_path):
    run = tmp_path / "run"
    shutil.copytree(tiny_run, run)
    before = (run / "export" / "config.json").read_bytes()
    exp = read_export(run / "export")
    budget = exp.ram.needed_bytes - 1
    with pytest.raises(RamBudgetError, match=rf"over the RAM budget of {budget:,d} bytes by 1\. Nothing was written"
                                             r"[\s\S]*peak at operator \d+ \(CONV_2D\)"):
        export_run(run, tiny_dataset, tiny_work, config=ExportConfig(calibration_size=40, ram_budget=budget), **QUIET)
    assert (run / "export" / "config.json").read_bytes() == before
    assert sorted(p.name for p in run.iterdir() if p.name.startswith(".")) == []


def test_ram_figures_and_fit_table_of_the_tiny_export(tiny_export):
    exp = read_export(tiny_export)
    ram = exp.ram
    assert ram.arena_bytes == exp.size.arena_recommended_bytes
    assert ram.needed_bytes == ram.arena_bytes + ram.frontend_state_bytes + RAM_BESIDES_ARENA_ESTIMATE
    assert ram.frontend_state_bytes == 3 * 4 * 2048 + 96 and ram.budget_bytes is None
    # the activation peak is a lower bound of what TFLM measured, and its list adds up
    assert 0 < ram.peak.live_bytes <= exp.size.arena_min_bytes
    assert sum(t.nbytes for t in ram.peak.tensors) == ram.peak.live_bytes
    assert [f.target for f in exp.fits] == list(MCU_TARGETS)
    f407 = next(f for f in exp.fits if f.target == "stm32f407")
    assert f407.ram_available == 128 * 1024 and f407.fits == (ram.needed_bytes <= 128 * 1024)
    text = (tiny_export / "size_report.txt").read_text()
    assert "activation peak at operator" in text and "| stm32f407 |" in text and "30 M MACs" in text


def test_peak_live_tensors_of_a_known_graph():
    """conv(a) -> b, conv(b) -> c, add(b, c) -> d: b lives until the add, so the peak is b + c + d there."""
    import tf_keras as keras

    from tflite_export.arena import peak_live_tensors
    from tflite_export.convert import convert_int8

    inp = keras.Input((8, 8, 1))
    b = keras.layers.Conv2D(4, 3, padding="same")(inp)
    c = keras.layers.Conv2D(4, 3, padding="same")(b)
    d = keras.layers.Add()([b, c])
    out = keras.layers.Dense(2)(keras.layers.GlobalAveragePooling2D()(d))
    model = keras.Model(inp, out)
    data = convert_int8(model, np.random.default_rng(0).normal(size=(8, 8, 8, 1)).astype(np.float32))
    peak = peak_live_tensors(read_model(data))
    assert peak.op == "ADD" and peak.live_bytes == 3 * 8 * 8 * 4
    assert [t.shape for t in peak.tensors] == [(1, 8, 8, 4)] * 3


def test_target_table_is_the_documented_figures():
    kib = 1024
    assert {n: (t.flash_bytes, t.largest_sram_bytes) for n, t in MCU_TARGETS.items()} == {
        "stm32h743": (2048 * kib, 512 * kib), "nrf5340": (1024 * kib, 512 * kib), "stm32f746": (1024 * kib, 320 * kib),
        "stm32f407": (1024 * kib, 128 * kib), "corstone-300": (512 * kib, 4096 * kib),
        "nucleo-l4r5zi": (2048 * kib, 640 * kib), "ek-ra6m4": (1024 * kib, 256 * kib),
        "ek-ra8d1": (2048 * kib, 896 * kib)}
    with pytest.raises(UnknownTarget, match="stm32f407"):
        get_mcu_target("stm32f4")


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


def test_the_same_bytes_are_parsed_once_for_readers(float_io_tflite, fc_tflite):
    from tflite_export import flatbuffer

    flatbuffer._parse_model_cached.cache_clear()
    first = flatbuffer.read_model_shared(float_io_tflite)
    assert flatbuffer.read_model_shared(bytes(bytearray(float_io_tflite))) is first  # same content, another object
    assert flatbuffer.read_model_shared(fc_tflite) is not first
    assert flatbuffer._parse_model_cached.cache_info().misses == 2
    assert read_model(float_io_tflite) is not first  # a copy of its own, to edit


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
    exp = export_run(run, tiny_dataset, tiny_work, config=ExportConfig(qat=True, qat_epochs=1, calibration_size=20,
                                                                   qat_choose_better=False), **QUIET)
    assert exp.quantization_path == "qat" and exp.qat_epochs == 1 and read_export(run / "export") == exp
    check_int8_model(read_model((run / "export" / "model.tflite").read_bytes()))


def test_probe_latency_goes_into_the_fit_table_and_the_record(tiny_run, tiny_dataset, tiny_work, tmp_path):
    """A Cortex-M probe's estimated ms per inference becomes the fit table's latency column; MCUs
    whose core was not profiled show '-'. MACs per second of audio are DCASE 2022-2025's measure."""
    from tflite_export.export import BuildProbe, ExportConfig, export_run

    run = tmp_path / "run"
    shutil.copytree(tiny_run, run)
    probe = {"m4 build": lambda export_dir: BuildProbe(arena_bytes=1000, image_flash_bytes=200_000,
                                                       estimated_ms={"stm32f407": 12.5})}
    cfg = export_run(run, tiny_dataset, tiny_work, config=ExportConfig(calibration_size=20, arena_probes=probe), log=lambda *_: None)
    assert cfg.estimated_ms_per_inference == {"stm32f407": 12.5}
    report = (run / "export" / "size_report.txt").read_text()
    row = {line.split("|")[1].strip(): line for line in report.splitlines() if line.startswith("| ")}
    assert row["stm32f407"].startswith("| stm32f407 | 200,000 / 1,048,576 |") and row["stm32f407"].endswith(" 12.5 |")
    assert row["nrf5340"].endswith(" - |")
    assert cfg.size.macs_per_second_of_audio == round(cfg.size.macs_per_clip / cfg.features.clip_seconds)
    assert f"per second of audio {cfg.size.macs_per_second_of_audio:,d}" in report


def test_fit_table_without_latency_has_no_latency_column():
    from tflite_export.mcu_targets import fit_table, format_fit_table

    text = format_fit_table(fit_table(flash_needed=1, ram_needed=1), basis="b")
    assert "est. ms" not in text and text.count("| yes |") == len(MCU_TARGETS)
