// Example firmware of an `asc bundle`: microphone chunks -> front end -> inference -> class.
//
// The microphone is a stub (ReadMicrophone: a generated 440 Hz tone, one hop per chunk); replace it
// with your I2S/PDM driver's buffers. Everything else is what a product firmware does with the
// exported files: the static tensor arena of kTensorArenaSize bytes, the op resolver of
// RegisterModelOps, the streaming front end writing the int8 input tensor column by column
// (a windowed model: a ring of the last kNumFrames columns, one inference per window, the
// windows' outputs summed by the ClipAccumulator), and the class: the argmax of the int8
// outputs, the lowest index on ties (the order TFLM Python's outputs would be ranked by np.argmax).
//
// Prints `class=K` and `label=NAME` (stdout: the host's, semihosting under QEMU; nothing on a
// board until _write is retargeted); exit status 0, or 1 when TFLM or the front end fails. In a
// bundle for a named board (ASC_WITH_BOARD) main first sets up the board's clock and UART
// (board/board.c), and board_syscalls.c's _write sends stdout to the UART.
#include <math.h>
#include <stdint.h>
#include <stdio.h>

#ifdef ASC_WITH_BOARD
#include "board.h"
#endif

#include "model_data.h"
#include "model_frontend.h"
#include "model_settings.h"
#include "tensorflow/lite/micro/micro_interpreter.h"

namespace {

alignas(16) uint8_t tensor_arena[kTensorArenaSize];
ModelOpResolver op_resolver;
FrontEnd frontend;  // the front end's state: static, never on the stack
int16_t pcm_chunk[kHopLength];  // one microphone chunk (any length works; one hop finishes one frame)
#ifdef MODEL_WINDOWED
int8_t column_ring[kNumMels * kNumFrames];  // the front end's last kNumFrames int8 columns
#endif

// Stub microphone: the next n samples of a 440 Hz tone at a quarter of full scale.
void ReadMicrophone(int16_t* pcm, int n, long first_sample) {
  const float kTwoPi = 6.283185307179586f;
  for (int i = 0; i < n; ++i) {
    const float t = static_cast<float>(first_sample + i) / kFrontEndSampleRate;
    pcm[i] = static_cast<int16_t>(8192.0f * sinf(kTwoPi * 440.0f * t));
  }
}

// The class of one inference's int8 outputs: argmax, lowest index on ties.
int ArgMax(const int8_t* out) {
  int best = 0;
  for (int k = 1; k < kNumClasses; ++k) {
    if (out[k] > out[best]) best = k;
  }
  return best;
}

#ifdef MODEL_WINDOWED
struct Windows {
  tflite::MicroInterpreter* interpreter;
  int next;
  bool ok;
  ClipAccumulator acc;
};

// The front end's frame callback: run every window whose last frame this is.
void OnFrame(int frame, void* context) {
  Windows* w = static_cast<Windows*>(context);
  while (w->ok && w->next < kNumWindows && frame == kWindowStarts[w->next] + kNumFrames - 1) {
    FrontEndCopyWindow(column_ring, kWindowStarts[w->next], w->interpreter->input(0)->data.int8);
    w->ok = w->interpreter->Invoke() == kTfLiteOk;
    if (w->ok) ClipAccumulatorAdd(&w->acc, w->interpreter->output(0)->data.int8);
    w->next += 1;
  }
}
#endif

int Fail(const char* what) {
  printf("status=error\nerror=%s\n", what);
  return 1;
}

}  // namespace

int main(int, char**) {
#ifdef ASC_WITH_BOARD
  static BoardInfo board;
  BoardInit(&board);
#endif
  if (RegisterModelOps(op_resolver) != kTfLiteOk) return Fail("RegisterModelOps failed");
  tflite::MicroInterpreter interpreter(tflite::GetModel(g_model_data), op_resolver, tensor_arena, kTensorArenaSize);
  if (interpreter.AllocateTensors() != kTfLiteOk) return Fail("AllocateTensors failed: kTensorArenaSize too small");
  int8_t* input = interpreter.input(0)->data.int8;

#ifdef MODEL_WINDOWED
  Windows windows = {&interpreter, 0, true, {}};
  ClipAccumulatorReset(&windows.acc);
  int8_t* columns = column_ring;
  const bool begun = FrontEndBegin(&frontend, OnFrame, &windows);
#else
  int8_t* columns = input;  // a whole-clip model: the input tensor is the front end's column store
  const bool begun = FrontEndBegin(&frontend);
#endif
  if (!begun) return Fail("FrontEndBegin failed");
  // One clip, chunk by chunk as the driver delivers it.
  for (long at = 0; at < kClipSamples; at += kHopLength) {
    const int n = kClipSamples - at < kHopLength ? static_cast<int>(kClipSamples - at) : kHopLength;
    ReadMicrophone(pcm_chunk, n, at);
    FrontEndPushPcm16(&frontend, pcm_chunk, n, columns, nullptr);
  }
  FrontEndFinish(&frontend, columns, nullptr);  // the centred last frame reaches past the clip's end
  if (!FrontEndClipComplete(&frontend)) return Fail("the clip is incomplete");

#ifdef MODEL_WINDOWED
  if (!windows.ok || windows.next != kNumWindows) return Fail("a window's Invoke failed");
  const int best = ClipAccumulatorDecision(&windows.acc);
#else
  if (interpreter.Invoke() != kTfLiteOk) return Fail("Invoke failed");
  const int best = ArgMax(interpreter.output(0)->data.int8);
#endif
  printf("class=%d\nlabel=%s\nstatus=ok\n", best, kClassLabels[best]);
  return 0;
}
