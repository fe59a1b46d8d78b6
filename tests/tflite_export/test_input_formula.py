"""The Python input formula equals the C++ one (tflite_export/cc/asc_input_quant.h, included by the
generated model_input.h), compiled, on every value tried."""
from __future__ import annotations

import shutil
import subprocess

import numpy as np
import pytest

from keras_asc import artifacts
from tflite_export.c_sources import CC_DIR, model_input_header
from tflite_export.input_quant import InputQuantization, quantize_input

PROGRAM = r"""
#include <stdio.h>
#include "model_input.h"
// argv[1]: (float32 x, int32 band) pairs -> argv[2]: QuantizeLogMel(x, band), one int8 each.
// argv[3]: whole clips of kNumMels x kNumFrames float32 -> argv[4]: QuantizeLogMelClip of each.
int main(int argc, char** argv) {
  FILE* in = fopen(argv[1], "rb");
  FILE* out = fopen(argv[2], "wb");
  float x;
  int32_t band;
  while (fread(&x, 4, 1, in) == 1 && fread(&band, 4, 1, in) == 1) {
    int8_t q = QuantizeLogMel(x, band);
    fwrite(&q, 1, 1, out);
  }
  fclose(out);
  static float clip[kInputElements];
  static int8_t input[kInputElements];
  FILE* clips = fopen(argv[3], "rb");
  FILE* inputs = fopen(argv[4], "wb");
  while (fread(clip, sizeof(float), kInputElements, clips) == (size_t)kInputElements) {
    QuantizeLogMelClip(clip, input);
    fwrite(input, 1, kInputElements, inputs);
  }
  fclose(inputs);
  return 0;
}
"""

#: Values of v = ((x - mean) / std) / scale that rounding or clamping can get wrong.
ADVERSARIAL_V = np.array([
    0.0, -0.0, 0.5, -0.5, 1.5, -1.5, 2.5, -2.5, 3.5, 126.5, 127.5, -127.5, -128.5,
    np.nextafter(np.float32(0.5), np.float32(0)), -np.nextafter(np.float32(0.5), np.float32(0)),  # 0.49999997f
    np.nextafter(np.float32(0.5), np.float32(1)), np.nextafter(np.float32(2.5), np.float32(0)),
    127.0, 128.0, 129.0, -128.0, -129.0, -130.0, 511.5, 512.0, 513.0, -512.5, -1000.0,
    2.0 ** 22 - 0.5, 2.0 ** 22 + 1, 2.0 ** 23 - 1, 2.0 ** 23, 2.0 ** 23 + 2, -(2.0 ** 23), -(2.0 ** 23 + 2),
    1e30, -1e30, 3.4e38, -3.4e38, 1e-30, -1e-30, 1e-45, -1e-45,
], np.float32)


@pytest.fixture(scope="module")
def compiler():
    cxx = shutil.which("g++")
    if cxx is None:
        pytest.skip("g++ not found: install the Debian package g++ to compile the formula")
    return cxx


def _compile(tmp_path, quant: InputQuantization, shape, cxx: str):
    header = model_input_header(input_shape=shape, quant=quant, feature_text="test")
    assert '#include "asc_input_quant.h"' in header and "lroundf" not in header  # only data is generated
    artifacts.atomic_write_text(tmp_path / "model_input.h", header)
    (tmp_path / "main.cc").write_text(PROGRAM)
    exe = tmp_path / "formula"
    # the formula is compiled from the file the export copies (tflite_export/cc/), not a copy of it
    subprocess.run([cxx, "-std=c++17", "-O2", "-Wall", "-Werror", "-I", str(tmp_path), "-I", str(CC_DIR),
                    str(tmp_path / "main.cc"), "-o", str(exe)], check=True, capture_output=True, text=True)
    return exe


