// The on-device front end (see asc_frontend.h and tflite_export/frontend.py for the steps).
// Copied unchanged by `asc export`; the tables are in the generated model_frontend.cc.
#include <math.h>
#include <string.h>

#include "model_frontend.h"

namespace {

// PCM samples converted per block inside FrontEndPushPcm16/24 (a float buffer on the stack).
constexpr int kPcmBlock = 64;
// log10 of at most this power (training's floor: 10 * log10(max(mel, 1e-10))).
constexpr float kLogFloor = 1e-10f;

// One full frame in fe->frame: window, FFT, power, mel, log, int8 column t = fe->frames.
void ProcessFrame(FrontEnd* fe, int8_t* columns, float* logmel) {
  for (int i = 0; i < kFftLength; ++i) fe->fft_in[i] = fe->frame[i] * kHannWindow[i];
  arm_rfft_fast_f32(&fe->fft, fe->fft_in, fe->spectrum, 0);
  // CMSIS-DSP packs bin 0 and bin n/2 (both real) into [0] and [1], then (re, im) pairs.
  float* p = fe->spectrum;
  const float dc = p[0], nyquist = p[1];
  for (int k = 1; k < kFftLength / 2; ++k) p[k] = p[2 * k] * p[2 * k] + p[2 * k + 1] * p[2 * k + 1];
  p[0] = dc * dc;
  p[kFftLength / 2] = nyquist * nyquist;
  const int t = fe->frames;
  const int column = t % kNumFrames;
  for (int b = 0; b < kNumMels; ++b) {
    const float* w = kMelWeights + kMelWeightOffset[b];
    const float* pw = p + kMelFirstBin[b];
    float mel = 0.0f;
    for (int j = 0; j < kMelBinCount[b]; ++j) mel += w[j] * pw[j];
    const float db = 10.0f * log10f(mel > kLogFloor ? mel : kLogFloor);
    columns[b * kNumFrames + column] = QuantizeLogMel(db, b);
    if (logmel != nullptr) logmel[b * kFrontEndFrames + t] = db;
  }
  fe->frames = t + 1;
  if (fe->on_frame != nullptr) fe->on_frame(t, fe->context);
  // the next frame starts kHopLength samples later
  if (kHopLength < kFftLength) {
    memmove(fe->frame, fe->frame + kHopLength, sizeof(float) * (kFftLength - kHopLength));
    fe->filled = kFftLength - kHopLength;
  } else {
    fe->filled = 0;
    fe->skip = kHopLength - kFftLength;
  }
}

// Appends samples to the frame stream (no clip-length check), computing frames as they fill.
void Feed(FrontEnd* fe, const float* x, int n, int8_t* columns, float* logmel) {
  while (n > 0 && fe->frames < kFrontEndFrames) {
    if (fe->skip > 0) {
      const int k = n < fe->skip ? n : fe->skip;
      fe->skip -= k;
      x += k;
      n -= k;
      continue;
    }
    const int room = kFftLength - fe->filled;
    const int k = n < room ? n : room;
    memcpy(fe->frame + fe->filled, x, sizeof(float) * k);
    fe->filled += k;
    x += k;
    n -= k;
    if (fe->filled == kFftLength) ProcessFrame(fe, columns, logmel);
  }
}

}  // namespace

bool FrontEndBegin(FrontEnd* fe, FrontEndFrameFn on_frame, void* context) {
  fe->on_frame = on_frame;
  fe->context = context;
  memset(fe->frame, 0, sizeof(fe->frame));
  fe->filled = kFftLength / 2;
  fe->skip = 0;
  fe->samples = 0;
  fe->frames = 0;
  // the length-specific init (arm_rfft_fast_init_<kFftLength>_f32, from model_frontend.h) links
  // only this length's twiddle tables
  return ASC_RFFT_FAST_INIT_F32(&fe->fft) == ARM_MATH_SUCCESS;
}

void FrontEndCopyWindow(const int8_t* ring, int start, int8_t* input) {
  for (int b = 0; b < kNumMels; ++b) {
    for (int j = 0; j < kNumFrames; ++j) input[b * kNumFrames + j] = ring[b * kNumFrames + (start + j) % kNumFrames];
  }
}

int FrontEndPushFloat(FrontEnd* fe, const float* samples, int n, int8_t* columns, float* logmel) {
  const int room = kClipSamples - fe->samples;
  if (n > room) n = room;  // training reads exactly kClipSamples samples
  if (n > 0) {
    fe->samples += n;
    Feed(fe, samples, n, columns, logmel);
  }
  return fe->frames;
}

int FrontEndPushPcm16(FrontEnd* fe, const int16_t* pcm, int n, int8_t* columns, float* logmel) {
  float block[kPcmBlock];
  while (n > 0) {
    const int k = n < kPcmBlock ? n : kPcmBlock;
    for (int i = 0; i < k; ++i) block[i] = static_cast<float>(pcm[i]) * (1.0f / 32768.0f);
    FrontEndPushFloat(fe, block, k, columns, logmel);
    pcm += k;
    n -= k;
  }
  return fe->frames;
}

int FrontEndPushPcm24(FrontEnd* fe, const uint8_t* pcm, int n, int8_t* columns, float* logmel) {
  float block[kPcmBlock];
  while (n > 0) {
    const int k = n < kPcmBlock ? n : kPcmBlock;
    for (int i = 0; i < k; ++i) {
      const uint8_t* s = pcm + 3 * i;
      // sign-extend the 24-bit little-endian sample via the top of an int32
      const int32_t v = static_cast<int32_t>((static_cast<uint32_t>(s[0]) << 8) | (static_cast<uint32_t>(s[1]) << 16) |
                                             (static_cast<uint32_t>(s[2]) << 24)) >> 8;
      block[i] = static_cast<float>(v) * (1.0f / 8388608.0f);
    }
    FrontEndPushFloat(fe, block, k, columns, logmel);
    pcm += 3 * k;
    n -= k;
  }
  return fe->frames;
}

int FrontEndFinish(FrontEnd* fe, int8_t* columns, float* logmel) {
  while (fe->frames < kFrontEndFrames) {
    if (fe->skip > 0) {
      fe->skip = 0;
      continue;
    }
    memset(fe->frame + fe->filled, 0, sizeof(float) * (kFftLength - fe->filled));
    fe->filled = kFftLength;
    ProcessFrame(fe, columns, logmel);
  }
  fe->samples = kClipSamples;
  return fe->frames;
}
