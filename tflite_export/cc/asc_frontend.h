// The on-device front end: PCM -> log-mel -> the model's int8 input tensor, streaming.
// Copied unchanged by `asc export` beside the generated model_frontend.h, which defines the
// feature constants (kFrontEndSampleRate, kFftLength, kHopLength, kClipSamples, kMelWeightCount),
// the macro ASC_RFFT_FAST_INIT_F32 (CMSIS-DSP's init for kFftLength) and declares the tables
// (defined in the generated model_frontend.cc); model_frontend.h includes this file after them.
// The code is asc_frontend.cc. Include model_frontend.h, not this file.
//
// Use (one clip of a whole-clip model, kNumFrames == kFrontEndFrames):
//   static FrontEnd fe;                // 3 * kFftLength floats and the FFT instance: not on the stack
//   FrontEndBegin(&fe);
//   for each chunk the microphone driver delivers (any length):
//     FrontEndPushPcm16(&fe, chunk, n, input, nullptr);   // or Pcm24 / Float
//   FrontEndFinish(&fe, input, nullptr);  // pads the clip's end; the input tensor is complete
//   interpreter.Invoke();
// `input` is interpreter.input(0)->data.int8. Frame t is written when sample
// t * kHopLength + kFftLength / 2 has arrived; the last frames need FrontEndFinish.
// The int8 columns go to columns[b * kNumFrames + t % kNumFrames]: for a whole-clip model that is
// the input tensor itself; for a windowed model (kNumFrames < kFrontEndFrames) it is a ring of
// the last kNumFrames frames: pass FrontEndBegin an on_frame callback, and when frame
// start + kNumFrames - 1 of a window is written, FrontEndCopyWindow(ring, start, input) and Invoke.
// `logmel`, when not null, receives the float log-mel (dB) as logmel[b * kFrontEndFrames + t]
// (for checking; a firmware passes nullptr).
#pragma once

#include <stdint.h>

#include "arm_math.h"
#include "model_input.h"

#ifndef ASC_RFFT_FAST_INIT_F32
#error "include model_frontend.h (the export's constants and tables), not asc_frontend.h"
#endif

constexpr int kNumFftBins = kFftLength / 2 + 1;
constexpr int kFrontEndFrames = 1 + kClipSamples / kHopLength;  // frames per clip (centred)
static_assert(kNumFrames <= kFrontEndFrames, "the model takes more frames than a clip has");

extern const float kHannWindow[kFftLength];
extern const int16_t kMelFirstBin[kNumMels];
extern const int16_t kMelBinCount[kNumMels];
extern const int32_t kMelWeightOffset[kNumMels];
extern const float kMelWeights[kMelWeightCount];

// Called after frame `frame` (0 .. kFrontEndFrames - 1) is written.
using FrontEndFrameFn = void (*)(int frame, void* context);

struct FrontEnd {
  arm_rfft_fast_instance_f32 fft;
  FrontEndFrameFn on_frame;
  void* context;
  float frame[kFftLength];     // samples of the next frame, oldest first
  float fft_in[kFftLength];    // the windowed frame (the FFT overwrites it)
  float spectrum[kFftLength];  // FFT output, then the power spectrum in place
  int32_t filled;              // samples in frame[]
  int32_t skip;                // samples to drop before the next frame starts (hop > FFT length)
  int32_t samples;             // clip samples consumed (at most kClipSamples; later ones are ignored)
  int32_t frames;              // frames finished = columns of the input tensor written
};

// Starts a clip (the centred first frame begins with kFftLength / 2 zeros). False if CMSIS-DSP
// cannot set up the FFT.
bool FrontEndBegin(FrontEnd* fe, FrontEndFrameFn on_frame = nullptr, void* context = nullptr);
// Windowed models: the window of frames start .. start + kNumFrames - 1 from the ring into `input`.
void FrontEndCopyWindow(const int8_t* ring, int start, int8_t* input);
// Push n samples (float in [-1, 1), 16-bit, or 24-bit little-endian packed as in a WAV file).
// Returns the frames finished so far.
int FrontEndPushFloat(FrontEnd* fe, const float* samples, int n, int8_t* columns, float* logmel);
int FrontEndPushPcm16(FrontEnd* fe, const int16_t* pcm, int n, int8_t* columns, float* logmel);
int FrontEndPushPcm24(FrontEnd* fe, const uint8_t* pcm, int n, int8_t* columns, float* logmel);
// Ends the clip: zeros up to kClipSamples (training pads a short clip) and past its end (centred
// frames); returns kFrontEndFrames.
int FrontEndFinish(FrontEnd* fe, int8_t* columns, float* logmel);
inline bool FrontEndClipComplete(const FrontEnd* fe) { return fe->frames == kFrontEndFrames; }