def _run_c(exe, tmp_path, values: np.ndarray, bands: np.ndarray, clips: np.ndarray):
    pairs = np.empty(len(values), dtype=[("x", "<f4"), ("band", "<i4")])
    pairs["x"], pairs["band"] = values, bands
    (tmp_path / "pairs.bin").write_bytes(pairs.tobytes())
    (tmp_path / "clips.bin").write_bytes(np.ascontiguousarray(clips, "<f4").tobytes())
    subprocess.run([str(exe), *(str(tmp_path / n) for n in ("pairs.bin", "pairs.out", "clips.bin", "clips.out"))],
                   check=True)
    return (np.fromfile(tmp_path / "pairs.out", np.int8),
            np.fromfile(tmp_path / "clips.out", np.int8).reshape(len(clips), int(np.prod(clips.shape[1:]))))


def test_adversarial_values_round_and_clamp_like_lroundf(tmp_path, compiler):
    # identity normalization and scale: v == x, so x hits every tie and edge exactly
    quant = InputQuantization(mean=(0.0, 0.0), std=(1.0, 1.0), scale=1.0, zero_point=0)
    exe = _compile(tmp_path, quant, (1, 2, 1, 1), compiler)
    c_vals, _ = _run_c(exe, tmp_path, ADVERSARIAL_V, np.zeros(len(ADVERSARIAL_V), np.int32), np.zeros((0, 2, 1)))
    py_vals = quantize_input(ADVERSARIAL_V.reshape(1, -1).repeat(2, 0), quant=quant)[0, :, 0]
    np.testing.assert_array_equal(py_vals, c_vals)
    # spot checks by hand: half away from zero, and the 0.49999997f trap
    def q(v):
        return int(py_vals[np.flatnonzero(ADVERSARIAL_V == np.float32(v))[0]])

    assert (q(0.5), q(-0.5), q(1.5), q(2.5), q(-2.5)) == (1, -1, 2, 3, -3)
    assert q(np.nextafter(np.float32(0.5), np.float32(0))) == 0
    assert (q(127.5), q(-128.5), q(1e30), q(-1e30)) == (127, -128, 127, -128)


def test_adversarial_values_with_a_zero_point_and_real_scale(tmp_path, compiler):
    quant = InputQuantization(mean=(-31.7, 4.25), std=(9.3, 0.77), scale=0.0354619212, zero_point=-6)
    exe = _compile(tmp_path, quant, (1, 2, 1, 1), compiler)
    rng = np.random.default_rng(0)
    # x such that v lands on or next to ties, plus random values over the whole float range of dB
    x = np.concatenate([
        quant.mean[0] + ADVERSARIAL_V.astype(np.float64) * quant.std[0] * quant.scale,
        rng.normal(-30, 40, 20_000).astype(np.float32),
        (np.arange(-200, 200, dtype=np.float32) + np.float32(0.5)) * np.float32(quant.scale * quant.std[0])
        + np.float32(quant.mean[0]),
    ]).astype(np.float32)
    x = x[np.isfinite(x)]
    bands = np.zeros(len(x), np.int32)
    c_vals, _ = _run_c(exe, tmp_path, x, bands, np.zeros((0, 2, 1)))
    py_vals = quantize_input(np.stack([x, x]), quant=quant)[0, :, 0]
    np.testing.assert_array_equal(py_vals, c_vals)


def test_every_element_of_real_clips(tmp_path, compiler, tiny_features, tiny_export):
    quant = InputQuantization.from_dict(artifacts.read_json(tiny_export / "config.json")["input"])
    clips = np.asarray(tiny_features.features("evaluate"), np.float32)
    exe = _compile(tmp_path, quant, (1, *clips.shape[1:], 1), compiler)
    bands = np.broadcast_to(np.arange(clips.shape[1], dtype=np.int32)[:, None], clips.shape[1:])
    c_vals, c_clips = _run_c(exe, tmp_path, clips[0].ravel(), bands.ravel(), clips)
    py = quantize_input(clips, quant=quant).reshape(len(clips), -1)
    np.testing.assert_array_equal(py[0], c_vals)
    np.testing.assert_array_equal(py, c_clips)
    assert len(np.unique(py)) > 50  # the clips exercise much of the int8 range, not a constant
