// From log-mel values to the int8 input tensor: the firmware's half of the one definition of the
// input formula (the other half, the same formula in numpy, is tflite_export/input_quant.py; a
// test compiles this file and checks that both give the same int8).
// Copied unchanged by `asc export` beside the generated model_input.h, which defines kNumMels,
// kNumFrames, kFeatureMean, kFeatureStd, kInputScale and kInputZeroPoint and then includes this
// file. Include model_input.h, not this file.
#pragma once

#include <math.h>
#include <stdint.h>

// int8 input value of log-mel x (dB) in mel band `band` (0 .. kNumMels-1).
inline int8_t QuantizeLogMel(float x, int band) {
  const float v = ((x - kFeatureMean[band]) / kFeatureStd[band]) / kInputScale;
  // |v| > 512 saturates below anyway; bounding it keeps lroundf defined (a NaN gives -128).
  const float bounded = v > 512.0f ? 512.0f : (v > -512.0f ? v : -512.0f);
  long q = lroundf(bounded) + kInputZeroPoint;  // round half away from zero
  if (q < -128) q = -128;
  if (q > 127) q = 127;
  return static_cast<int8_t>(q);
}

// One mel band of a clip, values[t] for t < kNumFrames, into the input tensor
// (1, kNumMels, kNumFrames, 1): input[band * kNumFrames + t].
inline void QuantizeLogMelBand(const float* values, int band, int8_t* input) {
  for (int t = 0; t < kNumFrames; ++t) input[band * kNumFrames + t] = QuantizeLogMel(values[t], band);
}

// A whole clip, logmel[b * kNumFrames + t], into the input tensor.
inline void QuantizeLogMelClip(const float* logmel, int8_t* input) {
  for (int b = 0; b < kNumMels; ++b) QuantizeLogMelBand(logmel + b * kNumFrames, b, input);
}
