"""The on-device front end: PCM in, the model's int8 input tensor out, as C++ for the firmware.

``asc export`` writes ``model_frontend.h`` (constants) and ``model_frontend.cc`` (tables) for the
run's :class:`~keras_asc.features.FeatureConfig` and copies the fixed C++ beside them,
``tflite_export/cc/asc_frontend.h`` and ``asc_frontend.cc`` (the state, the API and the code, a
real C++ file compiled against the generated constants). They compute what :func:`keras_asc.features.log_mel`
computes for training, in float32 on the device, one frame at a time:

For frame ``t`` (centred, as training: samples ``t*hop - n_fft/2 .. t*hop + n_fft/2 - 1`` of the
clip, zeros outside it)::

    x[i]  = sample[i] * window[i]                 periodic Hann (librosa's "hann"), float32
    X     = arm_rfft_fast_f32(x)                  CMSIS-DSP real FFT, float32
    P[k]  = Re(X[k])^2 + Im(X[k])^2               k = 0 .. n_fft/2
    M[b]  = sum_j W[b][j] * P[first[b] + j]       Slaney mel weights (librosa.filters.mel), only
                                                  each band's non-zero run, float32
    L[b]  = 10 * log10(max(M[b], 1e-10))          dB
    input[b * n_frames + t] = QuantizeLogMel(L[b], b)     model_input.h

Training runs the same steps in float64 (librosa's STFT and a float64 mel product) on the
float32 audio soundfile reads; integer PCM becomes float the same way here (``x / 2^15``,
``x / 2^23``, exact in float32). ``asc firmware --from-audio`` measures the remaining
difference clip by clip.

The C++ is streaming: ``FrontEndPush*`` take PCM in chunks of any size, as a microphone driver
delivers them; each frame is computed as soon as its last sample arrives and its int8 column is
written straight into the input tensor. RAM: one frame of samples and two FFT buffers
(3 x n_fft floats), no spectrogram. ``FrontEndFinish`` zero-pads the clip's end, as training
does, and completes the tensor.
"""
from __future__ import annotations

import dataclasses

import numpy as np

from keras_asc.errors import AscError
from keras_asc.features import FeatureConfig, mel_filterbank
from tflite_export.c_sources import c_float_array

#: FFT lengths CMSIS-DSP's arm_rfft_fast_f32 supports (each has its own init and tables)
RFFT_LENGTHS = (32, 64, 128, 256, 512, 1024, 2048, 4096)


class FrontEndUnsupported(AscError, ValueError):
    """The feature configuration has no device front end (e.g. an FFT length CMSIS-DSP lacks)."""


@dataclasses.dataclass(frozen=True)
class FrontEndTables:
    """The constant tables of the C++ front end, float32 as the device holds them."""

    window: np.ndarray  # (n_fft,) float32
    mel_first_bin: np.ndarray  # (n_mels,) int: first FFT bin with a non-zero weight
    mel_bin_count: np.ndarray  # (n_mels,) int: bins in the band's non-zero run (0: empty band)
    mel_weight_offset: np.ndarray  # (n_mels,) int: where the band's weights start in mel_weights
    mel_weights: np.ndarray  # (sum of counts,) float32

    @property
    def flash_bytes(self) -> int:
        return 4 * (len(self.window) + len(self.mel_weights)) + 8 * len(self.mel_first_bin)


def frontend_state_bytes(config: FeatureConfig) -> int:
    """A bound of ``sizeof(FrontEnd)``: three float32 buffers of ``n_fft`` plus the CMSIS-DSP
    FFT instance, the frame callback and four counters (48 bytes on Cortex-M, 80 on x86-64;
    96 allowed)."""
    return 3 * 4 * config.n_fft + 96


def frontend_tables(config: FeatureConfig) -> FrontEndTables:
    """Window and sparse mel filterbank of ``config``, from the functions training uses."""
    import librosa  # heavy: librosa loads numba (seconds)

    if config.n_fft not in RFFT_LENGTHS:
        raise FrontEndUnsupported(f"n_fft={config.n_fft}: CMSIS-DSP's real FFT supports {RFFT_LENGTHS}")
    if config.hop_length > 32767 or config.n_fft > 32767:
        raise FrontEndUnsupported("hop or FFT length beyond the front end's int16 tables")
    window = librosa.filters.get_window("hann", config.n_fft, fftbins=True).astype(np.float32)
    basis = mel_filterbank(config)  # (n_mels, 1 + n_fft/2) float64
    first, count, offset, weights = [], [], [], []
    for band in basis:
        nz = np.flatnonzero(band)
        lo, hi = (int(nz[0]), int(nz[-1]) + 1) if len(nz) else (0, 0)
        first.append(lo)
        count.append(hi - lo)
        offset.append(sum(len(w) for w in weights))
        weights.append(band[lo:hi].astype(np.float32))
    return FrontEndTables(window, np.array(first), np.array(count), np.array(offset),
                          np.concatenate(weights) if weights else np.zeros(0, np.float32))


def _int_array(values) -> str:
    items = [str(int(v)) for v in values]
    return ",\n".join("    " + ", ".join(items[i:i + 16]) for i in range(0, len(items), 16))


def model_frontend_header(config: FeatureConfig, tables: FrontEndTables) -> str:
    """``model_frontend.h``: the constants of ``config``, the tables' sizes and CMSIS-DSP's FFT init
    for its length; it includes the fixed ``asc_frontend.h`` (the state and the API)."""
    return f"""// Generated by asc export. Do not edit.
// The on-device front end's constants. Its tables are in model_frontend.cc; its state, API and
// code are the fixed C++ copied beside this file (asc_frontend.h, asc_frontend.cc), where the
// use is described.
// Features: {config.describe()}
#pragma once

#include <stdint.h>

#include "arm_math.h"
#include "model_input.h"

constexpr int kFrontEndSampleRate = {config.sample_rate};
constexpr int kFftLength = {config.n_fft};
constexpr int kHopLength = {config.hop_length};
constexpr int kClipSamples = {config.n_samples};
constexpr int kMelWeightCount = {len(tables.mel_weights)};
static_assert(kNumMels == {len(tables.mel_first_bin)}, "model_input.h and the front end disagree on mel bands");
// CMSIS-DSP's real-FFT init for kFftLength: it links only this length's twiddle tables.
#define ASC_RFFT_FAST_INIT_F32 arm_rfft_fast_init_{config.n_fft}_f32

#include "asc_frontend.h"
"""


def model_frontend_source(config: FeatureConfig, tables: FrontEndTables) -> str:
    """``model_frontend.cc``: the tables (the code is the fixed ``asc_frontend.cc``)."""
    return f"""// Generated by asc export. Do not edit.
// The front end's tables for: {config.describe()}
#include "model_frontend.h"

const float kHannWindow[kFftLength] = {{
{c_float_array(tables.window)}
}};
const int16_t kMelFirstBin[kNumMels] = {{
{_int_array(tables.mel_first_bin)}
}};
const int16_t kMelBinCount[kNumMels] = {{
{_int_array(tables.mel_bin_count)}
}};
const int32_t kMelWeightOffset[kNumMels] = {{
{_int_array(tables.mel_weight_offset)}
}};
const float kMelWeights[kMelWeightCount] = {{
{c_float_array(tables.mel_weights)}
}};
"""
