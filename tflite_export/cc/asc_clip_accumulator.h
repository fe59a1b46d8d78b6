// A windowed model's clip decision from its windows' int8 outputs: the firmware's half of the one
// definition of the rule (the other half, in numpy, is tflite_export/window_combine.py; a test
// compiles this file and checks that both give the same sums and decisions).
// Copied unchanged by `asc export`; a windowed export's generated model_settings.h defines
// kNumClasses, kOutputScale and kOutputZeroPoint and then includes this file. Include
// model_settings.h, not this file.
#pragma once

#include <stdint.h>

// A clip's decision from its windows: call ClipAccumulatorAdd after each window's Invoke.
struct ClipAccumulator {
  int32_t sum[kNumClasses];  // sum over windows of the int8 outputs (exact)
  int32_t windows;
};

inline void ClipAccumulatorReset(ClipAccumulator* acc) {
  for (int k = 0; k < kNumClasses; ++k) acc->sum[k] = 0;
  acc->windows = 0;
}

inline void ClipAccumulatorAdd(ClipAccumulator* acc, const int8_t* output) {
  for (int k = 0; k < kNumClasses; ++k) acc->sum[k] += output[k];
  acc->windows += 1;
}

// The class with the largest sum (the lowest index on a tie).
inline int ClipAccumulatorDecision(const ClipAccumulator* acc) {
  int best = 0;
  for (int k = 1; k < kNumClasses; ++k) if (acc->sum[k] > acc->sum[best]) best = k;
  return best;
}

// The mean of the windows' probabilities for class k.
inline float ClipAccumulatorProbability(const ClipAccumulator* acc, int k) {
  return kOutputScale * (static_cast<float>(acc->sum[k]) / static_cast<float>(acc->windows) - kOutputZeroPoint);
}
