"""The Python clip accumulator equals the C++ one (tflite_export/cc/asc_clip_accumulator.h, included by
a windowed export's model_settings.h), compiled."""
from __future__ import annotations

import shutil
import subprocess

import numpy as np
import pytest

from keras_asc.windows import window_plan
from tflite_export.c_sources import CC_DIR, ModelSettings, model_input_header, model_settings_header
from tflite_export.input_quant import InputQuantization
from tflite_export.window_combine import accumulate_windows, clip_decisions, clip_probabilities

PROGRAM = r"""
#include <stdio.h>
#include "model_settings.h"
// argv[1]: clips x kNumWindows x kNumClasses int8 -> argv[2]: per clip the int32 sums, the int32
// decision and the float32 probabilities.
int main(int argc, char** argv) {
  FILE* in = fopen(argv[1], "rb");
  FILE* out = fopen(argv[2], "wb");
  int8_t output[kNumClasses];
  ClipAccumulator acc;
  for (;;) {
    ClipAccumulatorReset(&acc);
    for (int w = 0; w < kNumWindows; ++w) {
      if (fread(output, 1, kNumClasses, in) != (size_t)kNumClasses) { fclose(out); return 0; }
      ClipAccumulatorAdd(&acc, output);
    }
    const int32_t decision = ClipAccumulatorDecision(&acc);
    fwrite(acc.sum, 4, kNumClasses, out);
    fwrite(&decision, 4, 1, out);
    for (int k = 0; k < kNumClasses; ++k) {
      const float p = ClipAccumulatorProbability(&acc, k);
      fwrite(&p, 4, 1, out);
    }
  }
}
"""


def test_c_accumulator_matches_python_bit_for_bit(tmp_path):
    cxx = shutil.which("g++")
    if cxx is None:
        pytest.skip("g++ not found: install the Debian package g++")
    plan = window_plan(frames=16, hop=8, clip_frames=58)  # 7 windows
    quant = InputQuantization(mean=(0.0,) * 4, std=(1.0,) * 4, scale=0.05, zero_point=-3)
    settings = ModelSettings(input_shape=(1, 4, 16, 1), input_quant=quant, output_scale=0.00390625,
                             output_zero_point=-128, labels=tuple("abcdefghij"), ops=("CONV_2D",),
                             arena_min_bytes=1000, arena_bytes=2048, arena_margin_text="test", feature_text="test",
                             windows=plan)
    (tmp_path / "model_input.h").write_text(model_input_header(input_shape=(1, 4, 16, 1), quant=quant,
                                                               feature_text="test"))
    header = model_settings_header(settings)
    assert "constexpr int kWindowStarts[kNumWindows] = {0, 8, 16, 24, 32, 40, 42};" in header
    assert '#include "asc_clip_accumulator.h"' in header and "struct ClipAccumulator" not in header  # only data
    # the program needs no TFLM: drop the resolver part and its include
    header = header.replace('#include "tensorflow/lite/micro/micro_mutable_op_resolver.h"\n', "")
    header = header[:header.index("constexpr int kNumModelOps")]
    (tmp_path / "model_settings.h").write_text(header)
    (tmp_path / "main.cc").write_text(PROGRAM)
    exe = tmp_path / "acc"
    # compiled from the files the export copies (tflite_export/cc/), not copies of them
    subprocess.run([cxx, "-std=c++17", "-O2", "-Wall", "-Werror", "-I", str(tmp_path), "-I", str(CC_DIR),
                    str(tmp_path / "main.cc"), "-o", str(exe)], check=True, capture_output=True, text=True)
    rng = np.random.default_rng(0)
    clips = 500
    outputs = rng.integers(-128, 128, (clips * plan.per_clip, 10)).astype(np.int8)
    outputs[: plan.per_clip] = 127  # a full tie: the lowest index wins
    outputs[plan.per_clip: 2 * plan.per_clip] = -128  # the most negative sums
    (tmp_path / "in.bin").write_bytes(outputs.tobytes())
    subprocess.run([str(exe), str(tmp_path / "in.bin"), str(tmp_path / "out.bin")], check=True)
    rec = np.fromfile(tmp_path / "out.bin", dtype=[("sum", "<i4", 10), ("decision", "<i4"), ("p", "<f4", 10)])
    sums = accumulate_windows(outputs, windows_per_clip=plan.per_clip)
    np.testing.assert_array_equal(rec["sum"], sums)
    np.testing.assert_array_equal(rec["decision"], clip_decisions(sums))
    probs = clip_probabilities(sums, windows_per_clip=plan.per_clip, scale=0.00390625, zero_point=-128)
    np.testing.assert_array_equal(rec["p"].view(np.int32), probs.view(np.int32))  # bit for bit
    assert rec["decision"][0] == 0 and rec["sum"][1][0] == -128 * plan.per_clip
    # the decision is the mean of the windows' probabilities' argmax
    mean_probs = ((outputs.astype(np.float64) + 128) * 0.00390625).reshape(clips, plan.per_clip, 10).mean(1)
    agree = mean_probs.argmax(1) == rec["decision"]
    assert agree[2:].all()
